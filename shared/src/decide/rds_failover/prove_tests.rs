//! The writer proof: which request the probe gets, what its answer does
//! to each plan, and every prefix of a proven change.
use super::*;
use crate::decide::{prefixes, Decline, Step, Verdict};
use crate::proof::{Credentials, Engine, Failure, Proof, Server, Stage};
use crate::records;
use crate::report::Severity;
use crate::resources::Access;
use crate::tags;

const POLICY: Policy = Policy {
    dns_ttl: 30,
    now: 1_000_000,
    promotion_settle_secs: PROMOTION_SETTLE_SECS,
    proof_grace_secs: 600,
    max_unapplied_bytes: 0,
};
const DNS: &str = "Z123/db.internal.example.com";
const NAME: &str = "db.internal.example.com";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1";

fn endpoint(id: &str) -> String {
    format!("{id}.abc.us-east-1.rds.amazonaws.com")
}

fn instance(id: &str, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id.into(),
        arn: format!("arn:aws:rds:us-east-1:123456789012:db:{id}"),
        status: "available".into(),
        endpoint: Some(endpoint(id)),
        az: Some("us-east-1a".into()),
        secondary_az: None,
        multi_az: true,
        source: None,
        cluster: None,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        access: Access {
            engine: Some("mysql".into()),
            port: Some(3306),
            master_secret: Some(SECRET.into()),
            parameter_group: Some("orders-params".into()),
        },
    }
}

fn opted(extra: &[(&str, &str)]) -> Instance {
    let mut tags = vec![
        (tags::DNS_RECORD, DNS),
        (tags::WRITER_PROBE, "secret=master"),
    ];
    tags.extend_from_slice(extra);
    instance("orders", &tags)
}

/// Opted in with `ballast:writer-probe` = `value`.
fn probing_as(value: &str) -> Instance {
    instance(
        "orders",
        &[(tags::DNS_RECORD, DNS), (tags::WRITER_PROBE, value)],
    )
}

fn subject(primary: Instance, dns_current: &str) -> Subject {
    Subject::Instance {
        primary,
        standby: None,
        dns_current: Some(dns_current.into()),
    }
}

/// What the probe sees through the name: a CNAME to `via`, a server that
/// takes writes or not.
fn seen(via: &str, writable: bool) -> Probed {
    let mut p = Proof::of(NAME, 3306, Engine::Mysql);
    p.chain = vec![via.to_string()];
    p.addresses = vec!["10.0.1.5".into()];
    p.server = Some(Server {
        identity: "ip-10-0-1-5".into(),
        version: "8.0.39".into(),
        writable,
        read_only_because: if writable {
            vec![]
        } else {
            vec!["read_only=ON".into()]
        },
    });
    Probed::Proof(Box::new(p))
}

fn failed_at(stage: Stage) -> Probed {
    let mut p = Proof::of(NAME, 3306, Engine::Mysql);
    p.failure = Some(Failure {
        stage,
        message: "connection refused".into(),
    });
    Probed::Proof(Box::new(p))
}

fn decided(subject: Subject, probed: Probed, now: i64) -> Plan {
    let policy = Policy { now, ..POLICY };
    decide_proven(
        &Observed {
            subject,
            probed,
            standby: Probed::NotOptedIn,
            replica_lag: None,
        },
        &Prompt::default(),
        &policy,
    )
}

fn unproven_since(since: i64) -> String {
    records::write(&Unproven {
        since,
        extra: Default::default(),
    })
}

#[test]
fn the_request_names_the_application_and_the_login_from_the_tags() {
    let r = request(&subject(opted(&[]), "x"), true).unwrap();
    assert_eq!(r.name, NAME);
    assert_eq!((r.port, r.engine), (3306, Engine::Mysql));
    assert_eq!(r.credentials, Credentials::Secret(SECRET.into()));
    let named = probing_as("secret=prod/orders/prober db=orders");
    let r = request(&subject(named, "x"), true).unwrap();
    assert_eq!(
        r.credentials,
        Credentials::Secret("prod/orders/prober".into())
    );
    assert_eq!(r.database.as_deref(), Some("orders"));
    // Why not, each time.
    let untagged = instance("orders", &[(tags::DNS_RECORD, DNS)]);
    assert_eq!(
        request(&subject(untagged, "x"), true),
        Err(Probed::NotOptedIn)
    );
    let not_asked = |i: Instance, deployed: bool| match request(&subject(i, "x"), deployed) {
        Err(Probed::NotAsked(why)) => why,
        other => panic!("{other:?}"),
    };
    assert!(not_asked(opted(&[]), false).contains("no writer probe"));
    let mut no_secret = opted(&[]);
    no_secret.access.master_secret = None;
    assert!(not_asked(no_secret, true).contains("ManageMasterUserPassword"));
    let mut oracle = opted(&[]);
    oracle.access.engine = Some("oracle-ee".into());
    assert!(not_asked(oracle, true).contains("not oracle-ee"));
    let no_name = instance("orders", &[(tags::WRITER_PROBE, "secret=master")]);
    assert!(not_asked(no_name, true).contains(tags::DNS_RECORD));
    let bad = probing_as("master");
    assert!(not_asked(bad, true).contains("expected secret=master"));
    // IAM database authentication, as a user.
    let iam = probing_as("auth=iam user=ballast_probe");
    let r = request(&subject(iam, "x"), true).unwrap();
    assert_eq!(
        r.credentials,
        Credentials::Iam {
            user: "ballast_probe".into()
        }
    );
    for (bad, says) in [
        ("auth=iam", "names no user="),
        ("auth=kerberos user=x", "is not iam"),
        ("secret=master auth=iam user=x", "both"),
    ] {
        let i = probing_as(bad);
        assert!(not_asked(i, true).contains(says), "{bad}");
    }
    assert_eq!(engine_of("aurora-postgresql"), Some(Engine::Postgres));
    assert_eq!(engine_of("mariadb"), Some(Engine::Mysql));
}

#[test]
fn a_database_that_does_not_opt_in_is_decided_as_before() {
    let s = subject(
        instance("orders", &[(tags::DNS_RECORD, DNS)]),
        "stale.example.com",
    );
    let plan = decided(s.clone(), Probed::NotOptedIn, POLICY.now);
    assert_eq!(plan, decide(&s, &Prompt::default(), &POLICY));
}

#[test]
fn a_proven_writer_is_a_noop_that_says_so_and_carries_the_proof() {
    let plan = decided(
        subject(opted(&[]), &endpoint("orders")),
        seen(&endpoint("orders"), true),
        POLICY.now,
    );
    assert_eq!(plan.verdict, Verdict::Noop);
    assert!(!plan.unproven);
    assert!(
        plan.situation
            .contains("Proven through the application's name"),
        "{}",
        plan.situation
    );
    assert_eq!(plan.evidence["proof"]["server"]["writable"], true);
}

#[test]
fn proven_after_an_unproven_spell_is_the_remediated_report() {
    let primary = opted(&[(tags::UNPROVEN, &unproven_since(POLICY.now - 60))]);
    let plan = decided(
        subject(primary, &endpoint("orders")),
        seen(&endpoint("orders"), true),
        POLICY.now,
    );
    assert_eq!(plan.verdict, Verdict::Act);
    assert!(!plan.unproven);
    assert!(matches!(&plan.steps[..], [Step::UntagDatabase { key, .. }] if key == tags::UNPROVEN));
}

#[test]
fn a_writer_that_refuses_writes_is_recorded_retried_then_critical_with_the_fix() {
    let read_only = || seen(&endpoint("orders"), false);
    let first = decided(
        subject(opted(&[]), &endpoint("orders")),
        read_only(),
        POLICY.now,
    );
    assert!(first.unproven && first.retry.is_some());
    assert_eq!(first.severity, Severity::Warning);
    assert!(
        first.situation.contains("The writer refuses writes"),
        "{}",
        first.situation
    );
    let fix = first.reason.clone().unwrap();
    assert!(fix.contains("--db-parameter-group-name orders-params --parameters ParameterName=read_only,ParameterValue=0"), "{fix}");
    let Step::TagDatabase { key, value, .. } = &first.steps[0] else {
        panic!("{first:?}")
    };
    assert_eq!(
        (key.as_str(), value.as_str()),
        (tags::UNPROVEN, "since=1000000")
    );
    // Within the grace: retried, not published again.
    let since = unproven_since(POLICY.now);
    let later = decided(
        subject(opted(&[(tags::UNPROVEN, &since)]), &endpoint("orders")),
        read_only(),
        POLICY.now + 120,
    );
    assert_eq!((later.verdict, later.unproven), (Verdict::Noop, false));
    assert!(later.retry.is_some() && later.situation.contains("Unproven for 120s"));
    // Past it: critical, every look, until fixed.
    let past = decided(
        subject(opted(&[(tags::UNPROVEN, &since)]), &endpoint("orders")),
        read_only(),
        POLICY.now + 600,
    );
    assert!(past.unproven && past.retry.is_none());
    assert_eq!(
        (past.verdict, past.severity),
        (Verdict::Noop, Severity::Critical)
    );
}

#[test]
fn a_stale_resolver_is_told_from_a_stale_record() {
    // Route 53 has the writer; the resolver still answers the old server.
    let plan = decided(
        subject(opted(&[]), &endpoint("orders")),
        seen(&endpoint("orders-old"), false),
        POLICY.now,
    );
    assert!(
        plan.situation.contains("Stale resolver"),
        "{}",
        plan.situation
    );
    assert!(plan.reason.unwrap().contains("TTL"));
    // The record itself is stale: Ballast repoints it, and the repointed
    // record is not remediated until proven.
    let plan = decided(
        subject(opted(&[]), &endpoint("orders-old")),
        seen(&endpoint("orders-old"), false),
        POLICY.now,
    );
    assert!(plan.unproven && plan.retry.is_some());
    let kinds: Vec<&str> = plan.steps.iter().map(|s| s.kind().as_str()).collect();
    assert_eq!(kinds, ["tag", "upsert-cname"], "{plan:?}");
    assert!(
        plan.situation
            .contains("Not remediated until the probe proves"),
        "{}",
        plan.situation
    );
}

#[test]
fn each_stage_the_probe_could_not_pass_has_its_fix() {
    for (stage, fix) in [
        (Stage::Dns, "private hosted zone"),
        (Stage::Network, "security group"),
        (Stage::Tls, "BALLAST_PROBE_CA_BUNDLE"),
        (Stage::Login, "secret"),
        (Stage::Query, "load"),
    ] {
        let plan = decided(
            subject(opted(&[]), &endpoint("orders")),
            failed_at(stage),
            POLICY.now,
        );
        assert!(plan.unproven, "{stage:?}");
        assert!(
            plan.situation
                .contains(&format!("failed at {}", stage.as_str())),
            "{}",
            plan.situation
        );
        assert!(
            plan.reason.as_deref().unwrap().contains(fix),
            "{stage:?}: {:?}",
            plan.reason
        );
    }
    let plan = decided(
        subject(opted(&[]), &endpoint("orders")),
        Probed::Unanswered("throttled".into()),
        POLICY.now,
    );
    assert!(plan.unproven && plan.situation.contains("did not answer: throttled"));
    let not_asked = decided(
        subject(opted(&[]), &endpoint("orders")),
        Probed::NotAsked("no probe".into()),
        POLICY.now,
    );
    assert!(!not_asked.unproven && not_asked.steps.is_empty());
    assert!(not_asked
        .reason
        .unwrap()
        .contains("writer proof not asked: no probe"));
}

/// A failed primary with an opted-in standby, and a probe that proves the
/// writer exactly when the name leads to an available, promoted replica.
#[derive(Debug, Clone, PartialEq)]
struct World {
    primary: Instance,
    replica: Instance,
    dns: String,
    promotions: usize,
    now: i64,
}

impl World {
    fn failed() -> World {
        let mut primary = opted(&[(tags::STANDBY_REPLICA, "orders-replica")]);
        primary.status = "storage-full".into();
        let mut replica = instance("orders-replica", &[]);
        replica.source = Some("orders".into());
        World {
            primary,
            replica,
            dns: endpoint("orders"),
            promotions: 0,
            now: POLICY.now,
        }
    }

    fn probed(&self, holder: &Instance) -> Probed {
        if !holder.tags.contains_key(tags::WRITER_PROBE) {
            return Probed::NotOptedIn;
        }
        let writes = self.dns == endpoint("orders-replica")
            && self.replica.status == "available"
            && self.replica.source.is_none();
        seen(&self.dns, writes)
    }

    fn plans(&self) -> Vec<Plan> {
        let mut subjects = vec![];
        if self.primary.tags.contains_key(tags::DNS_RECORD) {
            subjects.push((self.primary.clone(), Some(self.replica.clone())));
        }
        if self.replica.tags.contains_key(tags::DNS_RECORD) {
            subjects.push((self.replica.clone(), None));
        }
        subjects
            .into_iter()
            .map(|(p, standby)| {
                let probed = self.probed(&p);
                let subject = Subject::Instance {
                    primary: p,
                    standby,
                    dns_current: Some(self.dns.clone()),
                };
                decided(subject, probed, self.now)
            })
            .collect()
    }

    fn by_arn(&mut self, arn: &str) -> &mut Instance {
        if self.primary.arn == arn {
            &mut self.primary
        } else {
            &mut self.replica
        }
    }

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
                if when_available.is_some() && self.replica.status != "available" {
                    return false;
                }
                self.dns = value.clone();
            }
            other => unreachable!("{other:?}"),
        }
        true
    }

    fn converge(&mut self) -> Vec<Plan> {
        let mut last = vec![];
        for _ in 0..20 {
            last = self.plans();
            for plan in &last {
                for step in &plan.steps {
                    if !self.apply(step) {
                        break;
                    }
                }
            }
            self.now += 60;
            if self.replica.status == "modifying" {
                self.replica.status = "available".into();
                self.replica.source = None;
            }
        }
        last
    }
}

#[test]
fn every_prefix_of_a_proven_promotion_ends_proven_once_with_no_record_left() {
    let start = World::failed();
    let plan = &start.plans()[0];
    assert!(
        plan.unproven,
        "a promotion is not remediated before its proof"
    );
    let mut covered = 0;
    for cut in prefixes(&start, plan, |w, step| {
        let mut w = w.clone();
        w.apply(step).then_some(w)
    }) {
        let mut w = cut;
        let last = w.converge();
        assert_eq!(w.promotions, 1, "I3");
        assert_eq!(w.dns, endpoint("orders-replica"));
        for key in [tags::DNS_RECORD, tags::WRITER_PROBE] {
            assert!(w.replica.tags.contains_key(key), "{key} moved: {w:#?}");
            assert!(!w.primary.tags.contains_key(key), "{key} left: {w:#?}");
        }
        assert!(
            !w.replica.tags.contains_key(tags::UNPROVEN),
            "the record outlived the proof: {w:#?}"
        );
        let [settled] = &last[..] else {
            panic!("{last:?}")
        };
        assert_eq!(settled.verdict, Verdict::Noop);
        assert!(
            settled.situation.contains("Proven through"),
            "{}",
            settled.situation
        );
        covered += 1;
    }
    println!("rds-failover: {covered} prefixes of an opted-in promotion, each proven once");
}

#[test]
fn the_remediated_report_comes_once_when_the_proof_arrives() {
    // A stale record, repointed; the next look proves it and removes the
    // record (remediated), and every look after is a quiet noop.
    let mut primary = opted(&[]);
    let mut dns = endpoint("orders-old");
    let mut outcomes = vec![];
    for minute in 0..4 {
        let probed = seen(&dns, dns == endpoint("orders"));
        let plan = decided(
            subject(primary.clone(), &dns),
            probed,
            POLICY.now + minute * 60,
        );
        outcomes.push((plan.verdict, plan.unproven));
        for step in &plan.steps {
            match step {
                Step::TagDatabase { key, value, .. } => {
                    primary.tags.insert(key.clone(), value.clone());
                }
                Step::UntagDatabase { key, .. } => {
                    primary.tags.remove(key);
                }
                Step::UpsertCname { value, .. } => dns = value.clone(),
                other => unreachable!("{other:?}"),
            }
        }
    }
    assert_eq!(
        outcomes,
        [
            (Verdict::Act, true),
            (Verdict::Act, false),
            (Verdict::Noop, false),
            (Verdict::Noop, false)
        ]
    );
}

/// `primary`, failed, with its replicating standby.
fn failed_with_standby(mut primary: Instance) -> Subject {
    primary.status = "storage-full".into();
    let mut replica = instance("orders-replica", &[]);
    replica.source = Some("orders".into());
    Subject::Instance {
        primary,
        standby: Some(replica),
        dns_current: Some(endpoint("orders")),
    }
}

/// A failed primary that opts in, its standby probed at its endpoint.
fn failing(standby: Probed, max: u64) -> Plan {
    let subject = failed_with_standby(opted(&[(tags::STANDBY_REPLICA, "orders-replica")]));
    let policy = Policy {
        max_unapplied_bytes: max,
        ..POLICY
    };
    decide_proven(
        &Observed {
            subject,
            probed: seen(&endpoint("orders"), false),
            standby,
            replica_lag: None,
        },
        &Prompt::default(),
        &policy,
    )
}

fn standby_lag(unapplied: u64, stopped: bool) -> Probed {
    let Probed::Proof(mut p) = seen(&endpoint("orders-replica"), false) else {
        unreachable!()
    };
    p.name = endpoint("orders-replica");
    p.lag = Some(crate::proof::Lag {
        replicating: true,
        received: Some("mysql-bin.000003:2200".into()),
        applied: Some(format!("mysql-bin.000003:{}", 2200 - unapplied)),
        unapplied_bytes: Some(unapplied),
        unapplied_elsewhere: false,
        seconds_behind: Some(if stopped { 0.0 } else { 4.0 }),
        applier_stopped: stopped,
    });
    Probed::Proof(p)
}

fn promotes(plan: &Plan) -> bool {
    plan.steps
        .iter()
        .any(|s| matches!(s, Step::PromoteReplica { .. }))
}

#[test]
fn a_standby_behind_what_it_received_is_not_promoted_until_it_catches_up() {
    let behind = failing(standby_lag(700, true), 0);
    assert_eq!(behind.verdict, Verdict::Declined(Decline::StandbyBehind));
    assert!(!promotes(&behind) && behind.steps.is_empty(), "{behind:?}");
    assert_eq!(behind.severity, Severity::Critical);
    assert!(
        behind.retry.is_some(),
        "promoted once it catches up: retried"
    );
    assert!(
        behind.situation.contains(
            "received mysql-bin.000003:2200, applied mysql-bin.000003:1500, 700 bytes unapplied"
        ),
        "{}",
        behind.situation
    );
    let reason = behind.reason.clone().unwrap();
    assert!(
        reason.contains("BALLAST_PROMOTION_MAX_UNAPPLIED_BYTES=0"),
        "{reason}"
    );
    assert!(reason.contains("applier is stopped"), "{reason}");
    assert_eq!(
        behind.evidence["standbyProof"]["lag"]["unappliedBytes"],
        700
    );
    // Within what the policy allows, or caught up: promoted.
    assert!(promotes(&failing(standby_lag(700, false), 1024)));
    let caught_up = failing(standby_lag(0, false), 0);
    assert!(promotes(&caught_up));
    assert!(caught_up
        .reason
        .unwrap()
        .contains("has applied what it received"));
    // No positive evidence: the API's word, said.
    let unread = failing(Probed::Unanswered("timed out".into()), 0);
    assert!(promotes(&unread));
    assert!(unread
        .reason
        .unwrap()
        .contains("could not be read (timed out)"));
    // Another binary log file: the amount is unknown, so over any limit.
    let Probed::Proof(mut p) = standby_lag(0, false) else {
        unreachable!()
    };
    p.lag.as_mut().unwrap().unapplied_elsewhere = true;
    assert!(!promotes(&failing(Probed::Proof(p), u64::MAX)));
}

#[test]
fn the_standby_is_probed_only_for_a_promotion_of_an_opted_in_primary() {
    let mut primary = opted(&[(tags::STANDBY_REPLICA, "orders-replica")]);
    let mut replica = instance("orders-replica", &[]);
    replica.source = Some("orders".into());
    let subject = |p: &Instance, r: &Instance| Subject::Instance {
        primary: p.clone(),
        standby: Some(r.clone()),
        dns_current: None,
    };
    assert_eq!(
        standby_request(&subject(&primary, &replica), true),
        None,
        "serving"
    );
    primary.status = "failed".into();
    let r = standby_request(&subject(&primary, &replica), true).unwrap();
    assert_eq!(r.name, endpoint("orders-replica"));
    assert_eq!(r.credentials, Credentials::Secret(SECRET.into()));
    assert_eq!(standby_request(&subject(&primary, &replica), false), None);
    replica.source = Some("billing".into());
    assert_eq!(standby_request(&subject(&primary, &replica), true), None);
}

#[test]
fn a_standby_not_probed_is_promoted_with_its_cloudwatch_replica_lag_as_evidence() {
    let subject = failed_with_standby(instance(
        "orders",
        &[
            (tags::DNS_RECORD, DNS),
            (tags::STANDBY_REPLICA, "orders-replica"),
        ],
    ));
    let decide_with = |lag: ReplicaLag| {
        decide_proven(
            &Observed {
                subject: subject.clone(),
                probed: Probed::NotOptedIn,
                standby: Probed::NotOptedIn,
                replica_lag: Some(lag),
            },
            &Prompt::default(),
            &POLICY,
        )
    };
    let plan = decide_with(ReplicaLag::Seconds {
        value: 12.0,
        at: 1_000_000,
    });
    assert!(promotes(&plan), "evidence, not a guard");
    assert_eq!(plan.evidence["standbyReplicaLag"]["seconds"], 12.0);
    let reason = plan.reason.unwrap();
    assert!(
        reason.contains("CloudWatch ReplicaLag of orders-replica: 12s at 1970-01-12T13:46:40Z"),
        "{reason}"
    );
    assert!(
        reason.contains("opt in with ballast:writer-probe for the lag guard"),
        "{reason}"
    );
    let none = decide_with(ReplicaLag::NoData);
    assert!(promotes(&none) && none.reason.unwrap().contains("no ReplicaLag"));
    let unread = decide_with(ReplicaLag::Unread("throttled".into()));
    assert!(
        promotes(&unread)
            && unread
                .reason
                .unwrap()
                .contains("could not be read (throttled)")
    );
}
