//! Which zones are held out, by what, and when a hold is over.

use std::collections::{BTreeMap, BTreeSet};

use super::evidence::zone_evidence;
use super::records::{Evacuation, Hold};
use super::state::{resources, FleetState, ZonedGroup};
use crate::decide::{Decline, Plan};
use crate::event::zonal::Signal;
use crate::report::Severity;
use crate::tags;

/// Every readable record of the fleet, with its group.
pub(super) fn records(fleet: &FleetState) -> impl Iterator<Item = (&ZonedGroup, Evacuation)> {
    fleet.groups.iter().filter_map(|g| {
        g.evacuated
            .as_deref()
            .and_then(|v| Evacuation::parse(v).ok())
            .map(|e| (g, e))
    })
}

/// The AZs currently evacuated, counted from the tags of all managed groups.
/// A record Ballast cannot read counts as one zone held (which one is
/// unknown): failing safe, it can only make the evacuated-AZ limit decline
/// sooner, never let one more zone go.
pub(super) fn evacuated_azs(fleet: &FleetState) -> BTreeSet<String> {
    let mut zones: BTreeSet<String> = holds(fleet).into_keys().collect();
    for g in &fleet.groups {
        if g.evacuated
            .as_deref()
            .is_some_and(|v| Evacuation::parse(v).is_err())
        {
            zones.insert(format!(
                "an unknown zone (unreadable {} on {})",
                tags::EVACUATED,
                g.name
            ));
        }
    }
    zones
}

/// Every evacuated zone and what holds it, over all managed groups.
pub fn holds(fleet: &FleetState) -> BTreeMap<String, Hold> {
    let mut all: BTreeMap<String, Hold> = BTreeMap::new();
    for (_, e) in records(fleet) {
        for (az, hold) in e.azs {
            all.entry(az).or_default().merge(&hold);
        }
    }
    all
}

/// The zones whose record names `signal` (a clearing event that names no
/// zone clears it wherever it is).
pub fn zones_holding(fleet: &FleetState, signal: &Signal) -> Vec<String> {
    holds(fleet)
        .into_iter()
        .filter(|(_, h)| h.signals.contains(signal))
        .map(|(az, _)| az)
        .collect()
}

/// What the sweep read back of the signals that can be read back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Readings {
    /// Alarm name → state (`OK`, `ALARM`, `INSUFFICIENT_DATA`); an alarm
    /// that was asked for and is absent has been deleted.
    pub alarms: BTreeMap<String, String>,
    /// The zones (names) an ARC autoshift is active away from, when read.
    pub autoshifts: Option<BTreeSet<String>>,
}

/// The signals of each zone that are over, by what the sweep read: an alarm
/// in `OK` or deleted; an autoshift no longer active. `ALARM` and
/// `INSUFFICIENT_DATA` stay active; Health, FIS and operator signals are not
/// read back (they last until their closing event or an operator restore).
pub fn resync(
    holds: &BTreeMap<String, Hold>,
    readings: &Readings,
) -> BTreeMap<String, Vec<Signal>> {
    holds
        .iter()
        .filter_map(|(az, hold)| {
            let over: Vec<Signal> = hold
                .signals
                .iter()
                .filter(|s| match s {
                    Signal::Alarm(name) => readings.alarms.get(name).is_none_or(|st| st == "OK"),
                    Signal::Autoshift => readings
                        .autoshifts
                        .as_ref()
                        .is_some_and(|active| !active.contains(az)),
                    _ => false,
                })
                .cloned()
                .collect();
            (!over.is_empty()).then(|| (az.clone(), over))
        })
        .collect()
}

/// The sweep's answer for a zone that stays evacuated: `noop`, or a
/// `declined` warning once it has been out longer than `warn_hours`
/// (`BALLAST_EVACUATION_WARN_HOURS`). Nothing is restored by age.
pub fn still_held(fleet: &FleetState, az: &str, hold: &Hold, now: i64, warn_hours: u32) -> Plan {
    let groups: Vec<&ZonedGroup> = records(fleet)
        .filter(|(_, e)| e.azs.contains_key(az))
        .map(|(g, _)| g)
        .collect();
    let resources = resources(&groups);
    let held_by = hold.describe();
    let evidence = zone_evidence(
        fleet,
        az,
        "hold",
        hold.signals.iter().map(Signal::token).collect(),
    );
    let plan = match hold.since.map(|t| now - t) {
        Some(age) if age > i64::from(warn_hours) * 3600 => Plan::declined(
            Decline::EvacuatedTooLong,
            format!(
                "{az} has been evacuated for {} h, held by {held_by}.",
                age / 3600
            ),
            format!(
                "evacuated longer than BALLAST_EVACUATION_WARN_HOURS={warn_hours}. Ballast restores no zone by \
                 age alone: check that {held_by} is over, then restore the zone \
                 ({{\"action\": \"restore\", \"availabilityZone\": \"{az}\"}})"
            ),
            resources,
        )
        .with_severity(Severity::Warning),
        _ => Plan::noop(format!("{az} stays evacuated: held by {held_by}."), resources),
    };
    plan.with_evidence(evidence)
}
