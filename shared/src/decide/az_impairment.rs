//! `az-impairment`: move managed Auto Scaling groups out of an impaired AZ
//! (remove its subnets, keep the capacity) and bring them back, under
//! guardrails. The state of an evacuation lives on the ASG itself, in the
//! `ballast:evacuated` tag.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, Step};
use crate::event::zonal::Signal;
use crate::records::{self, items, Extra, Fields, Record, Unreadable};
use crate::report::{ActionKind, ActionRecord, ActionStatus, Evidence, Severity};
use crate::resources::Group;
use crate::tags;

/// A managed Auto Scaling group as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    pub name: String,
    pub arn: Option<String>,
    /// Current subnets (`VPCZoneIdentifier`), in order.
    pub subnets: Vec<String>,
    pub max_size: i32,
    pub desired: i32,
    /// (instance ID, AZ).
    pub instances: Vec<(String, String)>,
    /// The raw `ballast:evacuated` tag, if any.
    pub evacuated: Option<String>,
}

impl From<Group> for GroupState {
    fn from(g: Group) -> Self {
        GroupState {
            evacuated: g.tags.get(tags::EVACUATED).cloned(),
            subnets: g.subnets().map(str::to_string).collect(),
            name: g.name,
            arn: g.arn,
            max_size: g.max_size,
            desired: g.desired_capacity,
            instances: g
                .instances
                .into_iter()
                .map(|i| (i.instance_id, i.az))
                .collect(),
        }
    }
}

/// Every managed group, and the AZ of every subnet they use or used.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FleetState {
    pub groups: Vec<GroupState>,
    pub subnet_zone: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `BALLAST_MAX_EVACUATED_AZS`.
    pub max_evacuated_azs: u32,
    /// Now, in seconds since the epoch: when a zone's evacuation starts.
    pub now: i64,
}

/// What a signal asks of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Evacuate the zone, and record the signal as a reason to stay out.
    Raise(Signal),
    /// These signals are over: remove them; restore the zone when none is left.
    Clear(Vec<Signal>),
    /// An operator's restore: every signal of the zone is cleared.
    ClearAll,
}

/// Why a zone is evacuated: every signal that asked for it, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hold {
    /// When the zone was evacuated (seconds since the epoch); absent in
    /// records written before Ballast kept signals.
    pub since: Option<i64>,
    pub signals: BTreeSet<Signal>,
    /// More signals asked than the record could name: no clearing signal
    /// restores the zone, only an operator's restore.
    pub overflow: bool,
}

impl Hold {
    /// A record written before Ballast kept signals: any clearing signal
    /// for the zone restores it, as it always did.
    pub fn unnamed(&self) -> bool {
        self.signals.is_empty() && !self.overflow
    }

    /// `alarm web-az-a, AWS Health issue 3fa94c01d2e7`.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.signals.iter().map(Signal::describe).collect();
        if self.overflow {
            names.push("more signals than the record can name (an operator must restore)".into());
        }
        if names.is_empty() {
            names.push("a record from before signals were kept".into());
        }
        names.join(", ")
    }

    fn merge(&mut self, other: &Hold) {
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.signals.extend(other.signals.iter().cloned());
        self.overflow |= other.overflow;
    }
}

/// What `ballast:evacuated` records: the AZs the group is evacuated from
/// (each with when, and every signal that holds it out), and its subnets
/// and max size from before the first of them.
///
/// Encoded as
/// `azs=us-east-1a@1764590000 subnets=subnet-1/subnet-2 max=4 by=us-east-1a/alarm:web-canary by=us-east-1a/health:3fa94c01d2e7`:
/// tag values allow only letters, digits, spaces and `_ . : / = + - @`, at
/// most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evacuation {
    pub azs: BTreeMap<String, Hold>,
    pub subnets: Vec<String>,
    pub max_size: i32,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

/// The signal token that stands for "more than the record names".
const OVERFLOW: &str = "more";

impl Record for Evacuation {
    const TAG: &'static str = tags::EVACUATED;
    const KEYS: &'static [&'static str] = &["azs", "subnets", "max", "by"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let list = |k: &str| -> Result<Vec<String>, String> {
            let items = items(f.one(k)?, '/');
            if items.is_empty() {
                Err(format!("{k}= names nothing"))
            } else {
                Ok(items)
            }
        };
        let mut azs = BTreeMap::new();
        for item in list("azs")? {
            let (az, since) = match item.split_once('@') {
                Some((az, t)) => (
                    az.to_string(),
                    Some(t.parse().map_err(|_| format!("{item} has no time"))?),
                ),
                None => (item, None),
            };
            azs.insert(
                az,
                Hold {
                    since,
                    ..Hold::default()
                },
            );
        }
        for v in f.all("by") {
            let unknown = || format!("by={v} names no zone of azs= and a signal");
            let (az, token) = v.split_once('/').ok_or_else(unknown)?;
            let hold = azs.get_mut(az).ok_or_else(unknown)?;
            if token == OVERFLOW {
                hold.overflow = true;
            } else {
                hold.signals
                    .insert(Signal::from_token(token).ok_or_else(unknown)?);
            }
        }
        Ok(Evacuation {
            azs,
            subnets: list("subnets")?,
            max_size: f.number("max")?,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let azs: Vec<String> = self
            .azs
            .iter()
            .map(|(az, hold)| match hold.since {
                Some(t) => format!("{az}@{t}"),
                None => az.clone(),
            })
            .collect();
        let mut out = vec![
            ("azs", azs.join("/")),
            ("subnets", self.subnets.join("/")),
            ("max", self.max_size.to_string()),
        ];
        for (az, hold) in &self.azs {
            for signal in &hold.signals {
                out.push(("by", format!("{az}/{}", signal.token())));
            }
            if hold.overflow {
                out.push(("by", format!("{az}/{OVERFLOW}")));
            }
        }
        out
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Evacuation {
    pub fn encode(&self) -> String {
        records::write(self)
    }

    /// The record, or why it is not one (`{tag}={value:?} is not a record
    /// Ballast wrote (…)`).
    pub fn parse(value: &str) -> Result<Evacuation, String> {
        records::read(value).map_err(|e: Unreadable| e.to_string())
    }
}

fn record(
    group: &GroupState,
    kind: ActionKind,
    status: ActionStatus,
    detail: String,
) -> ActionRecord {
    ActionRecord {
        kind,
        target: group.name.clone(),
        asg: Some(group.name.clone()),
        status,
        detail,
    }
}

fn resources(groups: &[&GroupState]) -> Vec<String> {
    groups
        .iter()
        .map(|g| g.arn.clone().unwrap_or_else(|| g.name.clone()))
        .collect()
}

fn records(fleet: &FleetState) -> impl Iterator<Item = (&GroupState, Evacuation)> {
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
fn evacuated_azs(fleet: &FleetState) -> BTreeSet<String> {
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
    let groups: Vec<&GroupState> = records(fleet)
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

pub fn decide(fleet: &FleetState, change: &Change, az: &str, policy: &Policy) -> Plan {
    let plan = match change {
        Change::Raise(signal) => evacuate(fleet, signal, az, policy),
        Change::Clear(_) | Change::ClearAll => restore(fleet, change, az),
    };
    plan.with_evidence(evidence(fleet, change, az))
}

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
fn zone_evidence(fleet: &FleetState, az: &str, kind: &str, signals: Vec<String>) -> Evidence {
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

fn in_zone(fleet: &FleetState, subnet: &str, az: &str) -> bool {
    fleet.subnet_zone.get(subnet).is_some_and(|z| z == az)
}

fn evacuate(fleet: &FleetState, signal: &Signal, az: &str, policy: &Policy) -> Plan {
    let recorded = |g: &GroupState| g.evacuated.as_deref().map(Evacuation::parse);
    let affected: Vec<&GroupState> = fleet
        .groups
        .iter()
        .filter(|g| {
            g.subnets.iter().any(|s| in_zone(fleet, s, az))
                || matches!(recorded(g), Some(Ok(e)) if e.azs.contains_key(az))
        })
        .collect();
    if affected.is_empty() {
        return Plan::noop(
            format!(
                "No Auto Scaling group tagged {}=true has a subnet in {az}.",
                tags::MANAGED
            ),
            vec![],
        );
    }
    let resources = resources(&affected);
    let why = signal.describe();

    let already = evacuated_azs(fleet);
    if !already.contains(az) && already.len() as u32 + 1 > policy.max_evacuated_azs {
        let list: Vec<&str> = already.iter().map(String::as_str).collect();
        let situation = format!(
            "Declined to evacuate {az} ({why}): {} AZ(s) already evacuated.",
            already.len()
        );
        let reason = format!(
            "never more than BALLAST_MAX_EVACUATED_AZS={} AZ(s) evacuated at once; already evacuated: [{}]. \
             Losing another AZ is beyond what moving capacity can fix: a human must decide",
            policy.max_evacuated_azs,
            list.join(", ")
        );
        let skipped = affected
            .iter()
            .map(|g| {
                record(
                    g,
                    ActionKind::Evacuate,
                    ActionStatus::Skipped,
                    "declined by the evacuated-AZ limit".into(),
                )
            })
            .collect();
        return Plan::declined(situation, reason, resources)
            .with_severity(Severity::Critical)
            .with_skipped(skipped);
    }

    let mut steps = vec![];
    let mut skipped = vec![];
    let mut notes = vec![];
    let mut last_az = vec![];
    let mut moved = 0;
    let mut noted = 0;
    let mut overflowed = vec![];
    let mut unreadable = vec![];
    for g in &affected {
        let previous = match recorded(g) {
            Some(Err(reason)) => {
                unreadable.push(format!("{} ({reason})", g.name));
                skipped.push(record(
                    g,
                    ActionKind::Evacuate,
                    ActionStatus::Skipped,
                    reason,
                ));
                continue;
            }
            Some(Ok(e)) => Some(e),
            None => None,
        };
        let remaining: Vec<String> = g
            .subnets
            .iter()
            .filter(|s| !in_zone(fleet, s, az))
            .cloned()
            .collect();
        let moving = remaining.len() != g.subnets.len();
        if moving && remaining.is_empty() {
            last_az.push(g.name.clone());
            skipped.push(record(
                g,
                ActionKind::Evacuate,
                ActionStatus::Skipped,
                format!(
                    "declined: {az} is the group's last AZ; removing it would leave no capacity"
                ),
            ));
            continue;
        }
        let mut evacuation = previous.unwrap_or_else(|| Evacuation {
            azs: BTreeMap::new(),
            subnets: g.subnets.clone(),
            max_size: g.max_size,
            extra: Extra::default(),
        });
        let hold = evacuation
            .azs
            .entry(az.to_string())
            .or_insert_with(|| Hold {
                since: Some(policy.now),
                ..Hold::default()
            });
        let added = !hold.overflow && hold.signals.insert(signal.clone());
        if !moving && !added {
            skipped.push(record(
                g,
                ActionKind::Evacuate,
                ActionStatus::Skipped,
                format!("already evacuated from {az} (held by {})", hold.describe()),
            ));
            continue;
        }
        let mut value = evacuation.encode();
        if value.len() > tags::VALUE_MAX {
            // The signals no longer fit: the zone is held until an operator
            // restores it, never released early, and the subnets stay named.
            if let Some(hold) = evacuation.azs.get_mut(az) {
                hold.signals.clear();
                hold.overflow = true;
            }
            value = evacuation.encode();
            overflowed.push(g.name.clone());
        }
        if value.len() > tags::VALUE_MAX {
            skipped.push(record(
                g,
                ActionKind::Evacuate,
                ActionStatus::Skipped,
                format!(
                    "declined: the record of its {} subnets does not fit a tag (256 characters)",
                    evacuation.subnets.len()
                ),
            ));
            continue;
        }
        steps.push(Step::TagGroup {
            asg: g.name.clone(),
            key: tags::EVACUATED.into(),
            value,
        });
        if !moving {
            noted += 1;
            continue;
        }
        moved += 1;
        let stranded: Vec<&str> = g
            .instances
            .iter()
            .filter(|(_, z)| z == az)
            .map(|(i, _)| i.as_str())
            .collect();
        // Rebalancing launches replacements before terminating: make room.
        let needed = g.desired + stranded.len() as i32;
        let max_size = (needed > g.max_size).then_some(needed);
        notes.push(if stranded.is_empty() {
            format!("ASG {} has no instance left in {az}", g.name)
        } else {
            format!(
                "ASG {} still has {} instance(s) in {az} ({}), replaced by AZ rebalancing",
                g.name,
                stranded.len(),
                stranded.join(", ")
            )
        });
        steps.push(Step::UpdateGroup {
            asg: g.name.clone(),
            subnets: remaining,
            max_size,
        });
    }

    // A record Ballast cannot read is held, never dropped: the group is not
    // moved (its original subnets are not known), and a human is told.
    let unreadable_reason = (!unreadable.is_empty()).then(|| {
        format!(
            "the {} record of {} cannot be read: the group is not moved (its original subnets are unknown); check its subnets and repair or remove the tag",
            tags::EVACUATED,
            unreadable.join(", ")
        )
    });
    if steps.is_empty() {
        if let Some(reason) = &unreadable_reason {
            return Plan::declined(
                format!("Declined to evacuate {az} ({why}) for the group(s) whose record is unreadable."),
                reason.clone(),
                resources,
            )
            .with_severity(Severity::Warning)
            .with_skipped(skipped);
        }
        if !last_az.is_empty() {
            let reason = format!(
                "never remove an Auto Scaling group's last AZ: {} run only in {az}",
                last_az.join(", ")
            );
            return Plan::declined(
                format!("Declined to evacuate {az} ({why})."),
                reason,
                resources,
            )
            .with_severity(Severity::Critical)
            .with_skipped(skipped);
        }
        return Plan::noop(
            format!("Already evacuated from {az}; {why} already recorded."),
            resources,
        )
        .with_skipped(skipped);
    }
    let mut situation = if moved > 0 {
        format!(
            "{az} is impaired ({why}): moving {moved} Auto Scaling group(s) to their other AZs, capacity kept. {}.",
            notes.join("; ")
        )
    } else {
        format!("{az} is already evacuated; {why} is recorded as one more reason to keep it so.")
    };
    if moved > 0 && noted > 0 {
        situation.push_str(&format!(
            " {why} is recorded on {noted} group(s) already out of {az}."
        ));
    }
    let mut reasons = vec![];
    if !last_az.is_empty() {
        situation.push_str(&format!(" Not moved (last AZ): {}.", last_az.join(", ")));
        reasons.push(format!(
            "never remove an Auto Scaling group's last AZ: {}",
            last_az.join(", ")
        ));
    }
    if !overflowed.is_empty() {
        reasons.push(format!(
            "the evacuation record of {} cannot name another signal for {az} (256-character tag): \
             the zone now stays evacuated until an operator restores it",
            overflowed.join(", ")
        ));
    }
    reasons.extend(unreadable_reason.clone());
    let severity = if !last_az.is_empty() {
        Severity::Critical
    } else if moved > 0 || !overflowed.is_empty() || unreadable_reason.is_some() {
        Severity::Warning
    } else {
        Severity::Info
    };
    Plan::act(situation, steps, resources)
        .with_skipped(skipped)
        .with_reasons(reasons)
        .with_severity(severity)
}

fn restore(fleet: &FleetState, change: &Change, az: &str) -> Plan {
    let evacuated: Vec<(&GroupState, Result<Evacuation, String>)> = fleet
        .groups
        .iter()
        .filter_map(|g| {
            let parsed = Evacuation::parse(g.evacuated.as_deref()?);
            let concerns = match &parsed {
                Ok(e) => e.azs.contains_key(az),
                Err(_) => true,
            };
            concerns.then_some((g, parsed))
        })
        .collect();
    if evacuated.is_empty() {
        return Plan::noop(
            format!("No managed Auto Scaling group is evacuated from {az}."),
            vec![],
        );
    }
    let groups: Vec<&GroupState> = evacuated.iter().map(|(g, _)| *g).collect();
    let resources = resources(&groups);
    let cleared = match change {
        Change::Clear(signals) => signals
            .iter()
            .map(Signal::describe)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "an operator's restore".to_string(),
    };

    let mut steps = vec![];
    let mut skipped = vec![];
    let mut conflicts = vec![];
    let mut restored = 0;
    // Groups that stay out of the zone, and what still holds them.
    let mut kept: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut untouched: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut overridden = BTreeSet::new();
    for (g, parsed) in evacuated {
        let e = match parsed {
            Ok(e) => e,
            Err(reason) => {
                skipped.push(record(
                    g,
                    ActionKind::Restore,
                    ActionStatus::Skipped,
                    reason.clone(),
                ));
                conflicts.push(format!("{}: {reason}", g.name));
                continue;
            }
        };
        let hold = e.azs.get(az).cloned().unwrap_or_default();
        if let Change::Clear(signals) = change {
            if !hold.unnamed() {
                let mut rest = hold.clone();
                rest.signals.retain(|s| !signals.contains(s));
                if rest.signals.len() == hold.signals.len() {
                    untouched
                        .entry(hold.describe())
                        .or_default()
                        .push(g.name.clone());
                    continue;
                }
                if !rest.unnamed() {
                    let mut fewer = e.clone();
                    fewer.azs.insert(az.to_string(), rest.clone());
                    steps.push(Step::TagGroup {
                        asg: g.name.clone(),
                        key: tags::EVACUATED.into(),
                        value: fewer.encode(),
                    });
                    kept.entry(rest.describe())
                        .or_default()
                        .push(g.name.clone());
                    continue;
                }
            }
        } else if !hold.signals.is_empty() || hold.overflow {
            overridden.insert(hold.describe());
        }
        // Subnets of zones that stay evacuated, and what the group holds
        // once this zone is back.
        let stays_out = |s: &String| {
            fleet
                .subnet_zone
                .get(s)
                .is_some_and(|z| z != az && e.azs.contains_key(z))
        };
        let expected: BTreeSet<&String> = e
            .subnets
            .iter()
            .filter(|s| !stays_out(s) && !in_zone(fleet, s, az))
            .collect();
        let back: Vec<String> = e
            .subnets
            .iter()
            .filter(|s| !stays_out(s))
            .cloned()
            .collect();
        let recorded: BTreeSet<&String> = e.subnets.iter().collect();
        let current: BTreeSet<&String> = g.subnets.iter().collect();
        // Anything between the evacuated state and the restored one is
        // Ballast's own doing (a plan cut short, an answer lost): finish it.
        // A subnet outside the record, or a kept one missing, is not.
        let subnets_back = current == back.iter().collect::<BTreeSet<_>>();
        let last = e.azs.len() == 1;
        // With the subnets all back, the max size tells Ballast's restore
        // (the original, or the desired capacity above it) from an
        // operator's hand.
        let ballast_max = [e.max_size, e.max_size.max(g.desired)];
        let operator_max = last && subnets_back && !ballast_max.contains(&g.max_size);
        if !(expected.is_subset(&current) && current.is_subset(&recorded)) || operator_max {
            let detail = format!(
                "declined: its subnets or max size changed since the evacuation (expected {}, found {} with max \
                 size {}); not clobbering an operator's change. Before the evacuation they were {} with max size {}: restore by hand and \
                 remove the {} tag",
                join(&expected),
                join(&current),
                g.max_size,
                e.subnets.join(","),
                e.max_size,
                tags::EVACUATED
            );
            conflicts.push(format!("ASG {} {detail}", g.name));
            skipped.push(record(
                g,
                ActionKind::Restore,
                ActionStatus::Skipped,
                detail,
            ));
            continue;
        }
        restored += 1;
        let max_size = (last && g.max_size != e.max_size).then(|| e.max_size.max(g.desired));
        // Subnets (and max size) first, the record after: a restore cut
        // short leaves the record naming what is still missing.
        if !subnets_back || max_size.is_some() {
            steps.push(Step::UpdateGroup {
                asg: g.name.clone(),
                subnets: back,
                max_size,
            });
        }
        if last {
            steps.push(Step::UntagGroup {
                asg: g.name.clone(),
                key: tags::EVACUATED.into(),
            });
        } else {
            let mut rest = e.clone();
            rest.azs.remove(az);
            steps.push(Step::TagGroup {
                asg: g.name.clone(),
                key: tags::EVACUATED.into(),
                value: rest.encode(),
            });
        }
    }
    let held = |by: &BTreeMap<String, Vec<String>>| -> Vec<String> {
        by.iter()
            .map(|(hold, groups)| format!("{} held by {hold}", groups.join(", ")))
            .collect()
    };
    let mut staying = held(&kept);
    staying.extend(held(&untouched));
    let override_note = (!overridden.is_empty()).then(|| {
        format!(
            "an operator's restore clears every signal, including {}",
            overridden.into_iter().collect::<Vec<_>>().join("; ")
        )
    });
    if steps.is_empty() {
        if conflicts.is_empty() {
            return Plan::noop(
                format!("{az} stays evacuated: {}.", staying.join("; ")),
                resources,
            )
            .with_reason(format!("{cleared} did not hold it"));
        }
        return Plan::declined(
            format!("Declined to restore {az}."),
            conflicts.join("; "),
            resources,
        )
        .with_severity(Severity::Warning)
        .with_skipped(skipped);
    }
    let mut situation = if restored > 0 {
        format!("{az} has recovered ({cleared}): restoring {restored} Auto Scaling group(s) to their subnets.")
    } else {
        format!("{cleared} is over for {az}, but the zone stays evacuated.")
    };
    if !staying.is_empty() {
        situation.push_str(&format!(" Still out of {az}: {}.", staying.join("; ")));
    }
    let mut reasons = conflicts.clone();
    reasons.extend(override_note);
    let severity = if conflicts.is_empty() {
        Severity::Info
    } else {
        Severity::Warning
    };
    Plan::act(situation, steps, resources)
        .with_skipped(skipped)
        .with_reasons(reasons)
        .with_severity(severity)
}

fn join(set: &BTreeSet<&String>) -> String {
    set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Verdict;
    use crate::event::zonal::Direction;
    use proptest::prelude::*;

    const A: &str = "us-east-1a";
    const B: &str = "us-east-1b";
    const C: &str = "us-east-1c";
    const T0: i64 = 1_764_590_000;
    const ONE: Policy = Policy {
        max_evacuated_azs: 1,
        now: T0,
    };

    fn evac() -> Change {
        Change::Raise(Signal::Operator)
    }

    fn restore_all() -> Change {
        Change::ClearAll
    }

    fn change(dir: Direction) -> Change {
        match dir {
            Direction::Evacuate => evac(),
            Direction::Restore => restore_all(),
        }
    }

    fn zones() -> BTreeMap<String, String> {
        [
            ("subnet-a", A),
            ("subnet-b", B),
            ("subnet-c", C),
            ("subnet-a2", A),
        ]
        .into_iter()
        .map(|(s, z)| (s.to_string(), z.to_string()))
        .collect()
    }

    fn group(name: &str, subnets: &[&str]) -> GroupState {
        GroupState {
            name: name.into(),
            arn: None,
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            max_size: 2,
            desired: 2,
            instances: vec![("i-a".into(), A.into()), ("i-b".into(), B.into())],
            evacuated: None,
        }
    }

    fn fleet(groups: Vec<GroupState>) -> FleetState {
        FleetState {
            groups,
            subnet_zone: zones(),
        }
    }

    /// What the executor would leave behind.
    fn apply(f: &FleetState, plan: &Plan) -> FleetState {
        let mut f = f.clone();
        for step in &plan.steps {
            let g = f
                .groups
                .iter_mut()
                .find(|g| g.name == step.asg().unwrap())
                .unwrap();
            match step {
                Step::UpdateGroup {
                    subnets, max_size, ..
                } => {
                    g.subnets = subnets.clone();
                    if let Some(m) = max_size {
                        g.max_size = *m;
                    }
                }
                Step::TagGroup { value, .. } => g.evacuated = Some(value.clone()),
                Step::UntagGroup { .. } => g.evacuated = None,
                other => unreachable!("{other:?}"),
            }
        }
        f
    }

    fn hold(since: i64, signals: &[Signal]) -> Hold {
        Hold {
            since: Some(since),
            signals: signals.iter().cloned().collect(),
            overflow: false,
        }
    }

    #[test]
    fn the_record_round_trips_and_fits_tag_rules() {
        let e = Evacuation {
            azs: [
                (
                    A.to_string(),
                    hold(
                        T0,
                        &[Signal::Alarm("web canary".into()), Signal::health("arn:x")],
                    ),
                ),
                (
                    B.to_string(),
                    Hold {
                        overflow: true,
                        ..hold(T0 + 60, &[])
                    },
                ),
            ]
            .into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            max_size: 4,
            extra: Extra::default(),
        };
        let v = e.encode();
        assert_eq!(
            v,
            format!(
                "azs=us-east-1a@{T0}/us-east-1b@{} subnets=subnet-a/subnet-b max=4 by=us-east-1a/{} \
                 by=us-east-1a/alarm:web+20canary by=us-east-1b/more",
                T0 + 60,
                Signal::health("arn:x").token()
            )
        );
        assert!(v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)));
        assert_eq!(Evacuation::parse(&v), Ok(e.clone()));
        for bad in [
            "rubbish",
            "azs= subnets=x max=1",
            "azs=us-east-1a subnets=x max=1 by=us-east-1b/operator",
            "azs=us-east-1a subnets=x max=1 by=us-east-1a/nonsense",
            "azs=us-east-1a@soon subnets=x max=1",
            "azs=us-east-1a subnets=x max=1 azs=us-east-1b",
        ] {
            assert!(Evacuation::parse(bad).is_err(), "{bad}");
        }
        // A field a later version adds is read past and kept on rewrite.
        let later = Evacuation::parse(&format!("{v} ttl=9")).unwrap();
        assert_eq!(
            Evacuation {
                extra: Extra::default(),
                ..later.clone()
            },
            e
        );
        assert_eq!(later.encode(), format!("{v} ttl=9"));
        // A record from before signals were kept still reads.
        let legacy = Evacuation::parse("azs=us-east-1a subnets=subnet-a/subnet-b max=4").unwrap();
        assert!(legacy.azs[A].unnamed());
    }

    #[test]
    fn evacuation_removes_the_zone_and_records_the_original() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let plan = decide(&f, &evac(), A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Warning);
        assert_eq!(
            plan.steps,
            vec![
                Step::TagGroup {
                    asg: "web".into(),
                    key: tags::EVACUATED.into(),
                    value: "azs=us-east-1a@1764590000 subnets=subnet-a/subnet-b max=2 by=us-east-1a/operator"
                        .into()
                },
                // 2 desired + 1 instance still in the AZ: room to launch before terminating.
                Step::UpdateGroup {
                    asg: "web".into(),
                    subnets: vec!["subnet-b".into()],
                    max_size: Some(3)
                },
            ]
        );
        assert!(
            plan.situation
                .contains("still has 1 instance(s) in us-east-1a (i-a)"),
            "{}",
            plan.situation
        );
    }

    #[test]
    fn restore_puts_back_subnets_and_max_size_and_removes_the_tag() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let evacuated = apply(&f, &decide(&f, &evac(), A, &ONE));
        let plan = decide(&evacuated, &restore_all(), A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(
            plan.steps,
            vec![
                Step::UpdateGroup {
                    asg: "web".into(),
                    subnets: vec!["subnet-a".into(), "subnet-b".into()],
                    max_size: Some(2)
                },
                Step::UntagGroup {
                    asg: "web".into(),
                    key: tags::EVACUATED.into()
                },
            ]
        );
        assert_eq!(apply(&evacuated, &plan), f);
    }

    #[test]
    fn unaffected_and_already_evacuated_are_noops() {
        let f = fleet(vec![group("web", &["subnet-b", "subnet-c"])]);
        assert_eq!(decide(&f, &evac(), A, &ONE).verdict, Verdict::Noop);
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let once = apply(&f, &decide(&f, &evac(), A, &ONE));
        let twice = decide(&once, &evac(), A, &ONE);
        assert_eq!(twice.verdict, Verdict::Noop);
        assert!(twice.skipped[0].detail.contains("already evacuated"));
        assert_eq!(decide(&f, &restore_all(), A, &ONE).verdict, Verdict::Noop);
    }

    #[test]
    fn never_remove_an_asgs_last_az() {
        let f = fleet(vec![group("single", &["subnet-a", "subnet-a2"])]);
        let plan = decide(&f, &evac(), A, &ONE);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Declined, Severity::Critical)
        );
        assert!(plan.reason.unwrap().contains("last AZ"));

        let mixed = fleet(vec![
            group("single", &["subnet-a"]),
            group("web", &["subnet-a", "subnet-b"]),
        ]);
        let plan = decide(&mixed, &evac(), A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Critical);
        assert!(plan.steps.iter().all(|s| s.asg() == Some("web")));
    }

    #[test]
    fn a_second_az_while_one_is_evacuated_is_declined() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b", "subnet-c"])]);
        let once = apply(&f, &decide(&f, &evac(), A, &ONE));
        let plan = decide(&once, &evac(), B, &ONE);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Declined, Severity::Critical)
        );
        assert!(plan
            .reason
            .unwrap()
            .contains("already evacuated: [us-east-1a]"));
        assert_eq!(
            decide(
                &once,
                &evac(),
                B,
                &Policy {
                    max_evacuated_azs: 2,
                    ..ONE
                }
            )
            .verdict,
            Verdict::Act
        );
        assert_eq!(
            decide(
                &f,
                &evac(),
                A,
                &Policy {
                    max_evacuated_azs: 0,
                    ..ONE
                }
            )
            .verdict,
            Verdict::Declined
        );
    }

    #[test]
    fn two_azs_evacuated_are_restored_one_at_a_time() {
        let two = Policy {
            max_evacuated_azs: 2,
            ..ONE
        };
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b", "subnet-c"])]);
        let s1 = apply(&f, &decide(&f, &evac(), A, &two));
        let s2 = apply(&s1, &decide(&s1, &evac(), B, &two));
        assert_eq!(s2.groups[0].subnets, ["subnet-c"]);
        assert_eq!(
            s2.groups[0].evacuated.as_deref(),
            Some(
                "azs=us-east-1a@1764590000/us-east-1b@1764590000 subnets=subnet-a/subnet-b/subnet-c max=2 \
                 by=us-east-1a/operator by=us-east-1b/operator"
            )
        );
        let r1 = apply(&s2, &decide(&s2, &restore_all(), A, &two));
        assert_eq!(r1.groups[0].subnets, ["subnet-a", "subnet-c"]);
        let r2 = apply(&r1, &decide(&r1, &restore_all(), B, &two));
        assert_eq!(r2.groups[0].subnets, ["subnet-a", "subnet-b", "subnet-c"]);
        assert_eq!(r2.groups[0].evacuated, None);
    }

    #[test]
    fn an_operators_change_is_not_clobbered_on_restore() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let mut evacuated = apply(&f, &decide(&f, &evac(), A, &ONE));
        evacuated.groups[0].subnets = vec!["subnet-b".into(), "subnet-c".into()];
        let plan = decide(&evacuated, &restore_all(), A, &ONE);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Declined, Severity::Warning)
        );
        let reason = plan.reason.unwrap();
        assert!(
            reason.contains("expected subnet-b, found subnet-b,subnet-c"),
            "{reason}"
        );
        assert!(
            reason.contains("subnet-a,subnet-b with max size 2"),
            "{reason}"
        );
    }

    #[test]
    fn an_unreadable_tag_is_reported_not_guessed() {
        let mut g = group("web", &["subnet-b"]);
        g.evacuated = Some("by hand".into());
        let plan = decide(&fleet(vec![g]), &restore_all(), A, &ONE);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan
            .reason
            .unwrap()
            .contains("is not a record Ballast wrote"));
    }

    /// An evacuation record Ballast cannot read counts as a zone held
    /// (the evacuated-AZ limit declines another zone), and the group is not
    /// moved: declined, at least a warning, published — never a `noop`
    /// that says the zone is out when it is not.
    #[test]
    fn an_unreadable_record_is_held_and_said_never_dropped() {
        let mut web = group("web", &["subnet-a", "subnet-b"]);
        web.evacuated = Some("azs=us-east-1a edited by hand".into());
        let api = group("api", &["subnet-b", "subnet-c"]);
        let f = fleet(vec![web, api]);

        // Another zone: the limit counts the unreadable record.
        let other = decide(&f, &evac(), C, &ONE);
        assert_eq!(other.verdict, Verdict::Declined, "{other:#?}");
        assert_eq!(other.severity, Severity::Critical);
        assert!(other
            .reason
            .as_deref()
            .unwrap()
            .contains("unreadable ballast:evacuated on web"));
        assert!(other.steps.is_empty());

        // Its own zone, under a limit of two: web is not moved, and the
        // decision says why.
        let only_web = fleet(vec![f.groups[0].clone()]);
        let two = Policy {
            max_evacuated_azs: 2,
            ..ONE
        };
        let own = decide(&only_web, &evac(), A, &two);
        assert_eq!(own.verdict, Verdict::Declined, "{own:#?}");
        assert!(own.severity >= Severity::Warning);
        assert!(own.steps.is_empty());
        assert!(
            own.reason.as_deref().unwrap().contains("record of web"),
            "{:?}",
            own.reason
        );
        // Under a limit of one, the unreadable record is that one zone.
        let own = decide(&only_web, &evac(), A, &ONE);
        assert_eq!(own.verdict, Verdict::Declined, "{own:#?}");
        assert!(own.steps.is_empty());
    }

    fn alarm() -> Signal {
        Signal::Alarm("web-canary-a".into())
    }

    fn health() -> Signal {
        Signal::health("arn:aws:health:us-east-1::event/EC2/X/X_1")
    }

    #[test]
    fn a_zone_is_restored_only_when_its_last_signal_clears() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let s1 = apply(&f, &decide(&f, &Change::Raise(alarm()), A, &ONE));
        assert_eq!(s1.groups[0].subnets, ["subnet-b"]);
        // A second signal for the same zone is recorded, nothing moves.
        let plan = decide(&s1, &Change::Raise(health()), A, &ONE);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Act, Severity::Info)
        );
        assert!(
            matches!(plan.steps.as_slice(), [Step::TagGroup { .. }]),
            "{plan:#?}"
        );
        let s2 = apply(&s1, &plan);
        assert_eq!(holds(&s2)[A].signals, BTreeSet::from([alarm(), health()]));
        // The alarm's OK removes only the alarm: the zone stays out.
        let plan = decide(&s2, &Change::Clear(vec![alarm()]), A, &ONE);
        assert!(
            matches!(plan.steps.as_slice(), [Step::TagGroup { .. }]),
            "{plan:#?}"
        );
        assert!(
            plan.situation.contains("stays evacuated"),
            "{}",
            plan.situation
        );
        assert!(
            plan.situation.contains("AWS Health issue"),
            "{}",
            plan.situation
        );
        let s3 = apply(&s2, &plan);
        assert_eq!(s3.groups[0].subnets, ["subnet-b"]);
        // The same OK again changes nothing.
        let again = decide(&s3, &Change::Clear(vec![alarm()]), A, &ONE);
        assert_eq!(again.verdict, Verdict::Noop, "{again:#?}");
        // Health's closing event was the last signal: restored.
        let plan = decide(&s3, &Change::Clear(vec![health()]), A, &ONE);
        assert!(
            plan.situation.contains("has recovered"),
            "{}",
            plan.situation
        );
        assert_eq!(apply(&s3, &plan), f);
    }

    #[test]
    fn an_operators_restore_clears_every_signal_and_says_so() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let out = apply(&f, &decide(&f, &Change::Raise(health()), A, &ONE));
        let plan = decide(&out, &Change::ClearAll, A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        let reason = plan.reason.clone().unwrap();
        assert!(
            reason.contains("clears every signal, including AWS Health issue"),
            "{reason}"
        );
        assert_eq!(apply(&out, &plan), f);
    }

    #[test]
    fn a_record_from_before_signals_is_restored_by_any_clearing_signal() {
        let mut g = group("web", &["subnet-b"]);
        g.evacuated = Some("azs=us-east-1a subnets=subnet-a/subnet-b max=2".into());
        let legacy = fleet(vec![g]);
        let plan = decide(&legacy, &Change::Clear(vec![alarm()]), A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(apply(&legacy, &plan).groups[0].evacuated, None);
    }

    #[test]
    fn a_record_that_cannot_name_another_signal_holds_the_zone_for_an_operator() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let mut state = f.clone();
        let long =
            |i: usize| Signal::Alarm(format!("zonal-canary-for-the-checkout-service-{i:02}"));
        let mut overflowed = false;
        for i in 0..8 {
            let plan = decide(&state, &Change::Raise(long(i)), A, &ONE);
            assert_eq!(plan.verdict, Verdict::Act, "{plan:#?}");
            if let Some(r) = &plan.reason {
                assert!(r.contains("until an operator restores it"), "{r}");
                overflowed = true;
            }
            state = apply(&state, &plan);
            let value = state.groups[0].evacuated.clone().unwrap();
            assert!(value.len() <= tags::VALUE_MAX, "{}", value.len());
            // The subnets are never lost.
            assert_eq!(
                Evacuation::parse(&value).unwrap().subnets,
                ["subnet-a", "subnet-b"]
            );
            if overflowed {
                break;
            }
        }
        assert!(overflowed);
        assert!(holds(&state)[A].overflow);
        for i in 0..8 {
            let plan = decide(&state, &Change::Clear(vec![long(i)]), A, &ONE);
            assert!(plan.steps.is_empty(), "{plan:#?}");
        }
        let plan = decide(&state, &Change::ClearAll, A, &ONE);
        assert_eq!(apply(&state, &plan), f);
    }

    #[test]
    fn the_sweep_clears_alarms_back_to_ok_or_deleted_and_ended_autoshifts_only() {
        let held: BTreeMap<String, Hold> = [
            (
                A.to_string(),
                hold(T0, &[alarm(), Signal::Alarm("gone".into()), health()]),
            ),
            (
                B.to_string(),
                hold(
                    T0,
                    &[
                        Signal::Alarm("dark".into()),
                        Signal::Autoshift,
                        Signal::FisAutoshift,
                    ],
                ),
            ),
            (
                C.to_string(),
                hold(T0, &[Signal::Autoshift, Signal::Operator]),
            ),
        ]
        .into();
        let alarms: BTreeMap<String, String> = [
            ("web-canary-a".to_string(), "OK".to_string()),
            ("dark".to_string(), "INSUFFICIENT_DATA".to_string()),
        ]
        .into();
        let unread = Readings {
            alarms: alarms.clone(),
            autoshifts: None,
        };
        assert_eq!(
            resync(&held, &unread),
            BTreeMap::from([(A.to_string(), vec![Signal::Alarm("gone".into()), alarm()])])
        );
        let read = Readings {
            alarms,
            autoshifts: Some(BTreeSet::from([B.to_string()])),
        };
        let over = resync(&held, &read);
        assert_eq!(over[C], vec![Signal::Autoshift]);
        assert!(!over.contains_key(B), "{over:?}");
    }

    #[test]
    fn a_long_evacuation_is_reported_never_restored_by_age() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let out = apply(&f, &decide(&f, &Change::Raise(health()), A, &ONE));
        let hold = &holds(&out)[A];
        let fresh = still_held(&out, A, hold, T0 + 12 * 3600, 12);
        assert_eq!(fresh.verdict, Verdict::Noop, "{fresh:#?}");
        let old = still_held(&out, A, hold, T0 + 12 * 3600 + 1, 12);
        assert_eq!(
            (old.verdict, old.severity),
            (Verdict::Declined, Severity::Warning)
        );
        assert!(old.steps.is_empty());
        assert_eq!(old.resources, ["web"]);
        assert!(old
            .reason
            .unwrap()
            .contains("BALLAST_EVACUATION_WARN_HOURS=12"));
    }

    fn arb_fleet() -> impl Strategy<Value = FleetState> {
        let subnets =
            prop::sample::subsequence(vec!["subnet-a", "subnet-b", "subnet-c", "subnet-a2"], 1..=4);
        prop::collection::vec(subnets, 1..4).prop_map(|gs| {
            fleet(
                gs.iter()
                    .enumerate()
                    .map(|(i, s)| group(&format!("g{i}"), s))
                    .collect(),
            )
        })
    }

    fn arb_zone() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just(A), Just(B), Just(C)]
    }

    /// Raising or clearing one of three signals, or an operator's restore.
    fn arb_change() -> impl Strategy<Value = Change> {
        let signal = prop_oneof![
            Just(Signal::Operator),
            Just(Signal::Alarm("canary".into())),
            Just(Signal::health("arn:aws:health:us-east-1::event/EC2/X/X_1")),
        ];
        (signal, 0..3u8).prop_map(|(s, k)| match k {
            0 => Change::Raise(s),
            1 => Change::Clear(vec![s]),
            _ => Change::ClearAll,
        })
    }

    proptest! {
        #[test]
        fn never_empties_a_group_nor_exceeds_the_evacuated_az_limit(
            f in arb_fleet(), zs in prop::collection::vec((arb_zone(), any::<bool>()), 1..6), max in 0u32..3
        ) {
            let policy = Policy { max_evacuated_azs: max, ..ONE };
            let mut state = f;
            for (z, evac) in zs {
                let dir = if evac { Direction::Evacuate } else { Direction::Restore };
                let plan = decide(&state, &change(dir), z, &policy);
                for s in &plan.steps {
                    if let Step::UpdateGroup { subnets, .. } = s {
                        prop_assert!(!subnets.is_empty(), "a group's last AZ was removed");
                    }
                }
                state = apply(&state, &plan);
                prop_assert!(evacuated_azs(&state).len() as u32 <= max);
                // Deciding again on the result changes nothing (convergence).
                let again = decide(&state, &change(dir), z, &policy);
                prop_assert!(again.steps.is_empty(), "{:?}", again);
            }
        }
    }

    /// The chains of a plan, as the executor runs them: each group's steps
    /// in order.
    fn chains(plan: &Plan) -> Vec<Vec<Step>> {
        let mut chains: Vec<Vec<Step>> = vec![];
        for step in &plan.steps {
            match chains.iter_mut().find(|c| c[0].chain() == step.chain()) {
                Some(c) => c.push(step.clone()),
                None => chains.push(vec![step.clone()]),
            }
        }
        chains
    }

    /// Every state the executor can leave `plan` in: each chain cut after
    /// any of its steps (a step refused for good, or the process killed),
    /// independently of the others. A step applied with its answer lost
    /// leaves the same state as the longer prefix.
    fn prefixes(f: &FleetState, plan: &Plan) -> Vec<FleetState> {
        let mut states = vec![f.clone()];
        for chain in chains(plan) {
            states = states
                .iter()
                .flat_map(|s| {
                    (0..=chain.len()).map(|k| {
                        let cut = Plan {
                            evidence: Default::default(),
                            steps: chain[..k].to_vec(),
                            ..plan.clone()
                        };
                        apply(s, &cut)
                    })
                })
                .collect();
        }
        states
    }

    /// Delivers `(direction, zone)` again and again, applying each plan
    /// whole, until nothing is left to do.
    fn converge(mut f: FleetState, c: &Change, az: &str, policy: &Policy) -> FleetState {
        for _ in 0..6 {
            let plan = decide(&f, c, az, policy);
            if plan.steps.is_empty() {
                return f;
            }
            f = apply(&f, &plan);
        }
        panic!("no convergence for {c:?} {az}: {f:#?}");
    }

    /// I1 and I2: a group missing any subnet it had at the start carries a
    /// readable record naming the missing ones; a group without a record has
    /// all of them and its original max size.
    fn check_invariants(original: &FleetState, f: &FleetState) -> Result<(), String> {
        for (g0, g) in original.groups.iter().zip(&f.groups) {
            let missing: Vec<&String> = g0
                .subnets
                .iter()
                .filter(|s| !g.subnets.contains(s))
                .collect();
            match g.evacuated.as_deref().map(Evacuation::parse) {
                None if !missing.is_empty() => {
                    return Err(format!("I1: {} lacks {missing:?} with no record", g.name))
                }
                None if g.max_size != g0.max_size => {
                    return Err(format!(
                        "I2: {} has no record but max {}",
                        g.name, g.max_size
                    ))
                }
                None => {}
                Some(Err(e)) => return Err(format!("{}: {e}", g.name)),
                Some(Ok(e)) => {
                    if let Some(s) = missing.iter().find(|s| !e.subnets.contains(s)) {
                        return Err(format!("I1: {}'s record does not name {s}", g.name));
                    }
                    // Nothing stranded: every zone the record holds out has
                    // a reason to stay out (a signal, or the overflow mark).
                    if let Some((az, _)) = e.azs.iter().find(|(_, h)| h.unnamed()) {
                        return Err(format!("{}'s record holds {az} with no signal", g.name));
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs `ops` with the first plan of operation `faulty` cut to every
    /// prefix the executor can leave behind; after each prefix, the
    /// invariants hold, and redelivering converges to the fault-free state
    /// of every later operation. Returns the number of prefixes tried.
    fn every_prefix_converges(
        f: &FleetState,
        ops: &[(Change, &str)],
        faulty: usize,
        policy: &Policy,
    ) -> Result<usize, String> {
        let mut clean = vec![f.clone()];
        for (c, az) in ops {
            let next = converge(clean.last().unwrap().clone(), c, az, policy);
            clean.push(next);
        }
        let (c, az) = &ops[faulty];
        let before = &clean[faulty];
        let plan = decide(before, c, az, policy);
        let cuts = prefixes(before, &plan);
        for cut in &cuts {
            check_invariants(f, cut)?;
            let mut state = cut.clone();
            for (i, (c, az)) in ops.iter().enumerate().skip(faulty) {
                // Redeliveries in between: each plan prefix-cut again once,
                // at its first step, and the invariants hold there too.
                let first = decide(&state, c, az, policy);
                if let Some(step) = first.steps.first() {
                    let one = apply(
                        &state,
                        &Plan {
                            steps: vec![step.clone()],
                            ..first.clone()
                        },
                    );
                    check_invariants(f, &one)?;
                    state = one;
                }
                state = converge(state, c, az, policy);
                check_invariants(f, &state)?;
                if state != clean[i + 1] {
                    return Err(format!(
                        "after {c:?} {az} the state differs from the fault-free one: {state:#?} vs {:#?}",
                        clean[i + 1]
                    ));
                }
            }
        }
        Ok(cuts.len())
    }

    #[test]
    fn every_prefix_of_every_plan_is_safe_and_converges() {
        let two = Policy {
            max_evacuated_azs: 2,
            ..ONE
        };
        let fleets = [
            fleet(vec![group("web", &["subnet-a", "subnet-b"])]),
            fleet(vec![
                group("web", &["subnet-a", "subnet-b", "subnet-c"]),
                group("api", &["subnet-a", "subnet-a2", "subnet-b"]),
                group("single", &["subnet-a"]),
            ]),
        ];
        let alarm = || Signal::Alarm("web-canary-a".into());
        let health = || Signal::health("arn:aws:health:us-east-1::event/EC2/X/X_1");
        let raise = |s: Signal| Change::Raise(s);
        let clear = |s: Signal| Change::Clear(vec![s]);
        let (ev, re) = (Direction::Evacuate, Direction::Restore);
        let sequences: Vec<Vec<(Change, &str)>> = vec![
            vec![(change(ev), A), (change(re), A)],
            vec![
                (change(ev), A),
                (change(ev), B),
                (change(re), A),
                (change(re), B),
            ],
            vec![
                (change(ev), B),
                (change(ev), A),
                (change(re), B),
                (change(re), A),
            ],
            vec![(change(ev), C), (change(re), C), (change(ev), A)],
            // Two signals for one zone; the first to clear keeps it out.
            vec![
                (raise(alarm()), A),
                (raise(health()), A),
                (clear(alarm()), A),
                (clear(health()), A),
            ],
            // A clear for a signal that never held it, then an operator's
            // restore over a signal still active.
            vec![
                (raise(health()), A),
                (clear(alarm()), A),
                (raise(alarm()), B),
                (change(re), A),
                (clear(alarm()), B),
            ],
        ];
        let mut prefixes = 0;
        for f in &fleets {
            for ops in &sequences {
                for faulty in 0..ops.len() {
                    for policy in [&ONE, &two] {
                        prefixes += every_prefix_converges(f, ops, faulty, policy)
                            .unwrap_or_else(|e| panic!("{ops:?} fault at {faulty}: {e}"));
                    }
                }
            }
        }
        println!("az-impairment: {prefixes} plan prefixes, each converged");
        assert!(prefixes > 100, "{prefixes}");
    }

    #[test]
    fn a_restore_whose_answer_was_lost_is_finished_not_declined() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let evacuated = apply(&f, &decide(&f, &evac(), A, &ONE));
        let plan = decide(&evacuated, &restore_all(), A, &ONE);
        // The subnet update applied, its answer lost: the record remains.
        let half = apply(
            &evacuated,
            &Plan {
                steps: plan.steps[..1].to_vec(),
                ..plan
            },
        );
        let again = decide(&half, &restore_all(), A, &ONE);
        assert_eq!(again.verdict, Verdict::Act, "{again:#?}");
        assert_eq!(
            again.steps,
            [Step::UntagGroup {
                asg: "web".into(),
                key: tags::EVACUATED.into()
            }]
        );
        assert_eq!(apply(&half, &again), f);
    }

    proptest! {
        #[test]
        fn random_fleets_every_prefix_converges(
            f in arb_fleet(), zs in prop::collection::vec((arb_zone(), arb_change()), 1..5), max in 1u32..3, faulty in 0usize..5
        ) {
            let ops: Vec<(Change, &str)> = zs
                .iter()
                .map(|(z, c)| (c.clone(), *z))
                .collect();
            let policy = Policy { max_evacuated_azs: max, ..ONE };
            let faulty = faulty.min(ops.len() - 1);
            if let Err(e) = every_prefix_converges(&f, &ops, faulty, &policy) {
                prop_assert!(false, "{:?} fault at {}: {}", ops, faulty, e);
            }
        }
    }
}
