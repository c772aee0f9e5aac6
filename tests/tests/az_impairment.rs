//! `az-impairment` against moto in server mode, through the real SDK: the
//! seed stack's managed ASG `web` and unmanaged ASG `legacy` span subnets in
//! us-east-1a and us-east-1b. moto may place an ASG's instances anywhere, so
//! the tests assert on subnets, max size and tags.

use ballast::decide::az_impairment::Evacuation;
use ballast::reconcile::az_impairment::FUNCTION;
use ballast::report::{ActionStatus, Outcome, Severity};
use ballast_tests::stack::{MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, set_alarm_state, zonal_canary, World};
use serde_json::{json, Value};

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
    assert!(tag.starts_with("azs=us-east-1a@"), "{tag}");
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
            .starts_with("us-east-1a is impaired (AWS Health issue "),
        "{}",
        report.summary
    );
    // The zone came from the description's AZ ID; the sentence is evidence.
    assert!(
        report
            .summary
            .contains("Evidence: \"We are investigating increased API error rates and connectivity issues for some \
                       instances in a single Availability Zone (USE1-AZ6) in the US-EAST-1 Region.\""),
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
    assert!(report.reason.unwrap().contains(
        "names no Availability Zone of us-east-1, the Region this function serves (euw1-az1)"
    ));
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
        (
            sample_event("arc-practice-run-interrupted.json"),
            "practice runs",
        ),
        (sample_event("health-ec2-issue-public.json"), "Region-wide"),
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
            "names no Availability Zone of us-east-1, the Region this function serves (eu-west-1a)",
        ),
        (json!([]), "payload is a JSON array"),
    ];
    for (payload, reason) in cases {
        w.assert_ignored(payload, reason).await;
    }
    // A Local Zone of this Region is a zone of it (no group uses it here).
    let local = w
        .run(json!({"action": "evacuate", "availabilityZone": "us-east-1-bos-1a"}))
        .await;
    assert_eq!(local.outcome, Outcome::Noop, "{local:#?}");
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await, all_subnets(&w).await);
    assert!(w.stack.reports().await.is_empty());
}

/// The sample zonal alarm's name (`events/az-impairment-alarm.json`).
const CANARY: &str = "ballast-az-web-canary-us-east-1a";

/// Creates the sample's zonal alarm in the emulator and sets its state.
async fn canary_in(w: &World, state: &str) -> aws_sdk_cloudwatch::Client {
    zonal_canary(&w.moto.sdk_config(), CANARY, A, state).await
}

async fn set_state(cw: &aws_sdk_cloudwatch::Client, state: &str) {
    set_alarm_state(cw, CANARY, state).await;
}

fn canary_event(state: &str) -> Value {
    let mut e = sample_event("az-impairment-alarm.json");
    e["detail"]["state"]["value"] = json!(state);
    e
}

#[tokio::test]
async fn issues_naming_no_zone_or_several_zones_move_nothing() {
    let w = World::start(FUNCTION, false).await;
    let mut two = sample_event("health-ec2-issue-open.json");
    two["detail"]["eventDescription"][0]["latestDescription"] = json!(
        "We are investigating connectivity issues for some instances in two Availability Zones (USE1-AZ6, USE1-AZ1) in the US-EAST-1 Region."
    );
    w.assert_ignored(
        two,
        "names 2 zones of us-east-1 (us-east-1a, us-east-1b): moving nothing",
    )
    .await;
    w.assert_ignored(sample_event("health-ec2-issue-public.json"), "Region-wide")
        .await;
    // A zone of another Region (the backup Region's copy of an issue).
    let mut elsewhere = sample_event("health-ec2-issue-open.json");
    elsewhere["detail"]["eventDescription"][0]["latestDescription"] = json!(
        "Connectivity issues in a single Availability Zone (EUW1-AZ2) in the EU-WEST-1 Region."
    );
    w.assert_ignored(elsewhere, "names no Availability Zone of us-east-1")
        .await;
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await, all_subnets(&w).await);
    assert!(w.stack.reports().await.is_empty());
}

#[tokio::test]
async fn two_signals_for_a_zone_the_first_to_clear_keeps_it_evacuated() {
    let w = World::start(FUNCTION, false).await;
    assert_eq!(
        w.run(canary_event("ALARM")).await.outcome,
        Outcome::Remediated
    );
    assert_evacuated(&w).await;
    // Health confirms: recorded, nothing moves.
    let open = w.run(sample_event("health-ec2-issue-open.json")).await;
    assert_eq!(
        (open.outcome, open.severity),
        (Outcome::Remediated, Severity::Info),
        "{open:#?}"
    );
    assert!(open.summary.contains("one more reason"), "{}", open.summary);
    let tag = w.stack.tag_of(MANAGED_ASG, EVACUATED).await.unwrap();
    assert!(
        tag.contains(&format!("by=us-east-1a/alarm:{CANARY}")),
        "{tag}"
    );
    assert!(tag.contains("by=us-east-1a/health:"), "{tag}");
    // The canary recovers while Health still says the zone is impaired.
    let ok = w.run(canary_event("OK")).await;
    assert_eq!(ok.outcome, Outcome::Remediated, "{ok:#?}");
    assert!(ok.summary.contains("stays evacuated"), "{}", ok.summary);
    assert!(
        ok.summary.contains("held by AWS Health issue"),
        "{}",
        ok.summary
    );
    assert_evacuated(&w).await;
    assert!(!w
        .stack
        .tag_of(MANAGED_ASG, EVACUATED)
        .await
        .unwrap()
        .contains("alarm:"));
    // Health closes the issue: nothing holds the zone any more.
    let closed = w.run(sample_event("health-ec2-issue-closed.json")).await;
    assert_eq!(closed.outcome, Outcome::Remediated, "{closed:#?}");
    assert_restored(&w).await;
}

#[tokio::test]
async fn an_operators_restore_clears_every_signal_and_says_so() {
    let w = World::start(FUNCTION, false).await;
    w.run(sample_event("health-ec2-issue-open.json")).await;
    let restored = w.run(sample_event("az-impairment-restore.json")).await;
    assert_eq!(restored.outcome, Outcome::Remediated, "{restored:#?}");
    assert!(
        restored
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("an operator's restore clears every signal, including AWS Health issue"),
        "{restored:#?}"
    );
    assert_restored(&w).await;
    // The issue's closing event later finds nothing to do.
    let closed = w.run(sample_event("health-ec2-issue-closed.json")).await;
    assert_eq!(closed.outcome, Outcome::Noop, "{closed:#?}");
}

#[tokio::test]
async fn insufficient_data_is_not_an_all_clear() {
    let w = World::start(FUNCTION, false).await;
    let cw = canary_in(&w, "ALARM").await;
    w.run(canary_event("ALARM")).await;
    assert_evacuated(&w).await;
    // The canary inside the dead zone stops reporting.
    set_state(&cw, "INSUFFICIENT_DATA").await;
    w.assert_ignored(canary_event("INSUFFICIENT_DATA"), "not an all-clear")
        .await;
    let sweep = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Noop, "{sweep:#?}");
    assert_evacuated(&w).await;
}

#[tokio::test]
async fn the_sweep_restores_a_zone_whose_closing_event_was_lost() {
    let w = World::start(FUNCTION, false).await;
    let cw = canary_in(&w, "ALARM").await;
    w.run(canary_event("ALARM")).await;
    w.stack.reports().await;
    // The sweep reads the alarm back: still in ALARM, the zone stays out.
    let held = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(held.outcome, Outcome::Noop, "{held:#?}");
    assert_evacuated(&w).await;
    // The alarm goes back to OK, and its event is lost.
    set_state(&cw, "OK").await;
    let repaired = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(repaired.outcome, Outcome::Remediated, "{repaired:#?}");
    assert_restored(&w).await;
    assert_eq!(w.stack.reports().await.len(), 1);
    // A deleted alarm holds nothing either.
    w.run(canary_event("ALARM")).await;
    assert_evacuated(&w).await;
    cw.delete_alarms().alarm_names(CANARY).send().await.unwrap();
    let repaired = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(repaired.outcome, Outcome::Remediated, "{repaired:#?}");
    assert_restored(&w).await;
    // With nothing evacuated, the sweep has nothing to say.
    let quiet = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(quiet.outcome, Outcome::Noop, "{quiet:#?}");
}

#[tokio::test]
async fn the_sweep_warns_about_a_long_evacuation_and_restores_nothing_by_age() {
    let mut w = World::start(FUNCTION, false).await;
    w.ballast.config.evacuation_warn_hours = 1;
    w.run(sample_event("health-ec2-issue-open.json")).await;
    w.stack.reports().await;
    // Two hours ago, as the record says it.
    let tag = w.stack.tag_of(MANAGED_ASG, EVACUATED).await.unwrap();
    let mut older = Evacuation::parse(&tag).expect("Ballast's record");
    let hold = older.azs.get_mut("us-east-1a").expect("us-east-1a held");
    hold.since = hold.since.map(|t| t - 7200);
    w.stack
        .tag_group(MANAGED_ASG, EVACUATED, &older.encode())
        .await;
    let sweep = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(
        (sweep.outcome, sweep.severity),
        (Outcome::Declined, Severity::Warning),
        "{sweep:#?}"
    );
    let reason = sweep.reason.unwrap();
    assert!(
        reason.contains("BALLAST_EVACUATION_WARN_HOURS=1"),
        "{reason}"
    );
    assert!(reason.contains("restores no zone by age alone"), "{reason}");
    assert_evacuated(&w).await;
    assert_eq!(w.stack.reports().await[0].attributes["outcome"], "declined");
}
