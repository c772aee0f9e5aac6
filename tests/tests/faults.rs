//! Converging under AWS faults: every function's story with 30 % of its AWS
//! calls faulted by the proxy (throttling and 5xx in each protocol's own
//! format, slow answers, connections dropped after the call was applied).
//! Each invocation either answers with a report — a `failed` one says which
//! actions were done — or returns a Lambda error (Lambda retries it, then the
//! DLQ holds it). Re-invoking, as Lambda and the sweeps do, converges to the
//! fault-free end state, after which the same event is a `noop`.

use ballast::aws::Aws;
use ballast::report::{ActionStatus, Outcome};
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::proxy::Proxy;
use ballast_tests::stack::{MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, World};
use serde_json::Value;

/// The share of AWS calls faulted.
const FAULT_RATE: f64 = 0.3;
/// Seeds of the fault sequence: each a different interleaving.
const SEEDS: [u64; 4] = [1, 2, 3, 4];
/// Invocations before we call it a failure to converge (Lambda's own retries
/// plus a few sweeps).
const ATTEMPTS: usize = 12;

/// A world whose handler talks to moto through a faulting proxy (the test's
/// own setup and checks talk to moto directly).
async fn faulted_world(function: &'static str, seed: u64) -> (World, Proxy) {
    let mut w = World::start(function, false).await;
    let proxy = Proxy::start(&w.moto.endpoint(), FAULT_RATE, seed).await;
    w.ballast.aws = Aws::new(&proxy.sdk_config(&w.moto));
    (w, proxy)
}

/// Invokes until an answer is a report that is not `failed`, checking every
/// answer on the way; the converging report must be `remediated` or `noop`.
async fn until_converged(w: &World, event: &Value, what: &str) {
    for _ in 0..ATTEMPTS {
        match w.invoke(event.clone()).await {
            Ok(report) if report.outcome == Outcome::Failed => {
                let reason = report.reason.as_deref().unwrap_or_default();
                assert!(!reason.is_empty(), "{what}: a failed report says why");
                // Whatever was planned is accounted for, action by action.
                for a in &report.actions {
                    if a.status == ActionStatus::Failed {
                        assert!(!a.detail.is_empty(), "{what}: {a:?}");
                    }
                }
            }
            Ok(report) => {
                assert!(
                    matches!(report.outcome, Outcome::Remediated | Outcome::Noop),
                    "{what}: {report:#?}"
                );
                return;
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains(w.function), "{what}: {text}");
            }
        }
    }
    panic!("{what}: no convergence in {ATTEMPTS} invocations at {FAULT_RATE} faults");
}

/// With the faults off, `event` finds nothing left to do; returns how many
/// calls the proxy faulted in this world.
async fn converged(w: &World, proxy: &Proxy, event: Value, seed: u64) -> u64 {
    proxy.set_fault_rate(0.0);
    assert_eq!(w.run(event).await.outcome, Outcome::Noop, "seed {seed}");
    proxy.total_faults()
}

/// The faults a test saw over its seeds: printed for the record, and more
/// than none, or the test proved nothing.
fn report_faults(function: &str, faults: u64) {
    println!(
        "{function}: {faults} faulted AWS calls over {} runs",
        SEEDS.len()
    );
    assert!(
        faults > 0,
        "the proxy faulted nothing: the test proves nothing"
    );
}

#[tokio::test]
async fn unhealthy_target_converges_under_faults() {
    let mut faults = 0;
    for seed in SEEDS {
        let (w, proxy) = faulted_world(ballast::reconcile::unhealthy_target::FUNCTION, seed).await;
        let web = w.stack.instances(MANAGED_ASG).await;
        w.stack.stop(&web[..1]).await;
        let before_unmanaged = w.stack.all_asg_health().await;
        let event = w.stack.alarm_event("unhealthy-target-alarm.json");

        until_converged(&w, &event, &format!("seed {seed}")).await;
        // The fault-free end state: the stopped instance handed to its ASG,
        // the running one and the unmanaged group untouched.
        assert_eq!(
            w.stack.asg_health(&web[0]).await,
            "Unhealthy",
            "seed {seed}"
        );
        assert_eq!(w.stack.asg_health(&web[1]).await, "Healthy", "seed {seed}");
        for id in w.stack.instances(UNMANAGED_ASG).await {
            assert_eq!(w.stack.asg_health(&id).await, before_unmanaged[&id]);
        }
        faults += converged(&w, &proxy, event, seed).await;
    }
    report_faults("unhealthy-target", faults);
}

#[tokio::test]
async fn replica_promotion_converges_under_faults() {
    let mut faults = 0;
    for seed in SEEDS {
        let (w, proxy) = faulted_world(ballast::reconcile::rds_failover::FUNCTION, seed).await;
        let dbs = Databases::seed(&w.moto.sdk_config()).await;
        let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
        let dns_tag = dbs.tags(PRIMARY).await["ballast:dns-record"].clone();
        dbs.stop(PRIMARY).await;
        let event = sample_event("rds-instance-failure.json");

        until_converged(&w, &event, &format!("seed {seed}")).await;
        // Promotion is not idempotent in AWS; a retried or repeated call must
        // still leave one promoted replica with the record and tag on it.
        dbs.assert_promoted(&replica_endpoint, &dns_tag, &format!("seed {seed}"))
            .await;
        faults += converged(&w, &proxy, event, seed).await;
    }
    report_faults("rds-failover", faults);
}

#[tokio::test]
async fn evacuation_and_restore_converge_under_faults() {
    let mut faults = 0;
    for seed in SEEDS {
        let (w, proxy) = faulted_world(ballast::reconcile::az_impairment::FUNCTION, seed).await;
        let original = w.stack.subnets_of(MANAGED_ASG).await;
        let original_max = w.stack.group(MANAGED_ASG).await.max_size();
        let unmanaged = w.stack.subnets_of(UNMANAGED_ASG).await;

        let evacuate = sample_event("health-ec2-issue-open.json");
        until_converged(&w, &evacuate, &format!("seed {seed} evacuate")).await;
        assert_eq!(
            w.stack.subnets_of(MANAGED_ASG).await,
            [w.stack.subnet_in("us-east-1b")],
            "seed {seed}: evacuated"
        );
        assert!(w
            .stack
            .tag_of(MANAGED_ASG, "ballast:evacuated")
            .await
            .is_some());

        let restore = sample_event("health-ec2-issue-closed.json");
        until_converged(&w, &restore, &format!("seed {seed} restore")).await;
        assert_eq!(
            w.stack.subnets_of(MANAGED_ASG).await,
            original,
            "seed {seed}"
        );
        assert_eq!(w.stack.group(MANAGED_ASG).await.max_size(), original_max);
        assert_eq!(w.stack.tag_of(MANAGED_ASG, "ballast:evacuated").await, None);
        assert_eq!(w.stack.subnets_of(UNMANAGED_ASG).await, unmanaged);

        faults += converged(&w, &proxy, restore, seed).await;
    }
    report_faults("az-impairment", faults);
}
