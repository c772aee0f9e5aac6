//! Every story at its floor of AWS calls: each is run once, fault-free,
//! with a counting proxy between Ballast and the emulator, and its calls
//! are printed by operation and held to a ceiling (each extra call is one
//! more thing to fail under throttling). The ceilings are the counts
//! measured when the lease moved to DynamoDB and the reads were folded;
//! a change that adds a call fails here and must say why.

use std::collections::BTreeMap;

use ballast::aws::Aws;
use ballast::reconcile::{az_impairment, rds_failover, unhealthy_target};
use ballast::report::Outcome;
use ballast_tests::databases::{Databases, PRIMARY};
use ballast_tests::proxy::Proxy;
use ballast_tests::stack::MANAGED_ASG;
use ballast_tests::{sample_event, World};
use serde_json::Value;

/// A world whose handler's calls go through a counting proxy.
async fn counted(function: &'static str) -> (World, Proxy) {
    let mut w = World::start(function, false).await;
    let proxy = Proxy::start(&w.moto.endpoint(), 0.0, 1).await;
    w.ballast.aws = Aws::new(&proxy.sdk_config(&w.moto));
    (w, proxy)
}

/// Runs `event` once, expects `outcome`, and holds its calls to `ceiling`;
/// the calls by operation are printed. Leaves the proxy's counts at zero.
async fn story(
    name: &str,
    w: &World,
    proxy: &Proxy,
    event: Value,
    outcome: Outcome,
    ceiling: u64,
) -> BTreeMap<String, u64> {
    let before = proxy.calls();
    let report = w.run(event).await;
    assert_eq!(report.outcome, outcome, "{name}: {report:#?}");
    let mut calls = proxy.calls();
    for (op, n) in &before {
        if let Some(c) = calls.get_mut(op) {
            *c -= n;
        }
    }
    calls.retain(|_, n| *n > 0);
    let total: u64 = calls.values().sum();
    println!("calls: {name}: {total} {calls:?}");
    assert!(
        total <= ceiling,
        "{name}: {total} calls > {ceiling}: {calls:?}"
    );
    // The lease is one conditional write to take and one to give back.
    let lease = calls.get("TransactWriteItems").copied().unwrap_or(0);
    assert!(lease <= 3, "{name}: {lease} lease writes");
    calls
}

#[tokio::test]
async fn a_mark_and_a_tripped_breaker_are_at_their_floor() {
    let (w, proxy) = counted(unhealthy_target::FUNCTION).await;
    let web = w.stack.instances(MANAGED_ASG).await;
    w.stack.stop(&web[..1]).await;
    let alarm = w.stack.alarm_event("unhealthy-target-alarm.json");
    let mark = story("mark", &w, &proxy, alarm.clone(), Outcome::Remediated, 11).await;
    assert_eq!(mark.get("SetInstanceHealth"), Some(&1));
    assert_eq!(
        mark.get("TransactWriteItems"),
        Some(&2),
        "take and give back"
    );

    // Every managed target down: declined, and the breaker suspends the
    // group's own replacement.
    w.stack.stop(&web[1..]).await;
    let trip = story(
        "decline + breaker",
        &w,
        &proxy,
        alarm,
        Outcome::Declined,
        11,
    )
    .await;
    assert_eq!(trip.get("SuspendProcesses"), Some(&1));
    assert_eq!(trip.get("SetInstanceHealth"), None);
}

#[tokio::test]
async fn an_evacuation_and_its_restore_are_at_their_floor() {
    let (w, proxy) = counted(az_impairment::FUNCTION).await;
    let open = sample_event("health-ec2-issue-open.json");
    let evacuation = story("evacuation", &w, &proxy, open, Outcome::Remediated, 9).await;
    assert_eq!(evacuation.get("UpdateAutoScalingGroup"), Some(&1));
    let closed = sample_event("health-ec2-issue-closed.json");
    let restore = story("restore", &w, &proxy, closed, Outcome::Remediated, 8).await;
    assert_eq!(restore.get("UpdateAutoScalingGroup"), Some(&1));
}

#[tokio::test]
async fn a_promotion_is_at_its_floor() {
    let (w, proxy) = counted(rds_failover::FUNCTION).await;
    let dbs = Databases::seed(&w.moto.sdk_config()).await;
    dbs.stop(PRIMARY).await;
    let failure = sample_event("rds-instance-failure.json");
    // 18, and the standby's ReplicaLag (evidence, read once; its failure
    // blocks nothing).
    let promotion = story("promotion", &w, &proxy, failure, Outcome::Remediated, 19).await;
    assert_eq!(promotion.get("PromoteReadReplica"), Some(&1));
    assert_eq!(promotion.get("GetMetricData"), Some(&1));
}
