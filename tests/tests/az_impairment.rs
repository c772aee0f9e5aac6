//! `az-impairment` against moto in server mode, through the real SDK: the
//! seed stack's managed ASG `web` and unmanaged ASG `legacy` span subnets in
//! us-east-1a and us-east-1b. moto may place an ASG's instances anywhere, so
//! the tests assert on subnets, max size and tags.

use ballast::reconcile::az_impairment::FUNCTION;
use ballast::report::{ActionStatus, Outcome, Severity};
use ballast_tests::stack::{MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, World};
use serde_json::json;

const A: &str = "us-east-1a";
const B: &str = "us-east-1b";
const EVACUATED: &str = "ballast:evacuated";

async fn all_subnets(w: &World) -> Vec<String> {
    let mut all = vec![w.stack.subnet_in(A), w.stack.subnet_in(B)];
    all.sort();
    all
}

async fn assert_evacuated(w: &World) {
    assert_eq!(
        w.stack.subnets_of(MANAGED_ASG).await,
        [w.stack.subnet_in(B)]
    );
    let tag = w
        .stack
        .tag_of(MANAGED_ASG, EVACUATED)
        .await
        .expect("the evacuation is recorded");
    assert!(tag.starts_with("azs=us-east-1a subnets="), "{tag}");
    assert_eq!(
        w.stack.subnets_of(UNMANAGED_ASG).await,
        all_subnets(w).await,
        "unmanaged is untouched"
    );
    assert_eq!(w.stack.tag_of(UNMANAGED_ASG, EVACUATED).await, None);
}

async fn assert_restored(w: &World) {
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await, all_subnets(w).await);
    assert_eq!(w.stack.tag_of(MANAGED_ASG, EVACUATED).await, None);
    assert_eq!(
        w.stack.group(MANAGED_ASG).await.max_size(),
        Some(4),
        "max size back to the original"
    );
}

#[tokio::test]
async fn health_issue_evacuates_then_its_closing_restores() {
    let w = World::start(FUNCTION, false).await;
    let report = w.run(sample_event("health-ec2-issue-open.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(report.severity, Severity::Warning);
    assert!(
        report
            .summary
            .starts_with("us-east-1a is impaired: moving 1 Auto Scaling group(s)"),
        "{}",
        report.summary
    );
    let kinds: Vec<&str> = report.actions.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["tag-asg", "update-asg"]);
    assert_evacuated(&w).await;
    let d = w.stack.reports().await;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attributes["function"], "az-impairment");

    let again = w.run(sample_event("health-ec2-issue-open.json")).await;
    assert_eq!(
        again.outcome,
        Outcome::Noop,
        "a duplicate is harmless: {again:#?}"
    );
    assert!(w.stack.reports().await.is_empty());

    let restored = w.run(sample_event("health-ec2-issue-closed.json")).await;
    assert_eq!(restored.outcome, Outcome::Remediated, "{restored:#?}");
    assert_eq!(restored.severity, Severity::Info);
    assert_restored(&w).await;
    let again = w.run(sample_event("health-ec2-issue-closed.json")).await;
    assert_eq!(again.outcome, Outcome::Noop);
}

#[tokio::test]
async fn arc_autoshift_maps_the_az_id_to_the_zone() {
    let w = World::start(FUNCTION, false).await;
    // moto maps use1-az6 to us-east-1a, as DescribeAvailabilityZones says.
    let report = w.run(sample_event("arc-autoshift-in-progress.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_evacuated(&w).await;
    let report = w.run(sample_event("arc-autoshift-completed.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_restored(&w).await;

    let mut unknown = sample_event("arc-autoshift-in-progress.json");
    unknown["detail"]["metadata"]["awayFrom"] = json!("euw1-az1");
    let report = w.run(unknown).await;
    assert_eq!(report.outcome, Outcome::Ignored);
    assert!(report
        .reason
        .unwrap()
        .contains("AZ ID euw1-az1 is not an Availability Zone of us-east-1"));
}

#[tokio::test]
async fn per_az_alarm_evacuates_on_alarm_and_restores_on_ok() {
    let w = World::start(FUNCTION, false).await;
    let alarm = sample_event("az-impairment-alarm.json");
    assert_eq!(w.run(alarm.clone()).await.outcome, Outcome::Remediated);
    assert_evacuated(&w).await;
    let mut ok = alarm;
    ok["detail"]["state"]["value"] = json!("OK");
    assert_eq!(w.run(ok).await.outcome, Outcome::Remediated);
    assert_restored(&w).await;
}

#[tokio::test]
async fn operator_evacuates_and_restores_by_hand() {
    let w = World::start(FUNCTION, false).await;
    assert_eq!(
        w.run(sample_event("az-impairment-evacuate.json"))
            .await
            .outcome,
        Outcome::Remediated
    );
    assert_evacuated(&w).await;
    let report = w.run(sample_event("az-impairment-restore.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(report.trigger.source, "direct");
    assert_restored(&w).await;
}

#[tokio::test]
async fn a_second_az_while_one_is_evacuated_is_declined() {
    let w = World::start(FUNCTION, false).await;
    w.run(json!({"action": "evacuate", "availabilityZone": A}))
        .await;
    w.stack.reports().await;
    let report = w
        .run(json!({"action": "evacuate", "availabilityZone": B}))
        .await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert_eq!(report.severity, Severity::Critical);
    assert!(report
        .reason
        .unwrap()
        .contains("BALLAST_MAX_EVACUATED_AZS=1"));
    assert_evacuated(&w).await;
    assert_eq!(w.stack.reports().await[0].attributes["outcome"], "declined");
}

#[tokio::test]
async fn an_asg_in_a_single_az_is_never_emptied() {
    let w = World::start(FUNCTION, false).await;
    // Only a single-AZ group is managed here.
    w.stack
        .autoscaling
        .delete_tags()
        .tags(
            aws_sdk_autoscaling::types::Tag::builder()
                .resource_id(MANAGED_ASG)
                .resource_type("auto-scaling-group")
                .key("ballast:managed")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let a = w.stack.subnet_in(A);
    w.stack
        .create_asg_in("solo", 1, &[a.as_str()], &[("ballast:managed", "true")])
        .await;

    let report = w
        .run(json!({"action": "evacuate", "availabilityZone": A}))
        .await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert!(report
        .reason
        .unwrap()
        .contains("never remove an Auto Scaling group's last AZ: solo"));
    assert_eq!(w.stack.subnets_of("solo").await, [a]);
    assert_eq!(w.stack.tag_of("solo", EVACUATED).await, None);
}

#[tokio::test]
async fn restore_does_not_clobber_an_operators_change() {
    let w = World::start(FUNCTION, false).await;
    w.run(json!({"action": "evacuate", "availabilityZone": A}))
        .await;
    // An operator put the subnets back by hand, tag left behind.
    let all = all_subnets(&w).await;
    w.stack
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(MANAGED_ASG)
        .vpc_zone_identifier(all.join(","))
        .max_size(6)
        .send()
        .await
        .unwrap();
    let report = w
        .run(json!({"action": "restore", "availabilityZone": A}))
        .await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert_eq!(report.severity, Severity::Warning);
    assert!(report
        .reason
        .unwrap()
        .contains("not clobbering an operator's change"));
    assert_eq!(w.stack.group(MANAGED_ASG).await.max_size(), Some(6));
    assert!(w.stack.tag_of(MANAGED_ASG, EVACUATED).await.is_some());
}

#[tokio::test]
async fn dry_run_changes_nothing_and_reports_the_plan() {
    let w = World::start(FUNCTION, true).await;
    let report = w.run(sample_event("health-ec2-issue-open.json")).await;
    assert_eq!(report.outcome, Outcome::DryRun, "{report:#?}");
    assert!(report
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Skipped));
    assert!(
        report
            .summary
            .contains("would tag ASG web ballast:evacuated=azs=us-east-1a"),
        "{}",
        report.summary
    );
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await, all_subnets(&w).await);
    assert_eq!(w.stack.tag_of(MANAGED_ASG, EVACUATED).await, None);
    assert_eq!(w.stack.reports().await.len(), 1);
}

#[tokio::test]
async fn events_that_are_not_zonal_signals_are_ignored() {
    let w = World::start(FUNCTION, false).await;
    let mut rds_health = sample_event("health-ec2-issue-open.json");
    rds_health["detail"]["service"] = json!("RDS");
    let cases = [
        (sample_event("scheduled-sweep.json"), "has no sweep"),
        (
            sample_event("unhealthy-target-alarm.json"),
            "no AvailabilityZone dimension",
        ),
        (rds_health, "only EC2 issues"),
        (
            sample_event("rds-instance-failure.json"),
            "does not handle RDS DB Instance Event",
        ),
        (
            json!({"action": "evacuate", "availabilityZone": "eu-west-1a"}),
            "is not in us-east-1",
        ),
        (json!([]), "payload is a JSON array"),
    ];
    for (payload, reason) in cases {
        w.assert_ignored(payload, reason).await;
    }
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await, all_subnets(&w).await);
    assert!(w.stack.reports().await.is_empty());
}
