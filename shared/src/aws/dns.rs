//! Route 53: read and upsert the CNAME that points clients at the writer.
//!
//! Route 53's control plane (ChangeResourceRecordSets, GetChange) is served
//! from us-east-1: during a regional event there this step may be delayed,
//! while the verification and the report still happen.

use std::time::{Duration, Instant};

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_sdk_route53::Client;

use super::AwsError;
use crate::resources::normalise;

/// The CNAME's current value, or `None` when the record does not exist.
pub async fn current_cname(
    client: &Client,
    zone_id: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let wanted = normalise(name);
    let out = client
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .start_record_name(&wanted)
        .start_record_type(RrType::Cname)
        .max_items(10)
        .send()
        .await
        .map_err(|e| {
            AwsError::from_sdk("ListResourceRecordSets", format!("{zone_id}/{wanted}"), e)
        })?;
    Ok(out
        .resource_record_sets()
        .iter()
        .find(|r| normalise(r.name()) == wanted && *r.r#type() == RrType::Cname)
        .and_then(|r| r.resource_records().first())
        .map(|v| v.value().to_string()))
}

/// What became of an upsert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upserted {
    pub change_id: String,
    /// `true` once Route 53 reports `INSYNC` within the wait.
    pub in_sync: bool,
    pub waited: Duration,
}

/// UPSERTs the CNAME, then waits until `until` at most for `INSYNC`.
pub async fn upsert_cname(
    client: &Client,
    zone_id: &str,
    name: &str,
    value: &str,
    ttl: i64,
    until: Instant,
) -> Result<Upserted, AwsError> {
    let resource = format!("{zone_id}/{}", normalise(name));
    let invalid = |e: aws_sdk_route53::error::BuildError| AwsError {
        operation: "ChangeResourceRecordSets",
        resource: resource.clone(),
        code: Some("InvalidInput".into()),
        message: e.to_string(),
        retryable: false,
    };
    let record = ResourceRecordSet::builder()
        .name(normalise(name))
        .r#type(RrType::Cname)
        .ttl(ttl)
        .resource_records(
            ResourceRecord::builder()
                .value(value)
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)?;
    let batch = ChangeBatch::builder()
        .comment("ballast rds-failover: point the record at the writer")
        .changes(
            Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(record)
                .build()
                .map_err(invalid)?,
        )
        .build()
        .map_err(invalid)?;
    let out = client
        .change_resource_record_sets()
        .hosted_zone_id(zone_id)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ChangeResourceRecordSets", resource.clone(), e))?;
    let info = out.change_info();
    let change_id = info.map(|i| i.id().to_string()).unwrap_or_default();
    let mut in_sync = info.is_some_and(|i| *i.status() == ChangeStatus::Insync);
    let started = Instant::now();
    while !in_sync && Instant::now() + Duration::from_secs(2) < until {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let change = client
            .get_change()
            .id(&change_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("GetChange", change_id.clone(), e))?;
        in_sync = change
            .change_info()
            .is_some_and(|i| *i.status() == ChangeStatus::Insync);
    }
    Ok(Upserted {
        change_id,
        in_sync,
        waited: started.elapsed(),
    })
}
