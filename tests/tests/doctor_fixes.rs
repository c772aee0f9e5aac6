//! Every fix `ballast doctor` prints as a command fixes: an account seeded
//! with a defect of each kind is audited, each failing or warning check's
//! command is run exactly as printed, with the pinned AWS CLI
//! (`.venv-awscli`, `make awscli`) against the emulator, and the audit is
//! run again: each of those checks now passes, and no other check turned
//! worse.

use std::collections::BTreeMap;
use std::process::Command;

use ballast_cli::Target;
use ballast_tests::databases::{Databases, MULTI_AZ, PRIMARY};
use ballast_tests::moto::Moto;
use ballast_tests::stack::{Stack, MANAGED_ASG};
use ballast_tests::{start_function_named, workspace_root};
use serde_json::Value;

const STACK: &str = "ballast";

/// `(check, subject) → (verdict, command)` of a `doctor --json` answer.
type Audit = BTreeMap<(String, String), (String, Option<String>)>;

async fn audit(target: &Target) -> Audit {
    let answer =
        ballast_tests::ballast_command(target, &["--json", "doctor", "--stack", STACK]).await;
    let json: Value = serde_json::from_str(&answer.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", answer.stdout, answer.stderr));
    json["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            let key = (
                c["check"].as_str().unwrap().to_string(),
                c["subject"].as_str().unwrap().to_string(),
            );
            let command = c["command"].as_str().map(str::to_string);
            (key, (c["verdict"].as_str().unwrap().to_string(), command))
        })
        .collect()
}

fn rank(verdict: &str) -> u8 {
    match verdict {
        "pass" => 0,
        "warn" => 1,
        _ => 2,
    }
}

/// Runs `command` as a shell would, with the pinned AWS CLI first on the
/// path and the emulator's endpoint and credentials.
fn run(command: &str, moto: &Moto) {
    let cli = workspace_root().join(".venv-awscli").join("bin");
    assert!(
        cli.join("aws").exists(),
        "{} is missing: run `make awscli` (make test does)",
        cli.display()
    );
    let path = format!(
        "{}:{}",
        cli.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // AWS CLI v1 pins some services to an endpoint of its own in some
    // Regions (RDS in us-east-1: `rds.amazonaws.com`, its
    // overridesslcommonname customization), ignoring AWS_ENDPOINT_URL: the
    // emulator is also given as the CLI's own global option.
    let endpoint = format!(" --endpoint-url {}", moto.endpoint());
    let command = command
        .split(" && ")
        .map(|c| format!("{c}{endpoint}"))
        .collect::<Vec<_>>()
        .join(" && ");
    let out = Command::new("sh")
        .args(["-c", &command])
        .env("PATH", path)
        .env("AWS_PAGER", "")
        .envs(moto.env())
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{command}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn every_command_doctor_prints_fixes_its_check() {
    let moto = Moto::start();
    let conf = moto.sdk_config();
    let stack = Stack::seed(&conf).await;
    let dbs = Databases::seed(&conf).await;
    let (host, _process) = start_function_named(
        "az-impairment",
        "ballast-az-impairment",
        &moto,
        &stack.topic_arn,
        &[
            ("BALLAST_HOSTED_ZONE_IDS", dbs.zone_id.as_str()),
            ("BALLAST_ZONAL_ALARM_PREFIX", "ballast-az-"),
        ],
    )
    .await;
    let target = ballast_tests::operator(&moto, &host);

    // Defects: no UnHealthyHostCount alarm on the target group (the seed
    // has none); a 0 s grace period; a record tag naming no record; a
    // standby that does not exist.
    stack
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(MANAGED_ASG)
        .health_check_grace_period(0)
        .send()
        .await
        .expect("UpdateAutoScalingGroup");
    let tag = |id: &'static str, key: &'static str, value: String| {
        let dbs = &dbs;
        async move {
            let arn = dbs
                .instance(id)
                .await
                .db_instance_arn()
                .unwrap()
                .to_string();
            dbs.rds
                .add_tags_to_resource()
                .resource_name(arn)
                .tags(
                    aws_sdk_rds::types::Tag::builder()
                        .key(key)
                        .value(value)
                        .build(),
                )
                .send()
                .await
                .expect("AddTagsToResource");
        }
    };
    tag(
        MULTI_AZ,
        "ballast:dns-record",
        format!("{}/nope.internal.example.com", dbs.zone_id),
    )
    .await;
    tag(PRIMARY, "ballast:standby-replica", "ghost".into()).await;
    // Zonal canary alarms that a silent canary turns OK: one on a metric,
    // one on metric math (its own queries), each with a description a shell
    // must not split and an action the fix must keep.
    let cw = ballast_tests::zonal_canary_treating_missing_data(
        &conf,
        "ballast-az-a",
        "us-east-1a",
        "OK",
        "notBreaching",
    )
    .await;
    math_alarm(&cw, "ballast-az-b", "us-east-1b", &stack.topic_arn).await;

    let before = audit(&target).await;
    let fixable: Vec<((String, String), String)> = before
        .iter()
        .filter(|(_, (verdict, _))| verdict != "pass")
        .filter_map(|(key, (_, command))| Some((key.clone(), command.clone()?)))
        .collect();
    let fixed: Vec<&str> = fixable.iter().map(|((c, _), _)| c.as_str()).collect();
    for expected in [
        "unhealthy-alarm",
        "health-check",
        "dns-record",
        "standby-replica",
        "zonal-alarm-missing-data",
    ] {
        assert!(
            fixed.contains(&expected),
            "{expected} has no command to run: {before:#?}"
        );
    }
    let before_math = math_alarm_definition(&cw, "ballast-az-b").await.1;
    for (_, command) in &fixable {
        run(command, &moto);
    }

    let after = audit(&target).await;
    for (key, command) in &fixable {
        // The capacity fix asks the group for instances spread over its
        // zones; AWS balances them, moto does not (its new instances land
        // where it pleases). That the command, applied with an even spread,
        // passes is the unit test `the_static_stability_fix_makes_the_check_pass`;
        // here it runs and must turn nothing worse.
        if key.0 == "static-stability" {
            continue;
        }
        let verdict = after.get(key).map(|(v, _)| v.as_str());
        assert_eq!(
            verdict,
            Some("pass"),
            "{key:?} after running its fix `{command}`: {after:#?}"
        );
    }
    for (key, (was, _)) in &before {
        let now = after.get(key).map(|(v, _)| v.as_str()).unwrap_or("pass");
        assert!(
            rank(now) <= rank(was),
            "{key:?} turned worse: {was} -> {now}"
        );
    }
    // The fix changed what it says and nothing else of the alarm.
    let after = math_alarm_definition(&cw, "ballast-az-b").await;
    assert_eq!(after.0.as_deref(), Some("breaching"));
    assert_eq!(after.1, before_math, "the alarm's other settings");
    println!(
        "fixed by their printed commands: {:?}",
        fixable.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
}

/// A metric-math zonal alarm (`TreatMissingData` `ignore`): the canary's
/// failures as a percentage of its probes, notifying `topic`.
async fn math_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, az: &str, topic: &str) {
    use aws_sdk_cloudwatch::types::{
        ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat,
    };
    let query = |id: &str, metric: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("Web/Canary")
                            .metric_name(metric)
                            .dimensions(
                                Dimension::builder()
                                    .name("AvailabilityZone")
                                    .value(az)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(60)
                    .stat("Sum")
                    .build(),
            )
            .return_data(false)
            .build()
    };
    cw.put_metric_alarm()
        .alarm_name(name)
        .alarm_description(format!(
            "the canary's failures in {az}, in percent (it's the zone's signal)"
        ))
        .metrics(query("failed", "Failures"))
        .metrics(query("probes", "Probes"))
        .metrics(
            MetricDataQuery::builder()
                .id("percent")
                .expression("100 * failed / probes")
                .label("failure %")
                .return_data(true)
                .build(),
        )
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("ignore")
        .alarm_actions(topic)
        .send()
        .await
        .expect("PutMetricAlarm");
}

/// An alarm's `TreatMissingData`, and the rest of its definition as read.
async fn math_alarm_definition(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
) -> (Option<String>, String) {
    let out = cw
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .expect("DescribeAlarms");
    let a = &out.metric_alarms()[0];
    let rest = format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        a.alarm_description(),
        a.metrics(),
        a.evaluation_periods(),
        a.datapoints_to_alarm(),
        a.threshold(),
        a.comparison_operator(),
        a.alarm_actions()
    );
    (a.treat_missing_data().map(str::to_string), rest)
}
