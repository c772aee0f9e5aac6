//! Evacuating a zone: each affected group's subnets in it removed (its
//! capacity kept), after the record that brings them back.

use std::collections::BTreeMap;

use super::holds::evacuated_azs;
use super::records::{Evacuation, Hold};
use super::state::{in_zone, record, resources, FleetState, ZonedGroup};
use super::Policy;
use crate::decide::{Decline, Plan, Step};
use crate::event::zonal::Signal;
use crate::records::{Extra, Unreadable};
use crate::report::{ActionKind, ActionRecord, ActionStatus, Severity};
use crate::tags;

/// What evacuating `az` does to one group.
enum Move {
    /// Its record cannot be read: held, not moved.
    Unreadable(Unreadable),
    /// `az` is its last zone: not moved.
    LastZone,
    /// Nothing to do, with why.
    Nothing(String),
    /// Its record does not fit a tag: not moved.
    TooLong(String),
    /// The record (and, when `note` says so, the move): its steps.
    Steps {
        steps: Vec<Step>,
        /// The move, in words; `None` when only the record changes.
        note: Option<String>,
        /// The record could not name the signal: the zone now waits for an
        /// operator.
        overflowed: bool,
    },
}

/// What evacuating `az` did to each group, gathered.
#[derive(Default)]
struct Moves {
    steps: Vec<Step>,
    skipped: Vec<ActionRecord>,
    notes: Vec<String>,
    last_az: Vec<String>,
    moved: usize,
    noted: usize,
    overflowed: Vec<String>,
    unreadable: Vec<String>,
}

pub(super) fn evacuate(fleet: &FleetState, signal: &Signal, az: &str, policy: &Policy) -> Plan {
    let affected = affected(fleet, az);
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
    if let Some(plan) = over_the_limit(fleet, &affected, &why, az, policy) {
        return plan;
    }
    let mut all = Moves::default();
    for g in &affected {
        let skip = |detail: String| record(g, ActionKind::Evacuate, ActionStatus::Skipped, detail);
        match move_group(fleet, g, signal, az, policy) {
            Move::Unreadable(e) => {
                all.unreadable.push(format!("{} ({e})", g.name));
                all.skipped.push(skip(e.to_string()));
            }
            Move::LastZone => {
                all.last_az.push(g.name.clone());
                all.skipped.push(skip(format!(
                    "declined: {az} is the group's last AZ; removing it would leave no capacity"
                )));
            }
            Move::Nothing(detail) | Move::TooLong(detail) => all.skipped.push(skip(detail)),
            Move::Steps {
                steps,
                note,
                overflowed,
            } => {
                all.steps.extend(steps);
                if overflowed {
                    all.overflowed.push(g.name.clone());
                }
                match note {
                    Some(note) => {
                        all.moved += 1;
                        all.notes.push(note);
                    }
                    None => all.noted += 1,
                }
            }
        }
    }
    conclude(all, &why, az, resources)
}

/// The groups with a subnet in `az`, or a record holding them out of it.
fn affected<'a>(fleet: &'a FleetState, az: &str) -> Vec<&'a ZonedGroup> {
    fleet
        .groups
        .iter()
        .filter(|g| {
            g.subnets.iter().any(|s| in_zone(fleet, s, az))
                || matches!(g.evacuated.as_deref().map(Evacuation::parse), Some(Ok(e)) if e.azs.contains_key(az))
        })
        .collect()
}

/// The evacuated-AZ limit's refusal, when `az` would be one zone too many.
fn over_the_limit(
    fleet: &FleetState,
    affected: &[&ZonedGroup],
    why: &str,
    az: &str,
    policy: &Policy,
) -> Option<Plan> {
    let already = evacuated_azs(fleet);
    if already.contains(az) || (already.len() as u32) < policy.max_evacuated_azs {
        return None;
    }
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
    Some(
        Plan::declined(
            Decline::EvacuatedZoneLimit,
            situation,
            reason,
            resources(affected),
        )
        .with_severity(Severity::Critical)
        .with_skipped(skipped),
    )
}

/// One group out of `az`: the record (new, or with `signal` added), then
/// its subnets without `az` and, when rebalancing needs room, a larger max
/// size.
fn move_group(
    fleet: &FleetState,
    g: &ZonedGroup,
    signal: &Signal,
    az: &str,
    policy: &Policy,
) -> Move {
    let previous = match g.evacuated.as_deref().map(Evacuation::parse) {
        Some(Err(e)) => return Move::Unreadable(e),
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
        return Move::LastZone;
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
        return Move::Nothing(format!(
            "already evacuated from {az} (held by {})",
            hold.describe()
        ));
    }
    let Some((value, overflowed)) = fitting(&mut evacuation, az) else {
        return Move::TooLong(format!(
            "declined: the record of its {} subnets does not fit a tag (256 characters)",
            evacuation.subnets.len()
        ));
    };
    let mut steps = vec![Step::TagGroup {
        asg: g.name.clone(),
        key: tags::EVACUATED.into(),
        value,
    }];
    if !moving {
        return Move::Steps {
            steps,
            note: None,
            overflowed,
        };
    }
    let (update, note) = out_of_zone(g, remaining, az);
    steps.push(update);
    Move::Steps {
        steps,
        note: Some(note),
        overflowed,
    }
}

/// The group's subnets without `az` (and, when AZ rebalancing needs room
/// to launch replacements before terminating, a larger max size), and the
/// move in words.
fn out_of_zone(g: &ZonedGroup, remaining: Vec<String>, az: &str) -> (Step, String) {
    let stranded: Vec<&str> = g
        .instances
        .iter()
        .filter(|(_, z)| z == az)
        .map(|(i, _)| i.as_str())
        .collect();
    let needed = g.desired + stranded.len() as i32;
    let update = Step::UpdateGroup {
        asg: g.name.clone(),
        subnets: remaining,
        max_size: (needed > g.max_size).then_some(needed),
    };
    let note = if stranded.is_empty() {
        format!("ASG {} has no instance left in {az}", g.name)
    } else {
        format!(
            "ASG {} still has {} instance(s) in {az} ({}), replaced by AZ rebalancing",
            g.name,
            stranded.len(),
            stranded.join(", ")
        )
    };
    (update, note)
}

/// The record's tag value, and whether its signals for `az` had to give
/// way to the overflow mark to fit; `None` when even that does not fit.
fn fitting(evacuation: &mut Evacuation, az: &str) -> Option<(String, bool)> {
    let value = evacuation.encode();
    if value.len() <= tags::VALUE_MAX {
        return Some((value, false));
    }
    // The signals no longer fit: the zone is held until an operator
    // restores it, never released early, and the subnets stay named.
    if let Some(hold) = evacuation.azs.get_mut(az) {
        hold.signals.clear();
        hold.overflow = true;
    }
    let value = evacuation.encode();
    (value.len() <= tags::VALUE_MAX).then_some((value, true))
}

/// The plan from every group's move.
fn conclude(all: Moves, why: &str, az: &str, resources: Vec<String>) -> Plan {
    // A record Ballast cannot read is held, never dropped: the group is not
    // moved (its original subnets are not known), and a human is told.
    let unreadable_reason = (!all.unreadable.is_empty()).then(|| {
        format!(
            "the {} record of {} cannot be read: the group is not moved (its original subnets are unknown); check its subnets and repair or remove the tag",
            tags::EVACUATED,
            all.unreadable.join(", ")
        )
    });
    if all.steps.is_empty() {
        return nothing_moved(all, unreadable_reason, why, az, resources);
    }
    let mut situation = if all.moved > 0 {
        format!(
            "{az} is impaired ({why}): moving {} Auto Scaling group(s) to their other AZs, capacity kept. {}.",
            all.moved,
            all.notes.join("; ")
        )
    } else {
        format!("{az} is already evacuated; {why} is recorded as one more reason to keep it so.")
    };
    if all.moved > 0 && all.noted > 0 {
        situation.push_str(&format!(
            " {why} is recorded on {} group(s) already out of {az}.",
            all.noted
        ));
    }
    let mut reasons = vec![];
    if !all.last_az.is_empty() {
        situation.push_str(&format!(
            " Not moved (last AZ): {}.",
            all.last_az.join(", ")
        ));
        reasons.push(format!(
            "never remove an Auto Scaling group's last AZ: {}",
            all.last_az.join(", ")
        ));
    }
    if !all.overflowed.is_empty() {
        reasons.push(format!(
            "the evacuation record of {} cannot name another signal for {az} (256-character tag): \
             the zone now stays evacuated until an operator restores it",
            all.overflowed.join(", ")
        ));
    }
    let severity = if !all.last_az.is_empty() {
        Severity::Critical
    } else if all.moved > 0 || !all.overflowed.is_empty() || unreadable_reason.is_some() {
        Severity::Warning
    } else {
        Severity::Info
    };
    reasons.extend(unreadable_reason);
    Plan::act(situation, all.steps, resources)
        .with_skipped(all.skipped)
        .with_reasons(reasons)
        .with_severity(severity)
}

/// No group moves: declined (an unreadable record, a last zone), or
/// already done.
fn nothing_moved(
    all: Moves,
    unreadable_reason: Option<String>,
    why: &str,
    az: &str,
    resources: Vec<String>,
) -> Plan {
    if let Some(reason) = unreadable_reason {
        return Plan::declined(
            Decline::UnreadableEvacuation,
            format!(
                "Declined to evacuate {az} ({why}) for the group(s) whose record is unreadable."
            ),
            reason,
            resources,
        )
        .with_severity(Severity::Warning)
        .with_skipped(all.skipped);
    }
    if !all.last_az.is_empty() {
        let reason = format!(
            "never remove an Auto Scaling group's last AZ: {} run only in {az}",
            all.last_az.join(", ")
        );
        return Plan::declined(
            Decline::LastZone,
            format!("Declined to evacuate {az} ({why})."),
            reason,
            resources,
        )
        .with_severity(Severity::Critical)
        .with_skipped(all.skipped);
    }
    Plan::noop(
        format!("Already evacuated from {az}; {why} already recorded."),
        resources,
    )
    .with_skipped(all.skipped)
}
