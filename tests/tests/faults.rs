//! Converging under AWS faults: every function's story with half of its
//! AWS calls faulted by the proxy (30 % without the SDK's retries) (throttling and 5xx in each protocol's own
//! format, slow answers, connections dropped after the call was applied).
//! Each invocation either answers with a report — a `failed` one says which
//! actions were done — or returns a Lambda error (Lambda retries it, then the
//! DLQ holds it). Re-invoking, as Lambda and the sweeps do, converges to the
//! fault-free end state, after which the same event is a `noop`.

use aws_config::retry::RetryConfig;
use ballast::aws::Aws;
use ballast::report::{ActionStatus, Outcome};
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::proxy::Proxy;
use ballast_tests::stack::{MANAGED_ASG, UNMANAGED_ASG};
use ballast_tests::{sample_event, World};
use serde_json::Value;
use std::time::{Duration, Instant};

/// The share of AWS calls faulted: half, with the SDK's retries (an
/// incident's throttling); 30 % without them.
fn fault_rate(sdk_retries: bool) -> f64 {
    if sdk_retries {
        0.5
    } else {
        0.3
    }
}
/// Seeds of the fault sequence: each a different interleaving.
const SEEDS: [u64; 3] = [1, 2, 3];
/// Without the SDK's retries a story takes many more redeliveries (and the
/// suite's time on CI): two interleavings, in which a step of every story
/// fails for good (with fewer calls per story since the DynamoDB lease,
/// seed 6 no longer failed one for the mark; 7 does).
const SEEDS_WITHOUT_SDK_RETRIES: [u64; 2] = [5, 7];

fn seeds(sdk_retries: bool) -> &'static [u64] {
    if sdk_retries {
        &SEEDS
    } else {
        &SEEDS_WITHOUT_SDK_RETRIES
    }
}
/// Deliveries before we call it a failure to converge: the event, Lambda's
/// two retries, and three more (the sweeps, EventBridge's retry policy).
/// Every delivery counts, stand-downs included.
const ATTEMPTS: usize = 6;
/// Without the SDK's retries, about one call in four fails for good and an
/// invocation makes a dozen or more: most stop before their steps, and it
/// takes more redeliveries (Lambda's, EventBridge's retry policy, the
/// sweeps). A mark needs twelve calls in a row (five reads, the lease's
/// three, the group and its instances read again, the record, the mark):
/// at 30 % that is about 1.4 % of invocations, some 70 redeliveries on
/// average (seen: 11 to 99). The bound keeps a slow interleaving from
/// failing the proof by chance.
const ATTEMPTS_WITHOUT_SDK_RETRIES: usize = 400;
/// Each invocation's Lambda deadline.
const DEADLINE: Duration = Duration::from_secs(20);

/// A world whose handler talks to moto through a faulting proxy (the test's
/// own setup and checks talk to moto directly). Without the SDK's retries,
/// a faulted call fails its step for good, and only redelivery repairs it.
async fn faulted_world(function: &'static str, seed: u64, sdk_retries: bool) -> (World, Proxy) {
    let mut w = World::start(function, false).await;
    let proxy = Proxy::start(&w.moto.endpoint(), fault_rate(sdk_retries), seed).await;
    let mut conf = proxy.sdk_config(&w.moto).into_builder();
    if !sdk_retries {
        conf = conf.retry_config(RetryConfig::disabled());
    }
    w.ballast.aws = Aws::new(&conf.build());
    // moto shows no sign of a promotion in progress (the replica stays
    // `available` and keeps its source, where RDS shows `modifying`), so a
    // promotion whose answer the proxy dropped would wait out the settle;
    // here it is requested again at once (moto accepts; the decision's
    // property tests cover RDS's behaviour).
    w.ballast.config.promotion_settle_secs = 0;
    (w, proxy)
}

/// Invokes until an answer is a report that is not `failed`, checking every
/// answer on the way; the converging report must be `remediated` or `noop`.
/// Returns how many answers said a step had failed.
async fn until_converged(w: &World, event: &Value, what: &str, sdk_retries: bool) -> u64 {
    let limit = if sdk_retries {
        ATTEMPTS
    } else {
        ATTEMPTS_WITHOUT_SDK_RETRIES
    };
    let mut failed_steps = 0;
    let mut attempts = 0;
    let mut stood_down = 0;
    // Stand-downs in a row: a lease whose release was faulted away expires
    // `lease::LIFETIME` (20 s) after it was last written.
    let mut in_a_row = 0;
    while attempts < limit {
        // A Lambda deadline, as in production: a lock whose release failed
        // expires shortly after it.
        let mut invocation = ballast::Invocation::new("fault-request");
        invocation.deadline = Some(Instant::now() + DEADLINE);
        match w.invoke_with(event.clone(), invocation).await {
            Err(e) if e.to_string().contains("stands down") => {
                // Another invocation's lease (here: one whose release was
                // faulted away) is live: it expires by itself (I5) before
                // Lambda's next retry (a minute or more), which is when
                // the test delivers again.
                // Without the SDK's retries, the many redeliveries are
                // compressed to 2 s apart and stand-downs are not counted.
                stood_down += 1;
                in_a_row += 1;
                if sdk_retries {
                    attempts += 1;
                    assert!(in_a_row <= 1, "{what}: a lease outlived its lifetime: {e}");
                    tokio::time::sleep(ballast::lease::LIFETIME + Duration::from_secs(1)).await;
                } else {
                    assert!(in_a_row <= 20, "{what}: a lease never expired: {e}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                continue;
            }
            Ok(report) if report.outcome == Outcome::Failed => {
                attempts += 1;
                in_a_row = 0;
                failed_steps += u64::from(
                    report
                        .actions
                        .iter()
                        .any(|a| a.status == ActionStatus::Failed),
                );
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
                println!(
                    "deliveries: {what}: {} (failed answers and stand-downs before: {attempts}, of which stand-downs {stood_down})",
                    attempts + 1
                );
                return failed_steps;
            }
            Err(e) => {
                attempts += 1;
                in_a_row = 0;
                let text = e.to_string();
                assert!(text.contains(w.function), "{what}: {text}");
                failed_steps += u64::from(text.contains("actions did not complete"));
            }
        }
    }
    panic!(
        "{what}: no convergence in {limit} deliveries at {} faults",
        fault_rate(sdk_retries)
    );
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
fn report_faults(function: &str, faults: u64, runs: usize) {
    println!("{function}: {faults} faulted AWS calls over {runs} runs");
    assert!(
        faults > 0,
        "the proxy faulted nothing: the test proves nothing"
    );
}

/// What a story saw over its seeds: faulted calls, and answers in which a
/// step failed (for good, past the SDK's retries).
#[derive(Debug, Default)]
struct Seen {
    faults: u64,
    failed_steps: u64,
    runs: usize,
}

impl Seen {
    /// Printed for the record; more than no fault, or the test proved
    /// nothing; without the SDK's retries, some step failed for good and
    /// redelivery still converged.
    fn check(&self, function: &str, sdk_retries: bool) {
        report_faults(function, self.faults, self.runs);
        println!(
            "{function} (SDK retries {sdk_retries}): {} answers with a failed step",
            self.failed_steps
        );
        if !sdk_retries {
            assert!(
                self.failed_steps > 0,
                "no step failed for good: the test proves nothing"
            );
        }
    }
}

async fn unhealthy_target_story(sdk_retries: bool) -> Seen {
    let mut seen = Seen::default();
    // A mark under the lease makes a dozen calls: without the SDK's
    // retries, two interleavings, as for the other stories.
    for &seed in seeds(sdk_retries) {
        seen.runs += 1;
        let (w, proxy) = faulted_world(
            ballast::reconcile::unhealthy_target::FUNCTION,
            seed,
            sdk_retries,
        )
        .await;
        let web = w.stack.instances(MANAGED_ASG).await;
        w.stack.stop(&web[..1]).await;
        let before_unmanaged = w.stack.all_asg_health().await;
        let event = w.stack.alarm_event("unhealthy-target-alarm.json");

        let what = format!("mark, seed {seed}");
        seen.failed_steps += until_converged(&w, &event, &what, sdk_retries).await;
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
        seen.faults += converged(&w, &proxy, event, seed).await;
    }
    seen
}

async fn replica_promotion_story(sdk_retries: bool) -> Seen {
    let mut seen = Seen::default();
    for &seed in seeds(sdk_retries) {
        seen.runs += 1;
        let (w, proxy) = faulted_world(
            ballast::reconcile::rds_failover::FUNCTION,
            seed,
            sdk_retries,
        )
        .await;
        let dbs = Databases::seed(&w.moto.sdk_config()).await;
        let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
        let dns_tag = dbs.tags(PRIMARY).await["ballast:dns-record"].clone();
        dbs.stop(PRIMARY).await;
        let event = sample_event("rds-instance-failure.json");

        let what = format!("promotion, seed {seed}");
        seen.failed_steps += until_converged(&w, &event, &what, sdk_retries).await;
        // Promotion is not idempotent in AWS; a retried or repeated call must
        // still leave one promoted replica with the record and tag on it.
        dbs.assert_promoted(&replica_endpoint, &dns_tag, &format!("seed {seed}"))
            .await;
        seen.faults += converged(&w, &proxy, event, seed).await;
    }
    seen
}

async fn evacuation_story(sdk_retries: bool) -> Seen {
    let mut seen = Seen::default();
    for &seed in seeds(sdk_retries) {
        seen.runs += 1;
        let (w, proxy) = faulted_world(
            ballast::reconcile::az_impairment::FUNCTION,
            seed,
            sdk_retries,
        )
        .await;
        let original = w.stack.subnets_of(MANAGED_ASG).await;
        let original_max = w.stack.group(MANAGED_ASG).await.max_size();
        let unmanaged = w.stack.subnets_of(UNMANAGED_ASG).await;

        let evacuate = sample_event("health-ec2-issue-open.json");
        seen.failed_steps += until_converged(
            &w,
            &evacuate,
            &format!("evacuation, seed {seed}"),
            sdk_retries,
        )
        .await;
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
        seen.failed_steps +=
            until_converged(&w, &restore, &format!("restore, seed {seed}"), sdk_retries).await;
        assert_eq!(
            w.stack.subnets_of(MANAGED_ASG).await,
            original,
            "seed {seed}"
        );
        assert_eq!(w.stack.group(MANAGED_ASG).await.max_size(), original_max);
        assert_eq!(w.stack.tag_of(MANAGED_ASG, "ballast:evacuated").await, None);
        assert_eq!(w.stack.subnets_of(UNMANAGED_ASG).await, unmanaged);

        seen.faults += converged(&w, &proxy, restore, seed).await;
    }
    seen
}

#[tokio::test]
async fn unhealthy_target_converges_under_faults() {
    unhealthy_target_story(true)
        .await
        .check("unhealthy-target", true);
}

#[tokio::test]
async fn unhealthy_target_converges_under_faults_without_sdk_retries() {
    unhealthy_target_story(false)
        .await
        .check("unhealthy-target", false);
}

#[tokio::test]
async fn replica_promotion_converges_under_faults() {
    replica_promotion_story(true)
        .await
        .check("rds-failover", true);
}

#[tokio::test]
async fn replica_promotion_converges_under_faults_without_sdk_retries() {
    replica_promotion_story(false)
        .await
        .check("rds-failover", false);
}

#[tokio::test]
async fn evacuation_and_restore_converge_under_faults() {
    evacuation_story(true).await.check("az-impairment", true);
}

#[tokio::test]
async fn evacuation_and_restore_converge_under_faults_without_sdk_retries() {
    evacuation_story(false).await.check("az-impairment", false);
}
