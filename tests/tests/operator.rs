//! The operator's side: the `ballast` command against moto (status, doctor
//! with a seeded defect of each kind) and against the release
//! `az-impairment` binary (evacuate/restore through the Lambda API that the
//! Runtime API host serves, shaped as the service model shapes it: moto's
//! Lambda runs code only in Docker); the EMF record of each invocation,
//! read back from the function's log; and the documented pager filter,
//! applied by SNS (moto) to reports and to Ballast's own alarm messages.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use ballast::report::Outcome;
use ballast_cli::{Answer, Exit, Target};
use ballast_tests::databases::{Databases, MULTI_AZ, PRIMARY};
use ballast_tests::host::RuntimeHost;
use ballast_tests::moto::Moto;
use ballast_tests::stack::{Stack, MANAGED_ASG};
use ballast_tests::{start_function_named, zonal_canary, zonal_canary_treating_missing_data};

const STACK: &str = "ballast";
const FUNCTION: &str = "ballast-az-impairment";
const ZONAL_PREFIX: &str = "ballast-az-";

fn target(moto: &Moto, host: &RuntimeHost) -> Target {
    ballast_tests::operator(moto, host)
}

async fn ballast(target: &Target, args: &[&str]) -> Answer {
    ballast_tests::ballast_command(target, args).await
}

fn json_of(answer: &Answer) -> Value {
    serde_json::from_str(&answer.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", answer.stdout, answer.stderr))
}

/// `(check, subject) → verdict` of a `doctor --json` answer.
fn verdicts(answer: &Answer) -> BTreeMap<(String, String), String> {
    json_of(answer)["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                (
                    c["check"].as_str().unwrap().to_string(),
                    c["subject"].as_str().unwrap().to_string(),
                ),
                c["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn put_unhealthy_alarm(cw: &aws_sdk_cloudwatch::Client, stack: &Stack) {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let suffix =
        |arn: &str, marker: &str| arn.split_once(marker).map(|(_, k)| k.to_string()).unwrap();
    cw.put_metric_alarm()
        .alarm_name("web-unhealthy-hosts")
        .namespace("AWS/ApplicationELB")
        .metric_name("UnHealthyHostCount")
        .dimensions(
            Dimension::builder()
                .name("TargetGroup")
                .value(format!(
                    "targetgroup/{}",
                    suffix(&stack.tg_arn, ":targetgroup/")
                ))
                .build(),
        )
        .dimensions(
            Dimension::builder()
                .name("LoadBalancer")
                .value(suffix(&stack.lb_arn, ":loadbalancer/"))
                .build(),
        )
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(2)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
}

#[tokio::test]
async fn doctor_reports_each_seeded_defect_with_its_fix_and_passes_once_fixed() {
    let moto = Moto::start();
    let conf = moto.sdk_config();
    let stack = Stack::seed(&conf).await;
    let dbs = Databases::seed(&conf).await;
    let (host, process) = start_function_named(
        "az-impairment",
        FUNCTION,
        &moto,
        &stack.topic_arn,
        &[
            ("BALLAST_HOSTED_ZONE_IDS", dbs.zone_id.as_str()),
            ("BALLAST_ZONAL_ALARM_PREFIX", ZONAL_PREFIX),
        ],
    )
    .await;
    let target = target(&moto, &host);

    // Defects: no UnHealthyHostCount alarm on the target group; a zonal
    // alarm whose silence reads as OK; a record tag naming no record; a
    // standby that does not exist.
    let cw = zonal_canary(&conf, "ballast-az-a", "us-east-1a", "OK").await;
    zonal_canary_treating_missing_data(&conf, "ballast-az-b", "us-east-1b", "OK", "notBreaching")
        .await;
    let good_record = dbs.tags(MULTI_AZ).await["ballast:dns-record"].clone();
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

    let answer = ballast(&target, &["--json", "doctor", "--stack", STACK]).await;
    assert_eq!(
        answer.exit,
        Exit::Attention,
        "{answer:#?}\n{:#?}",
        process.logs()
    );
    let seen = verdicts(&answer);
    let tg = format!(
        "targetgroup/{}",
        stack.tg_arn.split_once(":targetgroup/").unwrap().1
    );
    for (check, subject, verdict) in [
        ("zones", format!("asg/{MANAGED_ASG}"), "pass"),
        ("health-check", format!("asg/{MANAGED_ASG}"), "pass"),
        ("unhealthy-alarm", tg.clone(), "fail"),
        (
            "zonal-alarm-missing-data",
            "alarm/ballast-az-a".into(),
            "pass",
        ),
        (
            "zonal-alarm-missing-data",
            "alarm/ballast-az-b".into(),
            "fail",
        ),
        ("dns-record", format!("db/{MULTI_AZ}"), "fail"),
        ("dns-record", format!("db/{PRIMARY}"), "pass"),
        ("standby-replica", format!("db/{PRIMARY}"), "fail"),
        ("report-subscribers", stack.topic_arn.clone(), "pass"),
        // moto does not serve ARC zonal shift: doctor says it could not look.
        ("autoshift-observer", "account".into(), "warn"),
    ] {
        assert_eq!(
            seen.get(&(check.to_string(), subject.clone()))
                .map(String::as_str),
            Some(verdict),
            "{check} {subject}: {seen:#?}"
        );
    }
    let checks = json_of(&answer)["checks"].clone();
    for c in checks.as_array().unwrap() {
        if c["verdict"] == "fail" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    // The text rendering says the same, with the fix under each failure.
    let text = ballast(&target, &["doctor", "--stack", STACK]).await;
    assert!(
        text.stdout.contains("FAIL  unhealthy-alarm"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("fix: aws cloudwatch put-metric-alarm"),
        "{}",
        text.stdout
    );

    // Fixed: the exit code lets a pipeline through (warnings stay).
    put_unhealthy_alarm(&cw, &stack).await;
    cw.delete_alarms()
        .alarm_names("ballast-az-b")
        .send()
        .await
        .expect("DeleteAlarms");
    tag(MULTI_AZ, "ballast:dns-record", good_record).await;
    tag(
        PRIMARY,
        "ballast:standby-replica",
        ballast_tests::databases::REPLICA.into(),
    )
    .await;
    let fixed = ballast(&target, &["--json", "doctor", "--stack", STACK]).await;
    assert_eq!(fixed.exit, Exit::Ok, "{}", fixed.stdout);
    assert_eq!(
        verdicts(&fixed)
            .get(&("unhealthy-alarm".to_string(), tg))
            .map(String::as_str),
        Some("pass")
    );

    // A stack that is not there: the configuration is unreadable, said so.
    let elsewhere = ballast(&target, &["--json", "doctor", "--stack", "other"]).await;
    let seen = verdicts(&elsewhere);
    assert_eq!(
        seen.get(&("report-subscribers".to_string(), "report topic".to_string()))
            .map(String::as_str),
        Some("warn"),
        "{seen:#?}"
    );
}

/// The EMF records the function wrote, in order.
fn emf_records(logs: &[String]) -> Vec<Value> {
    logs.iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect()
}

#[tokio::test]
async fn an_operator_evacuates_and_restores_a_zone_through_the_function() {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let (host, process) = start_function_named(
        "az-impairment",
        FUNCTION,
        &moto,
        &stack.topic_arn,
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    )
    .await;
    let target = target(&moto, &host);
    let before = stack.subnets_of(MANAGED_ASG).await;

    let rehearsal = ballast(&target, &["--json", "evacuate", "us-east-1a", "--dry-run"]).await;
    assert_eq!(rehearsal.exit, Exit::Ok, "{rehearsal:#?}");
    assert_eq!(
        json_of(&rehearsal)["outcome"],
        "dry-run",
        "{}",
        rehearsal.stdout
    );
    assert_eq!(
        stack.subnets_of(MANAGED_ASG).await,
        before,
        "a dry run changes nothing"
    );

    let evacuated = ballast(&target, &["evacuate", "us-east-1a"]).await;
    assert_eq!(
        evacuated.exit,
        Exit::Ok,
        "{evacuated:#?}\n{:#?}",
        process.logs()
    );
    assert!(
        evacuated
            .stdout
            .starts_with("Ballast az-impairment: remediated"),
        "{}",
        evacuated.stdout
    );
    assert!(
        evacuated
            .stdout
            .contains("ballast restore us-east-1a --region us-east-1"),
        "the report says how to undo it: {}",
        evacuated.stdout
    );
    assert!(
        evacuated
            .stdout
            .contains("Evidence:\n  availabilityZone: us-east-1a"),
        "{}",
        evacuated.stdout
    );

    let status = ballast(&target, &["--json", "status"]).await;
    assert_eq!(status.exit, Exit::Ok);
    let web = json_of(&status)["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == MANAGED_ASG)
        .cloned()
        .expect("the managed group");
    assert_eq!(
        web["evacuated"],
        json!({"us-east-1a": ["operator"]}),
        "{web:#}"
    );
    assert!(web["zones"].get("us-east-1a").is_none(), "{web:#}");
    let text = ballast(&target, &["status"]).await;
    assert!(
        text.stdout.contains("evacuated  us-east-1a since"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("held by operator"), "{}", text.stdout);
    // The evacuation gave its lease back; a live one is listed.
    assert!(
        text.stdout.contains("Live leases in ballast-leases: 0"),
        "{}",
        text.stdout
    );
    let now = ballast::report::now_epoch();
    stack.put_lease("asg/web", "req-9.0000abcd", now + 15).await;
    let held = ballast(&target, &["--json", "status"]).await;
    let leases = json_of(&held)["leases"].clone();
    assert_eq!(leases[0]["resource"], "asg/web", "{leases:#}");
    assert_eq!(leases[0]["holder"], "req-9.0000abcd", "{leases:#}");
    stack.put_lease("asg/web", "req-9.0000abcd", now - 1).await;

    let restored = ballast(&target, &["--json", "restore", "us-east-1a"]).await;
    assert_eq!(restored.exit, Exit::Ok, "{restored:#?}");
    assert_eq!(json_of(&restored)["outcome"], "remediated");
    assert_eq!(stack.subnets_of(MANAGED_ASG).await, before);

    // A function that is not deployed: exit 3, the Lambda error named.
    let missing = ballast(&target, &["evacuate", "us-east-1a", "--function", "nope"]).await;
    assert_eq!(missing.exit, Exit::Aws);
    assert!(
        missing.stderr.contains("ResourceNotFoundException"),
        "{}",
        missing.stderr
    );
    let usage = ballast(&target, &["evacuate", " "]).await;
    assert_eq!(usage.exit, Exit::Usage);

    // One EMF record per invocation, read back from the function's log.
    let records = emf_records(&process.logs());
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["dry-run", "remediated", "remediated"],
        "{records:#?}"
    );
    for r in &records {
        let directive = &r["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ballast");
        assert_eq!(r["function"], "az-impairment");
        assert_eq!(r["Decisions"], 1);
        assert!(r["Duration"].as_f64().unwrap() > 0.0);
        assert!(r["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    }
    assert!(
        records[1]["ActionsDone"].as_u64().unwrap() >= 1,
        "{:#}",
        records[1]
    );
    assert_eq!(records[0]["ActionsDone"], 0);

    // `ballast history`: the function's log, as Lambda would have shipped
    // it to its log group (GetFunctionConfiguration names the group), read
    // back with Logs Insights (moto's StartQuery/GetQueryResults: it runs
    // `fields`, `sort` and `limit` and ignores `filter`, so the command's
    // own exact filter is what is tested here).
    ship_logs(&moto, "/aws/lambda/ballast-az-impairment", &process.logs()).await;
    let history = ballast(&target, &["history", "--since", "1h"]).await;
    assert_eq!(history.exit, Exit::Ok, "{history:#?}");
    let lines: Vec<&str> = history.stdout.lines().collect();
    println!("$ ballast history --since 1h\n{}", history.stdout);
    assert_eq!(lines.len(), 3, "{}\n{:#?}", history.stdout, process.logs());
    for (line, outcome) in lines.iter().zip(["dry-run", "remediated", "remediated"]) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[1..5],
            ["az-impairment", outcome, words[3], MANAGED_ASG],
            "{line}"
        );
    }
    assert!(
        lines[2].contains("us-east-1a has recovered"),
        "{}",
        lines[2]
    );
    assert!(
        history
            .stderr
            .contains("no function ballast-unhealthy-target, ballast-rds-failover"),
        "{}",
        history.stderr
    );
    let remediated = ballast(&target, &["--json", "history", "--outcome", "remediated"]).await;
    let reports = json_of(&remediated);
    assert_eq!(reports.as_array().map(Vec::len), Some(2), "{reports:#}");
    assert!(reports[0]["evidence"]["availabilityZone"] == "us-east-1a");
    let details = ballast(
        &target,
        &[
            "history",
            "--details",
            "--resource",
            "autoScalingGroupName/web",
        ],
    )
    .await;
    assert!(
        details
            .stdout
            .contains("    Evidence:\n      availabilityZone: us-east-1a"),
        "{}",
        details.stdout
    );
    let none = ballast(&target, &["history", "--function", "rds-failover"]).await;
    assert_eq!(none.exit, Exit::Aws, "{none:#?}");
    assert!(none.stderr.contains("is --stack right"), "{}", none.stderr);
    let usage = ballast(&target, &["history", "--since", "yesterday"]).await;
    assert_eq!(usage.exit, Exit::Usage);
    assert!(usage.stderr.contains("--since"), "{}", usage.stderr);
}

/// `lines` as log events of a stream of `group`, as Lambda ships a
/// function's output.
async fn ship_logs(moto: &Moto, group: &str, lines: &[String]) {
    use aws_sdk_cloudwatchlogs::types::InputLogEvent;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&moto.sdk_config());
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .expect("CreateLogGroup");
    let stream = "2026/12/07/[$LATEST]0123456789abcdef";
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .expect("CreateLogStream");
    let start = ballast::report::now_epoch() * 1000;
    let events: Vec<InputLogEvent> = lines
        .iter()
        .zip(0..)
        .map(|(l, i)| {
            InputLogEvent::builder()
                .timestamp(start + i)
                .message(l)
                .build()
                .unwrap()
        })
        .collect();
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .expect("PutLogEvents");
}

/// The README's pager filter, applied by SNS (moto): critical reports and
/// Ballast's own alarm messages (which carry no attributes) come through,
/// nothing else does.
pub const PAGER_FILTER: &str =
    r#"{"$or": [{"severity": ["critical"]}, {"severity": [{"exists": false}]}]}"#;

#[tokio::test]
async fn the_pager_filter_receives_critical_reports_and_ballasts_own_alarms() {
    let readme =
        std::fs::read_to_string(ballast_tests::workspace_root().join("README.md")).unwrap();
    assert!(
        readme.contains(PAGER_FILTER),
        "the README documents the pager filter"
    );
    let moto = Moto::start();
    let conf = moto.sdk_config();
    let stack = Stack::seed(&conf).await;
    let pager = stack
        .subscribe_queue(&stack.topic_arn, "pager", Some(PAGER_FILTER))
        .await;
    let sns = aws_sdk_sns::Client::new(&conf);
    let report = |outcome: Outcome, severity: ballast::Severity| ballast::Report {
        version: "1".into(),
        function: "unhealthy-target".into(),
        outcome,
        severity,
        summary: format!("{} report", severity.as_str()),
        trigger: ballast::event::Trigger::direct("r"),
        resources: vec![],
        actions: vec![],
        reason: None,
        region: "us-east-1".into(),
        time: ballast::report::now_rfc3339(),
        evidence: Default::default(),
    };
    for (o, s) in [
        (Outcome::Declined, ballast::Severity::Critical),
        (Outcome::Remediated, ballast::Severity::Info),
        (Outcome::DryRun, ballast::Severity::Warning),
    ] {
        ballast::aws::reports::publish(&sns, &stack.topic_arn, &report(o, s))
            .await
            .expect("Publish");
    }
    // What CloudWatch publishes for an alarm action: its own JSON, no
    // message attributes.
    let alarm = json!({"AlarmName": "ballast-FailedDecisionsAlarm-1", "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed", "Trigger": {"MetricName": "Decisions", "Namespace": "Ballast"}});
    sns.publish()
        .topic_arn(&stack.topic_arn)
        .subject("ALARM: \"ballast-FailedDecisionsAlarm-1\" in US East (N. Virginia)")
        .message(alarm.to_string())
        .send()
        .await
        .expect("Publish");

    let paged: Vec<String> = stack
        .drain(&pager)
        .await
        .iter()
        .map(|m| m["Subject"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(paged.len(), 2, "{paged:#?}");
    assert!(
        paged
            .iter()
            .any(|s| s.starts_with("[ballast] unhealthy-target: declined")),
        "{paged:#?}"
    );
    assert!(
        paged
            .iter()
            .any(|s| s.starts_with("ALARM: \"ballast-FailedDecisionsAlarm-1\"")),
        "{paged:#?}"
    );
    // The unfiltered subscriber got all four.
    assert_eq!(stack.drain(&stack.queue_url).await.len(), 4);
}
