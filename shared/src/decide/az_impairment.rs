//! `az-impairment`: move managed Auto Scaling groups out of an impaired AZ
//! (remove its subnets, keep the capacity) and bring them back, under
//! guardrails. The state of an evacuation lives on the ASG itself, in the
//! `ballast:evacuated` tag.

use std::collections::{BTreeMap, BTreeSet};

use super::{Plan, Step, Verdict};
use crate::event::zonal::Direction;
use crate::report::{ActionRecord, ActionStatus, Severity};
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
}

/// What `ballast:evacuated` records: the AZs the group is evacuated from,
/// and its subnets and max size from before the first of them.
///
/// Encoded as `azs=us-east-1a subnets=subnet-1/subnet-2 max=4`: tag values
/// allow only letters, digits, spaces and `_ . : / = + - @`, at most 256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evacuation {
    pub azs: BTreeSet<String>,
    pub subnets: Vec<String>,
    pub max_size: i32,
}

pub const TAG_VALUE_MAX: usize = 256;

impl Evacuation {
    pub fn encode(&self) -> String {
        format!(
            "azs={} subnets={} max={}",
            self.azs.iter().cloned().collect::<Vec<_>>().join("/"),
            self.subnets.join("/"),
            self.max_size
        )
    }

    pub fn parse(value: &str) -> Result<Evacuation, String> {
        let bad = || {
            format!(
                "{}={value:?} is not a record Ballast wrote (azs=... subnets=... max=...)",
                tags::EVACUATED
            )
        };
        let fields: BTreeMap<&str, &str> = value
            .split_whitespace()
            .map(|kv| kv.split_once('=').ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        let list = |k: &str| -> Result<Vec<String>, String> {
            let v = fields.get(k).ok_or_else(bad)?;
            let items: Vec<String> = v
                .split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if items.is_empty() {
                Err(bad())
            } else {
                Ok(items)
            }
        };
        Ok(Evacuation {
            azs: list("azs")?.into_iter().collect(),
            subnets: list("subnets")?,
            max_size: fields
                .get("max")
                .and_then(|m| m.parse().ok())
                .ok_or_else(bad)?,
        })
    }
}

fn record(group: &GroupState, kind: &str, status: ActionStatus, detail: String) -> ActionRecord {
    ActionRecord {
        kind: kind.into(),
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

/// The AZs currently evacuated, counted from the tags of all managed groups.
pub fn evacuated_azs(fleet: &FleetState) -> BTreeSet<String> {
    fleet
        .groups
        .iter()
        .filter_map(|g| g.evacuated.as_deref())
        .filter_map(|v| Evacuation::parse(v).ok())
        .flat_map(|e| e.azs)
        .collect()
}

pub fn decide(fleet: &FleetState, direction: Direction, az: &str, policy: &Policy) -> Plan {
    match direction {
        Direction::Evacuate => evacuate(fleet, az, policy),
        Direction::Restore => restore(fleet, az),
    }
}

fn in_zone(fleet: &FleetState, subnet: &str, az: &str) -> bool {
    fleet.subnet_zone.get(subnet).is_some_and(|z| z == az)
}

fn evacuate(fleet: &FleetState, az: &str, policy: &Policy) -> Plan {
    let recorded = |g: &GroupState| g.evacuated.as_deref().map(Evacuation::parse);
    let affected: Vec<&GroupState> = fleet
        .groups
        .iter()
        .filter(|g| {
            g.subnets.iter().any(|s| in_zone(fleet, s, az))
                || matches!(recorded(g), Some(Ok(e)) if e.azs.contains(az))
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

    let already = evacuated_azs(fleet);
    if !already.contains(az) && already.len() as u32 + 1 > policy.max_evacuated_azs {
        let list: Vec<&str> = already.iter().map(String::as_str).collect();
        return Plan {
            verdict: Verdict::Declined,
            situation: format!("Declined to evacuate {az}: {} AZ(s) already evacuated.", already.len()),
            reason: Some(format!(
                "never more than BALLAST_MAX_EVACUATED_AZS={} AZ(s) evacuated at once; already evacuated: [{}]. \
                 Losing another AZ is beyond what moving capacity can fix: a human must decide",
                policy.max_evacuated_azs,
                list.join(", ")
            )),
            severity: Severity::Critical,
            skipped: affected
                .iter()
                .map(|g| record(g, "evacuate", ActionStatus::Skipped, "declined by the evacuated-AZ limit".into()))
                .collect(),
            ..Plan::noop("", resources)
        };
    }

    let mut steps = vec![];
    let mut skipped = vec![];
    let mut notes = vec![];
    let mut last_az = vec![];
    for g in &affected {
        let previous = match recorded(g) {
            Some(Err(reason)) => {
                skipped.push(record(g, "evacuate", ActionStatus::Skipped, reason));
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
        if remaining.len() == g.subnets.len() {
            skipped.push(record(
                g,
                "evacuate",
                ActionStatus::Skipped,
                format!("already evacuated from {az}"),
            ));
            continue;
        }
        if remaining.is_empty() {
            last_az.push(g.name.clone());
            skipped.push(record(
                g,
                "evacuate",
                ActionStatus::Skipped,
                format!(
                    "declined: {az} is the group's last AZ; removing it would leave no capacity"
                ),
            ));
            continue;
        }
        let mut evacuation = previous.unwrap_or_else(|| Evacuation {
            azs: BTreeSet::new(),
            subnets: g.subnets.clone(),
            max_size: g.max_size,
        });
        evacuation.azs.insert(az.to_string());
        let value = evacuation.encode();
        if value.len() > TAG_VALUE_MAX {
            skipped.push(record(
                g,
                "evacuate",
                ActionStatus::Skipped,
                format!(
                    "declined: the record of its {} subnets does not fit a tag (256 characters)",
                    evacuation.subnets.len()
                ),
            ));
            continue;
        }
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
        steps.push(Step::TagGroup {
            asg: g.name.clone(),
            key: tags::EVACUATED.into(),
            value,
        });
        steps.push(Step::UpdateGroup {
            asg: g.name.clone(),
            subnets: remaining,
            max_size,
        });
    }

    if steps.is_empty() {
        if !last_az.is_empty() {
            return Plan {
                verdict: Verdict::Declined,
                skipped,
                situation: format!("Declined to evacuate {az}."),
                reason: Some(format!(
                    "never remove an Auto Scaling group's last AZ: {} run only in {az}",
                    last_az.join(", ")
                )),
                severity: Severity::Critical,
                ..Plan::noop("", resources)
            };
        }
        return Plan {
            skipped,
            ..Plan::noop(format!("Already evacuated from {az}."), resources)
        };
    }
    let mut situation = format!(
        "{az} is impaired: moving {} Auto Scaling group(s) to their other AZs, capacity kept. {}.",
        steps.len() / 2,
        notes.join("; ")
    );
    let mut reason = None;
    if !last_az.is_empty() {
        situation.push_str(&format!(" Not moved (last AZ): {}.", last_az.join(", ")));
        reason = Some(format!(
            "never remove an Auto Scaling group's last AZ: {}",
            last_az.join(", ")
        ));
    }
    Plan {
        verdict: Verdict::Act,
        steps,
        skipped,
        situation,
        reason,
        severity: if last_az.is_empty() {
            Severity::Warning
        } else {
            Severity::Critical
        },
        sequential: false,
        resources,
    }
}

fn restore(fleet: &FleetState, az: &str) -> Plan {
    let evacuated: Vec<(&GroupState, Result<Evacuation, String>)> = fleet
        .groups
        .iter()
        .filter_map(|g| {
            let parsed = Evacuation::parse(g.evacuated.as_deref()?);
            let concerns = match &parsed {
                Ok(e) => e.azs.contains(az),
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

    let mut steps = vec![];
    let mut skipped = vec![];
    let mut conflicts = vec![];
    let mut restored = 0;
    for (g, parsed) in evacuated {
        let e = match parsed {
            Ok(e) => e,
            Err(reason) => {
                skipped.push(record(g, "restore", ActionStatus::Skipped, reason.clone()));
                conflicts.push(format!("{}: {reason}", g.name));
                continue;
            }
        };
        // Subnets of zones that stay evacuated, and what the group holds
        // once this zone is back.
        let stays_out = |s: &String| {
            fleet
                .subnet_zone
                .get(s)
                .is_some_and(|z| z != az && e.azs.contains(z))
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
            skipped.push(record(g, "restore", ActionStatus::Skipped, detail));
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
    if steps.is_empty() {
        return Plan {
            verdict: Verdict::Declined,
            skipped,
            situation: format!("Declined to restore {az}."),
            reason: Some(conflicts.join("; ")),
            severity: Severity::Warning,
            ..Plan::noop("", resources)
        };
    }
    Plan {
        verdict: Verdict::Act,
        situation: format!(
            "{az} has recovered: restoring {restored} Auto Scaling group(s) to their subnets."
        ),
        reason: (!conflicts.is_empty()).then(|| conflicts.join("; ")),
        severity: if conflicts.is_empty() {
            Severity::Info
        } else {
            Severity::Warning
        },
        steps,
        skipped,
        ..Plan::noop("", resources)
    }
}

fn join(set: &BTreeSet<&String>) -> String {
    set.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "us-east-1a";
    const B: &str = "us-east-1b";
    const C: &str = "us-east-1c";
    const ONE: Policy = Policy {
        max_evacuated_azs: 1,
    };

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

    #[test]
    fn the_record_round_trips_and_fits_tag_rules() {
        let e = Evacuation {
            azs: [A.to_string()].into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            max_size: 4,
        };
        let v = e.encode();
        assert_eq!(v, "azs=us-east-1a subnets=subnet-a/subnet-b max=4");
        assert!(v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)));
        assert_eq!(Evacuation::parse(&v), Ok(e));
        assert!(Evacuation::parse("rubbish").is_err());
        assert!(Evacuation::parse("azs= subnets=x max=1").is_err());
    }

    #[test]
    fn evacuation_removes_the_zone_and_records_the_original() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let plan = decide(&f, Direction::Evacuate, A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Warning);
        assert_eq!(
            plan.steps,
            vec![
                Step::TagGroup {
                    asg: "web".into(),
                    key: tags::EVACUATED.into(),
                    value: "azs=us-east-1a subnets=subnet-a/subnet-b max=2".into()
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
        let evacuated = apply(&f, &decide(&f, Direction::Evacuate, A, &ONE));
        let plan = decide(&evacuated, Direction::Restore, A, &ONE);
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
        assert_eq!(
            decide(&f, Direction::Evacuate, A, &ONE).verdict,
            Verdict::Noop
        );
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let once = apply(&f, &decide(&f, Direction::Evacuate, A, &ONE));
        let twice = decide(&once, Direction::Evacuate, A, &ONE);
        assert_eq!(twice.verdict, Verdict::Noop);
        assert!(twice.skipped[0].detail.contains("already evacuated"));
        assert_eq!(
            decide(&f, Direction::Restore, A, &ONE).verdict,
            Verdict::Noop
        );
    }

    #[test]
    fn never_remove_an_asgs_last_az() {
        let f = fleet(vec![group("single", &["subnet-a", "subnet-a2"])]);
        let plan = decide(&f, Direction::Evacuate, A, &ONE);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Declined, Severity::Critical)
        );
        assert!(plan.reason.unwrap().contains("last AZ"));

        let mixed = fleet(vec![
            group("single", &["subnet-a"]),
            group("web", &["subnet-a", "subnet-b"]),
        ]);
        let plan = decide(&mixed, Direction::Evacuate, A, &ONE);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Critical);
        assert!(plan.steps.iter().all(|s| s.asg() == Some("web")));
    }

    #[test]
    fn a_second_az_while_one_is_evacuated_is_declined() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b", "subnet-c"])]);
        let once = apply(&f, &decide(&f, Direction::Evacuate, A, &ONE));
        let plan = decide(&once, Direction::Evacuate, B, &ONE);
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
                Direction::Evacuate,
                B,
                &Policy {
                    max_evacuated_azs: 2
                }
            )
            .verdict,
            Verdict::Act
        );
        assert_eq!(
            decide(
                &f,
                Direction::Evacuate,
                A,
                &Policy {
                    max_evacuated_azs: 0
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
        };
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b", "subnet-c"])]);
        let s1 = apply(&f, &decide(&f, Direction::Evacuate, A, &two));
        let s2 = apply(&s1, &decide(&s1, Direction::Evacuate, B, &two));
        assert_eq!(s2.groups[0].subnets, ["subnet-c"]);
        assert_eq!(
            s2.groups[0].evacuated.as_deref(),
            Some("azs=us-east-1a/us-east-1b subnets=subnet-a/subnet-b/subnet-c max=2")
        );
        let r1 = apply(&s2, &decide(&s2, Direction::Restore, A, &two));
        assert_eq!(r1.groups[0].subnets, ["subnet-a", "subnet-c"]);
        let r2 = apply(&r1, &decide(&r1, Direction::Restore, B, &two));
        assert_eq!(r2.groups[0].subnets, ["subnet-a", "subnet-b", "subnet-c"]);
        assert_eq!(r2.groups[0].evacuated, None);
    }

    #[test]
    fn an_operators_change_is_not_clobbered_on_restore() {
        let f = fleet(vec![group("web", &["subnet-a", "subnet-b"])]);
        let mut evacuated = apply(&f, &decide(&f, Direction::Evacuate, A, &ONE));
        evacuated.groups[0].subnets = vec!["subnet-b".into(), "subnet-c".into()];
        let plan = decide(&evacuated, Direction::Restore, A, &ONE);
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
        let plan = decide(&fleet(vec![g]), Direction::Restore, A, &ONE);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan
            .reason
            .unwrap()
            .contains("is not a record Ballast wrote"));
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

    proptest! {
        #[test]
        fn never_empties_a_group_nor_exceeds_the_evacuated_az_limit(
            f in arb_fleet(), zs in prop::collection::vec((arb_zone(), any::<bool>()), 1..6), max in 0u32..3
        ) {
            let policy = Policy { max_evacuated_azs: max };
            let mut state = f;
            for (z, evac) in zs {
                let dir = if evac { Direction::Evacuate } else { Direction::Restore };
                let plan = decide(&state, dir, z, &policy);
                for s in &plan.steps {
                    if let Step::UpdateGroup { subnets, .. } = s {
                        prop_assert!(!subnets.is_empty(), "a group's last AZ was removed");
                    }
                }
                state = apply(&state, &plan);
                prop_assert!(evacuated_azs(&state).len() as u32 <= max);
                // Deciding again on the result changes nothing (convergence).
                let again = decide(&state, dir, z, &policy);
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
    fn converge(mut f: FleetState, dir: Direction, az: &str, policy: &Policy) -> FleetState {
        for _ in 0..6 {
            let plan = decide(&f, dir, az, policy);
            if plan.steps.is_empty() {
                return f;
            }
            f = apply(&f, &plan);
        }
        panic!("no convergence for {dir:?} {az}: {f:#?}");
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
        ops: &[(Direction, &str)],
        faulty: usize,
        policy: &Policy,
    ) -> Result<usize, String> {
        let mut clean = vec![f.clone()];
        for (dir, az) in ops {
            let next = converge(clean.last().unwrap().clone(), *dir, az, policy);
            clean.push(next);
        }
        let (dir, az) = ops[faulty];
        let before = &clean[faulty];
        let plan = decide(before, dir, az, policy);
        let cuts = prefixes(before, &plan);
        for cut in &cuts {
            check_invariants(f, cut)?;
            let mut state = cut.clone();
            for (i, (dir, az)) in ops.iter().enumerate().skip(faulty) {
                // Redeliveries in between: each plan prefix-cut again once,
                // at its first step, and the invariants hold there too.
                let first = decide(&state, *dir, az, policy);
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
                state = converge(state, *dir, az, policy);
                check_invariants(f, &state)?;
                if state != clean[i + 1] {
                    return Err(format!(
                        "after {dir:?} {az} the state differs from the fault-free one: {state:#?} vs {:#?}",
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
        };
        let fleets = [
            fleet(vec![group("web", &["subnet-a", "subnet-b"])]),
            fleet(vec![
                group("web", &["subnet-a", "subnet-b", "subnet-c"]),
                group("api", &["subnet-a", "subnet-a2", "subnet-b"]),
                group("single", &["subnet-a"]),
            ]),
        ];
        let sequences: [&[(Direction, &str)]; 4] = [
            &[(Direction::Evacuate, A), (Direction::Restore, A)],
            &[
                (Direction::Evacuate, A),
                (Direction::Evacuate, B),
                (Direction::Restore, A),
                (Direction::Restore, B),
            ],
            &[
                (Direction::Evacuate, B),
                (Direction::Evacuate, A),
                (Direction::Restore, B),
                (Direction::Restore, A),
            ],
            &[
                (Direction::Evacuate, C),
                (Direction::Restore, C),
                (Direction::Evacuate, A),
            ],
        ];
        let mut prefixes = 0;
        for f in &fleets {
            for ops in sequences {
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
        let evacuated = apply(&f, &decide(&f, Direction::Evacuate, A, &ONE));
        let plan = decide(&evacuated, Direction::Restore, A, &ONE);
        // The subnet update applied, its answer lost: the record remains.
        let half = apply(
            &evacuated,
            &Plan {
                steps: plan.steps[..1].to_vec(),
                ..plan
            },
        );
        let again = decide(&half, Direction::Restore, A, &ONE);
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
            f in arb_fleet(), zs in prop::collection::vec((arb_zone(), any::<bool>()), 1..5), max in 1u32..3, faulty in 0usize..5
        ) {
            let ops: Vec<(Direction, &str)> = zs
                .iter()
                .map(|(z, e)| (if *e { Direction::Evacuate } else { Direction::Restore }, *z))
                .collect();
            let policy = Policy { max_evacuated_azs: max };
            let faulty = faulty.min(ops.len() - 1);
            if let Err(e) = every_prefix_converges(&f, &ops, faulty, &policy) {
                prop_assert!(false, "{:?} fault at {}: {}", ops, faulty, e);
            }
        }
    }
}
