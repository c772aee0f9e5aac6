//! The writer proof, for a DB resource that opts in (`ballast:writer-probe`):
//! which request the probe is sent ([`request`]), and what its answer does
//! to the API's plan ([`prove`]):
//!
//! - the proof joins the evidence of every plan about the resource;
//! - a plan that changes the writer or the record is not `remediated` yet:
//!   the `ballast:unproven` record is written before its first such step,
//!   the report says what is not yet proven, and Lambda is asked to retry;
//! - a writer the API verified is proven through the application's name:
//!   proven, the record (if any) is removed — that is the `remediated`
//!   report; not proven, the record is written, the finding (stale record,
//!   stale resolver, a writer that refuses writes, or the stage the probe
//!   could not pass) is reported with its fix, retried while the proof's
//!   grace lasts, then `critical`.

use std::collections::BTreeMap;

use super::records::{dns_tag, ProbeLogin, ProbeTag, Unproven};
use super::{verify, Policy, ReplicaLag, Subject};
use crate::decide::{Decline, Plan, Step, Verdict};
use crate::proof::{Credentials, Engine, Lag, Proof, Request, Stage};
use crate::records::{self, Extra};
use crate::report::Severity;
use crate::resources::{normalise, Access, Instance};
use crate::tags;

/// What the writer probe said about a DB resource, or why it was not asked.
#[derive(Debug, Clone, PartialEq)]
pub enum Probed {
    /// No `ballast:writer-probe` tag.
    NotOptedIn,
    /// Opted in, but the probe was not asked: why.
    NotAsked(String),
    /// The probe's answer.
    Proof(Box<Proof>),
    /// The probe function did not answer: why.
    Unanswered(String),
}

/// The resource that holds the tags, as the proof reads it.
struct Holder<'a> {
    id: &'a str,
    arn: &'a str,
    tags: &'a BTreeMap<String, String>,
    access: &'a Access,
}

fn holder(subject: &Subject) -> Holder<'_> {
    match subject {
        Subject::Cluster { cluster, .. } => Holder {
            id: &cluster.id,
            arn: &cluster.arn,
            tags: &cluster.tags,
            access: &cluster.access,
        },
        Subject::Instance { primary, .. } => Holder {
            id: &primary.id,
            arn: &primary.arn,
            tags: &primary.tags,
            access: &primary.access,
        },
    }
}

/// The engine family of an RDS `Engine`, if the probe speaks it.
pub fn engine_of(rds_engine: &str) -> Option<Engine> {
    match rds_engine {
        "mysql" | "mariadb" | "aurora" | "aurora-mysql" => Some(Engine::Mysql),
        "postgres" | "aurora-postgresql" => Some(Engine::Postgres),
        _ => None,
    }
}

/// How the probe logs in to `h`'s engine, from its tag and the API.
fn login_of(
    h: &Holder<'_>,
    probe_deployed: bool,
) -> Result<(Engine, Credentials, ProbeTag), Probed> {
    let Some(value) = h.tags.get(tags::WRITER_PROBE) else {
        return Err(Probed::NotOptedIn);
    };
    let not_asked = |why: String| Err(Probed::NotAsked(why));
    let tag: ProbeTag = match records::read(value) {
        Ok(t) => t,
        Err(e) => return not_asked(format!("{e}; expected secret=master, secret=<secret name or ARN> or auth=iam user=<database user>, optionally db=<database>")),
    };
    if !probe_deployed {
        return not_asked(format!(
            "{} opts in to the writer proof, but this stack has no writer probe (deploy it with the ProbeSubnetIds and ProbeSecurityGroupIds parameters)",
            h.id
        ));
    }
    let rds_engine = h.access.engine.as_deref().unwrap_or("unknown");
    let Some(engine) = engine_of(rds_engine) else {
        return not_asked(format!(
            "the probe speaks the MySQL family and PostgreSQL, not {rds_engine}"
        ));
    };
    let credentials = match &tag.login {
        ProbeLogin::Secret(n) => Credentials::Secret(n.clone()),
        ProbeLogin::Iam { user } => Credentials::Iam { user: user.clone() },
        ProbeLogin::MasterSecret => match &h.access.master_secret {
            Some(arn) => Credentials::Secret(arn.clone()),
            None => {
                return not_asked(format!(
                    "{}=secret=master, but RDS manages no master user secret for {} (ManageMasterUserPassword); name a secret instead",
                    tags::WRITER_PROBE,
                    h.id
                ))
            }
        },
    };
    Ok((engine, credentials, tag))
}

fn default_port(engine: Engine) -> u16 {
    match engine {
        Engine::Mysql => 3306,
        Engine::Postgres => 5432,
    }
}

/// The request for the probe about `subject`, or what to report instead
/// (`probe_deployed`: the stack has a writer probe to invoke).
pub fn request(subject: &Subject, probe_deployed: bool) -> Result<Request, Probed> {
    let h = holder(subject);
    let (engine, credentials, tag) = login_of(&h, probe_deployed)?;
    let Some(Ok((_, name))) = dns_tag(h.tags) else {
        return Err(Probed::NotAsked(format!(
            "the writer is proven through the application's name: tag {} with {}",
            h.id,
            tags::DNS_RECORD
        )));
    };
    Ok(Request {
        name: name.trim_end_matches('.').to_string(),
        port: h.access.port.unwrap_or(default_port(engine)),
        engine,
        credentials,
        database: tag.database,
    })
}

/// The request about a failed primary's standby, at its own endpoint (how
/// far it is behind), when the primary opts in; `None` when there is no
/// promotion to guard.
pub fn standby_request(subject: &Subject, probe_deployed: bool) -> Option<Request> {
    let (primary, standby) = promotion_candidate(subject)?;
    let (engine, credentials, tag) = login_of(&holder(subject), probe_deployed).ok()?;
    Some(Request {
        name: standby.endpoint.clone()?.trim_end_matches('.').to_string(),
        port: standby
            .access
            .port
            .or(primary.access.port)
            .unwrap_or(default_port(engine)),
        engine,
        credentials,
        database: tag.database,
    })
}

/// A failed primary and the standby that replicates it: a promotion the
/// lag guard may have to weigh.
pub fn promotion_candidate(subject: &Subject) -> Option<(&Instance, &Instance)> {
    let Subject::Instance {
        primary,
        standby: Some(standby),
        ..
    } = subject
    else {
        return None;
    };
    (verify::is_failed(&primary.status) && standby.source.as_deref() == Some(primary.id.as_str()))
        .then_some((primary, standby))
}

/// The figures of a standby's lag, for a report.
fn figures(lag: &Lag) -> String {
    let mut parts = vec![];
    if let (Some(r), Some(a)) = (&lag.received, &lag.applied) {
        parts.push(format!("received {r}, applied {a}"));
    }
    match (lag.unapplied_bytes, lag.unapplied_elsewhere) {
        (_, true) => parts.push("unapplied data in another binary log file".into()),
        (Some(b), false) => parts.push(format!("{b} bytes unapplied")),
        (None, false) => {}
    }
    if let Some(s) = lag.seconds_behind {
        parts.push(format!("{s:.1}s behind"));
    }
    if lag.applier_stopped {
        parts.push("its applier is stopped".into());
    }
    parts.join(", ")
}

/// A standby not probed: CloudWatch's `ReplicaLag` as evidence, and said
/// in the reason — it guards nothing (seconds behind the source say nothing
/// of what was received and not applied).
fn with_replica_lag(plan: Plan, replica: &str, lag: Option<&ReplicaLag>) -> Plan {
    let Some(lag) = lag else {
        return plan;
    };
    let mut plan = plan;
    let (evidence, said) = match lag {
        ReplicaLag::Seconds { value, at } => (
            serde_json::json!({"seconds": value, "at": crate::report::rfc3339(*at)}),
            format!(
                "CloudWatch ReplicaLag of {replica}: {value:.0}s at {}",
                crate::report::rfc3339(*at)
            ),
        ),
        ReplicaLag::NoData => (
            serde_json::json!({"seconds": null}),
            format!("CloudWatch has no ReplicaLag of {replica} in the last ten minutes"),
        ),
        ReplicaLag::Unread(why) => (
            serde_json::json!({"unread": why}),
            format!("CloudWatch ReplicaLag of {replica} could not be read ({why})"),
        ),
    };
    plan.evidence.insert("standbyReplicaLag".into(), evidence);
    let reasons = plan
        .reason
        .iter()
        .cloned()
        .chain([format!(
            "{said}; opt in with {} for the lag guard",
            tags::WRITER_PROBE
        )])
        .collect();
    plan.with_reasons(reasons)
}

/// The lag guard: a promotion is declined — `critical`, retried — while
/// the standby has received more than `max_unapplied_bytes` it has not
/// applied (a promotion now would lose it), and goes ahead once it has
/// caught up. Only on the probe's positive evidence: a standby it could not
/// read is promoted on the API's word, and the report says so.
pub fn guard_lag(
    plan: Plan,
    standby: &Probed,
    replica_lag: Option<&ReplicaLag>,
    policy: &Policy,
) -> Plan {
    let Some(replica) = plan.steps.iter().find_map(|s| match s {
        Step::PromoteReplica { replica, .. } => Some(replica.clone()),
        _ => None,
    }) else {
        return plan;
    };
    let mut plan = plan;
    let said = match standby {
        Probed::NotOptedIn => return with_replica_lag(plan, &replica, replica_lag),
        Probed::Proof(p) => serde_json::to_value(p).unwrap_or_default(),
        Probed::NotAsked(why) => serde_json::json!({"notAsked": why}),
        Probed::Unanswered(why) => serde_json::json!({"unanswered": why}),
    };
    plan.evidence.insert("standbyProof".into(), said);
    let lag = match standby {
        Probed::Proof(p) if p.failure.is_none() => p.lag.as_ref(),
        _ => None,
    };
    let Some(lag) = lag else {
        let why = match standby {
            Probed::Proof(p) => p
                .failure
                .as_ref()
                .map_or("no replication status".into(), |f| {
                    format!("{}: {}", f.stage.as_str(), f.message)
                }),
            Probed::NotAsked(why) | Probed::Unanswered(why) => why.clone(),
            Probed::NotOptedIn => String::new(),
        };
        let reasons = plan
            .reason
            .iter()
            .cloned()
            .chain([format!(
                "the lag of {replica} could not be read ({why}): promoted on the API's word"
            )])
            .collect();
        return plan.with_reasons(reasons);
    };
    let over = lag.unapplied_elsewhere
        || lag
            .unapplied_bytes
            .is_some_and(|b| b > policy.max_unapplied_bytes);
    if !over {
        let reasons = plan
            .reason
            .iter()
            .cloned()
            .chain([format!(
                "{replica} has applied what it received ({})",
                figures(lag)
            )])
            .collect();
        return plan.with_reasons(reasons);
    }
    let stuck = if lag.applier_stopped {
        "; its applier is stopped, so it will not catch up by itself: start it, or promote by hand accepting the loss"
    } else {
        ""
    };
    let situation = plan
        .situation
        .split(" Standby replica")
        .next()
        .unwrap_or_default()
        .to_string();
    Plan::declined(
        Decline::StandbyBehind,
        format!("{situation} Standby replica {replica} has received data it has not applied ({}): promoting it now would lose that data.", figures(lag)),
        format!(
            "BALLAST_PROMOTION_MAX_UNAPPLIED_BYTES={} allows no more; promoted once it has applied what it received{stuck}",
            policy.max_unapplied_bytes
        ),
        plan.resources.clone(),
    )
    .with_evidence(plan.evidence)
    .with_severity(Severity::Critical)
    .retried(format!("{replica} has not applied what it received"))
}

/// The endpoint the API verified as the writer's, when the API's state is
/// verified (and the record, if tagged, already points at it).
fn verified_writer(subject: &Subject) -> Option<&str> {
    let (endpoint, current) = match subject {
        Subject::Cluster {
            cluster,
            writer,
            dns_current,
        } => {
            let writer_ok = writer.as_ref().is_some_and(|w| w.status == "available");
            if cluster.status != "available" || !writer_ok {
                return None;
            }
            (cluster.endpoint.as_deref()?, dns_current)
        }
        Subject::Instance {
            primary,
            dns_current,
            ..
        } => {
            if !verify::is_serving(&primary.status) || primary.cluster.is_some() {
                return None;
            }
            (primary.endpoint.as_deref()?, dns_current)
        }
    };
    current
        .as_deref()
        .is_some_and(|c| normalise(c) == normalise(endpoint))
        .then_some(endpoint)
}

/// The name leads through `endpoint`.
fn leads_through(proof: &Proof, endpoint: &str) -> bool {
    let endpoint = normalise(endpoint);
    proof.chain.iter().any(|hop| normalise(hop) == endpoint)
}

/// The fix for a probe that stopped at `stage` (on `port`).
pub fn stage_fix(stage: Stage, name: &str, port: u16) -> String {
    match stage {
            Stage::Dns => format!(
                "make {name} resolve in the VPC: the record exists in its zone, and a private hosted zone is associated with the probe's VPC"
            ),
            Stage::Network => format!(
                "let the writer-probe's security group reach TCP {port} in the database's security group (and check the route and network ACLs between their subnets)"
            ),
            Stage::Tls => "set BALLAST_PROBE_CA_BUNDLE to the Region's RDS CA bundle (https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem), and require TLS on the server".to_string(),
            Stage::Login => "check that the secret the ballast:writer-probe tag names holds the current username and password (a rotated password, a deleted user)".to_string(),
            Stage::Query => "the server answered the login but not the probe's questions in time: look at its load and its locks".to_string(),
    }
}

/// Why the writer is not proven through the name (the API's writer is
/// `writer`, Route 53's value `record`), and the fix.
pub fn finding(
    proof: &Proof,
    writer: &str,
    record: Option<&str>,
    access: &Access,
) -> (String, String) {
    let name = &proof.name;
    if let Some(f) = &proof.failure {
        let fix = stage_fix(f.stage, name, proof.port);
        return (
            format!(
                "The probe could not prove the writer through {name}: it failed at {} ({}).",
                f.stage.as_str(),
                f.message
            ),
            fix,
        );
    }
    let reached = proof.endpoint().to_string();
    let because = proof
        .server
        .as_ref()
        .map(|s| s.read_only_because.join(", "))
        .unwrap_or_default();
    let identity = proof.server.as_ref().map_or("?", |s| s.identity.as_str());
    if !leads_through(proof, writer) {
        let writable = proof.server.as_ref().is_some_and(|s| s.writable);
        let what = if writable {
            "which takes writes: two writers"
        } else {
            "which is read-only"
        };
        return match record {
            Some(r) if normalise(r) == normalise(writer) => (
                format!(
                    "Stale resolver: Route 53 has {name} → {writer}, but the application's resolver still answers {reached} ({identity}), {what}."
                ),
                "a cached answer outlives the change: it clears within the record's TTL; if it does not, a resolver or forwarder between the application and Route 53 caches past the TTL: flush it, and lower its maximum cache time".to_string(),
            ),
            _ => (
                format!("Stale record: {name} leads to {reached} ({identity}), {what}, not to the writer {writer}."),
                format!("point {name} at {writer} (Ballast upserts it while the record carries ballast:dns-record)"),
            ),
        };
    }
    let group = access
        .parameter_group
        .as_deref()
        .unwrap_or("<parameter group>");
    let fix = if because.contains("in recovery") {
        "the server is still a standby: RDS has not finished the promotion; it is proven once the server leaves recovery".to_string()
    } else if proof.engine == Engine::Postgres {
        format!(
            "turn default_transaction_read_only off in the writer's parameter group: aws rds modify-db-parameter-group --db-parameter-group-name {group} --parameters ParameterName=default_transaction_read_only,ParameterValue=0,ApplyMethod=immediate"
        )
    } else {
        format!(
            "turn read_only off in the writer's parameter group (RDS refuses SET GLOBAL): aws rds modify-db-parameter-group --db-parameter-group-name {group} --parameters ParameterName=read_only,ParameterValue=0,ApplyMethod=immediate"
        )
    };
    (
        format!("The writer refuses writes: {name} reaches the writer {writer} ({identity}), but it is read-only ({because})."),
        fix,
    )
}

/// The `ballast:unproven` record written now, on `(resource, arn)`.
fn record_step(resource: &str, arn: &str, now: i64) -> Step {
    Step::TagDatabase {
        resource: resource.to_string(),
        arn: arn.to_string(),
        key: tags::UNPROVEN.into(),
        value: records::write(&Unproven {
            since: now,
            extra: Extra::default(),
        }),
    }
}

/// A step that changes the writer or where the name leads.
fn changes_writer(step: &Step) -> bool {
    matches!(step, Step::UpsertCname { .. } | Step::PromoteReplica { .. })
}

/// The API's `plan` for `subject`, with what the probe said.
pub fn prove(plan: Plan, subject: &Subject, probed: &Probed, policy: &Policy) -> Plan {
    if *probed == Probed::NotOptedIn {
        return plan;
    }
    let mut plan = plan;
    let h = holder(subject);
    let said = match probed {
        Probed::Proof(p) => serde_json::to_value(p).unwrap_or_default(),
        Probed::NotAsked(why) => serde_json::json!({"notAsked": why}),
        Probed::Unanswered(why) => serde_json::json!({"unanswered": why}),
        Probed::NotOptedIn => unreachable!("returned above"),
    };
    plan.evidence.insert("proof".into(), said);
    if let Probed::NotAsked(why) = probed {
        // Not asked: nothing is proven or disproven; the API's plan
        // stands, and the report says why there is no proof.
        let reasons = plan
            .reason
            .iter()
            .cloned()
            .chain([format!("writer proof not asked: {why}")])
            .collect();
        let severity = plan.severity.max(Severity::Warning);
        return plan.with_reasons(reasons).with_severity(severity);
    }
    let record = h
        .tags
        .get(tags::UNPROVEN)
        .map(|v| records::read::<Unproven>(v));
    if plan.verdict == Verdict::Act && plan.steps.iter().any(changes_writer) {
        return unproven_change(plan, &h, record.is_some(), probed, policy);
    }
    let Some(writer) = verified_writer(subject) else {
        return plan;
    };
    if plan.verdict != Verdict::Noop || !plan.steps.is_empty() {
        return plan;
    }
    let (_, dns_current) = match subject {
        Subject::Cluster { dns_current, .. } | Subject::Instance { dns_current, .. } => {
            ((), dns_current)
        }
    };
    let (finding, fix) = match probed {
        Probed::Proof(p) if p.proves_writer() && leads_through(p, writer) => {
            return proven(plan, &h, p, record.is_some());
        }
        Probed::Proof(p) => finding(p, writer, dns_current.as_deref(), h.access),
        Probed::Unanswered(why) => (
            format!("The writer probe did not answer: {why}."),
            "check the writer-probe function's logs and its concurrency (the probe answers within 7 s)".to_string(),
        ),
        Probed::NotOptedIn | Probed::NotAsked(_) => unreachable!("returned above"),
    };
    let situation = format!("{} {finding}", plan.situation);
    match record {
        None => {
            let step = record_step(h.id, h.arn, policy.now);
            Plan {
                unproven: true,
                ..Plan::act(situation, vec![step], plan.resources.clone())
            }
            .with_evidence(plan.evidence)
            .with_reason(format!("fix: {fix}"))
            .with_severity(Severity::Warning)
            .retried(finding)
        }
        Some(Err(unreadable)) => Plan {
            unproven: true,
            ..plan
        }
        .with_situation(situation)
        .with_reason(format!("fix: {fix}; {unreadable}: held, not rewritten"))
        .with_severity(Severity::Critical),
        Some(Ok(r)) if policy.now - r.since < policy.proof_grace_secs => {
            let age = policy.now - r.since;
            plan.with_situation(format!(
                "{situation} Unproven for {age}s (critical after {}s).",
                policy.proof_grace_secs
            ))
            .with_reason(format!("fix: {fix}"))
            .with_severity(Severity::Warning)
            .retried(finding)
        }
        Some(Ok(r)) => Plan {
            unproven: true,
            ..plan
        }
        .with_situation(format!(
            "{situation} Unproven for {}s, past the proof's grace of {}s.",
            policy.now - r.since,
            policy.proof_grace_secs
        ))
        .with_reason(format!("fix: {fix}"))
        .with_severity(Severity::Critical),
    }
}

/// Proven: the record removed (the `remediated` report), or a noop that
/// says so.
fn proven(plan: Plan, h: &Holder<'_>, proof: &Proof, recorded: bool) -> Plan {
    let situation = format!(
        "{} Proven through the application's name: {}.",
        plan.situation,
        proof.describe()
    );
    if !recorded {
        return plan.with_situation(situation);
    }
    let untag = Step::UntagDatabase {
        resource: h.id.to_string(),
        arn: h.arn.to_string(),
        key: tags::UNPROVEN.into(),
    };
    Plan::act(situation, vec![untag], plan.resources.clone()).with_evidence(plan.evidence)
}

/// A plan that changes the writer or the record: not `remediated` until a
/// later probe proves it. The record goes on the resource that holds
/// `ballast:dns-record` after the plan, before the plan's first record
/// change.
fn unproven_change(
    plan: Plan,
    h: &Holder<'_>,
    recorded: bool,
    probed: &Probed,
    policy: &Policy,
) -> Plan {
    let mut plan = plan;
    let moved_to = plan.steps.iter().find_map(|s| match s {
        Step::TagDatabase {
            resource, arn, key, ..
        } if key == tags::DNS_RECORD => Some((resource.clone(), arn.clone())),
        _ => None,
    });
    let recorded = recorded && moved_to.is_none();
    if !recorded {
        let (resource, arn) = moved_to.unwrap_or((h.id.to_string(), h.arn.to_string()));
        let at = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::UpsertCname { .. }))
            .unwrap_or(plan.steps.len());
        plan.steps
            .insert(at, record_step(&resource, &arn, policy.now));
    }
    let seen = match probed {
        Probed::Proof(p) => format!(" The probe now sees: {}.", p.describe()),
        Probed::Unanswered(why) => format!(" The probe did not answer: {why}."),
        Probed::NotOptedIn | Probed::NotAsked(_) => String::new(),
    };
    let wait = "the change is not yet proven through the application's name".to_string();
    let situation = format!(
        "{}{seen} Not remediated until the probe proves the writer through the name.",
        plan.situation
    );
    let severity = plan.severity.max(Severity::Warning);
    Plan {
        unproven: true,
        ..plan
    }
    .with_situation(situation)
    .with_severity(severity)
    .retried(wait)
}
