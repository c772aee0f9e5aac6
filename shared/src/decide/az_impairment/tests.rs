//! `az-impairment`'s decisions, their guardrails and every prefix of their plans.
use std::collections::{BTreeMap, BTreeSet};

use super::holds::evacuated_azs;
use super::*;
use crate::decide::{prefixes, Decline, Step, Verdict};
use crate::event::zonal::Direction;
use crate::records::Extra;
use crate::report::Severity;
use crate::tags;
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

fn group(name: &str, subnets: &[&str]) -> ZonedGroup {
    ZonedGroup {
        name: name.into(),
        arn: None,
        subnets: subnets.iter().map(|s| s.to_string()).collect(),
        max_size: 2,
        desired: 2,
        instances: vec![("i-a".into(), A.into()), ("i-b".into(), B.into())],
        evacuated: None,
    }
}

fn fleet(groups: Vec<ZonedGroup>) -> FleetState {
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
        (Verdict::Declined(Decline::LastZone), Severity::Critical)
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
        (
            Verdict::Declined(Decline::EvacuatedZoneLimit),
            Severity::Critical
        )
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
        Verdict::Declined(Decline::EvacuatedZoneLimit)
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
        (
            Verdict::Declined(Decline::ChangedSinceEvacuation),
            Severity::Warning
        )
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
    assert_eq!(
        plan.verdict,
        Verdict::Declined(Decline::UnreadableEvacuation)
    );
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
    assert_eq!(
        other.verdict,
        Verdict::Declined(Decline::EvacuatedZoneLimit),
        "{other:#?}"
    );
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
    assert_eq!(
        own.verdict,
        Verdict::Declined(Decline::UnreadableEvacuation),
        "{own:#?}"
    );
    assert!(own.severity >= Severity::Warning);
    assert!(own.steps.is_empty());
    assert!(
        own.reason.as_deref().unwrap().contains("record of web"),
        "{:?}",
        own.reason
    );
    // Under a limit of one, the unreadable record is that one zone.
    let own = decide(&only_web, &evac(), A, &ONE);
    assert_eq!(
        own.verdict,
        Verdict::Declined(Decline::EvacuatedZoneLimit),
        "{own:#?}"
    );
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
    let long = |i: usize| Signal::Alarm(format!("zonal-canary-for-the-checkout-service-{i:02}"));
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
        (
            Verdict::Declined(Decline::EvacuatedTooLong),
            Severity::Warning
        )
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

/// Every state the executor can leave `plan` in ([`prefixes`], the
/// executor's own chain rules).
fn cuts(f: &FleetState, plan: &Plan) -> Vec<FleetState> {
    prefixes(f, plan, |s, step| {
        Some(apply(
            s,
            &Plan {
                steps: vec![step.clone()],
                ..plan.clone()
            },
        ))
    })
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
    let cuts = cuts(before, &plan);
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
