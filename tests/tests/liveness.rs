//! Liveness (I3, I5): in an incident Ballast acts within seconds, after a
//! crashed attempt too, and a stand-down leaves nothing that blocks.
//!
//! - A promotion whose first attempt is killed while `PromoteReadReplica`
//!   hangs (the call never reaches RDS) is finished by the next deliveries,
//!   with the release binary under the Runtime API host, within the lease's
//!   lifetime plus the promotion settle, with one effective promotion.
//! - An invocation that stands down (another holds the lease) writes no
//!   lease of its own, even on resources nobody else holds.
//! - A lease whose answer was lost (the write landed, every answer dropped)
//!   is given back before the invocation fails.

use std::time::{Duration, Instant};

use ballast::decide::rds_failover::PROMOTION_SETTLE_SECS;
use ballast::lease::{self, Leased, Scope};
use ballast::reconcile::{az_impairment, rds_failover};
use ballast::report::Outcome;
use ballast_tests::databases::{Databases, PRIMARY, REPLICA};
use ballast_tests::moto::Moto;
use ballast_tests::proxy::{Proxy, Targeted};
use ballast_tests::stack::{Stack, LEASE_TABLE, MANAGED_ASG};
use ballast_tests::{sample_event, Deployed, World};

/// How often the test delivers the event again after an answer that asks
/// for a retry (Lambda waits about a minute, then two; compressed here).
const REDELIVERY: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_promotion_whose_first_attempt_crashed_completes_within_the_lease_and_settle() {
    let moto = Moto::start();
    let stack = Stack::seed(&moto.sdk_config()).await;
    let dbs = Databases::seed(&moto.sdk_config()).await;
    let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
    let dns_tag = dbs.tags(PRIMARY).await["ballast:dns-record"].clone();
    dbs.stop(PRIMARY).await;
    let event = sample_event("rds-instance-failure.json");
    let proxy = Proxy::start(&moto.endpoint(), 0.0, 1).await;
    proxy.target("PromoteReadReplica", None, Targeted::Hang);
    // A fresh process of the release binary: each delivery gets one.
    let deploy = || {
        let timeout = Duration::from_secs(120);
        Deployed::start(
            rds_failover::FUNCTION,
            &moto,
            &proxy,
            &stack.topic_arn,
            timeout,
        )
    };

    // The first attempt records the request, takes the lease, and hangs in
    // PromoteReadReplica: it is killed there.
    let mut first = deploy().await;
    {
        let attempt = first.invoke(event.clone());
        tokio::pin!(attempt);
        let started = Instant::now();
        loop {
            tokio::select! {
                answer = &mut attempt => panic!("the first attempt answered: {answer:?}"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
            if proxy.targeted_calls("PromoteReadReplica") > 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no promotion requested"
            );
        }
    }
    first
        .process
        .child
        .kill()
        .await
        .expect("kill the first attempt");
    let crashed = Instant::now();
    proxy.clear_targets();
    let record = dbs.tags(REPLICA).await;
    assert!(
        record["ballast:promotion"].contains("state=requested"),
        "the request was recorded before the call: {record:?}"
    );
    assert_eq!(
        stack.leases().await.len(),
        1,
        "the dead attempt's lease is left"
    );

    // Every later delivery, as Lambda's retries.
    let mut answers = vec![];
    let report = loop {
        let next = deploy().await;
        let answer = next.invoke(event.clone()).await;
        let at = crashed.elapsed().as_secs_f64();
        match answer {
            Ok(report) => {
                answers.push(format!("{at:.1}s {}", report.outcome.as_str()));
                break report;
            }
            Err(error) => {
                let message = error["errorMessage"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                assert!(
                    message.contains("stands down") || message.contains("waiting on"),
                    "a retry is asked for by design: {message}"
                );
                answers.push(format!("{at:.1}s {message}"));
            }
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(90),
            "no promotion within 90 s of the crash: {answers:#?}"
        );
        tokio::time::sleep(REDELIVERY).await;
    };
    let took = crashed.elapsed();
    println!("deliveries after the crash: {answers:#?}");
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert!(
        took <= lease::LIFETIME
            + Duration::from_secs(PROMOTION_SETTLE_SECS as u64)
            + Duration::from_secs(10),
        "finished {took:?} after the crash"
    );
    // Exactly one PromoteReadReplica reached RDS (the hung one never did).
    assert_eq!(
        proxy.calls_of("PromoteReadReplica") - proxy.targeted_calls("PromoteReadReplica"),
        1,
        "{:?}",
        proxy.calls()
    );
    dbs.assert_promoted(&replica_endpoint, &dns_tag, "after the crash")
        .await;
    assert_eq!(
        stack.leases().await,
        vec![],
        "the finishing delivery gave its lease back"
    );
    // The waits were answered as retries, never as a success.
    assert!(
        answers.iter().any(|a| a.contains("waiting on")),
        "the settle was waited out with retries: {answers:#?}"
    );
}

#[tokio::test]
async fn a_stand_down_leaves_no_lease_of_its_own() {
    let w = World::start(az_impairment::FUNCTION, false).await;
    // A second managed group: the evacuation leases both.
    let zones = [
        w.stack.subnet_in("us-east-1a"),
        w.stack.subnet_in("us-east-1b"),
    ];
    let zones: Vec<&str> = zones.iter().map(String::as_str).collect();
    w.stack
        .create_asg_in("api", 2, &zones, &[("ballast:managed", "true")])
        .await;
    // Another invocation holds `web` only.
    let other = lease::acquire(
        &w.ballast.aws,
        LEASE_TABLE,
        "az-impairment",
        &Scope::Groups(vec![MANAGED_ASG.into()]),
        "other-request.00000001".into(),
    )
    .await
    .expect("the other invocation's lease");
    assert!(matches!(other, Leased::Won(_)));

    let answer = w.invoke(sample_event("az-impairment-evacuate.json")).await;
    let error = answer.expect_err("it stands down, to be retried");
    assert!(error.is_stand_down(), "{error}");
    let held = w.stack.leases().await;
    assert_eq!(
        held.iter().map(|h| h.resource.as_str()).collect::<Vec<_>>(),
        ["asg/web"],
        "nothing written on `api`: {held:?}"
    );
    assert_eq!(held[0].holder, "other-request.00000001");
    assert_eq!(
        w.stack.subnets_of(MANAGED_ASG).await.len(),
        2,
        "nothing moved"
    );

    // Once the holder gives it back, the retry evacuates and gives back its own.
    if let Leased::Won(other) = other {
        other.release(&w.ballast.aws).await;
    }
    let report = w.run(sample_event("az-impairment-evacuate.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(w.stack.leases().await, vec![]);
}

#[tokio::test]
async fn a_lease_whose_answer_was_lost_is_given_back() {
    let mut w = World::start(rds_failover::FUNCTION, false).await;
    let proxy = Proxy::start(&w.moto.endpoint(), 0.0, 1).await;
    w.ballast.aws = ballast::aws::Aws::new(&proxy.sdk_config(&w.moto));
    let dbs = Databases::seed(&w.moto.sdk_config()).await;
    dbs.stop(PRIMARY).await;
    // The take lands, and every answer to it (the SDK's retries too) is lost.
    proxy.target(
        "TransactWriteItems",
        Some("#e <= :now"),
        Targeted::DropAnswer,
    );

    let answer = w.invoke(sample_event("rds-instance-failure.json")).await;
    let error = answer.expect_err("Lambda retries it");
    assert!(
        !error.is_stand_down(),
        "a failure, not a stand-down: {error}"
    );
    assert!(proxy.targeted_calls("TransactWriteItems") > 0);
    assert_eq!(
        w.stack.leases().await,
        vec![],
        "the lease it may hold was given back"
    );
    assert_eq!(
        proxy.calls_of("PromoteReadReplica"),
        0,
        "nothing acted without the lease"
    );

    proxy.clear_targets();
    let report = w.run(sample_event("rds-instance-failure.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
}
