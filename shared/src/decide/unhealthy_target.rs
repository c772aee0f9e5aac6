//! `unhealthy-target`: which impaired targets to hand to their Auto Scaling
//! group for replacement, under the unhealthy-share guardrail.

use std::collections::BTreeSet;

use super::{Plan, Step, Verdict};
use crate::event::short_name;
use crate::report::{ActionRecord, ActionStatus, Severity};

/// A target group as observed: its targets' health joined with their ASG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupState {
    pub arn: String,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub targets: Vec<TargetState>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `BALLAST_MAX_UNHEALTHY_PERCENT`.
    pub max_unhealthy_percent: u8,
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
}

/// Whether `impaired` of `counted` targets exceeds `max_percent` percent.
pub fn exceeds_share(impaired: usize, counted: usize, max_percent: u8) -> bool {
    impaired * 100 > usize::from(max_percent) * counted
}

pub fn decide(tg: &TargetGroupState, policy: &Policy) -> Plan {
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
    if !tg
        .targets
        .iter()
        .any(|t| t.member.as_ref().is_some_and(|m| m.managed))
    {
        return Plan::ignored(
            format!(
                "no target of {name} belongs to an Auto Scaling group tagged {}=true",
                crate::tags::MANAGED
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

    if impaired.is_empty() {
        return Plan::noop(
            format!("No impaired target in {name} ({n} registered)."),
            resources,
        );
    }

    let pct = k * 100 / n;
    if exceeds_share(k, n, policy.max_unhealthy_percent) {
        let reason = format!(
            "{k} of {n} targets ({pct}%) are impaired, above BALLAST_MAX_UNHEALTHY_PERCENT={}: \
             suspect the application or its health check, not the instances",
            policy.max_unhealthy_percent
        );
        let skipped = impaired
            .iter()
            .map(|t| {
                record(
                    t,
                    ActionStatus::Skipped,
                    format!("{}; not marked: declined by guardrail", t.why_impaired()),
                )
            })
            .collect();
        return Plan {
            verdict: Verdict::Declined,
            steps: vec![],
            skipped,
            situation: format!(
                "Declined to replace instances of {name}: {k} of {n} targets are impaired."
            ),
            reason: Some(reason),
            severity: Severity::Critical,
            resources,
            sequential: false,
        };
    }

    let mut steps = vec![];
    let mut skipped = vec![];
    for t in &impaired {
        match &t.member {
            None => skipped.push(record(
                t,
                ActionStatus::Skipped,
                format!("{}; not in an Auto Scaling group", t.why_impaired()),
            )),
            Some(m) if !m.managed => skipped.push(record(
                t,
                ActionStatus::Skipped,
                format!(
                    "{}; ASG {} is not tagged {}=true",
                    t.why_impaired(),
                    m.asg,
                    crate::tags::MANAGED
                ),
            )),
            Some(m) if m.health_status.eq_ignore_ascii_case("unhealthy") => skipped.push(record(
                t,
                ActionStatus::Skipped,
                format!(
                    "{}; already marked Unhealthy, ASG {} is replacing it",
                    t.why_impaired(),
                    m.asg
                ),
            )),
            Some(m) if m.lifecycle_state != "InService" => skipped.push(record(
                t,
                ActionStatus::Skipped,
                format!(
                    "{}; lifecycle state {} in ASG {}, left to the ASG",
                    t.why_impaired(),
                    m.lifecycle_state,
                    m.asg
                ),
            )),
            Some(m) => steps.push(Step::MarkUnhealthy {
                instance_id: t.id.clone(),
                asg: m.asg.clone(),
            }),
        }
    }

    let hint = az_hint(&counted, &impaired);
    let mut situation = format!("{k} of {n} targets of {name} impaired");
    if !steps.is_empty() {
        let list: Vec<String> = impaired
            .iter()
            .filter(|t| steps.iter().any(|s| s.target() == t.id))
            .map(|t| format!("{} ({})", t.id, t.why_impaired()))
            .collect();
        situation.push_str(&format!(": {}", list.join(", ")));
    }
    situation.push('.');
    if let Some(h) = &hint {
        situation.push(' ');
        situation.push_str(h);
    }

    if steps.is_empty() {
        return Plan {
            skipped,
            situation: format!("{situation} Nothing for Ballast to mark."),
            ..Plan::noop("", resources)
        };
    }
    Plan {
        verdict: Verdict::Act,
        steps,
        skipped,
        situation,
        reason: None,
        severity: if hint.is_some() {
            Severity::Warning
        } else {
            Severity::Info
        },
        resources,
        sequential: false,
    }
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
        kind: "mark-unhealthy".into(),
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
    const POLICY: Policy = Policy {
        max_unhealthy_percent: 50,
    };

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

    fn tg(targets: Vec<TargetState>) -> TargetGroupState {
        TargetGroupState {
            arn: TG.into(),
            target_type: "instance".into(),
            targets,
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
        plan.steps.iter().map(Step::target).collect()
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
        };
        let plan = decide(
            &web(&[("unused", "a"), ("healthy", "b"), ("healthy", "b")]),
            &strict,
        );
        assert_eq!(plan.verdict, Verdict::Declined);
        let zero = Policy {
            max_unhealthy_percent: 0,
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

    proptest! {
        #[test]
        fn never_marks_more_than_the_cap_nor_anything_unmanaged_or_healthy(g in arb_group(), max in 0u8..=100) {
            let plan = decide(&g, &Policy { max_unhealthy_percent: max });
            let counted = g.targets.iter().filter(|t| t.health != "draining").count();
            prop_assert!(!exceeds_share(plan.steps.len(), counted, max));
            for s in &plan.steps {
                let t = g.targets.iter().find(|t| t.id == s.target()).unwrap();
                prop_assert!(t.is_impaired());
                let m = t.member.as_ref().unwrap();
                prop_assert!(m.managed && m.lifecycle_state == "InService" && m.health_status == "Healthy");
            }
            prop_assert_eq!(plan.verdict == Verdict::Act, !plan.steps.is_empty());
        }

        #[test]
        fn applying_the_plan_and_deciding_again_is_a_noop(g in arb_group(), max in 0u8..=100) {
            let policy = Policy { max_unhealthy_percent: max };
            let plan = decide(&g, &policy);
            let mut after = g.clone();
            for s in &plan.steps {
                let t = after.targets.iter_mut().find(|t| t.id == s.target()).unwrap();
                t.member.as_mut().unwrap().health_status = "Unhealthy".into();
            }
            let again = decide(&after, &policy);
            prop_assert!(again.steps.is_empty());
            prop_assert_ne!(again.verdict, Verdict::Act);
        }
    }
}
