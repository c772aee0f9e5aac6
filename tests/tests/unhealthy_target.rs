//! `unhealthy-target` against moto in server mode, through the real SDK.
//! Seed: VPC, two AZs, ALB + target group `web-tg`, managed ASG `web`
//! (2 instances), unmanaged ASG `legacy` (1 instance) in the same target
//! group, and the report topic with an SQS subscriber.

use ballast::reconcile::handle;
use ballast::reconcile::unhealthy_target::{UnhealthyTarget, FUNCTION};
use ballast::reconcile::HandlerError;
use ballast::report::{ActionStatus, Outcome, Severity};
use ballast::Invocation;
use ballast_tests::stack::{MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, World};
use serde_json::json;

#[tokio::test]
async fn stopped_instance_is_replaced() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    assert_eq!(web.len(), 2);
    w.stack.stop(&web[..1]).await;
    assert_eq!(w.stack.target_states().await[&web[0]], "unused");

    let report = w
        .run(w.stack.alarm_event("unhealthy-target-alarm.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(report.severity, Severity::Info);
    assert_eq!(report.resources, vec![w.stack.tg_arn.clone()]);
    assert_eq!(report.trigger.detail_type, "CloudWatch Alarm State Change");
    let done: Vec<_> = report
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Done)
        .collect();
    // The mark is recorded against the replacement budget first.
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].kind, "tag-asg");
    assert!(
        done[0].detail.starts_with("ballast:replaced=b="),
        "{}",
        done[0].detail
    );
    assert_eq!(done[1].kind, "mark-unhealthy");
    assert_eq!(done[1].target, web[0]);
    assert_eq!(done[1].asg.as_deref(), Some(MANAGED_ASG));

    assert_eq!(w.stack.asg_health(&web[0]).await, "Unhealthy");
    assert_eq!(w.stack.asg_health(&web[1]).await, "Healthy");

    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(
        d.report, report,
        "the subscriber receives the same JSON report"
    );
    assert!(
        d.subject
            .starts_with("[ballast] unhealthy-target: remediated targetgroup/web-tg/"),
        "{}",
        d.subject
    );
    assert!(d.subject.len() <= 100);
    assert_eq!(d.attributes["function"], "unhealthy-target");
    assert_eq!(d.attributes["outcome"], "remediated");
    assert_eq!(d.attributes["severity"], "info");
}

#[tokio::test]
async fn the_same_event_again_is_a_harmless_noop() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    assert_eq!(
        w.run(w.stack.alarm_event("unhealthy-target-alarm.json"))
            .await
            .outcome,
        Outcome::Remediated
    );
    assert_eq!(w.stack.reports().await.len(), 1);

    let again = w
        .run(w.stack.alarm_event("unhealthy-target-alarm.json"))
        .await;
    assert_eq!(again.outcome, Outcome::Noop, "{again:#?}");
    assert!(again
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Skipped));
    assert!(
        again.actions[0].detail.contains("already marked Unhealthy"),
        "{:?}",
        again.actions
    );
    assert!(
        w.stack.reports().await.is_empty(),
        "a noop is not published"
    );
    assert_eq!(w.stack.asg_health(&web[1]).await, "Healthy");
}

#[tokio::test]
async fn all_managed_instances_stopped_is_declined() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web).await;
    let before = w.stack.all_asg_health().await;

    let report = w
        .run(w.stack.alarm_event("unhealthy-target-alarm.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert_eq!(report.severity, Severity::Critical);
    assert!(
        report
            .reason
            .as_deref()
            .unwrap()
            .contains("2 of 3 targets (66%)"),
        "{:?}",
        report.reason
    );
    assert!(report
        .reason
        .as_deref()
        .unwrap()
        .contains("suspect the application or its health check"));
    assert_eq!(
        w.stack.all_asg_health().await,
        before,
        "declined means no instance is touched"
    );

    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attributes["outcome"], "declined");
    assert_eq!(deliveries[0].attributes["severity"], "critical");
}

#[tokio::test]
async fn unmanaged_asg_instance_is_untouched() {
    let w = World::start(FUNCTION, false).await;
    let legacy = w.stack.instances(UNMANAGED_ASG).await;
    w.stack.stop(&legacy).await;

    let report = w
        .run(w.stack.alarm_event("unhealthy-target-alarm.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Noop, "{report:#?}");
    assert_eq!(report.actions.len(), 1);
    assert_eq!(report.actions[0].status, ActionStatus::Skipped);
    assert!(report.actions[0]
        .detail
        .contains("ASG legacy is not tagged ballast:managed=true"));
    assert_eq!(w.stack.asg_health(&legacy[0]).await, "Healthy");
    assert!(w.stack.reports().await.is_empty());
}

#[tokio::test]
async fn dry_run_changes_nothing_and_reports_the_plan() {
    let w = World::start(FUNCTION, true).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    let before = w.stack.all_asg_health().await;

    let report = w
        .run(w.stack.alarm_event("unhealthy-target-alarm.json"))
        .await;
    assert_eq!(report.outcome, Outcome::DryRun, "{report:#?}");
    assert_eq!(report.severity, Severity::Warning);
    assert!(
        report
            .summary
            .contains("Dry run, nothing changed; would tag ASG web ballast:replaced=")
            && report
                .summary
                .contains(&format!("; mark {} unhealthy in ASG web", web[0])),
        "{}",
        report.summary
    );
    for action in &report.actions[..2] {
        assert_eq!(action.status, ActionStatus::Skipped);
        assert_eq!(action.detail, "dry run: not applied");
    }
    assert_eq!(
        w.stack.tag_of(MANAGED_ASG, ballast::tags::REPLACED).await,
        None
    );
    assert_eq!(w.stack.all_asg_health().await, before);

    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1, "a dry run is reported");
    assert_eq!(deliveries[0].attributes["outcome"], "dry-run");
}

#[tokio::test]
async fn bad_inputs_are_ignored_without_side_effects() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    let before = w.stack.all_asg_health().await;

    let mut missing_tg = w.stack.alarm_event("unhealthy-target-alarm.json");
    missing_tg["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"]
        ["TargetGroup"] = json!("targetgroup/no-such-tg/0123456789abcdef");
    let mut no_data = w.stack.alarm_event("unhealthy-target-alarm.json");
    no_data["detail"]["state"]["value"] = json!("INSUFFICIENT_DATA");

    let cases = [
        (json!({}), "a direct invoke needs"),
        (json!("a string"), "payload is a JSON string"),
        (json!(42), "payload is a JSON number"),
        (
            sample_event("s3-object-created.json"),
            "1 record(s) from aws:s3 is not an event Ballast handles",
        ),
        (missing_tg, "does not exist"),
        (no_data, "neither ALARM nor OK"),
        (
            json!({"targetGroupArn": "web-tg"}),
            "not a target group ARN",
        ),
        (
            json!({"version": "0", "detail-type": "AWS Health Event", "source": "aws.health", "detail": {}}),
            "does not handle AWS Health Event",
        ),
    ];
    for (payload, reason) in cases {
        w.assert_ignored(payload, reason).await;
    }
    assert_eq!(
        w.stack.all_asg_health().await,
        before,
        "ignored means no mutation"
    );
    assert!(
        w.stack.reports().await.is_empty(),
        "ignored is not published"
    );
}

#[tokio::test]
async fn sweep_checks_every_target_group_of_managed_asgs() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    let healthy = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(healthy.outcome, Outcome::Noop, "{healthy:#?}");
    assert_eq!(healthy.resources, vec![w.stack.tg_arn.clone()]);

    w.stack.stop(&web[1..]).await;
    let report = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(report.trigger.detail_type, "Scheduled Event");
    assert!(
        report
            .summary
            .starts_with("Sweep of 1 target group(s) behind 1 managed"),
        "{}",
        report.summary
    );
    assert_eq!(w.stack.asg_health(&web[1]).await, "Unhealthy");
    assert_eq!(w.stack.reports().await.len(), 1);
}

/// A sweep reads each thing once: the managed groups (their instances'
/// groups, health and lifecycle with them) and the target groups in one
/// listing each, then `DescribeTargetHealth` per target group — the floor —
/// and `DescribeAutoScalingInstances` only for targets in no managed group
/// (here the unmanaged `legacy`'s one instance behind `web-tg`).
#[tokio::test]
async fn a_sweep_reads_target_health_once_per_target_group_and_little_else() {
    let mut w = World::start(FUNCTION, false).await;
    const SERVICES: usize = 7;
    for i in 0..SERVICES {
        w.stack.add_service(&format!("svc-{i}"), 1).await;
    }
    let proxy = ballast_tests::proxy::Proxy::start(&w.moto.endpoint(), 0.0, 1).await;
    w.ballast.aws = ballast::aws::Aws::new(&proxy.sdk_config(&w.moto));
    let report = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(report.outcome, Outcome::Noop, "{report:#?}");
    let groups = SERVICES + 1;
    assert_eq!(report.resources.len(), groups, "{:?}", report.resources);
    let calls = proxy.calls();
    println!("sweep of {groups} target groups: {calls:?}");
    assert_eq!(proxy.calls_of("DescribeTargetHealth"), groups as u64);
    assert_eq!(proxy.calls_of("DescribeTargetGroups"), 1, "{calls:?}");
    assert_eq!(proxy.calls_of("DescribeAutoScalingGroups"), 1, "{calls:?}");
    assert_eq!(
        proxy.calls_of("DescribeAutoScalingInstances"),
        1,
        "{calls:?}"
    );
    let per_group = proxy.total_calls() as f64 / groups as f64;
    assert!(
        per_group <= 1.5,
        "{per_group} calls per target group: {calls:?}"
    );
}

#[tokio::test]
async fn direct_invoke_and_per_az_metric_math_alarm_reach_the_same_decision() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;

    let az_alarm = w.stack.alarm_event("unhealthy-target-alarm-az.json");
    let report = w.run(az_alarm).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");

    let direct = w.run(json!({"targetGroupArn": w.stack.tg_arn})).await;
    assert_eq!(direct.outcome, Outcome::Noop, "{direct:#?}");
    assert_eq!(direct.trigger.source, "direct");
}

#[tokio::test]
async fn a_report_that_cannot_be_published_is_a_lambda_error() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    let mut ballast = w.ballast.clone();
    ballast.config.topic_arn = "arn:aws:sns:us-east-1:123456789012:no-such-topic".into();

    let err = handle::<UnhealthyTarget>(
        &ballast,
        w.stack.alarm_event("unhealthy-target-alarm.json"),
        Invocation::new("r"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HandlerError::Publish { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Publish on arn:aws:sns:us-east-1:123456789012:no-such-topic failed"),
        "{text}"
    );
    assert!(
        text.contains("\"outcome\":\"remediated\""),
        "the error carries the report: {text}"
    );
}

#[tokio::test]
async fn no_action_starts_when_the_lambda_deadline_is_near() {
    let w = World::start(FUNCTION, false).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    let event = w.stack.alarm_event("unhealthy-target-alarm.json");

    // Lambda's deadline is already (almost) here: observe and decide, but
    // start nothing, say so, and let Lambda retry.
    let mut late = Invocation::new("late-request");
    late.deadline = Some(std::time::Instant::now());
    match w.invoke_with(event.clone(), late).await {
        Err(HandlerError::Transient { summary, .. }) => {
            assert!(summary.contains("i-"), "{summary}")
        }
        other => panic!("expected a retryable error, got {other:?}"),
    }
    assert_eq!(
        w.stack.asg_health(&web[0]).await,
        "Healthy",
        "nothing was started"
    );
    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1, "the remaining work is reported");
    let action = &deliveries[0].report.actions[0];
    assert_eq!(action.status, ActionStatus::Skipped);
    assert!(
        action.detail.contains("deadline is near"),
        "{}",
        action.detail
    );

    // The retry, with time to spare, finishes the job.
    assert_eq!(w.run(event).await.outcome, Outcome::Remediated);
    assert_eq!(w.stack.asg_health(&web[0]).await, "Unhealthy");
}
