//! The facts a decision of `az-impairment` rests on.

use std::collections::BTreeSet;

use super::holds::holds;
use super::state::FleetState;
use super::Change;
use crate::event::zonal::Signal;
use crate::report::Evidence;

/// The facts a decision about `az` rests on: the change asked and by which
/// signals, every zone already evacuated and what holds it, and per managed
/// group its zones, instances in `az` and capacity.
pub fn evidence(fleet: &FleetState, change: &Change, az: &str) -> Evidence {
    let (kind, signals): (&str, Vec<String>) = match change {
        Change::Raise(s) => ("evacuate", vec![s.token()]),
        Change::Clear(list) => ("restore", list.iter().map(Signal::token).collect()),
        Change::ClearAll => ("restore", vec![Signal::Operator.token()]),
    };
    zone_evidence(fleet, az, kind, signals)
}

/// The facts about `az` and the fleet, for a `kind` of change asked by
/// `signals` (their tokens).
pub(super) fn zone_evidence(
    fleet: &FleetState,
    az: &str,
    kind: &str,
    signals: Vec<String>,
) -> Evidence {
    let held: serde_json::Map<String, serde_json::Value> = holds(fleet)
        .into_iter()
        .map(|(zone, hold)| {
            let mut by: Vec<String> = hold.signals.iter().map(Signal::token).collect();
            if hold.overflow {
                by.push("more".into());
            }
            (zone, serde_json::json!(by))
        })
        .collect();
    let groups: serde_json::Map<String, serde_json::Value> = fleet
        .groups
        .iter()
        .map(|g| {
            let zones: BTreeSet<&str> = g
                .subnets
                .iter()
                .filter_map(|s| fleet.subnet_zone.get(s).map(String::as_str))
                .collect();
            let here = g.instances.iter().filter(|(_, z)| z == az).count();
            (
                g.name.clone(),
                serde_json::json!({
                    "zones": zones,
                    "instancesInZone": here,
                    "instances": g.instances.len(),
                    "desired": g.desired,
                    "max": g.max_size,
                }),
            )
        })
        .collect();
    let mut e = Evidence::new();
    e.insert(crate::report::hint::AVAILABILITY_ZONE.into(), az.into());
    e.insert(crate::report::hint::CHANGE.into(), kind.into());
    e.insert("signals".into(), serde_json::json!(signals));
    e.insert("evacuatedZones".into(), serde_json::Value::Object(held));
    e.insert("groups".into(), serde_json::Value::Object(groups));
    e
}
