//! Incident-grade convergence (README, "What Ballast guarantees when things
//! fail"): the release binaries under a Runtime API host, their AWS calls
//! going through the proxy, which refuses one named call for good (403
//! `AccessDenied`, optionally only when the request mentions a tag key),
//! applies it and drops the answer, or holds it past the deadline. After
//! each fault, a redelivery of the same event (what Lambda's retry does)
//! finishes the job: nothing is stranded, nothing promoted twice, and the
//! report reaches the topic.

use std::time::{Duration, Instant};

use ballast::report::{ActionStatus, Outcome};
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::moto::Moto;
use ballast_tests::proxy::{Proxy, Targeted};
use ballast_tests::stack::{Stack, MANAGED_ASG};
use ballast_tests::{sample_event, set_alarm_state, zonal_canary, Deployed};
use serde_json::Value;

const EVACUATED: &str = "ballast:evacuated";
const A: &str = "us-east-1a";
const B: &str = "us-east-1b";

/// The emulator with the seed stack, and one function's release binary
/// talking to it through a fault-free proxy (faults are targeted per test).
struct Incident {
    moto: Moto,
    stack: Stack,
    proxy: Proxy,
    function: Deployed,
}

impl Incident {
    async fn start(function: &str, timeout: Duration) -> Incident {
        let moto = Moto::start();
        let stack = Stack::seed(&moto.sdk_config()).await;
        let proxy = Proxy::start(&moto.endpoint(), 0.0, 1).await;
        let function = Deployed::start(function, &moto, &proxy, &stack.topic_arn, timeout).await;
        Incident {
            moto,
            stack,
            proxy,
            function,
        }
    }

    async fn az() -> Incident {
        Incident::start("az-impairment", Duration::from_secs(120)).await
    }

    async fn assert_evacuated(&self) {
        assert_eq!(
            self.stack.subnets_of(MANAGED_ASG).await,
            [self.stack.subnet_in(B)]
        );
        let record = self.stack.tag_of(MANAGED_ASG, EVACUATED).await;
        assert!(record.is_some_and(|r| r.starts_with("azs=us-east-1a@")));
    }

    async fn assert_whole(&self) {
        let mut all = vec![self.stack.subnet_in(A), self.stack.subnet_in(B)];
        all.sort();
        assert_eq!(self.stack.subnets_of(MANAGED_ASG).await, all);
        assert_eq!(self.stack.group(MANAGED_ASG).await.max_size(), Some(4));
        assert_eq!(self.stack.tag_of(MANAGED_ASG, EVACUATED).await, None);
    }

    /// I1: the group lacks its us-east-1a subnet only while the record
    /// naming it is there.
    async fn assert_i1(&self) {
        let subnets = self.stack.subnets_of(MANAGED_ASG).await;
        if !subnets.contains(&self.stack.subnet_in(A)) {
            let record = self.stack.tag_of(MANAGED_ASG, EVACUATED).await;
            assert!(
                record.is_some_and(|r| r.contains(&self.stack.subnet_in(A))),
                "I1: the group lost {A} without a record"
            );
        }
    }
}

fn failed_action<'a>(report: &'a ballast::Report, kind: &str) -> &'a ballast::report::ActionRecord {
    report
        .actions
        .iter()
        .find(|a| a.kind == kind && a.status == ActionStatus::Failed)
        .unwrap_or_else(|| panic!("no failed {kind}: {report:#?}"))
}

/// Every published report follows the subject format, `failed` included.
async fn assert_subjects(stack: &Stack) -> Vec<ballast_tests::stack::Delivery> {
    let deliveries = stack.reports().await;
    for d in &deliveries {
        let r = &d.report;
        let prefix = format!("[ballast] {}: {} ", r.function, r.outcome.as_str());
        assert!(
            d.subject.starts_with(&prefix) && d.subject.len() > prefix.len(),
            "subject {:?} lacks a resource",
            d.subject
        );
    }
    deliveries
}

#[tokio::test]
async fn evacuation_whose_record_is_refused_changes_no_subnet() {
    let i = Incident::az().await;
    i.proxy
        .target("CreateOrUpdateTags", Some(EVACUATED), Targeted::Refuse);
    let open = sample_event("health-ec2-issue-open.json");

    let report = i.function.run(open.clone()).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(failed_action(&report, "tag-asg")
        .detail
        .contains("AccessDenied"));
    let update = report
        .actions
        .iter()
        .find(|a| a.kind == "update-asg")
        .unwrap();
    assert_eq!(update.status, ActionStatus::Skipped, "{update:?}");
    assert_eq!(i.proxy.calls_of("UpdateAutoScalingGroup"), 0);
    i.assert_whole().await;
    assert_subjects(&i.stack).await;

    i.proxy.clear_targets();
    assert_eq!(i.function.run(open).await.outcome, Outcome::Remediated);
    i.assert_evacuated().await;
}

#[tokio::test]
async fn restore_whose_subnet_update_is_refused_keeps_the_record() {
    let i = Incident::az().await;
    i.function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    i.assert_evacuated().await;
    let deletes = i.proxy.calls_of("DeleteTags");
    i.proxy
        .target("UpdateAutoScalingGroup", None, Targeted::Refuse);
    let closed = sample_event("health-ec2-issue-closed.json");

    let report = i.function.run(closed.clone()).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    failed_action(&report, "update-asg");
    assert_eq!(
        i.proxy.calls_of("DeleteTags"),
        deletes,
        "the record is not removed"
    );
    i.assert_evacuated().await;

    i.proxy.clear_targets();
    assert_eq!(i.function.run(closed).await.outcome, Outcome::Remediated);
    i.assert_whole().await;
}

#[tokio::test]
async fn restore_whose_answer_was_lost_is_finished_not_declined() {
    let i = Incident::az().await;
    i.function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    i.proxy
        .target("UpdateAutoScalingGroup", None, Targeted::DropAnswer);
    let closed = sample_event("health-ec2-issue-closed.json");

    // A lost answer is worth retrying: a Lambda error, after the report.
    let error = i
        .function
        .invoke(closed.clone())
        .await
        .expect_err("retryable");
    assert!(
        error.to_string().contains("UpdateAutoScalingGroup"),
        "{error}"
    );
    assert_eq!(
        assert_subjects(&i.stack)
            .await
            .last()
            .unwrap()
            .report
            .outcome,
        Outcome::Failed
    );
    // The update was applied, its answer lost: the subnets are back, the
    // record is kept until a delivery sees them back.
    assert!(i
        .stack
        .subnets_of(MANAGED_ASG)
        .await
        .contains(&i.stack.subnet_in(A)));
    assert!(i.stack.tag_of(MANAGED_ASG, EVACUATED).await.is_some());

    i.proxy.clear_targets();
    let again = i.function.run(closed).await;
    assert_eq!(again.outcome, Outcome::Remediated, "{again:#?}");
    let kinds: Vec<&str> = again.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["untag-asg"], "finishing only removes the record");
    i.assert_whole().await;
}

#[tokio::test]
async fn evacuation_cut_by_the_deadline_between_its_steps_keeps_i1() {
    // A 9 s function whose record write hangs for 7 s: the step is cut at
    // the deadline less the margin (its outcome unknown: the proxy lets it
    // land late), and the subnet update after it never starts.
    let i = Incident::start("az-impairment", Duration::from_secs(9)).await;
    i.proxy.target(
        "CreateOrUpdateTags",
        Some(EVACUATED),
        Targeted::Delay(Duration::from_secs(7)),
    );
    let open = sample_event("health-ec2-issue-open.json");
    let started = Instant::now();
    let answer = i.function.invoke(open.clone()).await;
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "ran past the deadline"
    );
    let error = answer.expect_err("a step left for the retry is a Lambda error");
    assert!(error.to_string().contains("deadline"), "{error}");
    i.assert_i1().await;
    assert_eq!(i.proxy.calls_of("UpdateAutoScalingGroup"), 0);
    let delivered = assert_subjects(&i.stack).await;
    assert_eq!(delivered.len(), 1, "the cut plan is reported");
    assert_eq!(delivered[0].report.outcome, Outcome::Failed);

    i.proxy.clear_targets();
    assert_eq!(i.function.run(open).await.outcome, Outcome::Remediated);
    i.assert_evacuated().await;
}

#[tokio::test]
async fn a_hung_call_ends_before_the_deadline_and_is_retried() {
    let i = Incident::start("az-impairment", Duration::from_secs(9)).await;
    i.proxy.target(
        "UpdateAutoScalingGroup",
        None,
        Targeted::Delay(Duration::from_secs(60)),
    );
    let open = sample_event("health-ec2-issue-open.json");
    let started = Instant::now();
    let error = i
        .function
        .invoke(open.clone())
        .await
        .expect_err("retryable");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "the hung call ate the deadline: {took:?}"
    );
    assert!(error.to_string().contains("deadline"), "{error}");
    let delivered = assert_subjects(&i.stack).await;
    assert_eq!(delivered.len(), 1, "the report still goes out");
    assert!(failed_action(&delivered[0].report, "update-asg")
        .detail
        .contains("deadline"));
    i.assert_i1().await;

    i.proxy.clear_targets();
    assert_eq!(i.function.run(open).await.outcome, Outcome::Remediated);
    i.assert_evacuated().await;
}

#[tokio::test]
async fn a_failed_observation_is_reported_with_its_zone() {
    let i = Incident::az().await;
    i.proxy
        .target("DescribeAutoScalingGroups", None, Targeted::Refuse);
    let report = i
        .function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Failed);
    let delivered = assert_subjects(&i.stack).await;
    assert_eq!(
        delivered[0].subject,
        "[ballast] az-impairment: failed us-east-1a"
    );
}

#[tokio::test]
async fn a_cleared_signal_whose_record_rewrite_is_refused_stays_recorded() {
    let i = Incident::az().await;
    i.function
        .run(sample_event("arc-autoshift-in-progress.json"))
        .await;
    i.function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    i.assert_evacuated().await;
    i.proxy
        .target("CreateOrUpdateTags", Some(EVACUATED), Targeted::Refuse);
    let closed = sample_event("health-ec2-issue-closed.json");
    let report = i.function.run(closed.clone()).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    failed_action(&report, "tag-asg");
    // Nothing moved, and the Health signal is still recorded: the zone is
    // held, never released early or stranded without a reason.
    i.assert_evacuated().await;
    let record = i.stack.tag_of(MANAGED_ASG, EVACUATED).await.unwrap();
    assert!(record.contains("by=us-east-1a/health:"), "{record}");
    assert!(record.contains("by=us-east-1a/autoshift"), "{record}");

    i.proxy.clear_targets();
    let again = i.function.run(closed).await;
    assert_eq!(again.outcome, Outcome::Remediated, "{again:#?}");
    let record = i.stack.tag_of(MANAGED_ASG, EVACUATED).await.unwrap();
    assert!(!record.contains("health:"), "{record}");
    i.assert_evacuated().await;
    let done = i
        .function
        .run(sample_event("arc-autoshift-completed.json"))
        .await;
    assert_eq!(done.outcome, Outcome::Remediated, "{done:#?}");
    i.assert_whole().await;
}

#[tokio::test]
async fn a_sweep_that_cannot_read_the_alarms_changes_nothing() {
    let i = Incident::az().await;
    let name = "ballast-az-web-canary-us-east-1a";
    let cw = zonal_canary(&i.moto.sdk_config(), name, A, "ALARM").await;
    i.function
        .run(sample_event("az-impairment-alarm.json"))
        .await;
    i.assert_evacuated().await;
    // The alarm recovers; its OK event is lost; the sweep cannot read it.
    set_alarm_state(&cw, name, "OK").await;
    i.proxy.target("DescribeAlarms", None, Targeted::Refuse);
    let sweep = i.function.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Failed, "{sweep:#?}");
    assert!(sweep.reason.unwrap().contains("DescribeAlarms"));
    i.assert_evacuated().await;

    i.proxy.clear_targets();
    let repaired = i.function.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(repaired.outcome, Outcome::Remediated, "{repaired:#?}");
    i.assert_whole().await;
}

/// The database half, and the rds-failover binary.
async fn promotion_incident(timeout: Duration) -> (Incident, Databases, String, String) {
    let i = Incident::start("rds-failover", timeout).await;
    let dbs = Databases::seed(&i.moto.sdk_config()).await;
    let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
    let dns_tag = dbs.tags(PRIMARY).await["ballast:dns-record"].clone();
    dbs.stop(PRIMARY).await;
    (i, dbs, replica_endpoint, dns_tag)
}

#[tokio::test]
async fn promotion_whose_tag_move_is_refused_is_finished_without_promoting_again() {
    let (i, dbs, endpoint, dns_tag) = promotion_incident(Duration::from_secs(120)).await;
    i.proxy.target(
        "AddTagsToResource",
        Some("ballast:dns-record"),
        Targeted::Refuse,
    );
    let failure = sample_event("rds-instance-failure.json");

    let report = i.function.run(failure.clone()).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert_eq!(i.proxy.calls_of("PromoteReadReplica"), 1);
    assert!(dbs.tags(REPLICA).await["ballast:promotion"].contains("state=promoted"));

    i.proxy.clear_targets();
    let again = i.function.run(failure.clone()).await;
    assert_eq!(again.outcome, Outcome::Remediated, "{again:#?}");
    assert!(
        again.summary.contains("Finishing the promotion"),
        "{}",
        again.summary
    );
    assert_eq!(
        i.proxy.calls_of("PromoteReadReplica"),
        1,
        "I3: promoted once"
    );
    dbs.assert_promoted(&endpoint, &dns_tag, "after the redelivery")
        .await;
    // Later deliveries and the sweep find it done.
    assert_eq!(i.function.run(failure).await.outcome, Outcome::Noop);
    assert_eq!(
        i.function
            .run(sample_event("scheduled-sweep.json"))
            .await
            .outcome,
        Outcome::Noop
    );
    assert_eq!(i.proxy.calls_of("PromoteReadReplica"), 1);
}

#[tokio::test]
async fn promotion_whose_record_is_refused_promotes_nothing() {
    let (i, dbs, endpoint, dns_tag) = promotion_incident(Duration::from_secs(120)).await;
    i.proxy.target(
        "AddTagsToResource",
        Some("ballast:promotion"),
        Targeted::Refuse,
    );
    let failure = sample_event("rds-instance-failure.json");
    let report = i.function.run(failure.clone()).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert_eq!(
        i.proxy.calls_of("PromoteReadReplica"),
        0,
        "no record, no promotion"
    );

    i.proxy.clear_targets();
    assert_eq!(i.function.run(failure).await.outcome, Outcome::Remediated);
    assert_eq!(i.proxy.calls_of("PromoteReadReplica"), 1);
    dbs.assert_promoted(&endpoint, &dns_tag, "after the redelivery")
        .await;
}

#[tokio::test]
async fn promotion_cut_by_the_deadline_after_promoting_is_finished_by_the_retry() {
    // Moving the tag hangs in a 10 s function: the step is cut at the
    // deadline minus the margin, after the promotion and its record.
    let (i, dbs, endpoint, dns_tag) = promotion_incident(Duration::from_secs(10)).await;
    i.proxy.target(
        "AddTagsToResource",
        Some("ballast:dns-record"),
        Targeted::Delay(Duration::from_secs(30)),
    );
    let failure = sample_event("rds-instance-failure.json");
    let started = Instant::now();
    let error = i
        .function
        .invoke(failure.clone())
        .await
        .expect_err("retryable");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ran past the deadline"
    );
    assert!(error.to_string().contains("deadline"), "{error}");
    assert_eq!(i.proxy.calls_of("PromoteReadReplica"), 1);
    assert!(dbs
        .tags(PRIMARY)
        .await
        .contains_key("ballast:standby-replica"));

    i.proxy.clear_targets();
    let again = i.function.run(failure).await;
    assert_eq!(again.outcome, Outcome::Remediated, "{again:#?}");
    assert_eq!(
        i.proxy.calls_of("PromoteReadReplica"),
        1,
        "I3: promoted once"
    );
    dbs.assert_promoted(&endpoint, &dns_tag, "after the retry")
        .await;
}

#[tokio::test]
async fn a_report_refused_by_sns_is_tried_again_then_kept_in_the_lambda_error() {
    let i = Incident::az().await;
    i.proxy.target("Publish", None, Targeted::Refuse);
    let error = i
        .function
        .invoke(sample_event("health-ec2-issue-open.json"))
        .await
        .expect_err("an unpublished report is a Lambda error");
    assert_eq!(i.proxy.calls_of("Publish"), 3, "tried three times");
    assert_eq!(error["errorType"], "Ballast.ReportNotPublished");
    // The whole report rides in the error, for the dead-letter queue.
    let message = error["errorMessage"].as_str().unwrap_or_default();
    let json = &message[message.find("report: {").expect("the report") + 8..];
    let report: Value = serde_json::from_str(json).expect("the whole report");
    assert_eq!(report["outcome"], "remediated");
    i.assert_evacuated().await;
    // ... and parked on the group it changed.
    let parked = i.stack.tag_of(MANAGED_ASG, "ballast:unreported").await;
    assert!(parked.is_some_and(|p| p.starts_with("o=remediated s=warning ")));

    // Lambda's retry finds the work done: it publishes the report then.
    i.proxy.clear_targets();
    let retry = i
        .function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    assert_eq!(retry.outcome, Outcome::Noop, "{retry:#?}");
    let delivered = assert_subjects(&i.stack).await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    let late = &delivered[0];
    assert_eq!(late.report.outcome, Outcome::Remediated);
    assert_eq!(late.attributes["severity"], "warning");
    assert!(
        late.report
            .summary
            .starts_with("Reported late: us-east-1a is impaired"),
        "{}",
        late.report.summary
    );
    assert_eq!(late.subject, "[ballast] az-impairment: remediated web");
    assert_eq!(
        i.stack.tag_of(MANAGED_ASG, "ballast:unreported").await,
        None
    );
    // Reported once: the next duplicate publishes nothing.
    let again = i
        .function
        .run(sample_event("health-ec2-issue-open.json"))
        .await;
    assert_eq!(again.outcome, Outcome::Noop);
    assert!(i.stack.reports().await.is_empty());
}

/// A promotion whose report SNS refused: made, and its report parked.
async fn parked_promotion() -> (Incident, Databases) {
    let (i, dbs, endpoint, dns_tag) = promotion_incident(Duration::from_secs(120)).await;
    i.proxy.target("Publish", None, Targeted::Refuse);
    let error = i
        .function
        .invoke(sample_event("rds-instance-failure.json"))
        .await
        .expect_err("unpublished");
    assert_eq!(error["errorType"], "Ballast.ReportNotPublished");
    dbs.assert_promoted(&endpoint, &dns_tag, "promoted, not reported")
        .await;
    i.proxy.clear_targets();
    (i, dbs)
}

#[tokio::test]
async fn a_promotion_report_refused_by_sns_is_published_by_the_next_delivery() {
    let (i, dbs) = parked_promotion().await;
    let failure = sample_event("rds-instance-failure.json");
    assert_eq!(i.function.run(failure).await.outcome, Outcome::Noop);
    let delivered = assert_subjects(&i.stack).await;
    assert_eq!(delivered.len(), 1, "{delivered:#?}");
    assert_eq!(delivered[0].report.outcome, Outcome::Remediated);
    assert_eq!(delivered[0].attributes["severity"], "critical");
    assert!(delivered[0]
        .report
        .summary
        .contains("is promoted to take over"));
    assert!(!dbs.tags(PRIMARY).await.contains_key("ballast:unreported"));
}

/// A sweep's report names every tagged database: their parked copies are
/// read from one listing (no `ListTagsForResource` each), and the parked
/// promotion report is published, late, by that sweep.
#[tokio::test]
async fn a_sweep_of_many_databases_publishes_a_parked_report_from_one_listing() {
    let (i, dbs) = parked_promotion().await;
    for n in 0..4 {
        dbs.add_database(&format!("extra-{n}")).await;
    }

    let before = i.proxy.calls_of("ListTagsForResource");
    let sweep = i.function.run(sample_event("scheduled-sweep.json")).await;
    assert!(sweep.resources.len() > 4, "{sweep:#?}");
    assert_eq!(
        i.proxy.calls_of("ListTagsForResource") - before,
        0,
        "{:?}",
        i.proxy.calls()
    );
    let delivered = assert_subjects(&i.stack).await;
    let late: Vec<_> = delivered
        .iter()
        .filter(|d| d.report.summary.starts_with("Reported late:"))
        .collect();
    assert_eq!(late.len(), 1, "{delivered:#?}");
    assert!(late[0].report.summary.contains("is promoted to take over"));
    assert!(!dbs.tags(PRIMARY).await.contains_key("ballast:unreported"));
}

#[tokio::test]
async fn a_live_lease_is_never_overwritten_and_an_expired_one_is_taken_over() {
    let i = Incident::az().await;
    let now = ballast::report::now_epoch();
    let holder = "another-invocation.0000beef";
    i.stack.put_lease("asg/web", holder, now + 120).await;
    let open = sample_event("health-ec2-issue-open.json");

    let error = i
        .function
        .invoke(open.clone())
        .await
        .expect_err("stands down");
    assert!(
        error.to_string().contains("stands down and is retried"),
        "{error}"
    );
    assert_eq!(i.proxy.calls_of("UpdateAutoScalingGroup"), 0);
    assert_eq!(i.proxy.calls_of("CreateOrUpdateTags"), 0, "nothing written");
    let held = i.stack.leases().await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0].holder.as_str(), held[0].expires),
        (holder, now + 120)
    );
    i.assert_whole().await;
    assert!(
        i.stack.reports().await.is_empty(),
        "a stand-down publishes nothing"
    );

    // The holder crashed: its lease expires by itself and is taken over.
    i.stack.put_lease("asg/web", holder, now - 1).await;
    assert_eq!(i.function.run(open).await.outcome, Outcome::Remediated);
    i.assert_evacuated().await;
    assert_eq!(i.stack.leases().await, vec![], "released");
}
