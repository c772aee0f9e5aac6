//! The database half of the seed stack in the emulator: a private hosted
//! zone, an Aurora cluster `orders-aurora` (2 instances), a Multi-AZ MySQL
//! instance `billing`, and a MySQL primary `orders-mysql` with its standby
//! read replica `orders-mysql-replica` — named as in the sample events of
//! `events/`, each tagged `ballast:dns-record` with its CNAME in the zone.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_rds::types::Tag;
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};

pub const ZONE: &str = "internal.example.com";
pub const CLUSTER: &str = "orders-aurora";
pub const MULTI_AZ: &str = "billing";
pub const PRIMARY: &str = "orders-mysql";
pub const REPLICA: &str = "orders-mysql-replica";

pub struct Databases {
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    pub zone_id: String,
}

/// The record name Ballast keeps for a DB resource.
pub fn record_for(db: &str) -> String {
    format!("{db}.{ZONE}.")
}

impl Databases {
    pub async fn seed(conf: &SdkConfig) -> Databases {
        let rds = aws_sdk_rds::Client::new(conf);
        let route53 = aws_sdk_route53::Client::new(conf);
        let zone_id = route53
            .create_hosted_zone()
            .name(ZONE)
            .caller_reference("ballast-tests")
            .send()
            .await
            .expect("CreateHostedZone")
            .hosted_zone
            .map(|z| z.id)
            .expect("zone id")
            .trim_start_matches("/hostedzone/")
            .to_string();
        let dbs = Databases {
            rds,
            route53,
            zone_id,
        };

        dbs.rds
            .create_db_cluster()
            .db_cluster_identifier(CLUSTER)
            .engine("aurora-mysql")
            .master_username("admin")
            .master_user_password("correct-horse-battery")
            .port(i32::from(crate::servers::MY_PORT))
            .tags(dbs.dns_tag(CLUSTER))
            .send()
            .await
            .expect("CreateDBCluster");
        for (n, az) in [(1, "us-east-1a"), (2, "us-east-1b")] {
            dbs.rds
                .create_db_instance()
                .db_instance_identifier(format!("{CLUSTER}-{n}"))
                .db_cluster_identifier(CLUSTER)
                .engine("aurora-mysql")
                .db_instance_class("db.r6g.large")
                .availability_zone(az)
                .send()
                .await
                .expect("CreateDBInstance (aurora)");
        }

        dbs.create_mysql(MULTI_AZ, true, vec![dbs.dns_tag(MULTI_AZ)])
            .await;
        dbs.create_mysql(
            PRIMARY,
            false,
            vec![
                dbs.dns_tag(PRIMARY),
                Tag::builder()
                    .key("ballast:standby-replica")
                    .value(REPLICA)
                    .build(),
            ],
        )
        .await;
        dbs.rds
            .create_db_instance_read_replica()
            .db_instance_identifier(REPLICA)
            .source_db_instance_identifier(PRIMARY)
            .availability_zone("us-east-1b")
            .send()
            .await
            .expect("CreateDBInstanceReadReplica");
        // moto copies the source's tags onto the replica; start from a replica
        // without Ballast's tags so that the test sees them move.
        let replica_arn = dbs
            .instance(REPLICA)
            .await
            .db_instance_arn()
            .expect("arn")
            .to_string();
        dbs.rds
            .remove_tags_from_resource()
            .resource_name(replica_arn)
            .tag_keys("ballast:dns-record")
            .tag_keys("ballast:standby-replica")
            .send()
            .await
            .expect("RemoveTagsFromResource");

        // Each record starts on its resource's writer endpoint.
        let cluster_endpoint = dbs.cluster_endpoint().await;
        dbs.set_record(CLUSTER, &cluster_endpoint).await;
        for db in [MULTI_AZ, PRIMARY] {
            let endpoint = dbs.instance_endpoint(db).await;
            dbs.set_record(db, &endpoint).await;
        }
        dbs
    }

    /// One more Multi-AZ MySQL instance tagged `ballast:dns-record`, its
    /// record on its endpoint (the benchmark's databases at scale).
    pub async fn add_database(&self, id: &str) {
        self.create_mysql(id, true, vec![self.dns_tag(id)]).await;
        let endpoint = self.instance_endpoint(id).await;
        self.set_record(id, &endpoint).await;
    }

    fn dns_tag(&self, db: &str) -> Tag {
        Tag::builder()
            .key("ballast:dns-record")
            .value(format!(
                "{}/{}",
                self.zone_id,
                record_for(db).trim_end_matches('.')
            ))
            .build()
    }

    async fn create_mysql(&self, id: &str, multi_az: bool, tags: Vec<Tag>) {
        self.rds
            .create_db_instance()
            .db_instance_identifier(id)
            .engine("mysql")
            .db_instance_class("db.t3.micro")
            .allocated_storage(20)
            .master_username("admin")
            .master_user_password("correct-horse-battery")
            // The port of the local MariaDB servers that play them in the
            // writer proof's tests.
            .port(i32::from(crate::servers::MY_PORT))
            .multi_az(multi_az)
            .availability_zone("us-east-1a")
            .set_tags(Some(tags))
            .send()
            .await
            .expect("CreateDBInstance");
    }

    pub async fn instance(&self, id: &str) -> aws_sdk_rds::types::DbInstance {
        self.rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .expect("DescribeDBInstances")
            .db_instances()[0]
            .clone()
    }

    pub async fn instance_endpoint(&self, id: &str) -> String {
        self.instance(id)
            .await
            .endpoint()
            .and_then(|e| e.address())
            .expect("instance endpoint")
            .to_string()
    }

    pub async fn cluster(&self) -> aws_sdk_rds::types::DbCluster {
        self.rds
            .describe_db_clusters()
            .db_cluster_identifier(CLUSTER)
            .send()
            .await
            .expect("DescribeDBClusters")
            .db_clusters()[0]
            .clone()
    }

    pub async fn cluster_endpoint(&self) -> String {
        self.cluster()
            .await
            .endpoint()
            .expect("cluster endpoint")
            .to_string()
    }

    pub async fn writer(&self) -> String {
        self.cluster()
            .await
            .db_cluster_members()
            .iter()
            .find(|m| m.is_cluster_writer() == Some(true))
            .and_then(|m| m.db_instance_identifier())
            .expect("a writer")
            .to_string()
    }

    pub async fn tags(&self, id: &str) -> BTreeMap<String, String> {
        let arn = self
            .instance(id)
            .await
            .db_instance_arn()
            .expect("arn")
            .to_string();
        self.rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .expect("ListTagsForResource")
            .tag_list()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect()
    }

    /// The CNAME's value, as Route 53 serves it.
    /// The state a promotion of the standby replica leaves: the primary's
    /// record on the replica's endpoint, `dns_tag` moved to the replica, and
    /// the primary without Ballast's tags.
    pub async fn assert_promoted(&self, replica_endpoint: &str, dns_tag: &str, context: &str) {
        assert_eq!(
            self.record(PRIMARY).await.as_deref(),
            Some(replica_endpoint),
            "{context}: record flipped"
        );
        assert_eq!(
            self.tags(REPLICA)
                .await
                .get("ballast:dns-record")
                .map(String::as_str),
            Some(dns_tag),
            "{context}: tag moved"
        );
        let primary = self.tags(PRIMARY).await;
        assert!(
            !primary.contains_key("ballast:dns-record")
                && !primary.contains_key("ballast:standby-replica"),
            "{context}: the primary keeps {primary:?}"
        );
    }

    pub async fn record(&self, db: &str) -> Option<String> {
        let name = record_for(db);
        self.route53
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .send()
            .await
            .expect("ListResourceRecordSets")
            .resource_record_sets()
            .iter()
            .find(|r| r.name() == name && *r.r#type() == RrType::Cname)
            .and_then(|r| r.resource_records().first())
            .map(|v| v.value().to_string())
    }

    pub async fn set_record(&self, db: &str, value: &str) {
        let record = ResourceRecordSet::builder()
            .name(record_for(db))
            .r#type(RrType::Cname)
            .ttl(300)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap();
        self.route53
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone_id)
            .change_batch(
                ChangeBatch::builder()
                    .changes(
                        Change::builder()
                            .action(ChangeAction::Upsert)
                            .resource_record_set(record)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("ChangeResourceRecordSets");
    }

    /// Aurora failover to the other instance, as `aws rds failover-db-cluster`.
    pub async fn fail_over_cluster(&self) {
        self.rds
            .failover_db_cluster()
            .db_cluster_identifier(CLUSTER)
            .send()
            .await
            .expect("FailoverDBCluster");
    }

    pub async fn stop(&self, id: &str) {
        self.rds
            .stop_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .expect("StopDBInstance");
    }
}
