//! RDS: DB clusters and instances, read-replica promotion, tags.

use std::collections::BTreeMap;

use aws_sdk_rds::types::{DbCluster, DbInstance, Tag};
use aws_sdk_rds::Client;

use super::AwsError;
use crate::resources::{Access, Cluster, ClusterMember, Instance};
use crate::tags;

fn tag_map(list: &[Tag]) -> BTreeMap<String, String> {
    list.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn instance_from(db: &DbInstance) -> Instance {
    Instance {
        id: db.db_instance_identifier().unwrap_or_default().to_string(),
        arn: db.db_instance_arn().unwrap_or_default().to_string(),
        status: db.db_instance_status().unwrap_or_default().to_string(),
        endpoint: db.endpoint().and_then(|e| e.address()).map(str::to_string),
        az: db.availability_zone().map(str::to_string),
        secondary_az: db.secondary_availability_zone().map(str::to_string),
        multi_az: db.multi_az().unwrap_or(false),
        source: db
            .read_replica_source_db_instance_identifier()
            .filter(|s| !s.is_empty())
            // Another Region's or account's source is named by its ARN.
            .map(|s| {
                crate::event::Arn::parse(s)
                    .and_then(|a| a.resource.strip_prefix("db:"))
                    .unwrap_or(s)
                    .to_string()
            }),
        cluster: db.db_cluster_identifier().map(str::to_string),
        tags: tag_map(db.tag_list()),
        access: Access {
            engine: db.engine().map(str::to_string),
            port: db
                .endpoint()
                .and_then(|e| e.port())
                .and_then(|p| u16::try_from(p).ok()),
            master_secret: db
                .master_user_secret()
                .and_then(|s| s.secret_arn())
                .map(str::to_string),
            parameter_group: db
                .db_parameter_groups()
                .first()
                .and_then(|g| g.db_parameter_group_name())
                .map(str::to_string),
        },
    }
}

fn cluster_from(c: &DbCluster) -> Cluster {
    Cluster {
        id: c.db_cluster_identifier().unwrap_or_default().to_string(),
        arn: c.db_cluster_arn().unwrap_or_default().to_string(),
        status: c.status().unwrap_or_default().to_string(),
        endpoint: c.endpoint().map(str::to_string),
        members: c
            .db_cluster_members()
            .iter()
            .map(|m| ClusterMember {
                id: m.db_instance_identifier().unwrap_or_default().to_string(),
                is_writer: m.is_cluster_writer().unwrap_or(false),
            })
            .collect(),
        tags: tag_map(c.tag_list()),
        access: Access {
            engine: c.engine().map(str::to_string),
            port: c.port().and_then(|p| u16::try_from(p).ok()),
            master_secret: c
                .master_user_secret()
                .and_then(|s| s.secret_arn())
                .map(str::to_string),
            parameter_group: c.db_cluster_parameter_group().map(str::to_string),
        },
    }
}

fn is_not_found(e: &AwsError) -> bool {
    e.has_code("DBInstanceNotFound")
        || e.has_code("DBInstanceNotFoundFault")
        || e.has_code("DBClusterNotFoundFault")
}

/// The DB instance, or `None` when it does not exist.
pub async fn describe_instance(client: &Client, id: &str) -> Result<Option<Instance>, AwsError> {
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().map(instance_from)),
        Err(e) => {
            let err = AwsError::from_sdk("DescribeDBInstances", id, e);
            if is_not_found(&err) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// The DB cluster, or `None` when it does not exist.
pub async fn describe_cluster(client: &Client, id: &str) -> Result<Option<Cluster>, AwsError> {
    match client
        .describe_db_clusters()
        .db_cluster_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_clusters().first().map(cluster_from)),
        Err(e) => {
            let err = AwsError::from_sdk("DescribeDBClusters", id, e);
            if is_not_found(&err) {
                Ok(None)
            } else {
                Err(err)
            }
        }
    }
}

/// A sweep's subject: a resource Ballast keeps (`ballast:dns-record`,
/// `ballast:standby-replica`), or one holding a report SNS refused
/// (`ballast:unreported`: a promoted-from primary keeps it after its other
/// tags moved, and the sweep publishes it).
fn carries_ballast_tag(tags: &BTreeMap<String, String>) -> bool {
    tags.contains_key(tags::DNS_RECORD)
        || tags.contains_key(tags::STANDBY_REPLICA)
        || tags.contains_key(tags::UNREPORTED)
}

/// Every DB cluster and DB instance of the account and Region, read once
/// (a sweep's observations come from it, not from a describe each).
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub clusters: Vec<Cluster>,
    pub instances: Vec<Instance>,
}

impl Listing {
    pub fn cluster(&self, id: &str) -> Option<Cluster> {
        self.clusters.iter().find(|c| c.id == id).cloned()
    }

    pub fn instance(&self, id: &str) -> Option<Instance> {
        self.instances.iter().find(|i| i.id == id).cloned()
    }

    /// Every cluster, and every instance that is neither a cluster member
    /// nor a read replica, that carries a Ballast tag: the sweep's subjects.
    pub fn tagged(&self) -> (Vec<Cluster>, Vec<Instance>) {
        let clusters = self
            .clusters
            .iter()
            .filter(|c| carries_ballast_tag(&c.tags))
            .cloned()
            .collect();
        let instances = self
            .instances
            .iter()
            .filter(|i| {
                // A replica Ballast promoted may still name its source.
                i.cluster.is_none()
                    && (i.source.is_none() || i.tags.contains_key(tags::PROMOTION))
                    && carries_ballast_tag(&i.tags)
            })
            .cloned()
            .collect();
        (clusters, instances)
    }
}

/// Reads every DB cluster and instance.
pub async fn list(client: &Client) -> Result<Listing, AwsError> {
    let mut listing = Listing::default();
    let mut pages = client.describe_db_clusters().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("DescribeDBClusters", "*", e))?;
        listing
            .clusters
            .extend(page.db_clusters().iter().map(cluster_from));
    }
    let mut pages = client.describe_db_instances().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("DescribeDBInstances", "*", e))?;
        listing
            .instances
            .extend(page.db_instances().iter().map(instance_from));
    }
    Ok(listing)
}

/// The tagged subjects ([`Listing::tagged`]) of a fresh listing.
pub async fn tagged(client: &Client) -> Result<(Vec<Cluster>, Vec<Instance>), AwsError> {
    Ok(list(client).await?.tagged())
}

pub async fn promote_read_replica(client: &Client, replica: &str) -> Result<(), AwsError> {
    client
        .promote_read_replica()
        .db_instance_identifier(replica)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("PromoteReadReplica", replica, e))?;
    Ok(())
}

pub async fn add_tag(client: &Client, arn: &str, key: &str, value: &str) -> Result<(), AwsError> {
    client
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(Tag::builder().key(key).value(value).build())
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("AddTagsToResource", arn, e))?;
    Ok(())
}

pub async fn remove_tag(client: &Client, arn: &str, key: &str) -> Result<(), AwsError> {
    client
        .remove_tags_from_resource()
        .resource_name(arn)
        .tag_keys(key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("RemoveTagsFromResource", arn, e))?;
    Ok(())
}

/// The value of tag `key` on the DB instance or cluster `arn`, if any.
pub async fn tag_value(client: &Client, arn: &str, key: &str) -> Result<Option<String>, AwsError> {
    let out = client
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ListTagsForResource", arn, e))?;
    Ok(out
        .tag_list()
        .iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string))
}
