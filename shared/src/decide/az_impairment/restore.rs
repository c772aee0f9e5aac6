//! Restoring a zone: each group's subnets (and max size) back, then its
//! record; a hold of another signal, or an operator's change, is kept.

use std::collections::{BTreeMap, BTreeSet};

use super::records::{Evacuation, Hold};
use super::state::{in_zone, record, resources, FleetState, ZonedGroup};
use super::Change;
use crate::decide::{Decline, Plan, Step};
use crate::event::zonal::Signal;
use crate::records::Unreadable;
use crate::report::{ActionKind, ActionRecord, ActionStatus, Severity};
use crate::tags;

/// What restoring `az` does to one group.
enum Back {
    /// Not restored: its record cannot be read, or it changed since the
    /// evacuation (an operator's hand); the detail says which.
    Conflict(String),
    /// The signals cleared do not hold it: untouched, held by these.
    Untouched(String),
    /// Other signals still hold it: the record without the cleared ones.
    Kept(Step, String),
    /// Restored: its steps, and the signals an operator's restore overrode.
    Restored(Vec<Step>, Option<String>),
}

/// What restoring `az` did to each group, gathered.
#[derive(Default)]
struct Backs {
    steps: Vec<Step>,
    skipped: Vec<ActionRecord>,
    conflicts: Vec<String>,
    restored: usize,
    /// Groups that stay out of the zone, by what still holds them.
    kept: BTreeMap<String, Vec<String>>,
    untouched: BTreeMap<String, Vec<String>>,
    overridden: BTreeSet<String>,
    /// A record could not be read (a conflict of its own).
    unreadable: bool,
}

pub(super) fn restore(fleet: &FleetState, change: &Change, az: &str) -> Plan {
    let evacuated: Vec<(&ZonedGroup, Result<Evacuation, Unreadable>)> = fleet
        .groups
        .iter()
        .filter_map(|g| {
            let parsed = Evacuation::parse(g.evacuated.as_deref()?);
            let concerns = parsed.as_ref().map_or(true, |e| e.azs.contains_key(az));
            concerns.then_some((g, parsed))
        })
        .collect();
    if evacuated.is_empty() {
        return Plan::noop(
            format!("No managed Auto Scaling group is evacuated from {az}."),
            vec![],
        );
    }
    let groups: Vec<&ZonedGroup> = evacuated.iter().map(|(g, _)| *g).collect();
    let resources = resources(&groups);
    let mut all = Backs::default();
    for (g, parsed) in evacuated {
        let back = match parsed {
            Ok(e) => restore_group(fleet, g, &e, change, az),
            Err(e) => {
                all.unreadable = true;
                Back::Conflict(e.to_string())
            }
        };
        match back {
            Back::Conflict(detail) => {
                all.conflicts.push(format!("{}: {detail}", g.name));
                all.skipped.push(record(
                    g,
                    ActionKind::Restore,
                    ActionStatus::Skipped,
                    detail,
                ));
            }
            Back::Untouched(by) => all.untouched.entry(by).or_default().push(g.name.clone()),
            Back::Kept(step, by) => {
                all.steps.push(step);
                all.kept.entry(by).or_default().push(g.name.clone());
            }
            Back::Restored(steps, overridden) => {
                all.restored += 1;
                all.steps.extend(steps);
                all.overridden.extend(overridden);
            }
        }
    }
    conclude(all, &cleared(change), az, resources)
}

/// The signals over, in words.
fn cleared(change: &Change) -> String {
    match change {
        Change::Clear(signals) => signals
            .iter()
            .map(Signal::describe)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "an operator's restore".to_string(),
    }
}

/// One group back into `az`, unless another signal still holds it there or
/// an operator changed it since.
fn restore_group(
    fleet: &FleetState,
    g: &ZonedGroup,
    e: &Evacuation,
    change: &Change,
    az: &str,
) -> Back {
    let hold = e.azs.get(az).cloned().unwrap_or_default();
    let mut overridden = None;
    if let Change::Clear(signals) = change {
        if let Some(kept) = still_held(g, e, &hold, signals, az) {
            return kept;
        }
    } else if !hold.signals.is_empty() || hold.overflow {
        overridden = Some(hold.describe());
    }
    let last = e.azs.len() == 1;
    let (back, subnets_back) = match subnets_back(fleet, g, e, az, last) {
        Ok(back) => back,
        Err(conflict) => return Back::Conflict(conflict),
    };
    let max_size = (last && g.max_size != e.max_size).then(|| e.max_size.max(g.desired));
    // Subnets (and max size) first, the record after: a restore cut short
    // leaves the record naming what is still missing.
    let mut steps = vec![];
    if !subnets_back || max_size.is_some() {
        steps.push(Step::UpdateGroup {
            asg: g.name.clone(),
            subnets: back,
            max_size,
        });
    }
    steps.push(if last {
        Step::UntagGroup {
            asg: g.name.clone(),
            key: tags::EVACUATED.into(),
        }
    } else {
        let mut rest = e.clone();
        rest.azs.remove(az);
        Step::TagGroup {
            asg: g.name.clone(),
            key: tags::EVACUATED.into(),
            value: rest.encode(),
        }
    });
    Back::Restored(steps, overridden)
}

/// The subnets the group holds once `az` is back (those of zones that stay
/// evacuated left out), and whether it already holds exactly them. Anything
/// between the evacuated state and the restored one is Ballast's own doing
/// (a plan cut short, an answer lost): finished. A subnet outside the
/// record, or a kept one missing, is an operator's change: the conflict.
/// With the subnets all back and `az` the `last` zone out, the max size
/// tells Ballast's restore (the original, or the desired capacity above it)
/// from an operator's hand.
fn subnets_back(
    fleet: &FleetState,
    g: &ZonedGroup,
    e: &Evacuation,
    az: &str,
    last: bool,
) -> Result<(Vec<String>, bool), String> {
    let stays_out = |s: &String| {
        fleet
            .subnet_zone
            .get(s)
            .is_some_and(|z| z != az && e.azs.contains_key(z))
    };
    let back: Vec<String> = e
        .subnets
        .iter()
        .filter(|s| !stays_out(s))
        .cloned()
        .collect();
    let recorded: BTreeSet<&String> = e.subnets.iter().collect();
    let current: BTreeSet<&String> = g.subnets.iter().collect();
    let expected: BTreeSet<&String> = back.iter().filter(|s| !in_zone(fleet, s, az)).collect();
    let exact = current == back.iter().collect::<BTreeSet<_>>();
    let ballast_max = [e.max_size, e.max_size.max(g.desired)];
    let operator_max = last && exact && !ballast_max.contains(&g.max_size);
    if !(expected.is_subset(&current) && current.is_subset(&recorded)) || operator_max {
        return Err(changed(g, e, &expected, &current));
    }
    Ok((back, exact))
}

/// The conflict, in words: what Ballast expected, what it found, and how
/// to restore by hand.
fn changed(
    g: &ZonedGroup,
    e: &Evacuation,
    expected: &BTreeSet<&String>,
    current: &BTreeSet<&String>,
) -> String {
    format!(
        "declined: its subnets or max size changed since the evacuation (expected {}, found {} with max \
         size {}); not clobbering an operator's change. Before the evacuation they were {} with max size {}: restore by hand and \
         remove the {} tag",
        join(expected),
        join(current),
        g.max_size,
        e.subnets.join(","),
        e.max_size,
        tags::EVACUATED
    )
}

/// When `signals` clear and others still hold the group out of `az`: it is
/// untouched, or its record loses the cleared ones. `None`: restore it.
fn still_held(
    g: &ZonedGroup,
    e: &Evacuation,
    hold: &Hold,
    signals: &[Signal],
    az: &str,
) -> Option<Back> {
    if hold.unnamed() {
        return None;
    }
    let mut rest = hold.clone();
    rest.signals.retain(|s| !signals.contains(s));
    if rest.signals.len() == hold.signals.len() {
        return Some(Back::Untouched(hold.describe()));
    }
    if rest.unnamed() {
        return None;
    }
    let mut fewer = e.clone();
    fewer.azs.insert(az.to_string(), rest.clone());
    let step = Step::TagGroup {
        asg: g.name.clone(),
        key: tags::EVACUATED.into(),
        value: fewer.encode(),
    };
    Some(Back::Kept(step, rest.describe()))
}

/// The plan from every group's restore.
fn conclude(all: Backs, cleared: &str, az: &str, resources: Vec<String>) -> Plan {
    let held = |by: &BTreeMap<String, Vec<String>>| -> Vec<String> {
        by.iter()
            .map(|(hold, groups)| format!("{} held by {hold}", groups.join(", ")))
            .collect()
    };
    let mut staying = held(&all.kept);
    staying.extend(held(&all.untouched));
    if all.steps.is_empty() {
        if all.conflicts.is_empty() {
            return Plan::noop(
                format!("{az} stays evacuated: {}.", staying.join("; ")),
                resources,
            )
            .with_reason(format!("{cleared} did not hold it"));
        }
        let why = if all.unreadable {
            Decline::UnreadableEvacuation
        } else {
            Decline::ChangedSinceEvacuation
        };
        return Plan::declined(
            why,
            format!("Declined to restore {az}."),
            all.conflicts.join("; "),
            resources,
        )
        .with_severity(Severity::Warning)
        .with_skipped(all.skipped);
    }
    let mut situation = if all.restored > 0 {
        format!(
            "{az} has recovered ({cleared}): restoring {} Auto Scaling group(s) to their subnets.",
            all.restored
        )
    } else {
        format!("{cleared} is over for {az}, but the zone stays evacuated.")
    };
    if !staying.is_empty() {
        situation.push_str(&format!(" Still out of {az}: {}.", staying.join("; ")));
    }
    let severity = if all.conflicts.is_empty() {
        Severity::Info
    } else {
        Severity::Warning
    };
    let mut reasons = all.conflicts;
    reasons.extend((!all.overridden.is_empty()).then(|| {
        format!(
            "an operator's restore clears every signal, including {}",
            all.overridden.into_iter().collect::<Vec<_>>().join("; ")
        )
    }));
    Plan::act(situation, all.steps, resources)
        .with_skipped(all.skipped)
        .with_reasons(reasons)
        .with_severity(severity)
}

fn join(set: &BTreeSet<&String>) -> String {
    set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}
