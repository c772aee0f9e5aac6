//! Elastic Load Balancing v2: target groups and target health.

use aws_sdk_elasticloadbalancingv2::Client;

use super::AwsError;
use crate::resources::{TargetGroup, TargetHealth};

/// The target group, or `None` when it does not exist.
pub async fn describe_target_group(
    client: &Client,
    arn: &str,
) -> Result<Option<TargetGroup>, AwsError> {
    let out = match client
        .describe_target_groups()
        .target_group_arns(arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            let err = AwsError::from_sdk("DescribeTargetGroups", arn, e);
            return if err.has_code("TargetGroupNotFound") {
                Ok(None)
            } else {
                Err(err)
            };
        }
    };
    Ok(out.target_groups().first().map(target_group_of))
}

fn target_group_of(tg: &aws_sdk_elasticloadbalancingv2::types::TargetGroup) -> TargetGroup {
    TargetGroup {
        arn: tg.target_group_arn().unwrap_or_default().to_string(),
        name: tg.target_group_name().unwrap_or_default().to_string(),
        target_type: tg
            .target_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_else(|| "instance".into()),
        load_balancer_arns: tg.load_balancer_arns().to_vec(),
    }
}

/// Every target group of the Region, in pages of 400 (the API's largest):
/// a sweep reads them once, whatever their number, instead of once each.
/// (Naming the ARNs instead would fail the whole call on one deleted
/// target group.)
pub async fn list_target_groups(client: &Client) -> Result<Vec<TargetGroup>, AwsError> {
    let mut pages = client
        .describe_target_groups()
        .page_size(400)
        .into_paginator()
        .send();
    let mut all = vec![];
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("DescribeTargetGroups", "*", e))?;
        all.extend(page.target_groups().iter().map(target_group_of));
    }
    Ok(all)
}

/// Health of every registered target.
pub async fn target_health(client: &Client, arn: &str) -> Result<Vec<TargetHealth>, AwsError> {
    let out = client
        .describe_target_health()
        .target_group_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeTargetHealth", arn, e))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .filter_map(|d| {
            let target = d.target()?;
            let health = d.target_health();
            Some(TargetHealth {
                id: target.id()?.to_string(),
                state: health
                    .and_then(|h| h.state())
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "unknown".into()),
                reason: health
                    .and_then(|h| h.reason())
                    .map(|r| r.as_str().to_string()),
                az: target
                    .availability_zone()
                    .filter(|az| *az != "all")
                    .map(str::to_string),
            })
        })
        .collect())
}

/// The value of tag `key` on each of `arns` that carries it (one
/// `DescribeTags` call: at most 20 ARNs, more than a report names).
pub async fn tag_values(
    client: &Client,
    arns: &[String],
    key: &str,
) -> Result<Vec<(String, String)>, AwsError> {
    let out = client
        .describe_tags()
        .set_resource_arns(Some(arns.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeTags", arns.join(","), e))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .filter_map(|d| {
            let value = d.tags().iter().find(|t| t.key() == Some(key))?.value()?;
            Some((d.resource_arn()?.to_string(), value.to_string()))
        })
        .collect())
}

pub async fn add_tag(client: &Client, arn: &str, key: &str, value: &str) -> Result<(), AwsError> {
    client
        .add_tags()
        .resource_arns(arn)
        .tags(
            aws_sdk_elasticloadbalancingv2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("AddTags", arn, e))?;
    Ok(())
}

pub async fn remove_tag(client: &Client, arn: &str, key: &str) -> Result<(), AwsError> {
    client
        .remove_tags()
        .resource_arns(arn)
        .tag_keys(key)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("RemoveTags", arn, e))?;
    Ok(())
}
