//! `unhealthy-target`: an `UnHealthyHostCount` alarm (to `ALARM` or back to
//! `OK`), a sweep or an operator names target groups; impaired instances of
//! managed ASGs are handed to their ASG for replacement within its budget,
//! and the breaker on the ASG's own replacement trips or closes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::Value;

use super::{not_observed, Cx, Reconciled, Reconciler, Work};
use crate::aws::{balancer, fleet, AwsError};
use crate::context::Ballast;
use crate::decide::unhealthy_target::OwnReplacements;
use crate::decide::unhealthy_target::{
    decide, AsgMembership, BudgetedGroup, Policy, TargetGroupState, TargetState,
};
use crate::decide::Plan;
use crate::event::alarm::AlarmChange;
use crate::event::{
    direct_usage, is_scheduled, json_kind, not_handled, partition_of, Arn, Inbound,
};
use crate::lease;
use crate::report::now_epoch;
use crate::resources::{Group, GroupInstance, TargetGroup, TargetHealth};

pub const FUNCTION: &str = crate::report::Function::UnhealthyTarget.as_str();

/// ALB metrics whose alarm means "look at this target group's targets".
const TARGET_HEALTH_METRICS: &[&str] = &["UnHealthyHostCount", "HealthyHostCount"];

/// Where the event says to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    TargetGroup(String),
    /// Every target group attached to a managed ASG.
    Sweep,
}

/// Reads the event; `Err` is the reason it is ignored.
fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
    match inbound {
        Inbound::Other(reason) => Err(reason.clone()),
        Inbound::AlarmAction(alarm) => alarm_intent(alarm),
        Inbound::EventBridge(env) if is_scheduled(env) => Ok(Intent::Sweep),
        Inbound::EventBridge(env) => match AlarmChange::of_event(env) {
            Some(alarm) => alarm_intent(&alarm?),
            None => Err(not_handled(FUNCTION, env)),
        },
        Inbound::Direct(object) => match object.get("targetGroupArn") {
            Some(Value::String(arn)) if is_target_group_arn(arn) => {
                Ok(Intent::TargetGroup(arn.clone()))
            }
            Some(Value::String(arn)) => {
                Err(format!("targetGroupArn {arn:?} is not a target group ARN"))
            }
            Some(other) => Err(format!(
                "targetGroupArn must be a string, not a {}",
                json_kind(other)
            )),
            None => Err(direct_usage(
                FUNCTION,
                "{\"targetGroupArn\": \"arn:...:targetgroup/...\"}",
                object,
            )),
        },
    }
}

fn is_target_group_arn(arn: &str) -> bool {
    Arn::parse(arn).is_some_and(|a| {
        a.service == "elasticloadbalancing"
            && a.resource.starts_with("targetgroup/")
            && !a.region.is_empty()
            && !a.account.is_empty()
    })
}

fn alarm_intent(alarm: &AlarmChange) -> Result<Intent, String> {
    // ALARM: look for instances to replace; OK: look whether a breaker
    // closes. INSUFFICIENT_DATA says neither.
    if !alarm.is_alarm() && alarm.state != "OK" {
        return Err(format!(
            "alarm {} is in state {}, neither ALARM nor OK: nothing to look at",
            alarm.alarm_name,
            if alarm.state.is_empty() {
                "(none)"
            } else {
                &alarm.state
            }
        ));
    }
    let metric = alarm
        .metric("AWS/ApplicationELB", TARGET_HEALTH_METRICS)
        .filter(|m| m.dimensions.contains_key("TargetGroup"))
        .ok_or_else(|| {
            format!(
                "alarm {} does not watch AWS/ApplicationELB UnHealthyHostCount with a TargetGroup dimension",
                alarm.alarm_name
            )
        })?;
    let (Some(region), Some(account)) = (alarm.region.as_deref(), alarm.account.as_deref()) else {
        return Err(format!(
            "alarm {} carries no region and account to locate its target group",
            alarm.alarm_name
        ));
    };
    let arn = format!(
        "arn:{}:elasticloadbalancing:{region}:{account}:{}",
        partition_of(region),
        metric.dimensions["TargetGroup"]
    );
    if !is_target_group_arn(&arn) {
        return Err(format!(
            "alarm {} names no valid target group ({arn})",
            alarm.alarm_name
        ));
    }
    Ok(Intent::TargetGroup(arn))
}

/// The reconciler of `unhealthy-target`.
pub struct UnhealthyTarget;

/// A target group to reconcile, and what a sweep listed once for all.
#[derive(Debug, Clone)]
pub struct Target {
    pub arn: String,
    pub listed: Option<Arc<Listed>>,
}

/// What a sweep reads once for every target group: the managed groups
/// (with their instances' zone, health and lifecycle), the Region's target
/// groups, and each one's target health (read concurrently, at most
/// [`HEALTH_READS_IN_FLIGHT`] at a time).
#[derive(Debug, Default)]
pub struct Listed {
    pub managed: Vec<Group>,
    pub target_groups: BTreeMap<String, TargetGroup>,
    pub health: BTreeMap<String, Result<Vec<TargetHealth>, AwsError>>,
}

/// How many `DescribeTargetHealth` calls a sweep has in flight. Eight keeps
/// a sweep of 500 target groups to about 500 / 8 round trips (a few
/// seconds) while staying well under the Elastic Load Balancing API's
/// request rate, which the SDK's retries then absorb; more would mostly buy
/// throttling, in the very incident the sweep runs in.
pub const HEALTH_READS_IN_FLIGHT: usize = 8;

impl Reconciler for UnhealthyTarget {
    const FUNCTION: &'static str = FUNCTION;
    type Intent = Intent;
    type Item = Target;
    type State = TargetGroupState;

    fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
        intent_of(inbound)
    }

    async fn work(cx: &Cx<'_>, intent: Intent) -> Result<Work<Target>, Reconciled> {
        let region = &cx.ballast.aws.region;
        match intent {
            Intent::TargetGroup(arn) => match Arn::parse(&arn).filter(|a| a.region != *region) {
                Some(a) => Err((
                    cx.report.ignored(format!(
                        "{arn} is in {}, this function serves {region}",
                        a.region
                    )),
                    None,
                )),
                None => Ok(Work::one(Target { arn, listed: None })),
            },
            Intent::Sweep => sweep(cx).await,
        }
    }

    async fn observe(
        cx: &Cx<'_>,
        target: &Target,
        seen: Option<TargetGroupState>,
    ) -> Result<Option<TargetGroupState>, AwsError> {
        match seen {
            // Under the lease, the groups and the instances' ASG view are
            // read again: another invocation may have changed records,
            // processes and marks meanwhile. (Target health is not: a mark
            // it made is seen here, and a target that changed since is the
            // next event's.)
            Some(seen) => regroup(cx.ballast, seen).await.map(Some),
            None => {
                let policy = policy(cx.ballast);
                observe(cx.ballast, &target.arn, &policy, target.listed.as_deref()).await
            }
        }
    }

    fn decide(cx: &Cx<'_>, _: &Target, state: &TargetGroupState) -> Plan {
        decide(state, &policy(cx.ballast))
    }

    fn lease(_: &Target, _: &TargetGroupState, plan: &Plan) -> Option<lease::Scope> {
        // The budget's record and the breaker's are read, then written: one
        // invocation at a time per ASG the plan changes, or two could spend
        // one budget twice (and a mark made twice would be reported twice).
        let groups: BTreeSet<String> = plan
            .steps
            .iter()
            .filter_map(|s| s.asg().map(str::to_string))
            .collect();
        Some(lease::Scope::Groups(groups.into_iter().collect()))
    }

    fn describe(target: &Target) -> String {
        format!("target group {}", target.arn)
    }

    fn resource(target: &Target) -> String {
        target.arn.clone()
    }
}

/// The policy, now.
fn policy(ballast: &Ballast) -> Policy {
    Policy {
        max_unhealthy_percent: ballast.config.max_unhealthy_percent,
        budget: ballast.config.replacement_budget,
        now: now_epoch(),
    }
}

/// `state` with its groups read again (one call, their instances' health
/// and lifecycle with them): what another invocation may have changed
/// before this one won the lease (records, processes, marks).
async fn regroup(
    ballast: &Ballast,
    mut state: TargetGroupState,
) -> Result<TargetGroupState, AwsError> {
    let names: Vec<String> = state.groups.iter().map(|g| g.name.clone()).collect();
    let fresh = fleet::describe_groups(&ballast.aws.autoscaling, &names).await?;
    state.groups.retain_mut(|g| {
        let Some(f) = fresh.iter().find(|f| f.name == g.name && f.is_managed()) else {
            return false;
        };
        *g = BudgetedGroup {
            own: g.own,
            ..BudgetedGroup::from(f.clone())
        };
        true
    });
    for t in &mut state.targets {
        let Some(m) = t.member.as_mut().filter(|m| m.managed) else {
            continue;
        };
        let now = fresh
            .iter()
            .filter(|g| g.name == m.asg)
            .flat_map(|g| &g.instances)
            .find(|i| i.instance_id == t.id);
        match now {
            Some(i) => {
                m.health_status = i.health_status.clone();
                m.lifecycle_state = i.lifecycle_state.clone();
            }
            // Gone from its group meanwhile: not Ballast's to mark.
            None => m.lifecycle_state = "Detached".into(),
        }
    }
    Ok(state)
}

/// Reads the target group, its targets' health, their ASGs, and the managed
/// ASGs behind it with their records and (where an instance is impaired)
/// their own health-check replacements inside the budget window. `listed`:
/// what a sweep has read once for all target groups.
///
/// Calls: the target group (none from a sweep's listing), its health (the
/// floor: one per target group), the managed groups (none from a sweep's
/// listing) — whose instance lists say which group each target is in, with
/// its health and lifecycle — and `DescribeAutoScalingInstances` only for
/// targets in no managed group (an unmanaged group's, or none).
pub async fn observe(
    ballast: &Ballast,
    arn: &str,
    policy: &Policy,
    listed: Option<&Listed>,
) -> Result<Option<TargetGroupState>, AwsError> {
    let aws = &ballast.aws;
    let tg = match listed {
        Some(l) => l.target_groups.get(arn).cloned(),
        None => balancer::describe_target_group(&aws.elbv2, arn).await?,
    };
    let Some(tg) = tg else {
        return Ok(None);
    };
    let health = match listed.and_then(|l| l.health.get(&tg.arn)) {
        Some(read) => read.clone()?,
        None => balancer::target_health(&aws.elbv2, &tg.arn).await?,
    };

    let (members, behind) = if tg.target_type == "instance" {
        let fetched;
        let managed: &[Group] = match listed {
            Some(l) => &l.managed,
            None => {
                fetched = fleet::managed_groups(&aws.autoscaling).await?;
                &fetched
            }
        };
        memberships(ballast, &tg.arn, managed, &health).await?
    } else {
        (BTreeMap::new(), vec![])
    };
    let targets = joined(health, &members, &behind);
    let groups = budgeted(ballast, behind, &targets, policy).await?;
    Ok(Some(TargetGroupState {
        arn: tg.arn,
        target_type: tg.target_type,
        targets,
        groups,
    }))
}

/// Which group each target is in (from the managed groups' instance lists,
/// then `DescribeAutoScalingInstances` for the rest), and the managed
/// groups behind target group `tg`: attached to it, or with instances in it
/// (only those are copied from a sweep's listing).
async fn memberships(
    ballast: &Ballast,
    tg: &str,
    managed: &[Group],
    health: &[TargetHealth],
) -> Result<(BTreeMap<String, GroupInstance>, Vec<Group>), AwsError> {
    let ids: BTreeSet<&str> = health.iter().map(|h| h.id.as_str()).collect();
    let mut members: BTreeMap<String, GroupInstance> = managed
        .iter()
        .flat_map(|g| &g.instances)
        .filter(|i| ids.contains(i.instance_id.as_str()))
        .map(|i| (i.instance_id.clone(), i.clone()))
        .collect();
    let others: Vec<String> = ids
        .iter()
        .filter(|id| !members.contains_key(**id))
        .map(|id| id.to_string())
        .collect();
    if !others.is_empty() {
        for i in fleet::describe_instances(&ballast.aws.autoscaling, &others).await? {
            members.insert(i.instance_id.clone(), i);
        }
    }
    let behind = managed
        .iter()
        .filter(|g| {
            g.target_group_arns.iter().any(|a| a == tg) || members.values().any(|m| m.asg == g.name)
        })
        .cloned()
        .collect();
    Ok((members, behind))
}

/// Each target's health joined with its group's view of it.
fn joined(
    health: Vec<TargetHealth>,
    members: &BTreeMap<String, GroupInstance>,
    behind: &[Group],
) -> Vec<TargetState> {
    health
        .into_iter()
        .map(|h| {
            let member = members.get(&h.id);
            TargetState {
                az: member
                    .map(|m| m.az.clone())
                    .filter(|az| !az.is_empty())
                    .or(h.az),
                member: member.map(|m| AsgMembership {
                    asg: m.asg.clone(),
                    managed: behind.iter().any(|g| g.name == m.asg),
                    health_status: m.health_status.clone(),
                    lifecycle_state: m.lifecycle_state.clone(),
                }),
                id: h.id,
                health: h.state,
                reason: h.reason,
            }
        })
        .collect()
}

/// The groups behind, each with its own health-check replacements inside
/// the budget window — read only for a group with an impaired instance,
/// the only case where the budget matters.
async fn budgeted(
    ballast: &Ballast,
    behind: Vec<Group>,
    targets: &[TargetState],
    policy: &Policy,
) -> Result<Vec<BudgetedGroup>, AwsError> {
    let mut groups = Vec::with_capacity(behind.len());
    for g in behind {
        let impaired = targets
            .iter()
            .any(|t| t.is_impaired() && t.member.as_ref().is_some_and(|m| m.asg == g.name));
        let own = if impaired {
            let since = policy.now - policy.budget.window_secs;
            let found =
                fleet::health_replacements(&ballast.aws.autoscaling, &g.name, since).await?;
            OwnReplacements::count(found.into_iter().map(|(_, why)| why))
        } else {
            OwnReplacements::default()
        };
        groups.push(BudgetedGroup {
            own,
            ..BudgetedGroup::from(g)
        });
    }
    Ok(groups)
}

/// Every target group attached to a managed ASG, from two listings read
/// once: the managed groups and the Region's target groups.
async fn sweep(cx: &Cx<'_>) -> Result<Work<Target>, Reconciled> {
    let aws = &cx.ballast.aws;
    let unread = |what: &str, e: AwsError| not_observed(cx, vec![what.into()], e.into());
    let managed = fleet::managed_groups(&aws.autoscaling)
        .await
        .map_err(|e| unread("managed Auto Scaling groups", e))?;
    let arns: BTreeSet<String> = managed
        .iter()
        .flat_map(|g| g.target_group_arns.iter().cloned())
        .collect();
    let target_groups = if arns.is_empty() {
        BTreeMap::new()
    } else {
        balancer::list_target_groups(&aws.elbv2)
            .await
            .map_err(|e| unread("target groups", e))?
            .into_iter()
            .filter(|tg| arns.contains(&tg.arn))
            .map(|tg| (tg.arn.clone(), tg))
            .collect()
    };
    let count = managed.len();
    let health = futures_util::stream::iter(target_groups.keys().cloned())
        .map(|arn| async move {
            let read = balancer::target_health(&aws.elbv2, &arn).await;
            (arn, read)
        })
        .buffer_unordered(HEALTH_READS_IN_FLIGHT)
        .collect::<BTreeMap<_, _>>()
        .await;
    let listed = Arc::new(Listed {
        managed,
        target_groups,
        health,
    });
    let targets = arns
        .into_iter()
        .map(|arn| Target {
            arn,
            listed: Some(Arc::clone(&listed)),
        })
        .collect();
    Ok(Work::sweep(
        targets,
        format!(
            "target group(s) behind {count} managed Auto Scaling group(s)"
        ),
        format!(
            "Sweep: {count} Auto Scaling group(s) tagged ballast:managed=true, no target group attached to any."
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(payload: Value) -> Result<Intent, String> {
        intent_of(&Inbound::classify(&payload))
    }

    fn alarm(state: &str, namespace: &str, metric: &str, dims: Value) -> Value {
        json!({"version":"0","id":"e1","detail-type":"CloudWatch Alarm State Change","source":"aws.cloudwatch",
            "account":"123456789012","time":"2026-11-21T10:00:00Z","region":"us-east-1",
            "resources":["arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-unhealthy"],
            "detail":{"alarmName":"web-unhealthy","state":{"value":state,"reason":"r"},
              "configuration":{"metrics":[{"id":"m1","metricStat":{"metric":{"namespace":namespace,"name":metric,"dimensions":dims},"period":60,"stat":"Maximum"},"returnData":true}]}}})
    }

    #[test]
    fn unhealthy_host_count_alarm_names_its_target_group() {
        let i = intent(alarm(
            "ALARM",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            json!({"TargetGroup":"targetgroup/web/abc","LoadBalancer":"app/web/def","AvailabilityZone":"us-east-1a"}),
        ));
        assert_eq!(
            i,
            Ok(Intent::TargetGroup(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc".into()
            ))
        );
    }

    #[test]
    fn alarm_back_to_ok_looks_again_and_insufficient_data_is_ignored() {
        let r = intent(alarm(
            "OK",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            json!({"TargetGroup":"targetgroup/web/abc"}),
        ));
        assert_eq!(
            r,
            Ok(Intent::TargetGroup(
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc".into()
            ))
        );
        let r = intent(alarm(
            "INSUFFICIENT_DATA",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            json!({"TargetGroup":"targetgroup/web/abc"}),
        ));
        assert!(r.unwrap_err().contains("neither ALARM nor OK"));
    }

    #[test]
    fn other_metrics_are_ignored() {
        let r = intent(alarm(
            "ALARM",
            "AWS/EC2",
            "CPUUtilization",
            json!({"InstanceId":"i-1"}),
        ));
        assert!(r
            .unwrap_err()
            .contains("does not watch AWS/ApplicationELB UnHealthyHostCount"));
        let r = intent(alarm(
            "ALARM",
            "AWS/ApplicationELB",
            "UnHealthyHostCount",
            json!({"LoadBalancer":"app/web/def"}),
        ));
        assert!(r.is_err());
    }

    #[test]
    fn schedule_is_a_sweep() {
        let e = json!({"version":"0","id":"s","detail-type":"Scheduled Event","source":"aws.events","account":"1",
            "time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],"detail":{}});
        assert_eq!(intent(e), Ok(Intent::Sweep));
    }

    #[test]
    fn direct_invoke_takes_a_target_group_arn() {
        let arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc";
        assert_eq!(
            intent(json!({"targetGroupArn": arn})),
            Ok(Intent::TargetGroup(arn.into()))
        );
        assert!(intent(json!({"targetGroupArn": "web"}))
            .unwrap_err()
            .contains("not a target group ARN"));
        assert!(intent(json!({"targetGroupArn": 7}))
            .unwrap_err()
            .contains("must be a string"));
        assert!(intent(json!({}))
            .unwrap_err()
            .contains("needs {\"targetGroupArn\""));
    }

    #[test]
    fn bad_inputs_are_ignored_with_a_reason() {
        assert!(intent(json!("a string"))
            .unwrap_err()
            .contains("JSON string"));
        assert!(intent(json!(null)).unwrap_err().contains("JSON null"));
        let s3 = json!({"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"b"}}}]});
        assert!(intent(s3).is_err());
        let other = json!({"version":"0","id":"x","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}});
        assert!(intent(other)
            .unwrap_err()
            .contains("does not handle EC2 Instance State-change Notification"));
    }
}
