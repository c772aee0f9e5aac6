//! `rds-failover`'s decisions, and every prefix of a promotion.
use std::collections::BTreeMap;

use super::verify::is_failed;
use super::*;
use crate::decide::{prefixes, Decline, Step, Verdict};
use crate::report::Severity;
use crate::tags;
use proptest::prelude::*;

const POLICY: Policy = Policy {
    dns_ttl: 30,
    now: 1_000_000,
    promotion_settle_secs: PROMOTION_SETTLE_SECS,
    proof_grace_secs: 600,
    max_unapplied_bytes: 0,
};
const DNS: &str = "Z123/db.internal.example.com";

fn instance(id: &str, status: &str) -> Instance {
    Instance {
        id: id.into(),
        arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
        status: status.into(),
        endpoint: Some(format!("{id}.abc.us-east-1.rds.amazonaws.com")),
        az: Some("us-east-1a".into()),
        secondary_az: None,
        multi_az: false,
        source: None,
        cluster: None,
        tags: BTreeMap::new(),
        access: Default::default(),
    }
}

fn tagged(mut i: Instance, tags: &[(&str, &str)]) -> Instance {
    i.tags = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    i
}

fn replica_of(id: &str, source: &str, status: &str) -> Instance {
    Instance {
        source: Some(source.into()),
        az: Some("us-east-1b".into()),
        ..instance(id, status)
    }
}

fn pair(primary_status: &str, replica: Option<Instance>, dns_current: Option<&str>) -> Subject {
    Subject::Instance {
        primary: tagged(
            instance("orders", primary_status),
            &[
                (tags::DNS_RECORD, DNS),
                (tags::STANDBY_REPLICA, "orders-replica"),
            ],
        ),
        standby: replica,
        dns_current: dns_current.map(str::to_string),
    }
}

fn failure() -> Prompt {
    Prompt {
        class: Some(EventClass::Failure),
        named: None,
    }
}

fn kinds(plan: &Plan) -> Vec<&str> {
    plan.steps.iter().map(|s| s.kind().as_str()).collect()
}

fn cluster(writer: &str, status: &str) -> Cluster {
    Cluster {
        id: "orders".into(),
        arn: "arn:aws:rds:us-east-1:123456789012:cluster:orders".into(),
        status: status.into(),
        endpoint: Some("orders.cluster-abc.us-east-1.rds.amazonaws.com".into()),
        members: vec![
            ClusterMember {
                id: "orders-1".into(),
                is_writer: writer == "orders-1",
            },
            ClusterMember {
                id: "orders-2".into(),
                is_writer: writer == "orders-2",
            },
        ],
        tags: [(tags::DNS_RECORD.to_string(), DNS.to_string())].into(),
        access: Default::default(),
    }
}

#[test]
fn dns_tags_parse_and_normalise() {
    assert_eq!(
        parse_dns_tag("Z123/DB.Example.com"),
        Ok(("Z123".into(), "db.example.com.".into()))
    );
    assert_eq!(
        parse_dns_tag("/hostedzone/Z123/db.example.com."),
        Ok(("Z123".into(), "db.example.com.".into()))
    );
    assert!(parse_dns_tag("db.example.com").is_err());
    assert!(parse_dns_tag("Z123/").is_err());
}

#[test]
fn aurora_writer_is_verified_and_a_wrong_dns_value_corrected() {
    let subject = Subject::Cluster {
        cluster: cluster("orders-2", "available"),
        writer: Some(Instance {
            az: Some("us-east-1b".into()),
            ..instance("orders-2", "available")
        }),
        dns_current: Some("orders-1.abc.us-east-1.rds.amazonaws.com".into()),
    };
    let prompt = Prompt {
        class: Some(EventClass::FailoverCompleted),
        named: Some("orders-2".into()),
    };
    let plan = decide(&subject, &prompt, &POLICY);
    assert_eq!(plan.verdict, Verdict::Act);
    assert!(
        plan.situation
            .starts_with("Verified writer of cluster orders: orders-2 in us-east-1b"),
        "{}",
        plan.situation
    );
    let [Step::UpsertCname {
        value,
        previous,
        ttl,
        name,
        ..
    }] = &plan.steps[..]
    else {
        panic!("{plan:?}")
    };
    assert_eq!(value, "orders.cluster-abc.us-east-1.rds.amazonaws.com");
    assert_eq!(
        previous.as_deref(),
        Some("orders-1.abc.us-east-1.rds.amazonaws.com")
    );
    assert_eq!((*ttl, name.as_str()), (30, "db.internal.example.com."));
}

#[test]
fn aurora_with_dns_already_right_is_a_noop() {
    let subject = Subject::Cluster {
        cluster: cluster("orders-1", "available"),
        writer: Some(instance("orders-1", "available")),
        dns_current: Some("ORDERS.cluster-abc.us-east-1.rds.amazonaws.com.".into()),
    };
    let plan = decide(&subject, &Prompt::default(), &POLICY);
    assert_eq!(plan.verdict, Verdict::Noop);
    assert!(plan.situation.contains("already points at"));
}

#[test]
fn aurora_failover_in_progress_is_not_yet_verifiable() {
    let subject = Subject::Cluster {
        cluster: cluster("orders-2", "failing-over"),
        writer: Some(instance("orders-2", "modifying")),
        dns_current: None,
    };
    let plan = decide(&subject, &Prompt::default(), &POLICY);
    assert_eq!(
        (plan.verdict, plan.severity),
        (Verdict::Noop, Severity::Warning)
    );
    assert!(plan.situation.contains("Not yet verifiable"));
    let no_writer = Subject::Cluster {
        cluster: cluster("none", "available"),
        writer: None,
        dns_current: None,
    };
    assert!(decide(&no_writer, &Prompt::default(), &POLICY)
        .situation
        .contains("has no writer"));
}

#[test]
fn multi_az_instance_is_verified_with_both_azs() {
    let mut db = tagged(instance("orders", "available"), &[(tags::DNS_RECORD, DNS)]);
    db.multi_az = true;
    db.secondary_az = Some("us-east-1b".into());
    let subject = Subject::Instance {
        primary: db.clone(),
        standby: None,
        dns_current: db.endpoint.clone(),
    };
    let plan = decide(
        &subject,
        &Prompt {
            class: Some(EventClass::FailoverCompleted),
            named: None,
        },
        &POLICY,
    );
    assert_eq!(plan.verdict, Verdict::Noop);
    assert!(
        plan.situation
            .contains("Multi-AZ, primary in us-east-1a, standby in us-east-1b"),
        "{}",
        plan.situation
    );
}

#[test]
fn replica_is_promoted_when_primary_fails() {
    let subject = pair(
        "stopped",
        Some(replica_of("orders-replica", "orders", "available")),
        Some("orders.abc.us-east-1.rds.amazonaws.com"),
    );
    let plan = decide(&subject, &failure(), &POLICY);
    assert_eq!(plan.verdict, Verdict::Act);
    assert!(plan.sequential);
    assert_eq!(plan.severity, Severity::Critical);
    // The record first, then the promotion, its confirmation, the tag
    // added to the replica, the record pointed, the primary's tags removed.
    assert_eq!(
        kinds(&plan),
        [
            "tag",
            "promote-replica",
            "tag",
            "tag",
            "upsert-cname",
            "untag",
            "untag"
        ]
    );
    let Step::TagDatabase { key, value, .. } = &plan.steps[0] else {
        panic!()
    };
    assert_eq!(key, tags::PROMOTION);
    assert_eq!(value, "from=orders state=requested at=1000000");
    let Step::UpsertCname {
        value,
        when_available,
        ..
    } = &plan.steps[4]
    else {
        panic!()
    };
    assert_eq!(value, "orders-replica.abc.us-east-1.rds.amazonaws.com");
    assert_eq!(when_available.as_deref(), Some("orders-replica"));
}

#[test]
fn every_failed_status_counts() {
    for status in [
        "failed",
        "stopped",
        "storage-full",
        "incompatible-parameters",
        "inaccessible-encryption-credentials",
    ] {
        let plan = decide(
            &pair(
                status,
                Some(replica_of("orders-replica", "orders", "available")),
                None,
            ),
            &Prompt::default(),
            &POLICY,
        );
        assert_eq!(plan.verdict, Verdict::Act, "{status}");
    }
}

#[test]
fn never_promote_while_the_primary_is_available() {
    let plan = decide(
        &pair(
            "available",
            Some(replica_of("orders-replica", "orders", "available")),
            None,
        ),
        &failure(),
        &POLICY,
    );
    assert_eq!(plan.verdict, Verdict::Declined(Decline::PrimaryServing));
    assert!(plan.reason.unwrap().contains("split brain"));
}

#[test]
fn replica_not_available_or_of_another_source_is_not_promoted() {
    let busy = decide(
        &pair(
            "failed",
            Some(replica_of("orders-replica", "orders", "modifying")),
            None,
        ),
        &failure(),
        &POLICY,
    );
    assert_eq!(busy.verdict, Verdict::Declined(Decline::StandbyUnavailable));
    assert!(busy.reason.unwrap().contains("is modifying, not available"));
    let other = decide(
        &pair(
            "failed",
            Some(replica_of("orders-replica", "billing", "available")),
            None,
        ),
        &failure(),
        &POLICY,
    );
    assert!(other
        .reason
        .unwrap()
        .contains("not a read replica of orders (its source: billing)"));
    let missing = decide(&pair("failed", None, None), &failure(), &POLICY);
    assert!(missing.reason.unwrap().contains("does not exist"));
}

#[test]
fn failed_primary_without_standby_is_declined_loudly() {
    let subject = Subject::Instance {
        primary: tagged(instance("orders", "failed"), &[(tags::DNS_RECORD, DNS)]),
        standby: None,
        dns_current: None,
    };
    let plan = decide(&subject, &failure(), &POLICY);
    assert_eq!(
        (plan.verdict, plan.severity),
        (Verdict::Declined(Decline::NoStandby), Severity::Critical)
    );
    assert!(plan.reason.unwrap().contains("a human must"));
}

#[test]
fn transitional_primary_is_not_yet_verifiable() {
    let plan = decide(&pair("rebooting", None, None), &failure(), &POLICY);
    assert_eq!(
        (plan.verdict, plan.severity),
        (Verdict::Noop, Severity::Warning)
    );
}

#[test]
fn untagged_instance_after_promotion_is_a_noop() {
    let subject = Subject::Instance {
        primary: instance("orders", "stopped"),
        standby: None,
        dns_current: None,
    };
    let plan = decide(&subject, &failure(), &POLICY);
    assert_eq!(plan.verdict, Verdict::Noop);
    assert!(plan.steps.is_empty());
}

#[test]
fn tags_on_a_read_replica_are_refused() {
    let subject = Subject::Instance {
        primary: tagged(
            replica_of("orders-replica", "orders", "available"),
            &[(tags::DNS_RECORD, DNS)],
        ),
        standby: None,
        dns_current: None,
    };
    let plan = decide(&subject, &Prompt::default(), &POLICY);
    assert_eq!(plan.verdict, Verdict::Declined(Decline::TagsOnReplica));
    assert!(plan.reason.unwrap().contains("read-only endpoint"));
}

#[test]
fn unusable_dns_tag_is_declined() {
    let subject = Subject::Instance {
        primary: tagged(
            instance("orders", "available"),
            &[(tags::DNS_RECORD, "db.example.com")],
        ),
        standby: None,
        dns_current: None,
    };
    let plan = decide(&subject, &Prompt::default(), &POLICY);
    assert_eq!(plan.verdict, Verdict::Declined(Decline::UnusableDnsTag));
    assert!(plan
        .reason
        .unwrap()
        .contains("is not <HostedZoneId>/<record name>"));
}

fn arb_status() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("available"),
        Just("backing-up"),
        Just("stopped"),
        Just("failed"),
        Just("storage-full"),
        Just("rebooting"),
        Just("modifying"),
        Just("incompatible-network"),
        Just("starting")
    ]
}

fn arb_class() -> impl Strategy<Value = Option<EventClass>> {
    prop_oneof![
        Just(None),
        Just(Some(EventClass::Failure)),
        Just(Some(EventClass::Stopped)),
        Just(Some(EventClass::FailoverCompleted)),
        Just(Some(EventClass::Availability))
    ]
}

/// What the executor would leave behind after applying `plan`.
fn apply(subject: &Subject, plan: &Plan) -> Subject {
    let Subject::Instance {
        primary,
        standby,
        dns_current,
    } = subject
    else {
        return subject.clone();
    };
    let (mut p, mut r, mut dns) = (primary.clone(), standby.clone(), dns_current.clone());
    for step in &plan.steps {
        match step {
            Step::PromoteReplica { .. } => r.as_mut().unwrap().source = None,
            Step::TagDatabase { key, value, .. } => {
                r.as_mut().unwrap().tags.insert(key.clone(), value.clone());
            }
            Step::UntagDatabase { key, .. } => {
                p.tags.remove(key);
            }
            Step::UpsertCname { value, .. } => dns = Some(value.clone()),
            other => unreachable!("{other:?}"),
        }
    }
    // After a promotion the replica is the subject that carries the tags.
    if plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::PromoteReplica { .. }))
    {
        return Subject::Instance {
            primary: r.unwrap(),
            standby: None,
            dns_current: dns,
        };
    }
    Subject::Instance {
        primary: p,
        standby: r,
        dns_current: dns,
    }
}

proptest! {
    #[test]
    fn never_promotes_while_the_primary_serves_nor_an_unready_or_foreign_replica(
        p in arb_status(), r in arb_status(), foreign in any::<bool>(), class in arb_class(), dns in any::<bool>()
    ) {
        let replica = replica_of("orders-replica", if foreign { "billing" } else { "orders" }, r);
        let subject = pair(p, Some(replica), dns.then_some("old.example.com"));
        let plan = decide(&subject, &Prompt { class, named: None }, &POLICY);
        let promotes = plan.steps.iter().any(|s| matches!(s, Step::PromoteReplica { .. }));
        prop_assert!(!promotes || (is_failed(p) && r == "available" && !foreign));
        prop_assert_eq!(plan.verdict == Verdict::Act, !plan.steps.is_empty());
    }

    #[test]
    fn applying_the_plan_and_deciding_again_converges(p in arb_status(), r in arb_status(), class in arb_class(), current in proptest::option::of(Just("stale.example.com"))) {
        let subject = pair(p, Some(replica_of("orders-replica", "orders", r)), current);
        let plan = decide(&subject, &Prompt { class, named: None }, &POLICY);
        let after = apply(&subject, &plan);
        let again = decide(&after, &Prompt { class, named: None }, &POLICY);
        let promotes_again = again.steps.iter().any(|s| matches!(s, Step::PromoteReplica { .. }));
        prop_assert!(!promotes_again);
        if plan.verdict == Verdict::Act {
            prop_assert!(again.steps.is_empty(), "{:?}", again);
        }
    }
}

/// The world around one promotion, as RDS behaves: a promoted replica is
/// `modifying` and still names its source until the next look.
#[derive(Debug, Clone, PartialEq)]
struct Db {
    primary: Instance,
    replica: Instance,
    dns: Option<String>,
    promotions: usize,
    now: i64,
}

impl Db {
    fn failed() -> Db {
        let Subject::Instance {
            primary,
            standby,
            dns_current,
        } = pair(
            "storage-full",
            Some(replica_of("orders-replica", "orders", "available")),
            Some("orders.abc.us-east-1.rds.amazonaws.com"),
        )
        else {
            unreachable!()
        };
        Db {
            primary,
            replica: standby.unwrap(),
            dns: dns_current,
            promotions: 0,
            now: POLICY.now,
        }
    }

    /// What a delivery about the primary sees; once the primary carries
    /// no tag, the sweep's look at the tagged replica.
    fn subjects(&self) -> Vec<Subject> {
        let mut out = vec![];
        if self.primary.tags.contains_key(tags::STANDBY_REPLICA)
            || self.primary.tags.contains_key(tags::DNS_RECORD)
        {
            out.push(Subject::Instance {
                primary: self.primary.clone(),
                standby: Some(self.replica.clone()),
                dns_current: self.dns.clone(),
            });
        }
        if self.replica.tags.contains_key(tags::DNS_RECORD) {
            out.push(Subject::Instance {
                primary: self.replica.clone(),
                standby: None,
                dns_current: self.dns.clone(),
            });
        }
        out
    }

    fn by_arn(&mut self, arn: &str) -> &mut Instance {
        if self.primary.arn == arn {
            &mut self.primary
        } else {
            &mut self.replica
        }
    }

    /// Applies `step` as RDS and the executor would; `false` when the
    /// step is deferred, which stops the chain.
    fn apply(&mut self, step: &Step) -> bool {
        match step {
            Step::TagDatabase {
                arn, key, value, ..
            } => {
                self.by_arn(arn).tags.insert(key.clone(), value.clone());
            }
            Step::UntagDatabase { arn, key, .. } => {
                self.by_arn(arn).tags.remove(key);
            }
            Step::PromoteReplica { .. } => {
                self.promotions += 1;
                self.replica.status = "modifying".into();
            }
            Step::UpsertCname {
                value,
                when_available,
                ..
            } => {
                let ready = when_available.is_none() || self.replica.status == "available";
                if !ready {
                    return false;
                }
                self.dns = Some(value.clone());
            }
            other => unreachable!("{other:?}"),
        }
        true
    }

    fn apply_all(&mut self, steps: &[Step]) {
        for step in steps {
            if !self.apply(step) {
                return;
            }
        }
    }

    /// A minute passes: a promotion RDS accepted is finished.
    fn tick(&mut self) {
        self.now += 60;
        if self.replica.status == "modifying" {
            self.replica.status = "available".into();
            self.replica.source = None;
        }
    }

    /// Delivers again and sweeps, a minute apart, for twenty minutes
    /// (a waiting decision has nothing to do until time passes).
    fn converge(&mut self) {
        for _ in 0..20 {
            let policy = Policy {
                now: self.now,
                ..POLICY
            };
            let plans: Vec<Plan> = self
                .subjects()
                .iter()
                .map(|s| decide(s, &Prompt::default(), &policy))
                .collect();
            for plan in plans {
                self.apply_all(&plan.steps);
            }
            self.tick();
        }
    }

    /// I3, and the end state of a finished promotion.
    fn check_done(&self) -> Result<(), String> {
        if self.promotions != 1 {
            return Err(format!("I3: promoted {} times", self.promotions));
        }
        let record = Promotion::of(&self.replica, "orders").ok_or("no promotion record")?;
        let moved = self.replica.tags.get(tags::DNS_RECORD).map(String::as_str) == Some(DNS)
            && !self.primary.tags.contains_key(tags::DNS_RECORD)
            && !self.primary.tags.contains_key(tags::STANDBY_REPLICA);
        let pointed = self.dns.as_deref() == self.replica.endpoint.as_deref();
        if record.promoted && moved && pointed {
            Ok(())
        } else {
            Err(format!("promotion not finished: {self:#?}"))
        }
    }
}

#[test]
fn every_prefix_of_a_promotion_finishes_it_with_one_promotion() {
    let mut covered = 0;
    let plan = decide(&Db::failed().subjects()[0], &failure(), &POLICY);
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::PromoteReplica { .. })));
    // Every state the executor can leave each plan in, by its own chain
    // rules; each is also tried with RDS having finished the promotion
    // before the next delivery.
    let cuts = |db: &Db, plan: &Plan| {
        prefixes(db, plan, |d, step| {
            let mut d = d.clone();
            d.apply(step).then_some(d)
        })
    };
    for (k, cut) in cuts(&Db::failed(), &plan).into_iter().enumerate() {
        for settled in [false, true] {
            let mut first = cut.clone();
            if settled {
                first.tick();
            }
            // The next delivery's plan is cut too, every way, and the
            // sweep finishes the job from there.
            let policy = Policy {
                now: first.now,
                ..POLICY
            };
            let Some(second) = first
                .subjects()
                .first()
                .map(|s| decide(s, &failure(), &policy))
            else {
                continue;
            };
            for (j, mut db) in cuts(&first, &second).into_iter().enumerate() {
                assert!(db.promotions <= 1, "I3 after prefixes {k} and {j}");
                db.converge();
                db.check_done()
                    .map_err(|e| format!("prefixes {k} then {j} (settled {settled}): {e}"))
                    .unwrap();
                covered += 1;
            }
        }
    }
    println!("rds-failover: {covered} pairs of plan prefixes (a delivery cut, then the next one cut), each finished with one promotion");
}

#[test]
fn a_promoted_replica_is_finished_not_promoted_again() {
    let mut db = Db::failed();
    let plan = decide(&db.subjects()[0], &failure(), &POLICY);
    // The record and the promotion went through; moving the tags was refused.
    db.apply_all(&plan.steps[..2]);
    let again = decide(&db.subjects()[0], &failure(), &POLICY);
    assert_eq!(again.verdict, Verdict::Act);
    assert!(
        again.situation.contains("Finishing the promotion"),
        "{}",
        again.situation
    );
    assert!(!again
        .steps
        .iter()
        .any(|s| matches!(s, Step::PromoteReplica { .. })));
    // moto keeps the source and `available` for good: the record still says so.
    let mut moto = Db::failed();
    moto.apply_all(&plan.steps[..3]);
    moto.replica.status = "available".into();
    let again = decide(&moto.subjects()[0], &failure(), &POLICY);
    assert!(
        !again
            .steps
            .iter()
            .any(|s| matches!(s, Step::PromoteReplica { .. })),
        "{again:#?}"
    );
}

#[test]
fn an_unconfirmed_request_waits_then_is_requested_again() {
    let mut db = Db::failed();
    let plan = decide(&db.subjects()[0], &failure(), &POLICY);
    db.apply_all(&plan.steps[..1]);
    let soon = decide(
        &db.subjects()[0],
        &failure(),
        &Policy {
            now: POLICY.now + PROMOTION_SETTLE_SECS - 1,
            ..POLICY
        },
    );
    assert_eq!(
        (soon.verdict, soon.severity),
        (Verdict::Noop, Severity::Warning)
    );
    // A wait is answered so that Lambda delivers the event again.
    assert!(
        soon.retry
            .as_deref()
            .is_some_and(|r| r.contains("requested 29s ago")),
        "{:?}",
        soon.retry
    );
    assert!(
        soon.situation
            .contains("waiting rather than promoting twice"),
        "{}",
        soon.situation
    );
    let later = decide(
        &db.subjects()[0],
        &failure(),
        &Policy {
            now: POLICY.now + PROMOTION_SETTLE_SECS,
            ..POLICY
        },
    );
    assert_eq!(kinds(&later)[..2], ["tag", "promote-replica"]);
    assert_eq!(later.retry, None);
    const { assert!(PROMOTION_SETTLE_SECS <= 60) };
}

#[test]
fn a_refused_promotion_is_under_way_or_not_yet_by_the_replica() {
    let replica = replica_of("orders-replica", "orders", "available");
    let primary = "orders".to_string();
    let with = |status: &str, source: Option<&str>| Instance {
        status: status.into(),
        source: source.map(str::to_string),
        ..replica.clone()
    };
    let under_way = |r: &Instance| {
        matches!(
            refused_promotion(Some(r), &primary),
            RefusedPromotion::UnderWay(_)
        )
    };
    assert!(under_way(&with("modifying", Some(&primary))));
    assert!(under_way(&with("available", None)));
    assert!(under_way(&with("rebooting", None)));
    // RDS documents that a replica backing up cannot be promoted yet.
    assert!(!under_way(&with("backing-up", Some(&primary))));
    assert!(!under_way(&with("available", Some(&primary))));
    assert!(matches!(
        refused_promotion(None, &primary),
        RefusedPromotion::NotYet(_)
    ));
}
