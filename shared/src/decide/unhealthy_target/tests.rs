//! `unhealthy-target`'s decisions, their guardrails and every prefix of their plans.
use super::decision::exceeds_share;
use super::*;
use crate::decide::{prefixes, Decline, Step, Verdict};
use crate::report::{ActionStatus, Severity};
use crate::resources::Replacement;
use crate::tags;
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

fn asg(name: &str, desired: i32, check: &str) -> BudgetedGroup {
    BudgetedGroup {
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
    let mut groups: Vec<BudgetedGroup> = vec![];
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
    let zero = Policy {
        max_unhealthy_percent: 0,
        ..POLICY
    };
    assert_eq!(
        decide(&web(&[("unused", "a"), ("healthy", "b")]), &zero).verdict,
        Verdict::Declined(Decline::UnhealthyShare)
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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

fn group_mut<'a>(g: &'a mut TargetGroupState, name: &str) -> &'a mut BudgetedGroup {
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
    after.groups[0].own = OwnReplacements::count([Replacement::UserHealthCheck]);
    let later = Policy {
        now: NOW + 1200,
        ..DEFAULTS
    };
    let plan = decide(&after, &later);
    assert_eq!(plan.verdict, Verdict::Declined(Decline::BudgetSpent));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::BudgetSpent));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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
        (
            Verdict::Declined(Decline::UnhealthyShare),
            Severity::Critical
        )
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnhealthyShare));
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
    assert_eq!(plan.verdict, Verdict::Declined(Decline::BudgetSpent));
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
    assert_eq!(
        plan.verdict,
        Verdict::Declined(Decline::BudgetUnknown),
        "{plan:#?}"
    );
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

/// Every state the executor can leave `plan` in ([`prefixes`], the
/// executor's own chain rules).
fn cuts(before: &TargetGroupState, plan: &Plan) -> Vec<TargetGroupState> {
    prefixes(before, plan, |s, step| {
        Some(apply(s, std::slice::from_ref(step)))
    })
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

fn arb_asg(name: &'static str) -> impl Strategy<Value = BudgetedGroup> {
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
            move |(desired, check, susp, rec, marks, user, lb)| BudgetedGroup {
                suspended_processes: susp.into_iter().map(str::to_string).collect(),
                suspended: rec.map(str::to_string),
                replaced: (marks > 0).then(|| {
                    let offsets: Vec<String> = (0..marks).map(|k| (k * 10).to_string()).collect();
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
        for cut in cuts(&g, &plan) {
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
