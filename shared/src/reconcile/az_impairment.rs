//! `az-impairment`: an AWS Health EC2 issue, an ARC autoshift, a per-AZ
//! alarm or an operator names an Availability Zone; managed Auto Scaling
//! groups are evacuated from it, or restored to it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{
    carry_out_leased, lease, merge_sweep, not_observed, respond, HandlerError, Reconciled,
};
use crate::aws::{fleet, network, AwsError};
use crate::decide::az_impairment::{decide, Evacuation, FleetState, GroupState, Policy};
use crate::event::alarm::AlarmChange;
use crate::event::zonal::{
    self, Direction, ZoneRef, AUTOSHIFT_COMPLETED, AUTOSHIFT_IN_PROGRESS, HEALTH_EVENT,
};
use crate::event::{direct_usage, is_scheduled, json_kind, Inbound};
use crate::execute::ReportContext;
use crate::report::Report;
use crate::runtime::{Ballast, Invocation};

pub const FUNCTION: &str = "az-impairment";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub direction: Direction,
    pub zones: Vec<ZoneRef>,
}

fn alarm_intent(alarm: &AlarmChange) -> Result<Intent, String> {
    let az = alarm.dimension("AvailabilityZone").ok_or_else(|| {
        format!(
            "alarm {} has no AvailabilityZone dimension: it says nothing about a zone",
            alarm.alarm_name
        )
    })?;
    let zone = ZoneRef::parse(az).ok_or_else(|| {
        format!(
            "AvailabilityZone {az:?} of alarm {} is not an AZ",
            alarm.alarm_name
        )
    })?;
    let direction = match alarm.state.as_str() {
        "ALARM" => Direction::Evacuate,
        "OK" => Direction::Restore,
        other => {
            return Err(format!(
                "alarm {} is in state {}: neither ALARM nor OK",
                alarm.alarm_name,
                if other.is_empty() { "(none)" } else { other }
            ))
        }
    };
    Ok(Intent {
        direction,
        zones: vec![zone],
    })
}

/// Reads the event; `Err` is the reason it is ignored.
pub fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
    let from = |(direction, zones)| Intent { direction, zones };
    match inbound {
        Inbound::Other(reason) => Err(reason.clone()),
        Inbound::AlarmAction(alarm) => alarm_intent(alarm),
        Inbound::EventBridge(env) if is_scheduled(env) => Err(format!(
            "{FUNCTION} has no sweep: it acts on zonal signals (AWS Health, ARC autoshift, per-AZ alarms) and operators"
        )),
        Inbound::EventBridge(env) if env.source == "aws.health" && env.detail_type == HEALTH_EVENT => {
            zonal::from_health(env).map(from)
        }
        Inbound::EventBridge(env)
            if env.source == "aws.arc-zonal-shift"
                && (env.detail_type == AUTOSHIFT_IN_PROGRESS || env.detail_type == AUTOSHIFT_COMPLETED) =>
        {
            zonal::from_autoshift(env).map(from)
        }
        Inbound::EventBridge(env) if env.source == "aws.cloudwatch" && env.detail_type == "CloudWatch Alarm State Change" => {
            let alarm = AlarmChange::from_eventbridge(env).map_err(|e| format!("malformed CloudWatch alarm detail: {e}"))?;
            alarm_intent(&alarm)
        }
        Inbound::EventBridge(env) => Err(format!(
            "{FUNCTION} does not handle {} events from {}",
            env.detail_type, env.source
        )),
        Inbound::Direct(object) => {
            let needs = "{\"action\": \"evacuate\" | \"restore\", \"availabilityZone\": \"us-east-1a\"}";
            let direction = match object.get("action") {
                Some(Value::String(a)) if a == "evacuate" => Direction::Evacuate,
                Some(Value::String(a)) if a == "restore" => Direction::Restore,
                Some(Value::String(a)) => return Err(format!("action {a:?} is neither evacuate nor restore")),
                Some(other) => return Err(format!("action must be a string, not a {}", json_kind(other))),
                None => return Err(direct_usage(FUNCTION, needs, object)),
            };
            let zone = match object.get("availabilityZone") {
                Some(Value::String(z)) => ZoneRef::parse(z).ok_or_else(|| format!("availabilityZone {z:?} is not an AZ name or ID"))?,
                _ => return Err(direct_usage(FUNCTION, needs, object)),
            };
            Ok(Intent {
                direction,
                zones: vec![zone],
            })
        }
    }
}

/// The Lambda handler.
pub async fn handle(
    ballast: &Ballast,
    payload: Value,
    invocation: Invocation,
) -> Result<Report, HandlerError> {
    let invocation = &invocation;
    respond(
        ballast,
        FUNCTION,
        payload,
        invocation,
        intent_of,
        |ctx, intent| async move { act(ballast, &ctx, &intent, invocation).await },
    )
    .await
}

async fn act(
    ballast: &Ballast,
    ctx: &ReportContext,
    intent: &Intent,
    invocation: &Invocation,
) -> Reconciled {
    let names = match zone_names(ballast, &intent.zones).await {
        Ok(Ok(names)) => names,
        Ok(Err(reason)) => return (ctx.ignored(reason), None),
        Err(e) => {
            let zones = intent
                .zones
                .iter()
                .map(|z| z.as_str().to_string())
                .collect();
            return not_observed(ctx, zones, e);
        }
    };
    let mut parts = vec![];
    let mut transient = None;
    for az in &names {
        let (report, t) = reconcile(ballast, ctx, intent.direction, az, invocation).await;
        transient = transient.or(t);
        parts.push(report);
    }
    match <[Report; 1]>::try_from(parts) {
        Ok([one]) => (one, transient),
        Err(parts) => (merge_sweep(ctx, "Availability Zones", parts), transient),
    }
}

/// AZ names for the event's zones; AZ IDs are mapped for this account.
async fn zone_names(
    ballast: &Ballast,
    zones: &[ZoneRef],
) -> Result<Result<Vec<String>, String>, AwsError> {
    let region = &ballast.aws.region;
    let mut names = BTreeSet::new();
    let mut by_id = None;
    for zone in zones {
        match zone {
            ZoneRef::Name(n) if n.starts_with(region.as_str()) => {
                names.insert(n.clone());
            }
            ZoneRef::Name(n) => {
                return Ok(Err(format!(
                    "{n} is not in {region}, the region this function serves"
                )))
            }
            ZoneRef::Id(id) => {
                if by_id.is_none() {
                    by_id = Some(network::zone_names_by_id(&ballast.aws.ec2).await?);
                }
                match by_id.as_ref().and_then(|m| m.get(id)) {
                    Some(n) => {
                        names.insert(n.clone());
                    }
                    None => {
                        return Ok(Err(format!(
                            "AZ ID {id} is not an Availability Zone of {region}"
                        )))
                    }
                }
            }
        }
    }
    Ok(Ok(names.into_iter().collect()))
}

async fn reconcile(
    ballast: &Ballast,
    ctx: &ReportContext,
    direction: Direction,
    az: &str,
    invocation: &Invocation,
) -> Reconciled {
    let fleet = match observe(ballast).await {
        Ok(fleet) => fleet,
        Err(e) => return not_observed(ctx, vec![az.to_string()], e),
    };
    let policy = Policy {
        max_evacuated_azs: ballast.config.max_evacuated_azs,
    };
    let plan = decide(&fleet, direction, az, &policy);
    // The evacuated-AZ limit is fleet-wide: an evacuation or a restore
    // leases every managed group, so that two never decide side by side.
    let scope = lease::Scope::Groups(fleet.groups.iter().map(|g| g.name.clone()).collect());
    carry_out_leased(ballast, ctx, plan, Some(scope), invocation, || async {
        Ok(decide(&observe(ballast).await?, direction, az, &policy))
    })
    .await
}

/// Every managed group, and the AZ of every subnet they use or recorded.
pub async fn observe(ballast: &Ballast) -> Result<FleetState, AwsError> {
    let groups: Vec<GroupState> = fleet::managed_groups(&ballast.aws.autoscaling)
        .await?
        .into_iter()
        .map(|g| GroupState {
            evacuated: g.tags.get(crate::tags::EVACUATED).cloned(),
            subnets: g
                .vpc_zone_identifier
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            name: g.name,
            arn: g.arn,
            max_size: g.max_size,
            desired: g.desired_capacity,
            instances: g.instances,
        })
        .collect();
    let subnets: BTreeSet<String> = groups
        .iter()
        .flat_map(|g| {
            let recorded = g
                .evacuated
                .as_deref()
                .and_then(|v| Evacuation::parse(v).ok())
                .map(|e| e.subnets)
                .unwrap_or_default();
            g.subnets.iter().cloned().chain(recorded)
        })
        .collect();
    let subnet_zone =
        network::subnet_zones(&ballast.aws.ec2, &subnets.into_iter().collect::<Vec<_>>()).await?;
    Ok(FleetState {
        groups,
        subnet_zone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn intent(payload: Value) -> Result<Intent, String> {
        intent_of(&Inbound::classify(&payload))
    }

    #[test]
    fn direct_invoke_names_action_and_zone() {
        assert_eq!(
            intent(json!({"action": "evacuate", "availabilityZone": "us-east-1a"})),
            Ok(Intent {
                direction: Direction::Evacuate,
                zones: vec![ZoneRef::Name("us-east-1a".into())]
            })
        );
        assert_eq!(
            intent(json!({"action": "restore", "availabilityZone": "use1-az6"}))
                .unwrap()
                .zones,
            vec![ZoneRef::Id("use1-az6".into())]
        );
        assert!(
            intent(json!({"action": "drain", "availabilityZone": "us-east-1a"}))
                .unwrap_err()
                .contains("neither evacuate nor restore")
        );
        assert!(intent(json!({"action": "evacuate"}))
            .unwrap_err()
            .contains("a direct invoke needs"));
        assert!(
            intent(json!({"action": "evacuate", "availabilityZone": "moon"}))
                .unwrap_err()
                .contains("not an AZ")
        );
        assert!(intent(json!({})).unwrap_err().contains("keys given"));
    }

    #[test]
    fn per_az_alarm_evacuates_on_alarm_and_restores_on_ok() {
        let alarm = |state: &str, dims: Value| {
            json!({"version":"0","id":"a","detail-type":"CloudWatch Alarm State Change",
            "source":"aws.cloudwatch","account":"1","time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],
            "detail":{"alarmName":"az","state":{"value":state},"configuration":{"metrics":[{"id":"m","metricStat":{"metric":{
              "namespace":"AWS/ApplicationELB","name":"UnHealthyHostCount","dimensions":dims},"period":60}}]}}})
        };
        let az = json!({"AvailabilityZone":"us-east-1a","TargetGroup":"targetgroup/web/1"});
        assert_eq!(
            intent(alarm("ALARM", az.clone())).unwrap().direction,
            Direction::Evacuate
        );
        assert_eq!(
            intent(alarm("OK", az.clone())).unwrap().direction,
            Direction::Restore
        );
        assert!(intent(alarm("INSUFFICIENT_DATA", az)).is_err());
        assert!(intent(alarm("ALARM", json!({"TargetGroup":"t"})))
            .unwrap_err()
            .contains("no AvailabilityZone dimension"));
    }

    #[test]
    fn scheduled_events_are_not_a_zonal_signal() {
        let e = json!({"version":"0","id":"s","detail-type":"Scheduled Event","source":"aws.events","detail":{}});
        assert!(intent(e).unwrap_err().contains("has no sweep"));
    }
}
