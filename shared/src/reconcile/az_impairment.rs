//! `az-impairment`: an AWS Health EC2 issue, an ARC autoshift, a per-AZ
//! alarm or an operator names an Availability Zone; managed Auto Scaling
//! groups are evacuated from it, or restored to it once every signal that
//! asked for the evacuation is over. The sweep re-reads the signals that can
//! be read back (alarms, autoshifts) and repairs a lost closing event.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{not_observed, Cx, Reconciled, Reconciler, Work};
use crate::aws::{alarms, fleet, network, zonal_shift, AwsError};
use crate::context::Ballast;
use crate::decide::az_impairment::{
    decide, holds, resync, still_held, zones_holding, Change, Evacuation, FleetState, Hold, Policy,
    Readings, ZonedGroup,
};
use crate::decide::Plan;
use crate::event::alarm::AlarmChange;
use crate::event::zonal::{self, Direction, Signal, ZonalSignal, ZoneRef, HEALTH_EVENT};
use crate::event::{direct_usage, is_scheduled, json_kind, not_handled, Inbound};
use crate::lease;
use crate::report::now_epoch;

pub const FUNCTION: &str = crate::report::Function::AzImpairment.as_str();

/// Where the event says to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Signal(ZonalSignal),
    /// An operator's direct invoke with `"dryRun": true` (`ballast evacuate
    /// --dry-run`): decided and reported as a dry run, whatever
    /// `BALLAST_DRY_RUN` says.
    Rehearse(ZonalSignal),
    /// Re-read every recorded signal of every evacuated zone.
    Sweep,
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
        "INSUFFICIENT_DATA" => {
            return Err(format!(
                "alarm {} is in INSUFFICIENT_DATA, which is not an all-clear: a canary inside a dead zone \
                 stops reporting (set TreatMissingData: breaching on zonal alarms); the zone stays as it is",
                alarm.alarm_name
            ))
        }
        other => {
            return Err(format!(
                "alarm {} is in state {}: neither ALARM nor OK",
                alarm.alarm_name,
                if other.is_empty() { "(none)" } else { other }
            ))
        }
    };
    Ok(Intent::Signal(ZonalSignal {
        direction,
        zones: vec![zone],
        signal: Signal::Alarm(alarm.alarm_name.clone()),
        evidence: None,
    }))
}

fn is_autoshift(detail_type: &str) -> bool {
    detail_type.contains("Autoshift") || detail_type.starts_with("Practice Run")
}

/// Reads the event; `Err` is the reason it is ignored.
fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
    match inbound {
        Inbound::Other(reason) => Err(reason.clone()),
        Inbound::AlarmAction(alarm) => alarm_intent(alarm),
        Inbound::EventBridge(env) if is_scheduled(env) => Ok(Intent::Sweep),
        Inbound::EventBridge(env)
            if env.source == "aws.health" && env.detail_type == HEALTH_EVENT =>
        {
            zonal::from_health(env).map(Intent::Signal)
        }
        Inbound::EventBridge(env)
            if env.source == "aws.arc-zonal-shift" && is_autoshift(&env.detail_type) =>
        {
            zonal::from_autoshift(env).map(Intent::Signal)
        }
        Inbound::EventBridge(env) => match AlarmChange::of_event(env) {
            Some(alarm) => alarm_intent(&alarm?),
            None => Err(not_handled(FUNCTION, env)),
        },
        Inbound::Direct(object) => {
            let needs =
                "{\"action\": \"evacuate\" | \"restore\", \"availabilityZone\": \"us-east-1a\"}";
            let direction = match object.get("action") {
                Some(Value::String(a)) if a == "evacuate" => Direction::Evacuate,
                Some(Value::String(a)) if a == "restore" => Direction::Restore,
                Some(Value::String(a)) => {
                    return Err(format!("action {a:?} is neither evacuate nor restore"))
                }
                Some(other) => {
                    return Err(format!(
                        "action must be a string, not a {}",
                        json_kind(other)
                    ))
                }
                None => return Err(direct_usage(FUNCTION, needs, object)),
            };
            let zone = match object.get("availabilityZone") {
                Some(Value::String(z)) => ZoneRef::parse(z)
                    .ok_or_else(|| format!("availabilityZone {z:?} is not an AZ name or ID"))?,
                _ => return Err(direct_usage(FUNCTION, needs, object)),
            };
            let signal = ZonalSignal {
                direction,
                zones: vec![zone],
                signal: Signal::Operator,
                evidence: None,
            };
            match object.get("dryRun") {
                None | Some(Value::Bool(false)) => Ok(Intent::Signal(signal)),
                Some(Value::Bool(true)) => Ok(Intent::Rehearse(signal)),
                Some(other) => Err(format!(
                    "dryRun must be true or false, not a {}",
                    json_kind(other)
                )),
            }
        }
    }
}

/// The reconciler of `az-impairment`.
pub struct AzImpairment;

/// One zone's work.
#[derive(Debug, Clone)]
pub enum Zone {
    /// Apply `change` to zone `az` (decided on `observed` when the fleet
    /// was already read to find the zone).
    Change {
        az: String,
        change: Change,
        evidence: Option<String>,
        observed: Option<FleetState>,
    },
    /// An evacuated zone a sweep finds still held: reported, not changed.
    Held(Plan),
}

impl Zone {
    fn az(&self) -> &str {
        match self {
            Zone::Change { az, .. } => az,
            Zone::Held(plan) => plan.resources.first().map_or("", String::as_str),
        }
    }
}

impl Reconciler for AzImpairment {
    const FUNCTION: &'static str = FUNCTION;
    type Intent = Intent;
    type Item = Zone;
    type State = FleetState;

    fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
        intent_of(inbound)
    }

    async fn work(cx: &Cx<'_>, intent: Intent) -> Result<Work<Zone>, Reconciled> {
        match intent {
            Intent::Signal(signal) => act(cx, &signal).await,
            Intent::Rehearse(signal) => Ok(Work {
                rehearsal: true,
                ..act(cx, &signal).await?
            }),
            Intent::Sweep => sweep(cx).await,
        }
    }

    async fn observe(
        cx: &Cx<'_>,
        zone: &Zone,
        seen: Option<FleetState>,
    ) -> Result<Option<FleetState>, AwsError> {
        match (zone, seen) {
            (
                Zone::Change {
                    observed: Some(fleet),
                    ..
                },
                None,
            ) => Ok(Some(fleet.clone())),
            // Under the lease, the groups are read again; a subnet's zone
            // never changes, so only subnets not seen before are looked up.
            (_, seen) => observe(cx.ballast, seen.map(|f| f.subnet_zone))
                .await
                .map(Some),
        }
    }

    fn decide(cx: &Cx<'_>, zone: &Zone, fleet: &FleetState) -> Plan {
        let (az, change, evidence) = match zone {
            Zone::Change {
                az,
                change,
                evidence,
                ..
            } => (az, change, evidence),
            Zone::Held(plan) => return plan.clone(),
        };
        let policy = Policy {
            max_evacuated_azs: cx.ballast.config.max_evacuated_azs,
            now: now_epoch(),
        };
        let mut plan = decide(fleet, change, az, &policy);
        if let Some(evidence) = evidence {
            plan.situation = format!("{} Evidence: \"{evidence}\"", plan.situation);
        }
        plan
    }

    fn lease(_: &Zone, fleet: &FleetState, _: &Plan) -> Option<lease::Scope> {
        // The evacuated-AZ limit is fleet-wide: an evacuation or a restore
        // leases every managed group, so that two never decide side by side.
        Some(lease::Scope::Groups(
            fleet.groups.iter().map(|g| g.name.clone()).collect(),
        ))
    }

    fn describe(zone: &Zone) -> String {
        format!("Availability Zone {}", zone.az())
    }

    fn resource(zone: &Zone) -> String {
        zone.az().to_string()
    }

    async fn reconcile(cx: &Cx<'_>, zone: &Zone) -> Reconciled {
        match zone {
            Zone::Held(plan) => (cx.report.conclude(plan.clone(), vec![], false), None),
            Zone::Change { .. } => super::reconcile::<Self>(cx, zone).await,
        }
    }
}

/// What a signal asks of the fleet.
fn change_of(signal: &ZonalSignal) -> Change {
    match (signal.direction, &signal.signal) {
        (Direction::Evacuate, s) => Change::Raise(s.clone()),
        (Direction::Restore, Signal::Operator) => Change::ClearAll,
        (Direction::Restore, s) => Change::Clear(vec![s.clone()]),
    }
}

/// The zones a signal names (or, for a closing health issue or alarm, the
/// zones its record holds), each to change; or why nothing is.
async fn act(cx: &Cx<'_>, signal: &ZonalSignal) -> Result<Work<Zone>, Reconciled> {
    let ballast = cx.ballast;
    let region = &ballast.aws.region;
    let change = change_of(signal);
    // Health issues and alarms are cleared wherever their record names them,
    // whatever zone (if any) the closing event names: one observation gives
    // the zones and the first decision.
    let everywhere = matches!(signal.signal, Signal::Health(_) | Signal::Alarm(_));
    let (zones, fleet) = if signal.direction == Direction::Restore && everywhere {
        let fleet = observe(ballast, None)
            .await
            .map_err(|e| not_observed(cx, vec!["managed Auto Scaling groups".into()], e.into()))?;
        (zones_holding(&fleet, &signal.signal), Some(fleet))
    } else {
        let named = zone_names(ballast, &signal.zones).await.map_err(|e| {
            let zones = signal
                .zones
                .iter()
                .map(|z| z.as_str().to_string())
                .collect();
            not_observed(cx, zones, e.into())
        })?;
        match named.as_slice() {
            [one] => (vec![one.clone()], None),
            [] => {
                let foreign: Vec<&str> = signal.zones.iter().map(ZoneRef::as_str).collect();
                return Err((
                    cx.report.ignored(format!(
                        "{} names no Availability Zone of {region}, the Region this function serves ({})",
                        signal.signal.describe(),
                        if foreign.is_empty() { "none named".to_string() } else { foreign.join(", ") }
                    )),
                    None,
                ));
            }
            several => {
                return Err((
                    cx.report.ignored(format!(
                        "{} names {} zones of {region} ({}): moving nothing. Ballast evacuates one zone a signal; \
                         an issue across zones is beyond what moving capacity can fix",
                        signal.signal.describe(),
                        several.len(),
                        several.join(", ")
                    )),
                    None,
                ))
            }
        }
    };
    let zones = zones
        .into_iter()
        .map(|az| Zone::Change {
            az,
            change: change.clone(),
            evidence: signal.evidence.clone(),
            observed: fleet.clone(),
        })
        .collect();
    Ok(Work::of(
        zones,
        "Availability Zones",
        format!(
            "{} is over; it holds no zone evacuated.",
            signal.signal.describe()
        ),
    ))
}

/// This Region's AZ names among `zones` (IDs mapped for this account);
/// names of other Regions and IDs this account does not have are left out.
async fn zone_names(ballast: &Ballast, zones: &[ZoneRef]) -> Result<Vec<String>, AwsError> {
    let region = &ballast.aws.region;
    let mut names = BTreeSet::new();
    let mut by_id = None;
    for zone in zones {
        match zone {
            ZoneRef::Name(n) => {
                // `us-east-1a`, or a Local Zone such as `us-east-1-bos-1a`.
                if n.strip_prefix(region.as_str())
                    .is_some_and(|rest| rest.len() == 1 || rest.starts_with('-'))
                {
                    names.insert(n.clone());
                }
            }
            ZoneRef::Id(id) => {
                if by_id.is_none() {
                    by_id = Some(network::zone_names_by_id(&ballast.aws.ec2).await?);
                }
                if let Some(n) = by_id.as_ref().and_then(|m| m.get(id)) {
                    names.insert(n.clone());
                }
            }
        }
    }
    Ok(names.into_iter().collect())
}

/// Every evacuated zone: the signals that can be read back are read; a zone
/// whose readable signals are over is cleared of them (and restored when
/// nothing else holds it); a zone evacuated longer than
/// `BALLAST_EVACUATION_WARN_HOURS` is reported, never restored by age.
async fn sweep(cx: &Cx<'_>) -> Result<Work<Zone>, Reconciled> {
    let ballast = cx.ballast;
    let fleet = observe(ballast, None)
        .await
        .map_err(|e| not_observed(cx, vec!["managed Auto Scaling groups".into()], e.into()))?;
    let none = format!(
        "Sweep: {} managed Auto Scaling group(s), none evacuated.",
        fleet.groups.len()
    );
    let held = holds(&fleet);
    if held.is_empty() {
        return Ok(Work::sweep(vec![], "evacuated Availability Zone(s)", none));
    }
    let (readings, unread) = read_signals(ballast, &held)
        .await
        .map_err(|e| not_observed(cx, held.keys().cloned().collect(), e.into()))?;
    let cleared = resync(&held, &readings);
    let now = now_epoch();
    let zones = held
        .iter()
        .map(|(az, hold)| match cleared.get(az) {
            Some(over) => Zone::Change {
                az: az.clone(),
                change: Change::Clear(over.clone()),
                evidence: None,
                observed: Some(fleet.clone()),
            },
            None => Zone::Held(still_held(
                &fleet,
                az,
                hold,
                now,
                ballast.config.evacuation_warn_hours,
            )),
        })
        .collect();
    let mut work = Work::sweep(zones, "evacuated Availability Zone(s)", none);
    if let Some(e) = unread {
        work.settled
            .push(not_observed(cx, vec!["ARC autoshifts".into()], e.into()));
    }
    Ok(work)
}

/// Reads back the alarms and autoshifts that hold zones. A failed alarm
/// read fails the sweep; a failed autoshift read keeps every autoshift
/// signal and is reported.
async fn read_signals(
    ballast: &Ballast,
    held: &BTreeMap<String, Hold>,
) -> Result<(Readings, Option<AwsError>), AwsError> {
    let signals: BTreeSet<&Signal> = held.values().flat_map(|h| &h.signals).collect();
    let names: Vec<String> = signals
        .iter()
        .filter_map(|s| match s {
            Signal::Alarm(name) => Some(name.clone()),
            _ => None,
        })
        .collect();
    let mut readings = Readings::default();
    if !names.is_empty() {
        readings.alarms = alarms::alarm_states(&ballast.aws.cloudwatch, &names).await?;
    }
    let mut unread = None;
    if signals.contains(&Signal::Autoshift) {
        let active = async {
            let ids = zonal_shift::active_autoshifts(&ballast.aws.zonal_shift).await?;
            let names = network::zone_names_by_id(&ballast.aws.ec2).await?;
            Ok::<_, AwsError>(ids.iter().filter_map(|id| names.get(id).cloned()).collect())
        };
        match active.await {
            Ok(active) => readings.autoshifts = Some(active),
            Err(e) => unread = Some(e),
        }
    }
    Ok((readings, unread))
}

/// Every managed group, and the AZ of every subnet they use or recorded.
/// Every managed group, and the zone of every subnet they use or recorded
/// (`known`: zones already read, looked up again for no subnet).
pub async fn observe(
    ballast: &Ballast,
    known: Option<BTreeMap<String, String>>,
) -> Result<FleetState, AwsError> {
    let groups: Vec<ZonedGroup> = fleet::managed_groups(&ballast.aws.autoscaling)
        .await?
        .into_iter()
        .map(ZonedGroup::from)
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
    let mut subnet_zone = known.unwrap_or_default();
    let unknown: Vec<String> = subnets
        .into_iter()
        .filter(|s| !subnet_zone.contains_key(s))
        .collect();
    if !unknown.is_empty() {
        subnet_zone.extend(network::subnet_zones(&ballast.aws.ec2, &unknown).await?);
    }
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

    fn signal(payload: Value) -> Result<ZonalSignal, String> {
        match intent(payload)? {
            Intent::Signal(s) | Intent::Rehearse(s) => Ok(s),
            Intent::Sweep => Err("a sweep".into()),
        }
    }

    #[test]
    fn a_direct_invoke_may_ask_for_a_dry_run() {
        let rehearsal =
            intent(json!({"action": "evacuate", "availabilityZone": "us-east-1a", "dryRun": true}));
        assert!(
            matches!(rehearsal, Ok(Intent::Rehearse(_))),
            "{rehearsal:?}"
        );
        let real = intent(
            json!({"action": "evacuate", "availabilityZone": "us-east-1a", "dryRun": false}),
        );
        assert!(matches!(real, Ok(Intent::Signal(_))), "{real:?}");
        assert_eq!(
            intent(json!({"action": "restore", "availabilityZone": "us-east-1a", "dryRun": "yes"})),
            Err("dryRun must be true or false, not a string".into())
        );
    }

    #[test]
    fn direct_invoke_names_action_and_zone() {
        assert_eq!(
            intent(json!({"action": "evacuate", "availabilityZone": "us-east-1a"})),
            Ok(Intent::Signal(ZonalSignal {
                direction: Direction::Evacuate,
                zones: vec![ZoneRef::Name("us-east-1a".into())],
                signal: Signal::Operator,
                evidence: None,
            }))
        );
        assert_eq!(
            signal(json!({"action": "restore", "availabilityZone": "use1-az6"}))
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
        let raised = signal(alarm("ALARM", az.clone())).unwrap();
        assert_eq!(raised.direction, Direction::Evacuate);
        assert_eq!(raised.signal, Signal::Alarm("az".into()));
        assert_eq!(
            change_of(&raised),
            Change::Raise(Signal::Alarm("az".into()))
        );
        let ok = signal(alarm("OK", az.clone())).unwrap();
        assert_eq!(
            change_of(&ok),
            Change::Clear(vec![Signal::Alarm("az".into())])
        );
        let missing = intent(alarm("INSUFFICIENT_DATA", az)).unwrap_err();
        assert!(missing.contains("not an all-clear"), "{missing}");
        assert!(intent(alarm("ALARM", json!({"TargetGroup":"t"})))
            .unwrap_err()
            .contains("no AvailabilityZone dimension"));
    }

    #[test]
    fn the_schedule_is_a_resync_sweep_and_an_operator_restore_clears_all() {
        let e = json!({"version":"0","id":"s","detail-type":"Scheduled Event","source":"aws.events","detail":{}});
        assert_eq!(intent(e), Ok(Intent::Sweep));
        let restore =
            signal(json!({"action": "restore", "availabilityZone": "us-east-1a"})).unwrap();
        assert_eq!(change_of(&restore), Change::ClearAll);
    }

    #[test]
    fn arc_practice_runs_and_manual_shifts_are_ignored() {
        let arc = |dt: &str| {
            json!({"version":"0","id":"p","detail-type":dt,"source":"aws.arc-zonal-shift",
            "account":"1","time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],
            "detail":{"version":"0.0.1","metadata":{"awayFrom":"use1-az2"}}})
        };
        assert!(intent(arc("Practice Run Started"))
            .unwrap_err()
            .contains("practice runs"));
        assert!(intent(arc("Manual Shift Started"))
            .unwrap_err()
            .contains("does not handle"));
        let fis = signal(arc("FIS Experiment Autoshift In Progress")).unwrap();
        assert_eq!(change_of(&fis), Change::Raise(Signal::FisAutoshift));
    }
}
