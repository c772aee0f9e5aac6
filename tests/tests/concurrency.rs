//! Two invocations racing on the same decision — EventBridge delivers at
//! least once and Lambda runs duplicates side by side — end with exactly one
//! promotion or evacuation, and never break a guardrail: the loser of the
//! lease (`ballast:lock`, see `reconcile::lease`) stands down and asks
//! Lambda to retry, and the retry finds the work done.

use ballast::aws::Aws;
use ballast::reconcile::{az_impairment, rds_failover};
use ballast::report::Outcome;
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::proxy::Proxy;
use ballast_tests::stack::MANAGED_ASG;
use ballast_tests::{sample_event, World};
use serde_json::json;

/// One answer of a racing pair: the winner's outcome, or the loser's
/// request to be retried.
fn settle(r: Result<ballast::Report, ballast::reconcile::HandlerError>) -> Result<Outcome, String> {
    match r {
        Ok(report) => Ok(report.outcome),
        Err(e) => {
            let text = e.to_string();
            assert!(text.contains("stands down and is retried"), "{text}");
            Err(text)
        }
    }
}

/// Exactly one of the pair acted; the other stood down (or found nothing
/// left to do).
fn one_acted(outcomes: &[Result<Outcome, String>; 2]) {
    let acted = outcomes
        .iter()
        .filter(|o| **o == Ok(Outcome::Remediated))
        .count();
    assert_eq!(acted, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Ok(Outcome::Remediated | Outcome::Noop) | Err(_))),
        "{outcomes:?}"
    );
}

/// A world whose handler's calls are counted by a (fault-free) proxy.
async fn counted_world(function: &'static str) -> (World, Proxy) {
    let mut w = World::start(function, false).await;
    let proxy = Proxy::start(&w.moto.endpoint(), 0.0, 1).await;
    w.ballast.aws = Aws::new(&proxy.sdk_config(&w.moto));
    (w, proxy)
}

#[tokio::test]
async fn racing_failure_events_promote_the_replica_once() {
    let (w, proxy) = counted_world(rds_failover::FUNCTION).await;
    let dbs = Databases::seed(&w.moto.sdk_config()).await;
    let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
    dbs.stop(PRIMARY).await;
    let event = sample_event("rds-instance-failure.json");

    let (a, b) = tokio::join!(w.invoke(event.clone()), w.invoke(event.clone()));
    one_acted(&[settle(a), settle(b)]);
    assert_eq!(
        proxy.calls_of("PromoteReadReplica"),
        1,
        "exactly one promotion: {:?}",
        proxy.calls()
    );
    assert_eq!(
        dbs.record(PRIMARY).await.as_deref(),
        Some(replica_endpoint.as_str())
    );
    assert_eq!(w.run(event).await.outcome, Outcome::Noop);
}

#[tokio::test]
async fn racing_signals_for_one_zone_evacuate_it_once() {
    let (w, proxy) = counted_world(az_impairment::FUNCTION).await;
    let before_max = w.stack.group(MANAGED_ASG).await.max_size();
    let event = sample_event("az-impairment-evacuate.json");

    let (a, b) = tokio::join!(w.invoke(event.clone()), w.invoke(event.clone()));
    one_acted(&[settle(a), settle(b)]);
    assert_eq!(
        proxy.calls_of("UpdateAutoScalingGroup"),
        1,
        "exactly one evacuation: {:?}",
        proxy.calls()
    );
    // Lambda's retry of the loser finds the AZ evacuated.
    assert_eq!(w.run(event).await.outcome, Outcome::Noop);
    assert_eq!(
        w.stack.subnets_of(MANAGED_ASG).await,
        [w.stack.subnet_in("us-east-1b")]
    );
    // Restoring puts back what was there before the race, once.
    let restored = w.run(sample_event("az-impairment-restore.json")).await;
    assert_eq!(restored.outcome, Outcome::Remediated, "{restored:#?}");
    assert_eq!(w.stack.group(MANAGED_ASG).await.max_size(), before_max);
    assert_eq!(w.stack.tag_of(MANAGED_ASG, "ballast:evacuated").await, None);
}

#[tokio::test]
async fn racing_signals_for_two_zones_never_exceed_the_evacuated_limit() {
    // Three AZs, so that each evacuation alone would leave the group two.
    let (w, _proxy) = counted_world(az_impairment::FUNCTION).await;
    let third = w.stack.add_subnet("us-east-1c", 3).await;
    let mut subnets = w.stack.subnets_of(MANAGED_ASG).await;
    subnets.push(third);
    w.stack
        .autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(MANAGED_ASG)
        .vpc_zone_identifier(subnets.join(","))
        .send()
        .await
        .expect("UpdateAutoScalingGroup");

    let a = json!({"action": "evacuate", "availabilityZone": "us-east-1a"});
    let b = json!({"action": "evacuate", "availabilityZone": "us-east-1b"});
    let (ra, rb) = tokio::join!(w.invoke(a.clone()), w.invoke(b.clone()));
    let outcomes = [settle(ra), settle(rb)];
    one_acted(&outcomes);
    let tag = w
        .stack
        .tag_of(MANAGED_ASG, "ballast:evacuated")
        .await
        .expect("one evacuation recorded");
    let record = ballast::decide::az_impairment::Evacuation::parse(&tag).expect("Ballast's record");
    assert_eq!(record.azs.len(), 1, "one AZ evacuated: {tag}");
    assert_eq!(
        w.stack.subnets_of(MANAGED_ASG).await.len(),
        2,
        "one AZ removed, two left"
    );
    // Lambda's retry of the loser: the other AZ would break the limit.
    let loser = if outcomes[0] == Ok(Outcome::Remediated) {
        b
    } else {
        a
    };
    let retried = w.run(loser).await;
    assert_eq!(retried.outcome, Outcome::Declined, "{retried:#?}");
    assert_eq!(w.stack.subnets_of(MANAGED_ASG).await.len(), 2);
    assert_eq!(
        w.stack.tag_of(MANAGED_ASG, "ballast:lock").await,
        None,
        "locks released"
    );
}
