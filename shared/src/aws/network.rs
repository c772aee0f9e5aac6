//! EC2: which AZ a subnet is in, and AZ names ↔ AZ IDs.

use std::collections::BTreeMap;

use aws_sdk_ec2::Client;

use super::AwsError;

/// Subnet ID → AZ name, for the given subnets (missing ones are absent).
pub async fn subnet_zones(
    client: &Client,
    subnet_ids: &[String],
) -> Result<BTreeMap<String, String>, AwsError> {
    if subnet_ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut zones = BTreeMap::new();
    let mut pages = client
        .describe_subnets()
        .set_subnet_ids(Some(subnet_ids.to_vec()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk("DescribeSubnets", subnet_ids.join(","), e))?;
        for s in page.subnets() {
            if let (Some(id), Some(az)) = (s.subnet_id(), s.availability_zone()) {
                zones.insert(id.to_string(), az.to_string());
            }
        }
    }
    Ok(zones)
}

/// AZ ID → AZ name for this account and region.
pub async fn zone_names_by_id(client: &Client) -> Result<BTreeMap<String, String>, AwsError> {
    let out = client
        .describe_availability_zones()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeAvailabilityZones", "*", e))?;
    Ok(out
        .availability_zones()
        .iter()
        .filter_map(|z| Some((z.zone_id()?.to_string(), z.zone_name()?.to_string())))
        .collect())
}
