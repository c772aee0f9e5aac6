//! `rds-failover` against moto in server mode, through the real SDK: Aurora
//! failover, Multi-AZ failover, and a primary with a standby read replica,
//! with their CNAMEs in a hosted zone; reports read back from SQS.

use ballast::reconcile::rds_failover::FUNCTION;
use ballast::report::{ActionStatus, Outcome, Severity};
use ballast_tests::databases::{record_for, Databases, CLUSTER, MULTI_AZ, PRIMARY, REPLICA};
use ballast_tests::{sample_event, World};
use serde_json::json;

/// The seed stack plus the databases.
async fn world(dry_run: bool) -> (World, Databases) {
    let w = World::start(FUNCTION, dry_run).await;
    let dbs = Databases::seed(&w.moto.sdk_config()).await;
    (w, dbs)
}

#[tokio::test]
async fn aurora_failover_is_verified_and_a_wrong_dns_value_corrected() {
    let (w, dbs) = world(false).await;
    let before = dbs.writer().await;
    dbs.fail_over_cluster().await;
    let after = dbs.writer().await;
    assert_ne!(before, after, "the emulator moved the writer");
    // Someone had pointed the record at an instance endpoint: wrong after failover.
    let stale = dbs.instance_endpoint(&before).await;
    dbs.set_record(CLUSTER, &stale).await;

    let report = w
        .run(sample_event("rds-cluster-failover-completed.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert!(
        report
            .summary
            .contains(&format!("Verified writer of cluster {CLUSTER}: {after} in")),
        "{}",
        report.summary
    );
    let cluster_endpoint = dbs.cluster_endpoint().await;
    assert_eq!(
        dbs.record(CLUSTER).await.as_deref(),
        Some(cluster_endpoint.as_str())
    );
    let action = &report.actions[0];
    assert_eq!(
        (action.kind.as_str(), action.status),
        ("upsert-cname", ActionStatus::Done)
    );
    assert_eq!(action.target, record_for(CLUSTER));
    assert!(
        action
            .detail
            .starts_with(&format!("{stale} -> {cluster_endpoint} (TTL 30s")),
        "{}",
        action.detail
    );
    assert!(action.detail.contains("INSYNC"), "{}", action.detail);

    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].report, report);
    assert_eq!(deliveries[0].attributes["function"], "rds-failover");

    let again = w
        .run(sample_event("rds-cluster-failover-completed.json"))
        .await;
    assert_eq!(again.outcome, Outcome::Noop, "{again:#?}");
    assert!(w.stack.reports().await.is_empty());
}

#[tokio::test]
async fn multi_az_failover_is_verified() {
    let (w, _dbs) = world(false).await;
    let report = w
        .run(sample_event("rds-instance-multi-az-failover.json"))
        .await;
    assert_eq!(report.outcome, Outcome::Noop, "{report:#?}");
    assert!(
        report.summary.starts_with(&format!(
            "Verified {MULTI_AZ} (available): Multi-AZ, primary in us-east-1a"
        )),
        "{}",
        report.summary
    );
    assert!(
        report.summary.contains("already points at"),
        "{}",
        report.summary
    );
}

#[tokio::test]
async fn replica_is_promoted_when_primary_fails() {
    let (w, dbs) = world(false).await;
    let replica_endpoint = dbs.instance_endpoint(REPLICA).await;
    let dns_tag = dbs.tags(PRIMARY).await["ballast:dns-record"].clone();
    dbs.stop(PRIMARY).await;
    // The standby's ReplicaLag, as RDS publishes it for a read replica.
    aws_sdk_cloudwatch::Client::new(&w.moto.sdk_config())
        .put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name("ReplicaLag")
                .dimensions(
                    aws_sdk_cloudwatch::types::Dimension::builder()
                        .name("DBInstanceIdentifier")
                        .value(REPLICA)
                        .build(),
                )
                .value(7.0)
                .unit(aws_sdk_cloudwatch::types::StandardUnit::Seconds)
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData");

    // RDS-EVENT-0087 "DB instance stopped" is what RDS sends for this fault.
    let report = w.run(sample_event("rds-instance-stopped.json")).await;
    assert_eq!(report.outcome, Outcome::Remediated, "{report:#?}");
    assert_eq!(report.severity, Severity::Critical);
    // Without the writer probe, CloudWatch's ReplicaLag is the evidence.
    assert_eq!(
        report.evidence["standbyReplicaLag"]["seconds"], 7.0,
        "{:#?}",
        report.evidence
    );
    let kinds: Vec<(&str, ActionStatus)> = report
        .actions
        .iter()
        .map(|a| (a.kind.as_str(), a.status))
        .collect();
    assert_eq!(
        kinds,
        [
            // The promotion recorded on the replica before it is made (I3).
            ("tag", ActionStatus::Done),
            ("promote-replica", ActionStatus::Done),
            ("tag", ActionStatus::Done),
            ("tag", ActionStatus::Done),
            ("upsert-cname", ActionStatus::Done),
            ("untag", ActionStatus::Done),
            ("untag", ActionStatus::Done)
        ]
    );

    // moto keeps ReadReplicaSourceDBInstanceIdentifier after a promotion (AWS
    // clears it); what it does change is that the instance may now be stopped,
    // which it refuses for a read replica.
    assert!(
        dbs.rds
            .stop_db_instance()
            .db_instance_identifier(REPLICA)
            .send()
            .await
            .is_ok(),
        "promoted"
    );
    dbs.rds
        .start_db_instance()
        .db_instance_identifier(REPLICA)
        .send()
        .await
        .expect("StartDBInstance");
    dbs.assert_promoted(&replica_endpoint, &dns_tag, "promotion")
        .await;
    let deliveries = w.stack.reports().await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].attributes["severity"], "critical");

    // The same event again, a late failure event, and a sweep: nothing left to do.
    for late in ["rds-instance-stopped.json", "rds-instance-failure.json"] {
        let again = w.run(sample_event(late)).await;
        assert_eq!(again.outcome, Outcome::Noop, "{late}: {again:#?}");
    }
    let sweep = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Noop, "{sweep:#?}");
    assert!(w.stack.reports().await.is_empty());
}

#[tokio::test]
async fn failure_event_while_primary_is_available_is_declined() {
    let (w, dbs) = world(false).await;
    let report = w.run(sample_event("rds-instance-failure.json")).await;
    assert_eq!(report.outcome, Outcome::Declined, "{report:#?}");
    assert!(report.reason.as_deref().unwrap().contains("split brain"));
    assert_eq!(
        dbs.instance(REPLICA)
            .await
            .read_replica_source_db_instance_identifier(),
        Some(PRIMARY),
        "the replica is still a replica"
    );
    assert_eq!(w.stack.reports().await[0].attributes["outcome"], "declined");
}

#[tokio::test]
async fn dry_run_changes_nothing_and_reports_the_promotion_it_would_make() {
    let (w, dbs) = world(true).await;
    let record_before = dbs.record(PRIMARY).await;
    dbs.stop(PRIMARY).await;
    let report = w.run(sample_event("rds-instance-failure.json")).await;
    assert_eq!(report.outcome, Outcome::DryRun, "{report:#?}");
    assert!(
        report.summary.contains(&format!(
            "would tag {REPLICA} ballast:promotion=from={PRIMARY} state=requested"
        )) && report
            .summary
            .contains(&format!("; promote read replica {REPLICA} of {PRIMARY};")),
        "{}",
        report.summary
    );
    assert!(report
        .actions
        .iter()
        .all(|a| a.status == ActionStatus::Skipped));
    assert_eq!(
        dbs.instance(REPLICA)
            .await
            .read_replica_source_db_instance_identifier(),
        Some(PRIMARY)
    );
    assert_eq!(dbs.record(PRIMARY).await, record_before);
    assert!(dbs
        .tags(PRIMARY)
        .await
        .contains_key("ballast:standby-replica"));
    assert_eq!(w.stack.reports().await.len(), 1);
}

/// The documented RDS instance event (`rds-instance-backup.json`, on
/// orders-mysql) with another ID, category and message.
fn rds_event(id: &str, category: &str, message: &str) -> serde_json::Value {
    let mut e = sample_event("rds-instance-backup.json");
    e["detail"]["EventID"] = json!(id);
    e["detail"]["EventCategories"] = json!([category]);
    e["detail"]["Message"] = json!(message);
    e
}

#[tokio::test]
async fn unknown_and_bad_events_are_ignored() {
    let (w, _dbs) = world(false).await;
    let cases = [
        (
            sample_event("rds-instance-backup.json"),
            "RDS-EVENT-0001 [backup] on orders-mysql: not an event rds-failover acts on",
        ),
        // Failure-category events that leave a serving primary serving (here
        // Enhanced Monitoring could not be set up) are no reason to consider
        // a promotion, nor to warn that one was refused.
        (
            rds_event("RDS-EVENT-0079", "failure", "Amazon RDS has been unable to create credentials for enhanced monitoring and this feature has been disabled."),
            "RDS-EVENT-0079 [failure] on orders-mysql: this failure-category event leaves the database serving",
        ),
        // A requested failover RDS abandoned is not a failed failover.
        (
            rds_event("RDS-EVENT-0034", "failover", "Abandoning user requested failover since a failover recently occurred on the database instance."),
            "RDS abandoned a requested failover",
        ),
        (json!({"dbIdentifier": "no-such-db"}), "does not exist"),
        (json!({}), "needs {\"dbIdentifier\""),
        (json!("orders-mysql"), "payload is a JSON string"),
        (
            sample_event("unhealthy-target-alarm.json"),
            "does not handle CloudWatch Alarm State Change",
        ),
    ];
    for (payload, reason) in cases {
        w.assert_ignored(payload, reason).await;
    }
    assert!(w.stack.reports().await.is_empty());
}

#[tokio::test]
async fn direct_invoke_and_sweep_keep_dns_on_the_writer() {
    let (w, dbs) = world(false).await;
    dbs.set_record(MULTI_AZ, "somewhere-else.example.com").await;
    let direct = w.run(json!({"dbIdentifier": MULTI_AZ})).await;
    assert_eq!(direct.outcome, Outcome::Remediated, "{direct:#?}");
    let endpoint = dbs.instance_endpoint(MULTI_AZ).await;
    assert_eq!(
        dbs.record(MULTI_AZ).await.as_deref(),
        Some(endpoint.as_str())
    );

    dbs.set_record(CLUSTER, "stale.example.com").await;
    let sweep = w.run(sample_event("scheduled-sweep.json")).await;
    assert_eq!(sweep.outcome, Outcome::Remediated, "{sweep:#?}");
    assert!(
        sweep
            .summary
            .starts_with("Sweep of 3 tagged DB resource(s)"),
        "{}",
        sweep.summary
    );
    assert_eq!(
        dbs.record(CLUSTER).await,
        Some(dbs.cluster_endpoint().await)
    );
}
