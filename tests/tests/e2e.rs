//! End to end: the real release binaries of the functions under a Lambda
//! Runtime API host, talking to moto through `AWS_ENDPOINT_URL`, fed the
//! sample events of `events/`.

use std::time::Duration;

use ballast::report::Outcome;
use ballast::Report;
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::host::{Answer, RuntimeHost};
use ballast_tests::moto::Moto;
use ballast_tests::stack::{Stack, MANAGED_ASG};
use ballast_tests::{function_binary, sample_event, start_function};
use serde_json::Value;

const FUNCTION: &str = "unhealthy-target";

async fn report_of(host: &RuntimeHost, event: Value) -> Report {
    match host.invoke(event).await.expect("the function answers") {
        Answer::Response(v) => serde_json::from_value(v).expect("the response is a report"),
        Answer::Error(e) => panic!("function error: {e}"),
    }
}

#[tokio::test]
async fn release_binary_handles_the_sample_events() {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let web = stack.instances(MANAGED_ASG).await;
    stack.stop(&web[..1]).await;

    let (host, process) = start_function(
        FUNCTION,
        &moto,
        &stack.topic_arn,
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON")],
    )
    .await;

    let first = report_of(&host, stack.alarm_event("unhealthy-target-alarm.json")).await;
    assert_eq!(
        first.outcome,
        Outcome::Remediated,
        "{first:#?}\n{:#?}",
        process.logs()
    );
    assert_eq!(stack.asg_health(&web[0]).await, "Unhealthy");
    assert_eq!(stack.asg_health(&web[1]).await, "Healthy");

    let again = report_of(&host, stack.alarm_event("unhealthy-target-alarm.json")).await;
    assert_eq!(again.outcome, Outcome::Noop, "{again:#?}");

    let sweep = report_of(&host, sample_event("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Noop, "{sweep:#?}");

    let s3 = report_of(&host, sample_event("s3-object-created.json")).await;
    assert_eq!(s3.outcome, Outcome::Ignored);

    // The sample direct invoke names a target group that this emulator does not have.
    let direct = report_of(&host, sample_event("unhealthy-target-direct.json")).await;
    assert_eq!(direct.outcome, Outcome::Ignored);
    assert!(direct.reason.unwrap().contains("does not exist"));

    let deliveries = stack.reports().await;
    assert_eq!(deliveries.len(), 1, "only the remediation is published");
    assert_eq!(deliveries[0].report, first);

    let logs = process.logs();
    let json_lines = logs
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok())
        .count();
    assert!(
        json_lines > 0 && json_lines == logs.len(),
        "AWS_LAMBDA_LOG_FORMAT=JSON gives JSON lines: {logs:#?}"
    );
    assert!(host.init_error().is_none());
    // Credentials never reach a log line or a report.
    let secret = ballast_tests::moto::SECRET_ACCESS_KEY;
    assert!(
        logs.iter().all(|l| !l.contains(secret)),
        "a log line holds the secret key"
    );
    assert!(
        deliveries
            .iter()
            .all(|d| !d.raw.to_string().contains(secret)),
        "a report holds the secret key"
    );
    // One CloudWatch EMF record per invocation, parsed back from the log.
    let emf: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    let outcomes: Vec<&str> = emf.iter().filter_map(|r| r["outcome"].as_str()).collect();
    assert_eq!(
        outcomes,
        ["remediated", "noop", "noop", "ignored", "ignored"],
        "{emf:#?}"
    );
    for r in &emf {
        assert_eq!(r["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Ballast");
        assert_eq!(r["function"], FUNCTION);
    }
    assert_eq!(emf[0]["ActionsDone"], 2, "tag-asg and mark-unhealthy");
}

#[tokio::test]
async fn unpublishable_report_is_a_lambda_error_so_lambda_retries() {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let web = stack.instances(MANAGED_ASG).await;
    stack.stop(&web[..1]).await;

    let (host, _process) = start_function(
        FUNCTION,
        &moto,
        "arn:aws:sns:us-east-1:123456789012:deleted-topic",
        &[],
    )
    .await;

    match host
        .invoke(stack.alarm_event("unhealthy-target-alarm.json"))
        .await
        .unwrap()
    {
        Answer::Error(e) => {
            assert_eq!(e["errorType"], "Ballast.ReportNotPublished", "{e}");
            assert!(
                e["errorMessage"]
                    .as_str()
                    .unwrap()
                    .contains("deleted-topic"),
                "{e}"
            );
        }
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_configuration_fails_init_naming_the_variable() {
    let host = RuntimeHost::start(FUNCTION, Duration::from_secs(5)).await;
    let cases = [
        ("BALLAST_MAX_UNHEALTHY_PERCENT", "150", "from 0 to 100"),
        ("BALLAST_DRY_RUN", "perhaps", "true or false"),
        ("BALLAST_TOPIC_ARN", "reports", "an SNS topic ARN"),
        ("BALLAST_LEASE_TABLE", "a table", "a DynamoDB table name"),
    ];
    for (variable, value, expected) in cases {
        let mut env = vec![
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
            (
                "BALLAST_TOPIC_ARN".to_string(),
                "arn:aws:sns:us-east-1:123456789012:r".to_string(),
            ),
            (
                "BALLAST_LEASE_TABLE".to_string(),
                "ballast-leases".to_string(),
            ),
        ];
        env.retain(|(k, _)| k != variable);
        env.push((variable.into(), value.into()));
        let logs = host
            .init_fails(&function_binary(FUNCTION), FUNCTION, &env)
            .await;
        assert!(
            logs.contains(variable) && logs.contains(value) && logs.contains(expected),
            "{logs}"
        );
    }
    assert!(
        host.first_next().is_none(),
        "a misconfigured function never asks for work"
    );
}

#[tokio::test]
async fn rds_failover_release_binary_promotes_the_standby_and_flips_dns() {
    const RDS: &str = "rds-failover";
    let moto = Moto::start();
    let conf = moto.sdk_config();
    let stack = Stack::seed(&conf).await;
    let dbs = Databases::seed(&conf).await;
    let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
    dbs.stop(PRIMARY).await;

    let (host, process) =
        start_function(RDS, &moto, &stack.topic_arn, &[("BALLAST_DNS_TTL", "15")]).await;

    let promoted = report_of(&host, sample_event("rds-instance-failure.json")).await;
    assert_eq!(
        promoted.outcome,
        Outcome::Remediated,
        "{promoted:#?}\n{:#?}",
        process.logs()
    );
    assert_eq!(
        dbs.record(PRIMARY).await.as_deref(),
        Some(replica_endpoint.as_str())
    );
    let upsert = promoted.actions.iter().find(|a| a.kind == "upsert-cname");
    assert!(
        upsert.is_some_and(|a| a.detail.contains("TTL 15s")),
        "{:?}",
        promoted.actions
    );

    for sample in [
        "rds-instance-failure.json",
        "rds-failover-direct.json",
        "scheduled-sweep.json",
    ] {
        let again = report_of(&host, sample_event(sample)).await;
        assert_eq!(again.outcome, Outcome::Noop, "{sample}: {again:#?}");
    }
    let backup = report_of(&host, sample_event("rds-instance-backup.json")).await;
    assert_eq!(backup.outcome, Outcome::Ignored);

    let deliveries = stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].report, promoted);
}

#[tokio::test]
async fn az_impairment_release_binary_evacuates_and_restores() {
    const AZ: &str = "az-impairment";
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let all = stack.subnets_of(MANAGED_ASG).await;

    let (host, process) = start_function(AZ, &moto, &stack.topic_arn, &[]).await;

    let evacuated = report_of(&host, sample_event("arc-autoshift-in-progress.json")).await;
    assert_eq!(
        evacuated.outcome,
        Outcome::Remediated,
        "{evacuated:#?}\n{:#?}",
        process.logs()
    );
    assert_eq!(
        stack.subnets_of(MANAGED_ASG).await,
        [stack.subnet_in("us-east-1b")]
    );
    // AWS Health confirms the zone: recorded as a second signal.
    let confirmed = report_of(&host, sample_event("health-ec2-issue-open.json")).await;
    assert_eq!(confirmed.outcome, Outcome::Remediated, "{confirmed:#?}");
    assert_eq!(
        stack.subnets_of(MANAGED_ASG).await,
        [stack.subnet_in("us-east-1b")]
    );
    // Health closes first: the autoshift still holds the zone.
    let closed = report_of(&host, sample_event("health-ec2-issue-closed.json")).await;
    assert!(closed.summary.contains("stays evacuated"), "{closed:#?}");
    assert_eq!(
        stack.subnets_of(MANAGED_ASG).await,
        [stack.subnet_in("us-east-1b")]
    );
    let restored = report_of(&host, sample_event("arc-autoshift-completed.json")).await;
    assert_eq!(restored.outcome, Outcome::Remediated, "{restored:#?}");
    assert_eq!(stack.subnets_of(MANAGED_ASG).await, all);
    // The schedule is the resync sweep: nothing evacuated, nothing to say.
    let swept = report_of(&host, sample_event("scheduled-sweep.json")).await;
    assert_eq!(swept.outcome, Outcome::Noop, "{swept:#?}");
    let ignored = report_of(&host, sample_event("arc-practice-run-interrupted.json")).await;
    assert_eq!(ignored.outcome, Outcome::Ignored);
    assert_eq!(stack.reports().await.len(), 4);
}
