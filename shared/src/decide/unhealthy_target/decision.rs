//! The decision over one target group: the guardrail over its impaired
//! share, then each managed group's breaker and budget.

use std::collections::BTreeSet;

use super::breaker::{self, Trip};
use super::budget::Replaced;
use super::evidence::az_hint;
use super::state::{BudgetedGroup, TargetGroupState, TargetState};
use super::Policy;
use crate::decide::{Decline, Plan, Step, Verdict};
use crate::event::short_name;
use crate::records::Unreadable;
use crate::report::{ActionKind, ActionRecord, ActionStatus, Severity};
use crate::tags;

/// Whether `impaired` of `counted` targets exceeds `max_percent` percent.
pub(super) fn exceeds_share(impaired: usize, counted: usize, max_percent: u8) -> bool {
    impaired * 100 > usize::from(max_percent) * counted
}

/// The target group's impairment, against the guardrail.
struct Impairment<'a> {
    /// Draining targets are on their way out and count neither way.
    counted: Vec<&'a TargetState>,
    impaired: Vec<&'a TargetState>,
    over_share: bool,
}

impl<'a> Impairment<'a> {
    fn of(tg: &'a TargetGroupState, policy: &Policy) -> Self {
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
        let over_share = !impaired.is_empty()
            && exceeds_share(impaired.len(), counted.len(), policy.max_unhealthy_percent);
        Impairment {
            counted,
            impaired,
            over_share,
        }
    }
}

/// What one managed ASG gets from this target group's decision.
#[derive(Default)]
pub(super) struct GroupDecision {
    pub(super) steps: Vec<Step>,
    /// Sentences for the situation (the breaker's transitions).
    pub(super) notes: Vec<String>,
    /// The budget's account, when it declined something.
    budget: Option<String>,
    /// The group's budget is unknown (its record is unreadable).
    unknown: bool,
    pub(super) trips: bool,
}

/// Every managed group's decision, gathered.
#[derive(Default)]
struct Decisions<'a> {
    steps: Vec<Step>,
    notes: Vec<String>,
    budget_notes: Vec<String>,
    /// Markable targets the budget left unmarked.
    over_budget: BTreeSet<&'a str>,
    marked: BTreeSet<&'a str>,
    trips: bool,
    unknown: bool,
}

impl<'a> Decisions<'a> {
    fn of(tg: &'a TargetGroupState, imp: &Impairment<'a>, policy: &Policy) -> Self {
        let mut all = Decisions::default();
        for g in &tg.groups {
            let (d, mark) = decide_group(tg, g, &imp.impaired, imp.over_share, policy);
            if d.budget.is_some() {
                all.over_budget.extend(
                    imp.impaired
                        .iter()
                        .filter(|t| t.in_group(&g.name) && t.is_markable())
                        .filter(|t| !mark.contains(&t.id.as_str()))
                        .map(|t| t.id.as_str()),
                );
            }
            all.marked.extend(mark);
            all.steps.extend(d.steps);
            all.notes.extend(d.notes);
            all.budget_notes.extend(d.budget);
            all.trips |= d.trips;
            all.unknown |= d.unknown;
        }
        all
    }

    /// The breaker's transitions, as a sentence to append.
    fn breaker(&self) -> String {
        if self.notes.is_empty() {
            String::new()
        } else {
            format!(" {}", self.notes.join(" "))
        }
    }
}

pub(super) fn decide_plan(tg: &TargetGroupState, policy: &Policy) -> Plan {
    let name = short_name(&tg.arn);
    let resources = vec![tg.arn.clone()];
    if let Some(why) = not_ours(tg, name) {
        return Plan::ignored(why, resources);
    }
    let imp = Impairment::of(tg, policy);
    let all = Decisions::of(tg, &imp, policy);
    let skipped = skipped(&imp, &all);
    let (n, k) = (imp.counted.len(), imp.impaired.len());
    if imp.over_share {
        let mut reason = format!(
            "{k} of {n} targets ({}%) are impaired, above BALLAST_MAX_UNHEALTHY_PERCENT={}: \
             suspect the application or its health check, not the instances",
            k * 100 / n,
            policy.max_unhealthy_percent
        );
        for note in &all.budget_notes {
            reason.push_str("; ");
            reason.push_str(note);
        }
        let situation = format!(
            "Declined to replace instances of {name}: {k} of {n} targets are impaired.{}",
            all.breaker()
        );
        return Plan::declined(Decline::UnhealthyShare, situation, reason, resources)
            .with_steps(all.steps)
            .with_skipped(skipped)
            .with_severity(Severity::Critical);
    }
    let declined = all.trips || !all.budget_notes.is_empty();
    if all.marked.is_empty() && declined {
        let situation = format!(
            "Declined to replace instances of {name}: the replacement budget is spent ({k} of {n} targets impaired).{}",
            all.breaker()
        );
        let why = if all.unknown {
            Decline::BudgetUnknown
        } else {
            Decline::BudgetSpent
        };
        return Plan {
            verdict: Verdict::Declined(why),
            ..Plan::noop(situation, resources)
        }
        .with_steps(all.steps)
        .with_skipped(skipped)
        .with_reasons(all.budget_notes)
        .with_severity(Severity::Critical);
    }
    marking_plan(name, &imp, all, skipped, resources)
}

/// Why the target group is not Ballast's business, if it is not.
fn not_ours(tg: &TargetGroupState, name: &str) -> Option<String> {
    if tg.target_type != "instance" {
        return Some(format!(
            "{name} has target type {}: only instance targets belong to Auto Scaling groups",
            tg.target_type
        ));
    }
    let managed_member = tg
        .targets
        .iter()
        .any(|t| t.member.as_ref().is_some_and(|m| m.managed));
    (!managed_member && tg.groups.is_empty()).then(|| {
        format!(
            "no target of {name} belongs to an Auto Scaling group tagged {}=true",
            tags::MANAGED
        )
    })
}

/// The plan within the guardrail: the marks and the breaker's steps.
fn marking_plan(
    name: &str,
    imp: &Impairment<'_>,
    all: Decisions<'_>,
    skipped: Vec<ActionRecord>,
    resources: Vec<String>,
) -> Plan {
    let (n, k) = (imp.counted.len(), imp.impaired.len());
    let breaker = all.breaker();
    if imp.impaired.is_empty() {
        let situation = format!("No impaired target in {name} ({n} registered).{breaker}");
        return if all.steps.is_empty() {
            Plan::noop(situation, resources)
        } else {
            Plan::act(situation, all.steps, resources)
        };
    }
    let hint = az_hint(&imp.counted, &imp.impaired);
    let mut situation = format!("{k} of {n} targets of {name} impaired");
    if !all.marked.is_empty() {
        let list: Vec<String> = imp
            .impaired
            .iter()
            .filter(|t| all.marked.contains(t.id.as_str()))
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
    if all.steps.is_empty() {
        return Plan::noop(
            format!("{situation} Nothing for Ballast to mark."),
            resources,
        )
        .with_skipped(skipped);
    }
    let severity = if all.trips || !all.budget_notes.is_empty() {
        Severity::Critical
    } else if hint.is_some() {
        Severity::Warning
    } else {
        Severity::Info
    };
    Plan::act(situation, all.steps, resources)
        .with_skipped(skipped)
        .with_reasons(all.budget_notes)
        .with_severity(severity)
}

/// Every impaired target Ballast does not mark, with why.
fn skipped(imp: &Impairment<'_>, all: &Decisions<'_>) -> Vec<ActionRecord> {
    imp.impaired
        .iter()
        .filter(|t| !all.marked.contains(t.id.as_str()))
        .map(|t| {
            let detail = format!("{}; {}", t.why_impaired(), not_marked(t, imp, all));
            record(t, ActionStatus::Skipped, detail)
        })
        .collect()
}

/// Why an impaired target is not marked.
fn not_marked(t: &TargetState, imp: &Impairment<'_>, all: &Decisions<'_>) -> String {
    match &t.member {
        _ if imp.over_share => "not marked: declined by guardrail".into(),
        None => "not in an Auto Scaling group".into(),
        Some(m) if !m.managed => format!("ASG {} is not tagged {}=true", m.asg, tags::MANAGED),
        Some(m) if m.health_status.eq_ignore_ascii_case("unhealthy") => {
            format!("already marked Unhealthy, ASG {} is replacing it", m.asg)
        }
        Some(m) if m.lifecycle_state != "InService" => format!(
            "lifecycle state {} in ASG {}, left to the ASG",
            m.lifecycle_state, m.asg
        ),
        Some(m) if all.over_budget.contains(t.id.as_str()) => format!(
            "not marked: the replacement budget of ASG {} is spent",
            m.asg
        ),
        // A managed ASG that was not observed (it vanished meanwhile).
        Some(m) => format!("ASG {} could not be read", m.asg),
    }
}

/// One managed ASG's budget, as its records and activities count it.
struct Account<'a> {
    marks: Replaced,
    /// Its `ballast:replaced` record cannot be read: the budget is unknown.
    unreadable: Option<Unreadable>,
    by_ballast: usize,
    spent: usize,
    allowance: usize,
    /// Marks already recorded in the window (refused, or cut short, after
    /// their record landed): made again without spending twice.
    again: Vec<&'a TargetState>,
    fresh: Vec<&'a TargetState>,
}

impl<'a> Account<'a> {
    fn of(g: &BudgetedGroup, markable: &[&'a TargetState], policy: &Policy) -> Self {
        let window = policy.budget.window_secs;
        // An unreadable `ballast:replaced` is held: what it counts is
        // unknown, so Ballast marks nothing new in the group (and does not
        // overwrite it) until it is fixed or removed.
        let (marks, unreadable) = match g.marks() {
            Ok(marks) => (marks, None),
            Err(e) => (Replaced::default(), Some(e)),
        };
        let by_ballast = marks.within(policy.now, window);
        let (again, fresh) = markable
            .iter()
            .partition(|t| marks.has(&t.id, policy.now, window));
        Account {
            spent: g.own.spent_with(by_ballast),
            allowance: policy.budget.allowance(g.desired) as usize,
            marks,
            unreadable,
            by_ballast,
            again,
            fresh,
        }
    }

    /// Why the breaker trips for this group, if it does.
    fn trip(&self, g: &BudgetedGroup, over_share: bool, at_risk: bool) -> Option<Trip> {
        let over = (!self.fresh.is_empty() && self.spent + self.fresh.len() > self.allowance)
            || (self.spent > self.allowance && at_risk);
        if !g.replaces_by_itself() {
            None
        } else if over_share && at_risk {
            Some(Trip::Share)
        } else if over {
            Some(Trip::Budget)
        } else {
            None
        }
    }

    /// The budget's account, in words, for the reason.
    fn note(&self, g: &BudgetedGroup, new_marks: usize, policy: &Policy) -> String {
        format!(
            "replacement budget of ASG {}: {} instance(s) per {} min \
             (BALLAST_MAX_REPLACED_PERCENT={}% of desired capacity {}, at least 1), \
             {} already replaced in the window ({} marked by Ballast, \
             {} by the ASG's own health checks), {} more impaired{}",
            g.name,
            self.allowance,
            policy.budget.window_secs / 60,
            policy.budget.percent,
            g.desired,
            self.spent,
            self.by_ballast,
            self.spent - self.by_ballast.min(self.spent),
            self.fresh.len(),
            if new_marks == 0 {
                String::new()
            } else {
                format!(", {new_marks} marked")
            }
        )
    }
}

/// One managed ASG behind the target group: its breaker's steps, and which
/// of its impaired instances Ballast marks within its budget (in target
/// order). Every chain is ordered so that each prefix is safe: the breaker's
/// record before `SuspendProcesses`, `ResumeProcesses` before the record is
/// removed, the `ballast:replaced` record before the marks it counts.
fn decide_group<'a>(
    tg: &'a TargetGroupState,
    g: &BudgetedGroup,
    impaired: &[&'a TargetState],
    over_share: bool,
    policy: &Policy,
) -> (GroupDecision, Vec<&'a str>) {
    let mine: Vec<&TargetState> = impaired
        .iter()
        .copied()
        .filter(|t| t.in_group(&g.name))
        .collect();
    let markable: Vec<&TargetState> = mine.iter().copied().filter(|t| t.is_markable()).collect();
    let at_risk = mine.iter().any(|t| t.in_service());
    let account = Account::of(g, &markable, policy);
    let trip = account.trip(g, over_share, at_risk);
    let held = over_share || trip.is_some() || account.unreadable.is_some();
    let can_mark = if held {
        0
    } else {
        account
            .allowance
            .saturating_sub(account.spent)
            .min(account.fresh.len())
    };
    let new_marks = &account.fresh[..can_mark];
    let mark: Vec<&'a str> = if held {
        vec![]
    } else {
        markable
            .iter()
            .filter(|t| account.again.contains(t) || new_marks.contains(t))
            .map(|t| t.id.as_str())
            .collect()
    };
    let mut d = GroupDecision::default();
    match &account.unreadable {
        Some(e) if !markable.is_empty() => {
            d.unknown = true;
            d.budget = Some(format!(
                "replacement budget of ASG {}: unknown, {e}: Ballast marks nothing in it \
                 until the tag is fixed or removed",
                g.name
            ));
        }
        _ if !over_share && (mark.len() < markable.len() || trip == Some(Trip::Budget)) => {
            d.budget = Some(account.note(g, new_marks.len(), policy));
        }
        _ => {}
    }
    breaker::decide(&mut d, &tg.arn, g, trip, over_share, policy.now);
    if !mark.is_empty() {
        d.steps
            .extend(mark_steps(g, &account.marks, new_marks, &mark, policy));
    }
    (d, mark)
}

/// The record of the new marks (written first), then the marks.
fn mark_steps(
    g: &BudgetedGroup,
    marks: &Replaced,
    new_marks: &[&TargetState],
    mark: &[&str],
    policy: &Policy,
) -> Vec<Step> {
    let mut steps = vec![];
    if !new_marks.is_empty() {
        let record = new_marks.iter().fold(marks.clone(), |r, t| {
            r.with(&t.id, policy.now, policy.budget.window_secs)
        });
        if let Some(value) = record.encode() {
            steps.push(Step::TagGroup {
                asg: g.name.clone(),
                key: tags::REPLACED.into(),
                value,
            });
        }
    }
    steps.extend(mark.iter().map(|id| Step::MarkUnhealthy {
        instance_id: (*id).to_string(),
        asg: g.name.clone(),
    }));
    steps
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
