//! Auto Scaling: groups, their instances, and instance health.

use aws_sdk_autoscaling::types::{AutoScalingGroup, Filter, Tag};
use aws_sdk_autoscaling::Client;

use super::AwsError;
use crate::resources::{Group, GroupInstance};
use crate::tags;

/// What Ballast reads of a group, straight from the SDK's answer.
fn group_of(g: &AutoScalingGroup) -> Group {
    Group {
        name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
        arn: g.auto_scaling_group_arn().map(str::to_string),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        target_group_arns: g.target_group_arns().to_vec(),
        vpc_zone_identifier: g.vpc_zone_identifier().unwrap_or_default().to_string(),
        min_size: g.min_size().unwrap_or_default(),
        max_size: g.max_size().unwrap_or_default(),
        desired_capacity: g.desired_capacity().unwrap_or_default(),
        instances: g
            .instances()
            .iter()
            .map(|i| GroupInstance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                asg: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                az: i.availability_zone().unwrap_or_default().to_string(),
                health_status: i.health_status().unwrap_or_default().to_string(),
                lifecycle_state: i
                    .lifecycle_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        health_check_type: g.health_check_type().unwrap_or_default().to_string(),
        suspended_processes: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(str::to_string))
            .collect(),
        health_check_grace_period: g.health_check_grace_period().unwrap_or_default(),
    }
}

/// Health-check replacements the group made since `since` (epoch seconds),
/// read from its scaling activities (newest first; reading stops at the
/// first older one): (instance ID from the description, cause).
pub async fn health_replacements(
    client: &Client,
    asg: &str,
    since: i64,
) -> Result<Vec<(String, crate::resources::Replacement)>, AwsError> {
    let mut found = vec![];
    let mut pages = client
        .describe_scaling_activities()
        .auto_scaling_group_name(asg)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("DescribeScalingActivities", asg, e))?;
        for a in page.activities() {
            if a.start_time().is_some_and(|t| t.secs() < since) {
                return Ok(found);
            }
            let Some(why) = crate::resources::replacement_cause(a.cause().unwrap_or_default())
            else {
                continue;
            };
            let instance = a
                .description()
                .and_then(|d| d.rsplit(' ').next())
                .unwrap_or_default()
                .to_string();
            found.push((instance, why));
        }
    }
    Ok(found)
}

/// DescribeAutoScalingInstances accepts at most 50 instance IDs per call.
const INSTANCE_IDS_PER_CALL: usize = 50;

/// The Auto Scaling view of `instance_ids`; instances in no group are absent.
pub async fn describe_instances(
    client: &Client,
    instance_ids: &[String],
) -> Result<Vec<GroupInstance>, AwsError> {
    let mut found = vec![];
    for chunk in instance_ids.chunks(INSTANCE_IDS_PER_CALL) {
        let mut pages = client
            .describe_auto_scaling_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                AwsError::from_sdk("DescribeAutoScalingInstances", chunk.join(","), e)
            })?;
            found.extend(page.auto_scaling_instances().iter().map(|i| GroupInstance {
                instance_id: i.instance_id().unwrap_or_default().to_string(),
                asg: i.auto_scaling_group_name().unwrap_or_default().to_string(),
                az: i.availability_zone().unwrap_or_default().to_string(),
                health_status: i.health_status().unwrap_or_default().to_string(),
                lifecycle_state: i.lifecycle_state().unwrap_or_default().to_string(),
            }));
        }
    }
    Ok(found)
}

/// The named groups (missing names are simply absent).
pub async fn describe_groups(client: &Client, names: &[String]) -> Result<Vec<Group>, AwsError> {
    if names.is_empty() {
        return Ok(vec![]);
    }
    let mut groups = vec![];
    for chunk in names.chunks(100) {
        let mut pages = client
            .describe_auto_scaling_groups()
            .set_auto_scaling_group_names(Some(chunk.to_vec()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page
                .map_err(|e| AwsError::from_sdk("DescribeAutoScalingGroups", chunk.join(","), e))?;
            groups.extend(page.auto_scaling_groups().iter().map(group_of));
        }
    }
    Ok(groups)
}

/// Every group tagged `ballast:managed=true`.
pub async fn managed_groups(client: &Client) -> Result<Vec<Group>, AwsError> {
    let mut pages = client
        .describe_auto_scaling_groups()
        .filters(
            Filter::builder()
                .name("tag-key")
                .values(tags::MANAGED)
                .build(),
        )
        .into_paginator()
        .send();
    let mut groups = vec![];
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk("DescribeAutoScalingGroups", tags::MANAGED, e))?;
        groups.extend(
            page.auto_scaling_groups()
                .iter()
                .map(group_of)
                .filter(Group::is_managed),
        );
    }
    Ok(groups)
}

/// Hand the instance to its group for replacement. The grace period is
/// respected so that an instance still booting is not killed for being slow.
pub async fn mark_unhealthy(client: &Client, instance_id: &str) -> Result<(), AwsError> {
    client
        .set_instance_health()
        .instance_id(instance_id)
        .health_status("Unhealthy")
        .should_respect_grace_period(true)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("SetInstanceHealth", instance_id, e))?;
    Ok(())
}

/// Sets the group's subnets (and max size, when given). Desired capacity is
/// left alone: AZ rebalancing replaces the instances of removed subnets,
/// launching before terminating.
pub async fn update_group(
    client: &Client,
    name: &str,
    subnets: &[String],
    max_size: Option<i32>,
) -> Result<(), AwsError> {
    client
        .update_auto_scaling_group()
        .auto_scaling_group_name(name)
        .vpc_zone_identifier(subnets.join(","))
        .set_max_size(max_size)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("UpdateAutoScalingGroup", name, e))?;
    Ok(())
}

pub async fn tag_group(
    client: &Client,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    tag_groups(client, &[name.to_string()], key, value).await
}

/// The same tag on several groups, in one `CreateOrUpdateTags` call.
pub async fn tag_groups(
    client: &Client,
    names: &[String],
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    let tags = names
        .iter()
        .map(|name| {
            Tag::builder()
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .key(key)
                .value(value)
                .propagate_at_launch(false)
                .build()
        })
        .collect();
    client
        .create_or_update_tags()
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("CreateOrUpdateTags", names.join(","), e))?;
    Ok(())
}

/// Suspends the named processes (never an empty list: to Auto Scaling that
/// means every process).
pub async fn suspend_processes(
    client: &Client,
    name: &str,
    processes: &[String],
) -> Result<(), AwsError> {
    named("SuspendProcesses", name, processes)?;
    client
        .suspend_processes()
        .auto_scaling_group_name(name)
        .set_scaling_processes(Some(processes.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("SuspendProcesses", name, e))?;
    Ok(())
}

/// Resumes the named processes (never an empty list: to Auto Scaling that
/// means every process, an operator's suspensions included).
pub async fn resume_processes(
    client: &Client,
    name: &str,
    processes: &[String],
) -> Result<(), AwsError> {
    named("ResumeProcesses", name, processes)?;
    client
        .resume_processes()
        .auto_scaling_group_name(name)
        .set_scaling_processes(Some(processes.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("ResumeProcesses", name, e))?;
    Ok(())
}

/// Refuses an empty list (the decisions never make one).
fn named(operation: &'static str, name: &str, processes: &[String]) -> Result<(), AwsError> {
    if processes.is_empty() {
        return Err(AwsError {
            operation,
            resource: name.to_string(),
            code: Some("NoProcessNamed".into()),
            message: "refused: an empty list would mean every process".into(),
            retryable: false,
        });
    }
    Ok(())
}

pub async fn untag_group(client: &Client, name: &str, key: &str) -> Result<(), AwsError> {
    client
        .delete_tags()
        .tags(
            Tag::builder()
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .key(key)
                .build(),
        )
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DeleteTags", name, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Replacement;
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    fn activity(instance: &str, cause: &str, start: &str) -> String {
        format!(
            "<member><ActivityId>a-{instance}</ActivityId><AutoScalingGroupName>web</AutoScalingGroupName>\
             <Description>Terminating EC2 instance: {instance}</Description><Cause>{cause}</Cause>\
             <StartTime>{start}</StartTime><StatusCode>Successful</StatusCode><Progress>100</Progress></member>"
        )
    }

    /// moto answers `DescribeScalingActivities` with no activity: the
    /// adapter reads a response shaped by the API model (awsQuery XML)
    /// through the real client instead.
    #[tokio::test]
    async fn health_check_replacements_are_read_until_the_window_starts() {
        let body = format!(
            "<DescribeScalingActivitiesResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
             <DescribeScalingActivitiesResult><Activities>{}{}{}{}</Activities></DescribeScalingActivitiesResult>\
             <ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>",
            activity("i-0c", "At 2026-12-01T16:40:00Z an instance was taken out of service in response to an ELB system health check failure.", "2026-12-01T16:40:00.000Z"),
            activity("i-0b", "At 2026-12-01T16:30:00Z instance i-0b was taken out of service in response to a user request, shrinking the capacity from 4 to 3.", "2026-12-01T16:30:00.000Z"),
            activity("i-0a", "At 2026-12-01T16:20:00Z an instance was taken out of service in response to a user health-check.", "2026-12-01T16:20:00.000Z"),
            activity("i-09", "At 2026-12-01T15:00:00Z an instance was taken out of service in response to an ELB system health check failure.", "2026-12-01T15:00:00.000Z"),
        );
        let http = StaticReplayClient::new(vec![ReplayEvent::new(
            http::Request::builder()
                .uri("https://autoscaling.us-east-1.amazonaws.com/")
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(200)
                .header("content-type", "text/xml")
                .body(SdkBody::from(body))
                .unwrap(),
        )]);
        let conf = aws_sdk_autoscaling::Config::builder()
            .behavior_version(aws_sdk_autoscaling::config::BehaviorVersion::latest())
            .region(aws_sdk_autoscaling::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_autoscaling::config::Credentials::for_tests())
            .http_client(http)
            .build();
        let client = Client::from_conf(conf);
        // 2026-12-01T16:00:00Z: the 15:00 replacement is outside the window.
        let found = health_replacements(&client, "web", 1_796_140_800)
            .await
            .unwrap();
        assert_eq!(
            found,
            [
                ("i-0c".to_string(), Replacement::LoadBalancerHealthCheck),
                ("i-0a".to_string(), Replacement::UserHealthCheck),
            ]
        );
    }
}
