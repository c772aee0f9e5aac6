//! `unhealthy-target`: which impaired targets to hand to their Auto Scaling
//! group for replacement, under the unhealthy-share guardrail and each
//! group's replacement budget; and the fleet breaker, which suspends an
//! ASG's own `ReplaceUnhealthy` while Ballast declines and resumes it (only
//! what it suspended) once the target group is back within the guardrail.

use std::collections::{BTreeMap, BTreeSet};

use super::budget::{
    target_group_key, Budget, OwnReplacements, Replaced, Suspended, REPLACE_UNHEALTHY,
};
use super::{Plan, Step, Verdict};
use crate::event::short_name;
use crate::records::{Extra, Unreadable};
use crate::report::{ActionKind, ActionRecord, ActionStatus, Evidence, Severity};
use crate::resources::Group;
use crate::tags;

/// A target group as observed: its targets' health joined with their ASG,
/// and the managed ASGs behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupState {
    pub arn: String,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub targets: Vec<TargetState>,
    /// Managed ASGs attached to the target group or with instances in it.
    pub groups: Vec<AsgState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub id: String,
    /// ELB target health state: `healthy`, `unhealthy`, `unused`, `draining`, ...
    pub health: String,
    /// ELB reason code, e.g. `Target.InvalidState`, `Target.FailedHealthChecks`.
    pub reason: Option<String>,
    pub az: Option<String>,
    /// The instance's Auto Scaling group, when it has one.
    pub member: Option<AsgMembership>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgMembership {
    pub asg: String,
    /// Tagged `ballast:managed=true`.
    pub managed: bool,
    /// The ASG's view: `Healthy` or `Unhealthy`.
    pub health_status: String,
    /// `InService`, `Pending`, `Terminating`, `Standby`, ...
    pub lifecycle_state: String,
}

/// A managed ASG, with what the budget and the breaker read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgState {
    pub name: String,
    pub desired: i32,
    /// `EC2`, `ELB`, `VPC_LATTICE`, or several of them comma-separated.
    pub health_check_type: String,
    /// Suspended processes, whoever suspended them.
    pub suspended_processes: Vec<String>,
    /// The `ballast:replaced` tag, as read.
    pub replaced: Option<String>,
    /// The `ballast:suspended` tag, as read.
    pub suspended: Option<String>,
    /// The ASG's health-check replacements inside the budget window.
    pub own: OwnReplacements,
}

impl From<Group> for AsgState {
    /// What the budget and the breaker read of a group; its own
    /// replacements are counted apart (only an impaired instance needs them).
    fn from(g: Group) -> Self {
        AsgState {
            desired: g.desired_capacity,
            replaced: g.tags.get(tags::REPLACED).cloned(),
            suspended: g.tags.get(tags::SUSPENDED).cloned(),
            health_check_type: g.health_check_type,
            suspended_processes: g.suspended_processes,
            own: OwnReplacements::default(),
            name: g.name,
        }
    }
}

impl AsgState {
    /// With ELB health checks the ASG replaces every instance its target
    /// groups find unhealthy by itself, whatever Ballast decides.
    fn replaces_by_itself(&self) -> bool {
        self.health_check_type
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("ELB"))
    }

    fn is_suspended(&self, process: &str) -> bool {
        self.suspended_processes.iter().any(|p| p == process)
    }

    /// Ballast's marks in the group; an unreadable record is an error (held:
    /// the budget it counts is unknown).
    fn marks(&self) -> Result<Replaced, Unreadable> {
        self.replaced
            .as_deref()
            .map_or_else(|| Ok(Replaced::default()), Replaced::parse)
    }
}

/// Who holds an ASG's `ReplaceUnhealthy` suspended, as its tags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breaker {
    /// No `ballast:suspended` record.
    Closed,
    /// Ballast's record.
    Open(Suspended),
    /// A `ballast:suspended` value Ballast cannot read: left alone.
    Unreadable(String),
}

impl AsgState {
    pub fn breaker(&self) -> Breaker {
        match self.suspended.as_deref() {
            None => Breaker::Closed,
            Some(v) => {
                Suspended::parse(v).map_or_else(|_| Breaker::Unreadable(v.into()), Breaker::Open)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `BALLAST_MAX_UNHEALTHY_PERCENT`.
    pub max_unhealthy_percent: u8,
    /// `BALLAST_MAX_REPLACED_PERCENT` / `BALLAST_REPLACEMENT_WINDOW_MINUTES`.
    pub budget: Budget,
    /// Epoch seconds.
    pub now: i64,
}

impl TargetState {
    /// Impaired: failing health checks, or a stopped/stopping instance, which
    /// ELB reports as `unused` with reason `Target.InvalidState`.
    pub fn is_impaired(&self) -> bool {
        self.health == "unhealthy"
            || (self.health == "unused" && self.reason.as_deref() == Some("Target.InvalidState"))
    }

    fn why_impaired(&self) -> String {
        match (self.health.as_str(), self.reason.as_deref()) {
            ("unused", Some("Target.InvalidState")) => "instance stopped".into(),
            (state, Some(reason)) => format!("{state}, {reason}"),
            (state, None) => state.into(),
        }
    }

    fn in_group(&self, asg: &str) -> bool {
        self.member.as_ref().is_some_and(|m| m.asg == asg)
    }

    fn in_service(&self) -> bool {
        self.member
            .as_ref()
            .is_some_and(|m| m.lifecycle_state == "InService")
    }

    /// Ballast may mark it: in service, in a managed ASG, not yet marked.
    fn is_markable(&self) -> bool {
        self.member.as_ref().is_some_and(|m| {
            m.managed
                && m.lifecycle_state == "InService"
                && !m.health_status.eq_ignore_ascii_case("unhealthy")
        })
    }
}

/// Whether `impaired` of `counted` targets exceeds `max_percent` percent.
fn exceeds_share(impaired: usize, counted: usize, max_percent: u8) -> bool {
    impaired * 100 > usize::from(max_percent) * counted
}

/// Why the breaker trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trip {
    /// The target group's impaired share is over the guardrail.
    Share,
    /// The group's replacement budget is spent.
    Budget,
}

impl Trip {
    fn code(self) -> &'static str {
        match self {
            Trip::Share => "share",
            Trip::Budget => "budget",
        }
    }
}

/// What one managed ASG gets from this target group's decision.
#[derive(Default)]
struct GroupDecision {
    steps: Vec<Step>,
    /// Sentences for the situation (the breaker's transitions).
    notes: Vec<String>,
    /// The budget's account, when it declined something.
    budget: Option<String>,
    trips: bool,
}

pub fn decide(tg: &TargetGroupState, policy: &Policy) -> Plan {
    decide_plan(tg, policy).with_evidence(evidence(tg, policy))
}

/// How many impaired targets the evidence names, at most.
const EVIDENCE_TARGETS: usize = 10;

/// The facts a decision on `tg` rests on: target counts by state against
/// the guardrail, the impaired targets, and per managed ASG its capacity,
/// health-check type, budget and breaker.
pub fn evidence(tg: &TargetGroupState, policy: &Policy) -> Evidence {
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tg.targets {
        *states.entry(t.health.as_str()).or_default() += 1;
    }
    let counted = tg.targets.iter().filter(|t| t.health != "draining").count();
    let impaired: Vec<&TargetState> = tg.targets.iter().filter(|t| t.is_impaired()).collect();
    let mut groups = serde_json::Map::new();
    for g in &tg.groups {
        // An unreadable record: the evidence says so instead of a count.
        let replaced = match g.marks() {
            Ok(marks) => serde_json::json!(g
                .own
                .spent_with(marks.within(policy.now, policy.budget.window_secs))),
            Err(e) => serde_json::json!(e.to_string()),
        };
        let breaker = match g.breaker() {
            Breaker::Closed => "closed".to_string(),
            Breaker::Open(s) => format!("open ({} since {})", s.why, crate::report::rfc3339(s.at)),
            Breaker::Unreadable(v) => format!("unreadable record {v:?}"),
        };
        groups.insert(
            g.name.clone(),
            serde_json::json!({
                "desired": g.desired,
                "healthCheckType": g.health_check_type,
                "replacedInWindow": replaced,
                "allowance": policy.budget.allowance(g.desired),
                "breaker": breaker,
                "suspendedProcesses": g.suspended_processes,
            }),
        );
    }
    let mut e = Evidence::new();
    e.insert("targetGroup".into(), short_name(&tg.arn).into());
    e.insert("targets".into(), serde_json::json!(states));
    e.insert(
        "impaired".into(),
        serde_json::json!(format!(
            "{} of {counted} (guardrail {}%)",
            impaired.len(),
            policy.max_unhealthy_percent
        )),
    );
    if !impaired.is_empty() {
        let named: Vec<String> = impaired
            .iter()
            .take(EVIDENCE_TARGETS)
            .map(|t| format!("{} ({})", t.id, t.why_impaired()))
            .collect();
        e.insert("impairedTargets".into(), serde_json::json!(named));
    }
    if !groups.is_empty() {
        e.insert("groups".into(), serde_json::Value::Object(groups));
    }
    e
}

fn decide_plan(tg: &TargetGroupState, policy: &Policy) -> Plan {
    let name = short_name(&tg.arn);
    let resources = vec![tg.arn.clone()];

    if tg.target_type != "instance" {
        return Plan::ignored(
            format!(
                "{name} has target type {}: only instance targets belong to Auto Scaling groups",
                tg.target_type
            ),
            resources,
        );
    }
    let managed_member = tg
        .targets
        .iter()
        .any(|t| t.member.as_ref().is_some_and(|m| m.managed));
    if !managed_member && tg.groups.is_empty() {
        return Plan::ignored(
            format!(
                "no target of {name} belongs to an Auto Scaling group tagged {}=true",
                tags::MANAGED
            ),
            resources,
        );
    }

    // Draining targets are on their way out and count neither way.
    let counted: Vec<&TargetState> = tg
        .targets
        .iter()
        .filter(|t| t.health != "draining")
        .collect();
    let impaired: Vec<&TargetState> = counted
        .iter()
        .copied()
        .filter(|t| t.is_impaired())
        .collect();
    let (n, k) = (counted.len(), impaired.len());
    let over_share = !impaired.is_empty() && exceeds_share(k, n, policy.max_unhealthy_percent);

    // Per managed ASG: the breaker, then the budget.
    let mut steps = vec![];
    let mut notes = vec![];
    let mut budget_notes = vec![];
    let mut over_budget: BTreeSet<&str> = BTreeSet::new();
    let mut marked: BTreeSet<&str> = BTreeSet::new();
    let mut trips = false;
    for g in &tg.groups {
        let (d, mark) = decide_group(tg, g, &impaired, over_share, policy);
        if d.budget.is_some() {
            over_budget.extend(
                impaired
                    .iter()
                    .filter(|t| t.in_group(&g.name) && t.is_markable())
                    .filter(|t| !mark.contains(&t.id.as_str()))
                    .map(|t| t.id.as_str()),
            );
        }
        marked.extend(mark);
        steps.extend(d.steps);
        notes.extend(d.notes);
        budget_notes.extend(d.budget);
        trips |= d.trips;
    }

    let mut skipped = vec![];
    for t in &impaired {
        let why = t.why_impaired();
        let detail = match &t.member {
            _ if marked.contains(t.id.as_str()) => continue,
            _ if over_share => format!("{why}; not marked: declined by guardrail"),
            None => format!("{why}; not in an Auto Scaling group"),
            Some(m) if !m.managed => {
                format!("{why}; ASG {} is not tagged {}=true", m.asg, tags::MANAGED)
            }
            Some(m) if m.health_status.eq_ignore_ascii_case("unhealthy") => {
                format!(
                    "{why}; already marked Unhealthy, ASG {} is replacing it",
                    m.asg
                )
            }
            Some(m) if m.lifecycle_state != "InService" => format!(
                "{why}; lifecycle state {} in ASG {}, left to the ASG",
                m.lifecycle_state, m.asg
            ),
            Some(m) if over_budget.contains(t.id.as_str()) => format!(
                "{why}; not marked: the replacement budget of ASG {} is spent",
                m.asg
            ),
            // A managed ASG that was not observed (it vanished meanwhile).
            Some(m) => format!("{why}; ASG {} could not be read", m.asg),
        };
        skipped.push(record(t, ActionStatus::Skipped, detail));
    }
    let breaker = if notes.is_empty() {
        String::new()
    } else {
        format!(" {}", notes.join(" "))
    };

    if over_share {
        let mut reason = format!(
            "{k} of {n} targets ({}%) are impaired, above BALLAST_MAX_UNHEALTHY_PERCENT={}: \
             suspect the application or its health check, not the instances",
            k * 100 / n,
            policy.max_unhealthy_percent
        );
        if !budget_notes.is_empty() {
            reason.push_str("; ");
            reason.push_str(&budget_notes.join("; "));
        }
        let situation = format!(
            "Declined to replace instances of {name}: {k} of {n} targets are impaired.{breaker}"
        );
        return Plan::declined(situation, reason, resources)
            .with_steps(steps)
            .with_skipped(skipped)
            .with_severity(Severity::Critical);
    }

    let declined = trips || !budget_notes.is_empty();
    if marked.is_empty() && declined {
        let situation = format!(
            "Declined to replace instances of {name}: the replacement budget is spent ({k} of {n} targets impaired).{breaker}"
        );
        return Plan {
            verdict: Verdict::Declined,
            ..Plan::noop(situation, resources)
        }
        .with_steps(steps)
        .with_skipped(skipped)
        .with_reasons(budget_notes)
        .with_severity(Severity::Critical);
    }

    let hint = az_hint(&counted, &impaired);
    if impaired.is_empty() {
        let situation = format!("No impaired target in {name} ({n} registered).{breaker}");
        return if steps.is_empty() {
            Plan::noop(situation, resources)
        } else {
            Plan::act(situation, steps, resources)
        };
    }
    let mut situation = format!("{k} of {n} targets of {name} impaired");
    if !marked.is_empty() {
        let list: Vec<String> = impaired
            .iter()
            .filter(|t| marked.contains(t.id.as_str()))
            .map(|t| format!("{} ({})", t.id, t.why_impaired()))
            .collect();
        situation.push_str(&format!(": {}", list.join(", ")));
    }
    situation.push('.');
    if let Some(h) = &hint {
        situation.push(' ');
        situation.push_str(h);
    }
    situation.push_str(&breaker);

    if steps.is_empty() {
        return Plan::noop(
            format!("{situation} Nothing for Ballast to mark."),
            resources,
        )
        .with_skipped(skipped);
    }
    let severity = if declined {
        Severity::Critical
    } else if hint.is_some() {
        Severity::Warning
    } else {
        Severity::Info
    };
    Plan::act(situation, steps, resources)
        .with_skipped(skipped)
        .with_reasons(budget_notes)
        .with_severity(severity)
}

/// One managed ASG behind the target group: its breaker's steps, and which
/// of its impaired instances Ballast marks within its budget (in target
/// order). Every chain is ordered so that each prefix is safe: the breaker's
/// record before `SuspendProcesses`, `ResumeProcesses` before the record is
/// removed, the `ballast:replaced` record before the marks it counts.
fn decide_group<'a>(
    tg: &'a TargetGroupState,
    g: &AsgState,
    impaired: &[&'a TargetState],
    over_share: bool,
    policy: &Policy,
) -> (GroupDecision, Vec<&'a str>) {
    let key = target_group_key(&tg.arn);
    let mut d = GroupDecision::default();
    let mine: Vec<&TargetState> = impaired
        .iter()
        .copied()
        .filter(|t| t.in_group(&g.name))
        .collect();
    let markable: Vec<&TargetState> = mine.iter().copied().filter(|t| t.is_markable()).collect();
    let at_risk = mine.iter().any(|t| t.in_service());
    let window = policy.budget.window_secs;
    // An unreadable `ballast:replaced` is held: what it counts is unknown,
    // so Ballast marks nothing new in the group (and does not overwrite it)
    // until it is fixed or removed.
    let (marks, unreadable) = match g.marks() {
        Ok(marks) => (marks, None),
        Err(e) => (Replaced::default(), Some(e)),
    };
    let by_ballast = marks.within(policy.now, window);
    let spent = g.own.spent_with(by_ballast);
    let allowance = policy.budget.allowance(g.desired) as usize;
    // A mark already recorded in the window (refused, or cut short, after
    // its record landed) is made again without spending the budget twice.
    let (again, fresh): (Vec<&TargetState>, Vec<&TargetState>) = markable
        .iter()
        .partition(|t| marks.has(&t.id, policy.now, window));

    let trip = if !g.replaces_by_itself() {
        None
    } else if over_share && at_risk {
        Some(Trip::Share)
    } else if (!fresh.is_empty() && spent + fresh.len() > allowance)
        || (spent > allowance && at_risk)
    {
        Some(Trip::Budget)
    } else {
        None
    };
    let can_mark = if over_share || trip.is_some() || unreadable.is_some() {
        0
    } else {
        allowance.saturating_sub(spent).min(fresh.len())
    };
    let new_marks = &fresh[..can_mark];
    let mark: Vec<&'a str> = if over_share || trip.is_some() || unreadable.is_some() {
        vec![]
    } else {
        markable
            .iter()
            .filter(|t| again.contains(t) || new_marks.contains(t))
            .map(|t| t.id.as_str())
            .collect()
    };
    if let (Some(e), false) = (&unreadable, markable.is_empty()) {
        d.budget = Some(format!(
            "replacement budget of ASG {}: unknown, {e}: Ballast marks nothing in it \
             until the tag is fixed or removed",
            g.name
        ));
    } else if !over_share && (mark.len() < markable.len() || trip == Some(Trip::Budget)) {
        d.budget = Some(format!(
            "replacement budget of ASG {}: {allowance} instance(s) per {} min \
             (BALLAST_MAX_REPLACED_PERCENT={}% of desired capacity {}, at least 1), \
             {spent} already replaced in the window ({by_ballast} marked by Ballast, \
             {} by the ASG's own health checks), {} more impaired{}",
            g.name,
            window / 60,
            policy.budget.percent,
            g.desired,
            spent - by_ballast.min(spent),
            fresh.len(),
            if new_marks.is_empty() {
                String::new()
            } else {
                format!(", {} marked", new_marks.len())
            }
        ));
    }

    match (trip, g.breaker()) {
        (Some(_), Breaker::Closed) if g.is_suspended(REPLACE_UNHEALTHY) => {
            d.trips = true;
            d.notes.push(format!(
                "ASG {}'s {REPLACE_UNHEALTHY} is already suspended, not by Ballast: \
                 left to whoever suspended it.",
                g.name
            ));
        }
        (Some(why), Breaker::Closed) => {
            d.trips = true;
            let record = Suspended {
                processes: vec![REPLACE_UNHEALTHY.into()],
                at: policy.now,
                why: why.code().into(),
                target_groups: vec![key.into()],
                extra: Extra::default(),
            };
            d.steps.push(Step::TagGroup {
                asg: g.name.clone(),
                key: tags::SUSPENDED.into(),
                value: record.encode(),
            });
            d.steps.push(Step::SuspendProcesses {
                asg: g.name.clone(),
                processes: record.processes,
            });
            d.notes.push(format!(
                "Breaker: ASG {} replaces unhealthy instances by itself (health check type {}); \
                 its {REPLACE_UNHEALTHY} is suspended until {} is back within the guardrail.",
                g.name,
                g.health_check_type,
                short_name(&tg.arn)
            ));
        }
        (Some(_), Breaker::Open(record)) => {
            d.trips = true;
            if let Some(more) = record.holding(key) {
                d.steps.push(Step::TagGroup {
                    asg: g.name.clone(),
                    key: tags::SUSPENDED.into(),
                    value: more.encode(),
                });
            }
            let missing: Vec<String> = record
                .processes
                .iter()
                .filter(|p| !g.is_suspended(p))
                .cloned()
                .collect();
            if missing.is_empty() {
                d.notes.push(format!(
                    "Breaker open: ASG {}'s {} suspended by Ballast since {}.",
                    g.name,
                    record.processes.join(", "),
                    crate::report::rfc3339(record.at)
                ));
            } else {
                d.notes.push(format!(
                    "Breaker: ASG {}'s {} is suspended again (the record says Ballast suspended it).",
                    g.name,
                    missing.join(", ")
                ));
                d.steps.push(Step::SuspendProcesses {
                    asg: g.name.clone(),
                    processes: missing,
                });
            }
        }
        (_, Breaker::Unreadable(value)) => d.notes.push(format!(
            "ASG {} carries an unreadable {}={value:?}: Ballast leaves its processes as they are; \
             fix or remove the tag.",
            g.name,
            tags::SUSPENDED
        )),
        (None, Breaker::Open(record))
            if !over_share && record.target_groups.iter().any(|t| t == key) =>
        {
            let mut rest = record.clone();
            rest.target_groups.retain(|t| t != key);
            if rest.target_groups.is_empty() {
                let resume: Vec<String> = record
                    .processes
                    .iter()
                    .filter(|p| g.is_suspended(p))
                    .cloned()
                    .collect();
                if !resume.is_empty() {
                    d.steps.push(Step::ResumeProcesses {
                        asg: g.name.clone(),
                        processes: resume,
                    });
                }
                d.steps.push(Step::UntagGroup {
                    asg: g.name.clone(),
                    key: tags::SUSPENDED.into(),
                });
                d.notes.push(format!(
                    "{} is back within the guardrail: the breaker closes, ASG {} resumes {}.",
                    short_name(&tg.arn),
                    g.name,
                    record.processes.join(", ")
                ));
            } else {
                d.steps.push(Step::TagGroup {
                    asg: g.name.clone(),
                    key: tags::SUSPENDED.into(),
                    value: rest.encode(),
                });
                d.notes.push(format!(
                    "{} is back within the guardrail; the breaker of ASG {} stays open for {}.",
                    short_name(&tg.arn),
                    g.name,
                    rest.target_groups.join(", ")
                ));
            }
        }
        _ => {}
    }

    if !mark.is_empty() {
        if !new_marks.is_empty() {
            let mut record = marks;
            for t in new_marks {
                record = record.with(&t.id, policy.now, window);
            }
            if let Some(value) = record.encode() {
                d.steps.push(Step::TagGroup {
                    asg: g.name.clone(),
                    key: tags::REPLACED.into(),
                    value,
                });
            }
        }
        d.steps.extend(mark.iter().map(|id| Step::MarkUnhealthy {
            instance_id: (*id).to_string(),
            asg: g.name.clone(),
        }));
    }
    (d, mark)
}

/// Several impaired targets all in one AZ while another AZ still serves is a
/// hint of zonal trouble rather than of bad instances.
fn az_hint(counted: &[&TargetState], impaired: &[&TargetState]) -> Option<String> {
    if impaired.len() < 2 {
        return None;
    }
    let sick: BTreeSet<&str> = impaired.iter().filter_map(|t| t.az.as_deref()).collect();
    let [az] = sick.iter().copied().collect::<Vec<_>>()[..] else {
        return None;
    };
    if impaired.iter().any(|t| t.az.is_none()) {
        return None;
    }
    let healthy: BTreeSet<&str> = counted
        .iter()
        .filter(|t| t.health == "healthy")
        .filter_map(|t| t.az.as_deref())
        .filter(|a| *a != az)
        .collect();
    if healthy.is_empty() {
        return None;
    }
    Some(format!(
        "All {} impaired targets are in {az} while {} healthy: possible AZ impairment.",
        impaired.len(),
        healthy.iter().copied().collect::<Vec<_>>().join(", ")
            + if healthy.len() == 1 { " is" } else { " are" }
    ))
}

fn record(t: &TargetState, status: ActionStatus, detail: String) -> ActionRecord {
    ActionRecord {
        kind: ActionKind::MarkUnhealthy,
        target: t.id.clone(),
        asg: t.member.as_ref().map(|m| m.asg.clone()),
        status,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TG: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/abc";
    const NOW: i64 = 1_796_140_800;
    /// A budget that never binds, for the guardrail's own tests.
    const POLICY: Policy = Policy {
        max_unhealthy_percent: 50,
        budget: Budget {
            percent: 100,
            window_secs: 3600,
        },
        now: NOW,
    };
    /// The defaults: 30% per 60 minutes.
    const DEFAULTS: Policy = Policy {
        budget: Budget {
            percent: 30,
            window_secs: 3600,
        },
        ..POLICY
    };

    fn asg(name: &str, desired: i32, check: &str) -> AsgState {
        AsgState {
            name: name.into(),
            desired,
            health_check_type: check.into(),
            suspended_processes: vec![],
            replaced: None,
            suspended: None,
            own: OwnReplacements::default(),
        }
    }

    fn target(id: &str, health: &str, az: &str, asg: &str, managed: bool) -> TargetState {
        TargetState {
            id: id.into(),
            health: health.into(),
            reason: match health {
                "unused" => Some("Target.InvalidState".into()),
                "unhealthy" => Some("Target.FailedHealthChecks".into()),
                _ => None,
            },
            az: Some(az.into()),
            member: Some(AsgMembership {
                asg: asg.into(),
                managed,
                health_status: "Healthy".into(),
                lifecycle_state: "InService".into(),
            }),
        }
    }

    /// The target group, with each managed ASG of its targets behind it
    /// (EC2 health checks, desired capacity = its instances).
    fn tg(targets: Vec<TargetState>) -> TargetGroupState {
        let mut groups: Vec<AsgState> = vec![];
        for m in targets.iter().filter_map(|t| t.member.as_ref()) {
            match groups.iter_mut().find(|g| g.name == m.asg) {
                Some(g) => g.desired += 1,
                None if m.managed => groups.push(asg(&m.asg, 1, "EC2")),
                None => {}
            }
        }
        TargetGroupState {
            arn: TG.into(),
            target_type: "instance".into(),
            targets,
            groups,
        }
    }

    fn web(states: &[(&str, &str)]) -> TargetGroupState {
        tg(states
            .iter()
            .enumerate()
            .map(|(i, (h, az))| target(&format!("i-{i}"), h, az, "web", true))
            .collect())
    }

    fn marked(plan: &Plan) -> Vec<&str> {
        marks_of(plan)
    }

    #[test]
    fn no_impaired_target_is_a_noop() {
        let plan = decide(&web(&[("healthy", "a"), ("healthy", "b")]), &POLICY);
        assert_eq!(plan.verdict, Verdict::Noop);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn one_stopped_instance_is_marked() {
        let plan = decide(
            &web(&[("unused", "a"), ("healthy", "b"), ("healthy", "a")]),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(marked(&plan), ["i-0"]);
        assert_eq!(plan.severity, Severity::Info);
        assert!(
            plan.situation.contains("i-0 (instance stopped)"),
            "{}",
            plan.situation
        );
    }

    #[test]
    fn failing_health_checks_count_as_impaired() {
        let plan = decide(
            &web(&[("unhealthy", "a"), ("healthy", "b"), ("healthy", "b")]),
            &POLICY,
        );
        assert_eq!(marked(&plan), ["i-0"]);
    }

    #[test]
    fn exactly_half_impaired_is_at_the_threshold_and_acts() {
        let plan = decide(&web(&[("unused", "a"), ("healthy", "b")]), &POLICY);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(marked(&plan), ["i-0"]);
    }

    #[test]
    fn more_than_half_impaired_is_declined() {
        let plan = decide(
            &web(&[("unused", "a"), ("unhealthy", "b"), ("healthy", "b")]),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Declined);
        assert_eq!(plan.severity, Severity::Critical);
        assert!(plan.steps.is_empty());
        assert_eq!(plan.skipped.len(), 2);
        assert!(plan
            .reason
            .as_deref()
            .unwrap()
            .contains("suspect the application or its health check"));
    }

    #[test]
    fn all_targets_unhealthy_is_declined() {
        let plan = decide(&web(&[("unused", "a"), ("unused", "b")]), &POLICY);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan
            .reason
            .as_deref()
            .unwrap()
            .starts_with("2 of 2 targets (100%)"));
    }

    #[test]
    fn threshold_is_configurable() {
        let strict = Policy {
            max_unhealthy_percent: 20,
            ..POLICY
        };
        let plan = decide(
            &web(&[("unused", "a"), ("healthy", "b"), ("healthy", "b")]),
            &strict,
        );
        assert_eq!(plan.verdict, Verdict::Declined);
        let zero = Policy {
            max_unhealthy_percent: 0,
            ..POLICY
        };
        assert_eq!(
            decide(&web(&[("unused", "a"), ("healthy", "b")]), &zero).verdict,
            Verdict::Declined
        );
    }

    #[test]
    fn unmanaged_asg_instance_is_skipped_and_the_rest_acts() {
        let mut g = web(&[
            ("unused", "a"),
            ("healthy", "b"),
            ("healthy", "a"),
            ("healthy", "b"),
        ]);
        g.targets
            .push(target("i-legacy", "unused", "a", "legacy", false));
        let plan = decide(&g, &POLICY);
        assert_eq!(marked(&plan), ["i-0"]);
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0]
            .detail
            .contains("ASG legacy is not tagged ballast:managed=true"));
    }

    #[test]
    fn only_unmanaged_impaired_is_a_noop() {
        let mut g = web(&[("healthy", "a"), ("healthy", "b")]);
        g.targets
            .push(target("i-legacy", "unused", "a", "legacy", false));
        let plan = decide(&g, &POLICY);
        assert_eq!(plan.verdict, Verdict::Noop);
        assert_eq!(plan.skipped[0].status, ActionStatus::Skipped);
    }

    #[test]
    fn target_group_without_managed_asg_is_ignored() {
        let g = tg(vec![target("i-1", "unused", "a", "legacy", false)]);
        let plan = decide(&g, &POLICY);
        assert_eq!(plan.verdict, Verdict::Ignored);
        assert!(plan.reason.unwrap().contains("ballast:managed=true"));
    }

    #[test]
    fn ip_target_group_is_ignored() {
        let mut g = web(&[("unhealthy", "a")]);
        g.target_type = "ip".into();
        assert_eq!(decide(&g, &POLICY).verdict, Verdict::Ignored);
    }

    #[test]
    fn instance_outside_any_asg_is_skipped() {
        let mut g = web(&[("healthy", "a"), ("healthy", "b"), ("healthy", "b")]);
        g.targets.push(TargetState {
            member: None,
            ..target("i-pet", "unhealthy", "a", "-", false)
        });
        let plan = decide(&g, &POLICY);
        assert_eq!(plan.verdict, Verdict::Noop);
        assert!(plan.skipped[0]
            .detail
            .contains("not in an Auto Scaling group"));
    }

    #[test]
    fn already_marked_or_leaving_instances_are_not_marked_again() {
        let mut g = web(&[
            ("unused", "a"),
            ("unused", "b"),
            ("healthy", "a"),
            ("healthy", "b"),
        ]);
        g.targets[0].member.as_mut().unwrap().health_status = "Unhealthy".into();
        g.targets[1].member.as_mut().unwrap().lifecycle_state = "Terminating".into();
        let plan = decide(&g, &POLICY);
        assert_eq!(plan.verdict, Verdict::Noop);
        assert_eq!(plan.skipped.len(), 2);
    }

    #[test]
    fn draining_targets_do_not_count() {
        // 1 impaired of 2 counted: at the threshold, acts; the draining one is ignored.
        let plan = decide(
            &web(&[
                ("unused", "a"),
                ("healthy", "b"),
                ("draining", "a"),
                ("draining", "b"),
            ]),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Act);
        let plan = decide(&web(&[("unused", "a"), ("draining", "b")]), &POLICY);
        assert_eq!(plan.verdict, Verdict::Declined);
    }

    #[test]
    fn impaired_targets_all_in_one_az_while_another_is_healthy_hint_at_az_trouble() {
        let plan = decide(
            &web(&[
                ("unused", "us-east-1a"),
                ("unhealthy", "us-east-1a"),
                ("healthy", "us-east-1b"),
                ("healthy", "us-east-1b"),
            ]),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Warning);
        assert!(
            plan.situation
                .contains("All 2 impaired targets are in us-east-1a while us-east-1b is healthy"),
            "{}",
            plan.situation
        );
    }

    #[test]
    fn mixed_azs_give_no_az_hint() {
        let plan = decide(
            &web(&[
                ("unused", "us-east-1a"),
                ("unhealthy", "us-east-1b"),
                ("healthy", "us-east-1b"),
                ("healthy", "us-east-1a"),
            ]),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Info);
        assert!(!plan.situation.contains("AZ"), "{}", plan.situation);
        assert_eq!(marked(&plan), ["i-0", "i-1"]);
    }

    #[test]
    fn a_single_impaired_target_gives_no_az_hint() {
        let plan = decide(
            &web(&[("unused", "us-east-1a"), ("healthy", "us-east-1b")]),
            &POLICY,
        );
        assert!(!plan.situation.contains("AZ"), "{}", plan.situation);
    }

    fn arb_target() -> impl Strategy<Value = TargetState> {
        (
            prop_oneof![
                Just("healthy"),
                Just("unhealthy"),
                Just("unused"),
                Just("draining"),
                Just("initial")
            ],
            prop_oneof![
                Just(Some("Target.InvalidState")),
                Just(Some("Target.NotRegistered")),
                Just(None)
            ],
            prop_oneof![Just("us-east-1a"), Just("us-east-1b"), Just("us-east-1c")],
            prop_oneof![
                Just(None),
                Just(Some(("web", true))),
                Just(Some(("legacy", false)))
            ],
            prop_oneof![Just("Healthy"), Just("Unhealthy")],
            prop_oneof![
                Just("InService"),
                Just("Pending"),
                Just("Terminating"),
                Just("Standby")
            ],
        )
            .prop_map(|(health, reason, az, asg, hs, ls)| TargetState {
                id: String::new(),
                health: health.into(),
                reason: reason.map(str::to_string),
                az: Some(az.into()),
                member: asg.map(|(asg, managed)| AsgMembership {
                    asg: asg.into(),
                    managed,
                    health_status: hs.into(),
                    lifecycle_state: ls.into(),
                }),
            })
    }

    fn arb_group() -> impl Strategy<Value = TargetGroupState> {
        proptest::collection::vec(arb_target(), 0..12).prop_map(|mut targets| {
            for (i, t) in targets.iter_mut().enumerate() {
                t.id = format!("i-{i}");
            }
            tg(targets)
        })
    }

    fn marks_of(plan: &Plan) -> Vec<&str> {
        plan.steps
            .iter()
            .filter(|s| matches!(s, Step::MarkUnhealthy { .. }))
            .map(Step::target)
            .collect()
    }

    fn group_mut<'a>(g: &'a mut TargetGroupState, name: &str) -> &'a mut AsgState {
        g.groups.iter_mut().find(|a| a.name == name).unwrap()
    }

    /// Applies `steps` to the observed state as AWS would.
    fn apply(before: &TargetGroupState, steps: &[Step]) -> TargetGroupState {
        let mut after = before.clone();
        for step in steps {
            match step {
                Step::MarkUnhealthy { instance_id, .. } => {
                    let t = after
                        .targets
                        .iter_mut()
                        .find(|t| &t.id == instance_id)
                        .unwrap();
                    t.member.as_mut().unwrap().health_status = "Unhealthy".into();
                }
                Step::TagGroup { asg, key, value } => {
                    let g = group_mut(&mut after, asg);
                    match key.as_str() {
                        tags::REPLACED => g.replaced = Some(value.clone()),
                        tags::SUSPENDED => g.suspended = Some(value.clone()),
                        other => panic!("unexpected tag {other}"),
                    }
                }
                Step::UntagGroup { asg, key } => {
                    let g = group_mut(&mut after, asg);
                    match key.as_str() {
                        tags::REPLACED => g.replaced = None,
                        tags::SUSPENDED => g.suspended = None,
                        other => panic!("unexpected tag {other}"),
                    }
                }
                Step::SuspendProcesses { asg, processes } => {
                    let g = group_mut(&mut after, asg);
                    for p in processes {
                        if !g.suspended_processes.contains(p) {
                            g.suspended_processes.push(p.clone());
                        }
                    }
                }
                Step::ResumeProcesses { asg, processes } => {
                    group_mut(&mut after, asg)
                        .suspended_processes
                        .retain(|p| !processes.contains(p));
                }
                other => panic!("unhealthy-target does not plan {other:?}"),
            }
        }
        after
    }

    /// Every group of a stopped target, ELB health checks.
    fn elb_fleet(states: &[&str]) -> TargetGroupState {
        let mut g = web(&states.iter().map(|s| (*s, "a")).collect::<Vec<_>>());
        g.groups[0].health_check_type = "ELB".into();
        g
    }

    #[test]
    fn a_mark_is_recorded_before_it_is_made() {
        let plan = decide(
            &web(&[
                ("unused", "a"),
                ("healthy", "b"),
                ("healthy", "b"),
                ("healthy", "b"),
            ]),
            &DEFAULTS,
        );
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(
            plan.steps,
            [
                Step::TagGroup {
                    asg: "web".into(),
                    key: tags::REPLACED.into(),
                    value: format!("b={} m=0:i-0", NOW / 60),
                },
                Step::MarkUnhealthy {
                    instance_id: "i-0".into(),
                    asg: "web".into(),
                },
            ]
        );
    }

    #[test]
    fn a_second_failure_within_the_window_waits_for_the_budget() {
        // Two instances, 30%: one replacement per hour.
        let first = web(&[("unused", "a"), ("healthy", "b")]);
        let plan = decide(&first, &DEFAULTS);
        assert_eq!(marks_of(&plan), ["i-0"]);
        let mut after = apply(&first, &plan.steps);
        // The ASG replaced i-0; twenty minutes later i-1 stops.
        after.targets[0] = target("i-2", "healthy", "a", "web", true);
        after.targets[1] = target("i-1", "unused", "b", "web", true);
        after.groups[0].own =
            OwnReplacements::count([super::super::budget::Replacement::UserHealthCheck]);
        let later = Policy {
            now: NOW + 1200,
            ..DEFAULTS
        };
        let plan = decide(&after, &later);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert_eq!(plan.severity, Severity::Critical);
        assert!(plan.steps.is_empty());
        let reason = plan.reason.unwrap();
        assert!(
            reason.contains("replacement budget of ASG web: 1 instance(s) per 60 min (BALLAST_MAX_REPLACED_PERCENT=30% of desired capacity 2, at least 1), 1 already replaced in the window (1 marked by Ballast, 0 by the ASG's own health checks), 1 more impaired"),
            "{reason}"
        );
        assert!(plan.skipped[0]
            .detail
            .contains("replacement budget of ASG web is spent"));
        // Once the first mark (and its activity) has left the window, it is marked.
        after.groups[0].own = OwnReplacements::default();
        let plan = decide(
            &after,
            &Policy {
                now: NOW + 3600,
                ..DEFAULTS
            },
        );
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(marks_of(&plan), ["i-1"]);
    }

    #[test]
    fn a_mark_recorded_but_not_made_is_made_again_without_spending_twice() {
        let mut g = web(&[("unused", "a"), ("healthy", "b")]);
        g.groups[0].replaced = Some(format!("b={} m=0:i-0", NOW / 60 - 2));
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(
            plan.steps,
            [Step::MarkUnhealthy {
                instance_id: "i-0".into(),
                asg: "web".into()
            }]
        );
        // Another instance is a fresh mark: the budget (1) is spent.
        g.targets[1] = target("i-1", "unused", "b", "web", true);
        g.targets.push(target("i-2", "healthy", "b", "web", true));
        g.targets.push(target("i-3", "healthy", "a", "web", true));
        g.groups[0].desired = 4;
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(marks_of(&plan), ["i-0"]);
        assert!(plan
            .skipped
            .iter()
            .any(|a| a.target == "i-1" && a.detail.contains("budget")));
    }

    #[test]
    fn the_asgs_own_replacements_count_against_the_budget() {
        let mut g = web(&[("unused", "a"), ("healthy", "b"), ("healthy", "b")]);
        g.groups[0].own.ec2 = 1;
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan
            .reason
            .unwrap()
            .contains("(0 marked by Ballast, 1 by the ASG's own health checks)"));
    }

    #[test]
    fn a_partial_budget_marks_what_it_allows_and_pages() {
        // Ten instances: three per hour; four impaired (40%, under the share guardrail).
        let states: Vec<(&str, &str)> = (0..10)
            .map(|i| (if i < 4 { "unhealthy" } else { "healthy" }, "a"))
            .collect();
        let plan = decide(&web(&states), &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Act);
        assert_eq!(plan.severity, Severity::Critical);
        assert_eq!(marks_of(&plan), ["i-0", "i-1", "i-2"]);
        assert!(plan.reason.unwrap().contains("4 more impaired, 3 marked"));
        assert_eq!(plan.skipped.len(), 1);
        assert_eq!(plan.skipped[0].target, "i-3");
    }

    #[test]
    fn every_target_down_behind_elb_health_checks_trips_the_breaker() {
        let g = elb_fleet(&["unhealthy", "unhealthy", "unused"]);
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert_eq!(plan.severity, Severity::Critical);
        assert_eq!(
            plan.steps,
            [
                Step::TagGroup {
                    asg: "web".into(),
                    key: tags::SUSPENDED.into(),
                    value: format!("p=ReplaceUnhealthy at={NOW} why=share tg=web/abc"),
                },
                Step::SuspendProcesses {
                    asg: "web".into(),
                    processes: vec![REPLACE_UNHEALTHY.into()],
                },
            ]
        );
        assert!(
            plan.situation.contains(
                "Breaker: ASG web replaces unhealthy instances by itself (health check type ELB)"
            ),
            "{}",
            plan.situation
        );
        // Open: the next look changes nothing and still pages.
        let open = apply(&g, &plan.steps);
        let again = decide(&open, &DEFAULTS);
        assert_eq!(
            (again.verdict, again.severity),
            (Verdict::Declined, Severity::Critical)
        );
        assert!(again.steps.is_empty(), "{:?}", again.steps);
        assert!(
            again.situation.contains("Breaker open"),
            "{}",
            again.situation
        );
    }

    #[test]
    fn ec2_health_checks_need_no_breaker() {
        let plan = decide(&web(&[("unhealthy", "a"), ("unhealthy", "b")]), &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn the_breaker_closes_when_the_target_group_is_back() {
        let g = elb_fleet(&["unhealthy", "unhealthy", "unhealthy"]);
        let open = apply(&g, &decide(&g, &DEFAULTS).steps);
        assert_eq!(open.groups[0].suspended_processes, [REPLACE_UNHEALTHY]);
        let mut fixed = open.clone();
        for t in &mut fixed.targets {
            *t = TargetState {
                health: "healthy".into(),
                reason: None,
                ..t.clone()
            };
        }
        let plan = decide(&fixed, &DEFAULTS);
        assert_eq!(
            (plan.verdict, plan.severity),
            (Verdict::Act, Severity::Info)
        );
        assert_eq!(
            plan.steps,
            [
                Step::ResumeProcesses {
                    asg: "web".into(),
                    processes: vec![REPLACE_UNHEALTHY.into()],
                },
                Step::UntagGroup {
                    asg: "web".into(),
                    key: tags::SUSPENDED.into(),
                },
            ]
        );
        assert!(
            plan.situation
                .contains("the breaker closes, ASG web resumes ReplaceUnhealthy"),
            "{}",
            plan.situation
        );
        let closed = apply(&fixed, &plan.steps);
        assert!(closed.groups[0].suspended_processes.is_empty());
        assert_eq!(decide(&closed, &DEFAULTS).verdict, Verdict::Noop);
        // One target still impaired is within the guardrail: it closes too,
        // and the budget allows the mark.
        let mut one = open;
        for t in &mut one.targets[1..] {
            *t = TargetState {
                health: "healthy".into(),
                reason: None,
                ..t.clone()
            };
        }
        let plan = decide(&one, &DEFAULTS);
        assert_eq!(plan.steps[0].kind(), "resume-processes");
        assert_eq!(marks_of(&plan), ["i-0"]);
    }

    #[test]
    fn an_operators_suspension_is_never_taken_over() {
        let mut g = elb_fleet(&["unhealthy", "unhealthy"]);
        g.groups[0].suspended_processes = vec![REPLACE_UNHEALTHY.into(), "AZRebalance".into()];
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(plan.steps.is_empty());
        assert!(
            plan.situation.contains("already suspended, not by Ballast"),
            "{}",
            plan.situation
        );
        // Back to healthy: nothing of it is resumed.
        for t in &mut g.targets {
            t.health = "healthy".into();
        }
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Noop);
        assert!(plan.steps.is_empty());
    }

    #[test]
    fn a_record_whose_process_is_no_longer_suspended_resumes_nothing() {
        let mut g = elb_fleet(&["healthy", "healthy"]);
        g.groups[0].suspended = Some("p=ReplaceUnhealthy at=1 why=share tg=web/abc".into());
        g.groups[0].suspended_processes = vec!["AZRebalance".into()];
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(
            plan.steps,
            [Step::UntagGroup {
                asg: "web".into(),
                key: tags::SUSPENDED.into()
            }]
        );
    }

    #[test]
    fn a_breaker_held_by_two_target_groups_closes_with_the_last() {
        let mut g = elb_fleet(&["healthy", "healthy"]);
        g.groups[0].suspended = Some("p=ReplaceUnhealthy at=1 why=share tg=api/def,web/abc".into());
        g.groups[0].suspended_processes = vec![REPLACE_UNHEALTHY.into()];
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(
            plan.steps,
            [Step::TagGroup {
                asg: "web".into(),
                key: tags::SUSPENDED.into(),
                value: "p=ReplaceUnhealthy at=1 why=share tg=api/def".into(),
            }]
        );
        assert!(
            plan.situation.contains("stays open for api/def"),
            "{}",
            plan.situation
        );
    }

    #[test]
    fn a_spent_budget_behind_elb_health_checks_trips_the_breaker() {
        // Four instances: one replacement per hour; two impaired (50%, at the guardrail).
        let mut g = elb_fleet(&["unhealthy", "unhealthy", "healthy", "healthy"]);
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined);
        assert!(marks_of(&plan).is_empty());
        assert_eq!(plan.steps[1].kind(), "suspend-processes");
        assert!(plan.steps[0].describe().contains("why=budget"));
        // The ASG replaced two by itself already and a third is at risk.
        g.targets[1].health = "healthy".into();
        g.targets[0].member.as_mut().unwrap().health_status = "Unhealthy".into();
        g.groups[0].own.load_balancer = 2;
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.steps[1].kind(), "suspend-processes");
    }

    /// An unreadable `ballast:replaced` is held: the budget it counts is
    /// unknown, so nothing new is marked (and the record is not
    /// overwritten as if there were none); the decline says why. A field a
    /// later version adds is no reason: the record reads past it.
    #[test]
    fn an_unreadable_replacement_record_is_held_not_overwritten() {
        let mut g = web(&[("unused", "a"), ("healthy", "b"), ("healthy", "b")]);
        g.groups[0].desired = 10;
        g.groups[0].replaced = Some("replaced by hand".into());
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(plan.verdict, Verdict::Declined, "{plan:#?}");
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        let reason = plan.reason.unwrap();
        assert!(
            reason.contains("unknown") && reason.contains("is not a record Ballast wrote"),
            "{reason}"
        );

        g.groups[0].replaced = Some(format!("b={} m=5:aaaaaaaa v2=yes", NOW / 60 - 10));
        let plan = decide(&g, &DEFAULTS);
        assert_eq!(marks_of(&plan), ["i-0"]);
        let record = plan
            .steps
            .iter()
            .find_map(|s| match s {
                Step::TagGroup { key, value, .. } if key == tags::REPLACED => Some(value.clone()),
                _ => None,
            })
            .expect("the mark is recorded");
        assert!(record.ends_with(" v2=yes"), "{record}");
        assert_eq!(Replaced::parse(&record).unwrap().marks.len(), 2);
    }

    #[test]
    fn an_unreadable_breaker_record_is_left_alone() {
        let mut g = elb_fleet(&["healthy", "healthy"]);
        g.groups[0].suspended = Some("suspended by hand".into());
        g.groups[0].suspended_processes = vec![REPLACE_UNHEALTHY.into()];
        let plan = decide(&g, &DEFAULTS);
        assert!(plan.steps.is_empty());
        assert!(plan.situation.contains("unreadable"), "{}", plan.situation);
    }

    /// The chains the executor runs for `plan`, as the states it can leave:
    /// each ASG's chain cut after any of its steps, independently; its
    /// marks (which wait on that chain) each made or not once the chain is
    /// whole.
    fn prefixes(before: &TargetGroupState, plan: &Plan) -> Vec<TargetGroupState> {
        let mut states = vec![before.clone()];
        for g in &before.groups {
            let chain: Vec<Step> = plan
                .steps
                .iter()
                .filter(|s| s.chain() == g.name)
                .cloned()
                .collect();
            let marks: Vec<Step> = plan
                .steps
                .iter()
                .filter(|s| s.after() == Some(g.name.as_str()))
                .cloned()
                .collect();
            states = states
                .iter()
                .flat_map(|s| {
                    let mut out: Vec<TargetGroupState> =
                        (0..chain.len()).map(|k| apply(s, &chain[..k])).collect();
                    let whole = apply(s, &chain);
                    for subset in 0..1u32 << marks.len().min(4) {
                        let made: Vec<Step> = marks
                            .iter()
                            .enumerate()
                            .filter(|(i, _)| *i >= 4 || subset & (1 << i) != 0)
                            .map(|(_, m)| m.clone())
                            .collect();
                        out.push(apply(&whole, &made));
                    }
                    out
                })
                .collect();
        }
        states
    }

    /// After any prefix: every process suspended since `original` is named
    /// by a readable record (nothing stranded), every process suspended in
    /// `original` without a record is still suspended (an operator's), and
    /// the record counts at least every mark made.
    fn check(
        original: &TargetGroupState,
        now: &TargetGroupState,
        window: i64,
        at: i64,
    ) -> Result<(), String> {
        for (g0, g) in original.groups.iter().zip(&now.groups) {
            let operators: Vec<&String> = if g0.suspended.is_none() {
                g0.suspended_processes.iter().collect()
            } else {
                vec![]
            };
            for p in &operators {
                if !g.suspended_processes.contains(p) {
                    return Err(format!("{}: an operator's {p} was resumed", g.name));
                }
            }
            for p in g
                .suspended_processes
                .iter()
                .filter(|p| !g0.suspended_processes.contains(p))
            {
                let named = g
                    .suspended
                    .as_deref()
                    .and_then(|v| Suspended::parse(v).ok())
                    .is_some_and(|r| r.processes.contains(p));
                if !named {
                    return Err(format!("{}: {p} suspended with no record", g.name));
                }
            }
            // Every mark made is in the record (written before it).
            for (t, t0) in now.targets.iter().zip(&original.targets) {
                if t.in_group(&g.name)
                    && t.member != t0.member
                    && !g.marks().is_ok_and(|m| m.has(&t.id, at, window))
                {
                    return Err(format!("{}: {} marked, not recorded", g.name, t.id));
                }
            }
        }
        Ok(())
    }

    fn converge(mut g: TargetGroupState, policy: &Policy) -> Result<TargetGroupState, String> {
        for _ in 0..4 {
            let plan = decide(&g, policy);
            if plan.steps.is_empty() {
                return Ok(g);
            }
            g = apply(&g, &plan.steps);
        }
        Err(format!("no convergence: {g:#?}"))
    }

    fn arb_asg(name: &'static str) -> impl Strategy<Value = AsgState> {
        (
            1i32..12,
            prop_oneof![
                Just("EC2"),
                Just("ELB"),
                Just("EC2,ELB"),
                Just("VPC_LATTICE")
            ],
            prop_oneof![
                Just(vec![]),
                Just(vec![REPLACE_UNHEALTHY]),
                Just(vec!["AZRebalance"]),
                Just(vec![REPLACE_UNHEALTHY, "AZRebalance"])
            ],
            prop_oneof![
                Just(None),
                Just(Some(
                    "p=ReplaceUnhealthy at=1796140000 why=share tg=web/abc"
                )),
                Just(Some(
                    "p=ReplaceUnhealthy at=1796140000 why=budget tg=api/def,web/abc"
                )),
                Just(Some(
                    "p=ReplaceUnhealthy at=1796140000 why=share tg=api/def"
                )),
                Just(Some("garbage"))
            ],
            0usize..4,
            0usize..3,
            0usize..3,
        )
            .prop_map(
                move |(desired, check, susp, rec, marks, user, lb)| AsgState {
                    suspended_processes: susp.into_iter().map(str::to_string).collect(),
                    suspended: rec.map(str::to_string),
                    replaced: (marks > 0).then(|| {
                        let offsets: Vec<String> =
                            (0..marks).map(|k| (k * 10).to_string()).collect();
                        format!("b={} m={}", (NOW - 2400) / 60, offsets.join("."))
                    }),
                    own: OwnReplacements {
                        user,
                        load_balancer: lb,
                        ec2: 0,
                    },
                    ..asg(name, desired, check)
                },
            )
    }

    fn arb_fleet() -> impl Strategy<Value = TargetGroupState> {
        (arb_group(), arb_asg("web"), 0u8..=100).prop_map(|(mut g, web, _)| {
            g.groups = vec![web];
            g
        })
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (0u8..=100, 1u8..=100).prop_map(|(max, percent)| Policy {
            max_unhealthy_percent: max,
            budget: Budget {
                percent,
                window_secs: 3600,
            },
            now: NOW,
        })
    }

    proptest! {
        #[test]
        fn never_marks_more_than_the_cap_nor_anything_unmanaged_or_healthy(g in arb_group(), max in 0u8..=100) {
            let plan = decide(&g, &Policy { max_unhealthy_percent: max, ..POLICY });
            let counted = g.targets.iter().filter(|t| t.health != "draining").count();
            prop_assert!(!exceeds_share(marks_of(&plan).len(), counted, max));
            for id in marks_of(&plan) {
                let t = g.targets.iter().find(|t| t.id == id).unwrap();
                prop_assert!(t.is_impaired());
                let m = t.member.as_ref().unwrap();
                prop_assert!(m.managed && m.lifecycle_state == "InService" && m.health_status == "Healthy");
            }
            prop_assert_eq!(plan.verdict == Verdict::Act, !plan.steps.is_empty());
        }

        #[test]
        fn applying_the_plan_and_deciding_again_changes_nothing(g in arb_fleet(), policy in arb_policy()) {
            let plan = decide(&g, &policy);
            let again = decide(&apply(&g, &plan.steps), &policy);
            prop_assert!(again.steps.is_empty(), "{:?}", again.steps);
            prop_assert_ne!(again.verdict, Verdict::Act);
        }

        /// Resumes only what its record names and what is suspended;
        /// suspends only with its record written first (or already there).
        #[test]
        fn the_breaker_never_resumes_what_it_did_not_suspend(g in arb_fleet(), policy in arb_policy()) {
            let plan = decide(&g, &policy);
            let web = &g.groups[0];
            let record = web.suspended.as_deref().and_then(|v| Suspended::parse(v).ok());
            for (i, step) in plan.steps.iter().enumerate() {
                match step {
                    Step::ResumeProcesses { processes, .. } => {
                        let record = record.as_ref().expect("a resume needs a record");
                        for p in processes {
                            prop_assert!(record.processes.contains(p) && web.suspended_processes.contains(p));
                        }
                    }
                    Step::SuspendProcesses { processes, .. } => {
                        prop_assert!(!processes.is_empty());
                        let written = plan.steps[..i].iter().any(|s| matches!(s, Step::TagGroup { key, .. } if key == tags::SUSPENDED));
                        prop_assert!(written || record.is_some());
                    }
                    _ => {}
                }
            }
        }

        /// Every prefix the executor can leave is safe, and redelivering
        /// converges from it.
        #[test]
        fn every_prefix_of_a_breaker_or_budget_plan_is_safe_and_converges(g in arb_fleet(), policy in arb_policy()) {
            let plan = decide(&g, &policy);
            for cut in prefixes(&g, &plan) {
                check(&g, &cut, policy.budget.window_secs, policy.now).map_err(TestCaseError::fail)?;
                let end = converge(cut, &policy).map_err(TestCaseError::fail)?;
                check(&g, &end, policy.budget.window_secs, policy.now).map_err(TestCaseError::fail)?;
            }
        }

        /// Failures arriving over time never make Ballast mark more than
        /// the budget allows in any window, counting the ASG's own
        /// health-check replacements.
        #[test]
        fn the_budget_is_never_exceeded_across_any_sequence_of_failures(
            desired in 1usize..8,
            percent in 1u8..=100,
            elb in any::<bool>(),
            events in proptest::collection::vec((0i64..40, proptest::collection::vec(0usize..8, 0..4)), 1..12),
        ) {
            let window = 3600;
            let mut fleet = tg((0..desired).map(|i| target(&format!("i-{i}"), "healthy", "a", "web", true)).collect());
            fleet.groups[0].health_check_type = if elb { "ELB".into() } else { "EC2".into() };
            let allowance = Budget { percent, window_secs: window }.allowance(desired as i32) as usize;
            let (mut now, mut next) = (NOW, desired);
            let mut marked: Vec<i64> = vec![];
            let mut own: Vec<i64> = vec![];
            for (minutes, failing) in events {
                now += minutes * 60;
                for i in failing {
                    if let Some(t) = fleet.targets.get_mut(i) {
                        t.health = "unused".into();
                        t.reason = Some("Target.InvalidState".into());
                    }
                }
                let in_window = |times: &[i64]| times.iter().filter(|t| **t > now - window).count();
                fleet.groups[0].own = OwnReplacements {
                    user: in_window(&marked),
                    load_balancer: in_window(&own),
                    ec2: 0,
                };
                let policy = Policy { max_unhealthy_percent: 100, budget: Budget { percent, window_secs: window }, now };
                let plan = decide(&fleet, &policy);
                let made = marks_of(&plan).len();
                if made > 0 {
                    prop_assert!(in_window(&marked) + made + in_window(&own) <= allowance,
                        "{} marked + {made} + {} own > {allowance}", in_window(&marked), in_window(&own));
                }
                marked.extend(std::iter::repeat_n(now, made));
                fleet = apply(&fleet, &plan.steps);
                // The ASG replaces what was marked, and (ELB health checks,
                // breaker closed) every impaired instance by itself.
                let replaces = !fleet.groups[0].suspended_processes.iter().any(|p| p == REPLACE_UNHEALTHY);
                for t in &mut fleet.targets {
                    let m = t.member.as_ref().unwrap();
                    let own_check = elb && t.is_impaired() && m.health_status == "Healthy";
                    if replaces && (m.health_status == "Unhealthy" || own_check) {
                        if own_check {
                            own.push(now);
                        }
                        *t = target(&format!("i-{next}"), "healthy", "a", "web", true);
                        next += 1;
                    }
                }
            }
        }
    }
}
