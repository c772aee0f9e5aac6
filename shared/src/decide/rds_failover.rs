//! `rds-failover`: verify the writer, keep the tagged CNAME on it, and —
//! opt-in — promote a standby read replica when its primary has failed.

use std::collections::BTreeMap;

use super::{Plan, Step};
use crate::event::rds::EventClass;
use crate::records::{self, Extra, Fields, Record, Unreadable};
use crate::report::{Evidence, Severity};
use crate::tags;

// The RDS read model lives with the other resources; named here too.
pub use crate::resources::{normalise, Cluster, ClusterMember, Instance};

/// The live state around one tagged DB resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Cluster {
        cluster: Cluster,
        /// The writer member's instance, when there is one.
        writer: Option<Instance>,
        /// The current value of the `ballast:dns-record` CNAME.
        dns_current: Option<String>,
    },
    Instance {
        primary: Instance,
        /// The instance named by `ballast:standby-replica`, if it exists.
        standby: Option<Instance>,
        dns_current: Option<String>,
    },
}

/// What prompted the look: an RDS event's class, or none (sweep, direct).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Signal {
    pub class: Option<EventClass>,
    /// The DB instance the event's message names, if any.
    pub named: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub dns_ttl: i64,
    /// The time of the decision, in seconds since the epoch: a promotion
    /// record's age is measured against it.
    pub now: i64,
    /// [`PROMOTION_SETTLE_SECS`] in production.
    pub promotion_settle_secs: i64,
}

/// How long a requested promotion may go unseen before Ballast concludes it
/// did not happen and requests it again. RDS takes a `PromoteReadReplica`
/// by moving the replica to `modifying` as it accepts the call (the answer
/// already carries that status), and `DescribeDBInstances` shows it within
/// seconds; a second request on a replica being modified, or no longer a
/// replica, is refused with `InvalidDBInstanceState`, never carried out
/// twice. So an `available` replica that still names its source 30 s after
/// the recorded request — ten times RDS's visibility lag — means the request
/// never landed. 30 s is also half Lambda's first retry of an async event
/// (about a minute): that retry requests it again.
pub const PROMOTION_SETTLE_SECS: i64 = 30;

/// The record of a promotion, `ballast:promotion` on the replica: written
/// **before** `PromoteReadReplica` (`requested`) and updated once RDS
/// accepted it (`promoted`). Later deliveries read it to finish the
/// promotion instead of promoting twice (RDS refuses a second promotion, and
/// a promoting replica still names its source for minutes).
///
/// Encoded as `from=<primary id> state=requested|promoted at=<epoch seconds>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub from: String,
    pub promoted: bool,
    pub at: i64,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

impl Record for Promotion {
    const TAG: &'static str = tags::PROMOTION;
    const KEYS: &'static [&'static str] = &["from", "state", "at"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let from = f.one("from")?;
        if from.is_empty() {
            return Err("from= names no primary".into());
        }
        Ok(Promotion {
            from: from.to_string(),
            promoted: match f.one("state")? {
                "promoted" => true,
                "requested" => false,
                other => return Err(format!("state={other} is neither requested nor promoted")),
            },
            at: f.number("at")?,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let state = if self.promoted {
            "promoted"
        } else {
            "requested"
        };
        vec![
            ("from", self.from.clone()),
            ("state", state.into()),
            ("at", self.at.to_string()),
        ]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Promotion {
    pub fn encode(&self) -> String {
        records::write(self)
    }

    pub fn parse(value: &str) -> Result<Promotion, Unreadable> {
        records::read(value)
    }

    /// The record on `instance`, if it names `primary`.
    pub fn of(instance: &Instance, primary: &str) -> Option<Promotion> {
        instance
            .tags
            .get(tags::PROMOTION)
            .and_then(|v| Promotion::parse(v).ok())
            .filter(|p| p.from == primary)
    }
}

/// `ballast:dns-record` = `<HostedZoneId>/<record name>` → (zone, name).
/// A `/hostedzone/` prefix, as the API prints zone IDs, is accepted.
pub fn parse_dns_tag(value: &str) -> Result<(String, String), String> {
    let v = value.trim();
    let v = v
        .strip_prefix("/hostedzone/")
        .or_else(|| v.strip_prefix("hostedzone/"))
        .unwrap_or(v);
    match v.split_once('/') {
        Some((zone, name)) if !zone.is_empty() && !name.trim_matches('.').is_empty() && !name.contains('/') => {
            Ok((zone.to_string(), normalise(name)))
        }
        _ => Err(format!(
            "{}={value:?} is not <HostedZoneId>/<record name>, e.g. Z0123456789ABCDEFGHIJ/db.internal.example.com",
            tags::DNS_RECORD
        )),
    }
}

/// Statuses in which an instance serves traffic.
fn is_serving(status: &str) -> bool {
    matches!(
        status,
        "available"
            | "backing-up"
            | "storage-optimization"
            | "configuring-enhanced-monitoring"
            | "configuring-iam-database-auth"
            | "configuring-log-exports"
    )
}

/// Statuses in which a primary is gone until a human repairs it.
fn is_failed(status: &str) -> bool {
    status.starts_with("incompatible-")
        || status.starts_with("inaccessible-encryption-credentials")
        || matches!(
            status,
            "failed" | "storage-full" | "stopped" | "restore-error"
        )
}

fn same_host(a: &str, b: &str) -> bool {
    normalise(a) == normalise(b)
}

fn dns_tag(tags: &BTreeMap<String, String>) -> Option<Result<(String, String), String>> {
    tags.get(tags::DNS_RECORD).map(|v| parse_dns_tag(v))
}

fn declined(situation: String, reason: String, severity: Severity, resources: Vec<String>) -> Plan {
    Plan::declined(situation, reason, resources).with_severity(severity)
}

fn waiting(situation: String, resources: Vec<String>) -> Plan {
    Plan::noop(
        format!(
            "{situation} Not yet verifiable; the completion event or the sweep finishes the job."
        ),
        resources,
    )
    .with_severity(Severity::Warning)
}

/// Keep the record on `endpoint`: one UPSERT when it differs, else a noop.
fn keep_dns_on(
    verified: String,
    (zone_id, name): (String, String),
    current: Option<&String>,
    endpoint: Option<&String>,
    policy: &Policy,
    resources: Vec<String>,
) -> Plan {
    let Some(endpoint) = endpoint else {
        return waiting(format!("{verified} It has no endpoint yet."), resources);
    };
    if current.is_some_and(|c| same_host(c, endpoint)) {
        return Plan::noop(
            format!("{verified} {name} already points at {endpoint}."),
            resources,
        );
    }
    let situation = format!(
        "{verified} {name} pointed at {}, not at the writer.",
        current.map_or("nothing", String::as_str)
    );
    let upsert = Step::UpsertCname {
        zone_id,
        name,
        value: endpoint.clone(),
        ttl: policy.dns_ttl,
        previous: current.cloned(),
        when_available: None,
    };
    Plan::act(situation, vec![upsert], resources).with_severity(Severity::Warning)
}

pub fn decide(subject: &Subject, signal: &Signal, policy: &Policy) -> Plan {
    decide_plan(subject, signal, policy).with_evidence(evidence(subject, signal, policy))
}

fn instance_facts(i: &Instance) -> serde_json::Value {
    serde_json::json!({
        "id": i.id,
        "status": i.status,
        "az": i.az,
        "multiAz": i.multi_az,
        "readReplicaOf": i.source,
        "endpoint": i.endpoint,
    })
}

/// The facts a decision rests on: the writer (or primary and standby) and
/// their states, the event's class, and where the record points.
pub fn evidence(subject: &Subject, signal: &Signal, policy: &Policy) -> Evidence {
    let mut e = Evidence::new();
    let (tags, dns_current) = match subject {
        Subject::Cluster {
            cluster,
            writer,
            dns_current,
        } => {
            let writers: Vec<&str> = cluster
                .members
                .iter()
                .filter(|m| m.is_writer)
                .map(|m| m.id.as_str())
                .collect();
            e.insert(
                "cluster".into(),
                serde_json::json!({"id": cluster.id, "status": cluster.status, "endpoint": cluster.endpoint, "writers": writers}),
            );
            if let Some(w) = writer {
                e.insert("writer".into(), instance_facts(w));
            }
            (&cluster.tags, dns_current)
        }
        Subject::Instance {
            primary,
            standby,
            dns_current,
        } => {
            e.insert("primary".into(), instance_facts(primary));
            if let Some(s) = standby {
                e.insert("standby".into(), instance_facts(s));
            }
            let tags = match standby {
                Some(s) if s.tags.contains_key(tags::DNS_RECORD) => &s.tags,
                _ => &primary.tags,
            };
            (tags, dns_current)
        }
    };
    if let Some(class) = signal.class {
        e.insert("event".into(), format!("{class:?}").into());
    }
    if let Some(Ok((zone, name))) = dns_tag(tags) {
        e.insert(
            crate::report::hint::RECORD.into(),
            serde_json::json!({"zone": zone, "name": name, "pointedAt": dns_current, "ttl": policy.dns_ttl}),
        );
    }
    e
}

fn decide_plan(subject: &Subject, signal: &Signal, policy: &Policy) -> Plan {
    match subject {
        Subject::Cluster {
            cluster,
            writer,
            dns_current,
        } => decide_cluster(
            cluster,
            writer.as_ref(),
            dns_current.as_ref(),
            signal,
            policy,
        ),
        Subject::Instance {
            primary,
            standby,
            dns_current,
        } => decide_instance(
            primary,
            standby.as_ref(),
            dns_current.as_ref(),
            signal,
            policy,
        ),
    }
}

fn decide_cluster(
    cluster: &Cluster,
    writer: Option<&Instance>,
    dns_current: Option<&String>,
    signal: &Signal,
    policy: &Policy,
) -> Plan {
    let resources = vec![cluster.arn.clone()];
    let dns = dns_tag(&cluster.tags);
    if let Some(Err(reason)) = dns {
        return declined(
            format!(
                "Cluster {} is tagged for DNS, but the tag is unusable.",
                cluster.id
            ),
            reason,
            Severity::Warning,
            resources,
        );
    }
    let Some(member) = cluster.members.iter().find(|m| m.is_writer) else {
        return waiting(
            format!("Cluster {} ({}) has no writer.", cluster.id, cluster.status),
            resources,
        );
    };
    let writer_status = writer.map_or("unknown", |w| w.status.as_str());
    if cluster.status != "available" || writer_status != "available" {
        return waiting(
            format!(
                "Cluster {} is {}, its writer {} is {writer_status}.",
                cluster.id, cluster.status, member.id
            ),
            resources,
        );
    }
    let az = writer
        .and_then(|w| w.az.as_deref())
        .unwrap_or("an unknown AZ");
    let mut verified = format!(
        "Verified writer of cluster {}: {} in {az} (available).",
        cluster.id, member.id
    );
    if let Some(named) = signal.named.as_deref() {
        if named != member.id {
            verified.push_str(&format!(
                " The event named {named}, which is no longer the writer."
            ));
        }
    }
    match dns {
        Some(Ok(record)) => keep_dns_on(
            verified,
            record,
            dns_current,
            cluster.endpoint.as_ref(),
            policy,
            resources,
        ),
        _ => Plan::noop(verified, resources),
    }
}

fn describe_instance(i: &Instance) -> String {
    let az = i.az.as_deref().unwrap_or("an unknown AZ");
    if i.multi_az {
        let standby = i.secondary_az.as_deref().unwrap_or("another AZ");
        format!(
            "Verified {} ({}): Multi-AZ, primary in {az}, standby in {standby}.",
            i.id, i.status
        )
    } else {
        format!("Verified {} ({}): single-AZ in {az}.", i.id, i.status)
    }
}

fn decide_instance(
    primary: &Instance,
    standby: Option<&Instance>,
    dns_current: Option<&String>,
    signal: &Signal,
    policy: &Policy,
) -> Plan {
    let resources = vec![primary.arn.clone()];
    if let Some(cluster) = &primary.cluster {
        return Plan::ignored(
            format!(
                "{} is a member of cluster {cluster}: it is handled at the cluster",
                primary.id
            ),
            resources,
        );
    }
    let dns = dns_tag(&primary.tags);
    let standby_id = primary
        .tags
        .get(tags::STANDBY_REPLICA)
        .map(|s| s.trim().to_string());
    if dns.is_none() && standby_id.is_none() {
        return Plan::noop(
            format!(
                "{} ({}) carries no ballast tag: nothing to verify or repoint (a promotion moves the tags to the promoted replica).",
                primary.id, primary.status
            ),
            resources,
        );
    }
    if let Some(Err(reason)) = dns {
        return declined(
            format!("{} is tagged for DNS, but the tag is unusable.", primary.id),
            reason,
            Severity::Warning,
            resources,
        );
    }
    let dns = dns.and_then(Result::ok);
    // A replica Ballast promoted still names its source while RDS promotes
    // it (minutes; moto for good): the record says it is a writer now.
    let promoted_from = primary
        .source
        .as_deref()
        .and_then(|source| Promotion::of(primary, source));
    if let (Some(source), None) = (&primary.source, &promoted_from) {
        return declined(
            format!("{} is a read replica of {source}, not a writer.", primary.id),
            format!(
                "ballast tags on a read replica would send writes to a read-only endpoint; tag the primary {source} instead"
            ),
            Severity::Warning,
            resources,
        );
    }

    if is_serving(&primary.status) {
        if let (Some(class), Some(r)) = (signal.class, &standby_id) {
            if class.suggests_primary_failure() {
                return declined(
                    format!("A {} event arrived for {}, but it is {}.", class.as_str(), primary.id, primary.status),
                    format!(
                        "never promote while the primary is available: promoting {r} now would split brain (two writers)"
                    ),
                    Severity::Warning,
                    resources,
                );
            }
        }
        let verified = describe_instance(primary);
        return match dns {
            Some(record) => keep_dns_on(
                verified,
                record,
                dns_current,
                primary.endpoint.as_ref(),
                policy,
                resources,
            ),
            None => Plan::noop(verified, resources),
        };
    }

    if !is_failed(&primary.status) {
        return waiting(format!("{} is {}.", primary.id, primary.status), resources);
    }

    let failed = format!("Primary {} is {}.", primary.id, primary.status);
    let Some(replica_id) = standby_id else {
        return declined(
            failed,
            format!(
                "{} is {} and has no {} tag: nothing safe to do automatically; a human must restore or replace it",
                primary.id,
                primary.status,
                tags::STANDBY_REPLICA
            ),
            Severity::Critical,
            resources,
        );
    };
    let Some(replica) = standby.filter(|r| r.id == replica_id) else {
        return declined(
            failed,
            format!("standby replica {replica_id} does not exist: not promoted"),
            Severity::Critical,
            resources,
        );
    };
    let replicating = replica.source.as_deref() == Some(primary.id.as_str());
    let record = Promotion::of(replica, &primary.id);
    // A recorded promotion is finished, never requested again — unless RDS
    // never showed it (the replica still an `available` replica of this
    // primary) for longer than the settle.
    let unseen = replicating && replica.status == "available";
    match &record {
        Some(r) if r.promoted || !unseen => {
            let situation = format!(
                "{failed} Finishing the promotion of {} ({}) that Ballast started: moving the tags and the \
                 record, not promoting again.",
                replica.id, replica.status
            );
            let steps = moving_steps(primary, replica, !r.promoted, dns, dns_current, policy);
            return promotion(steps, situation, replica, resources);
        }
        Some(r) if policy.now - r.at < policy.promotion_settle_secs => {
            let situation = format!(
                "{failed} The promotion of {replica_id} was requested {}s ago and RDS does not show it yet: \
                 waiting rather than promoting twice.",
                policy.now - r.at
            );
            let reason = format!(
                "{} holds an unconfirmed promotion request; it is requested again only if RDS still shows no \
                 promotion after {}s",
                tags::PROMOTION,
                policy.promotion_settle_secs
            );
            let wait = format!(
                "the promotion of {replica_id} was requested {}s ago and RDS does not show it yet",
                policy.now - r.at
            );
            return Plan::noop(situation, resources)
                .with_reason(reason)
                .with_severity(Severity::Warning)
                .retried(wait);
        }
        _ => {}
    }
    if !replicating {
        return declined(
            failed,
            format!(
                "{replica_id} is not a read replica of {} (its source: {}): not promoted",
                primary.id,
                replica.source.as_deref().unwrap_or("none")
            ),
            Severity::Critical,
            resources,
        );
    }
    if replica.status != "available" {
        return declined(
            failed,
            format!(
                "standby replica {replica_id} is {}, not available: not promoted",
                replica.status
            ),
            Severity::Critical,
            resources,
        );
    }

    // The record first: whatever happens to the calls after it, later
    // deliveries know a promotion was asked for and never ask twice.
    let requested = Promotion {
        from: primary.id.clone(),
        promoted: false,
        at: policy.now,
        extra: Extra::default(),
    };
    let mut steps = vec![
        Step::AddTag {
            resource: replica.id.clone(),
            arn: replica.arn.clone(),
            key: tags::PROMOTION.into(),
            value: requested.encode(),
        },
        Step::PromoteReplica {
            replica: replica.id.clone(),
            primary: primary.id.clone(),
        },
    ];
    steps.extend(moving_steps(
        primary,
        replica,
        true,
        dns,
        dns_current,
        policy,
    ));
    let situation = format!(
        "{failed} Standby replica {} ({}, in {}) is promoted to take over.",
        replica.id,
        replica.status,
        replica.az.as_deref().unwrap_or("an unknown AZ")
    );
    promotion(steps, situation, replica, resources)
}

/// What RDS's `InvalidDBInstanceState` answer to a `PromoteReadReplica`
/// means, read from the replica as it is right after that answer. RDS gives
/// that answer whatever the reason, so the replica itself says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusedPromotion {
    /// No longer a replica of the primary, or being modified: a promotion
    /// is under way (an earlier request landed) — finish the job.
    UnderWay(String),
    /// Still a replica of the primary in another state (RDS documents that
    /// a replica in `backing-up` cannot be promoted): not yet — retry.
    NotYet(String),
}

/// Reads the replica after RDS refused to promote it (`None`: it is gone).
pub fn refused_promotion(replica: Option<&Instance>, primary: &str) -> RefusedPromotion {
    let Some(r) = replica else {
        return RefusedPromotion::NotYet("the replica no longer exists".into());
    };
    let replicating = r.source.as_deref() == Some(primary);
    if !replicating {
        RefusedPromotion::UnderWay(format!(
            "{} is {} and no longer a replica of {primary}: its promotion is under way",
            r.id, r.status
        ))
    } else if r.status == "modifying" {
        RefusedPromotion::UnderWay(format!("{} is modifying: its promotion is under way", r.id))
    } else {
        RefusedPromotion::NotYet(format!(
            "{} is {}, still a replica of {primary}: not promotable yet",
            r.id, r.status
        ))
    }
}

/// A promotion's plan (started or finished): one chain, `critical`, about
/// the primary and the replica.
fn promotion(
    steps: Vec<Step>,
    situation: String,
    replica: &Instance,
    resources: Vec<String>,
) -> Plan {
    let mut resources = resources;
    resources.push(replica.arn.clone());
    Plan::act(situation, steps, resources)
        .with_severity(Severity::Critical)
        .in_sequence()
}

/// The steps after `PromoteReadReplica`: the record confirmed, the DNS tag
/// added to the replica, the CNAME pointed at the replica once it is
/// available, and only then the primary's tags removed.
fn moving_steps(
    primary: &Instance,
    replica: &Instance,
    confirm: bool,
    dns: Option<(String, String)>,
    dns_current: Option<&String>,
    policy: &Policy,
) -> Vec<Step> {
    let mut steps = vec![];
    if confirm {
        steps.push(Step::AddTag {
            resource: replica.id.clone(),
            arn: replica.arn.clone(),
            key: tags::PROMOTION.into(),
            value: Promotion {
                from: primary.id.clone(),
                promoted: true,
                at: policy.now,
                // What a later version added to the request, kept.
                extra: Promotion::of(replica, &primary.id)
                    .map(|p| p.extra)
                    .unwrap_or_default(),
            }
            .encode(),
        });
    }
    let moved = primary.tags.get(tags::DNS_RECORD);
    if let Some(value) = moved {
        steps.push(Step::AddTag {
            resource: replica.id.clone(),
            arn: replica.arn.clone(),
            key: tags::DNS_RECORD.into(),
            value: value.clone(),
        });
    }
    // The record pointed before the primary lets go of the replica: until
    // it is, the primary's tags lead every delivery and sweep back here.
    if let (Some((zone_id, name)), Some(endpoint)) = (dns, replica.endpoint.as_ref()) {
        steps.push(Step::UpsertCname {
            zone_id,
            name,
            value: endpoint.clone(),
            ttl: policy.dns_ttl,
            previous: dns_current.cloned(),
            when_available: Some(replica.id.clone()),
        });
    }
    if moved.is_some() {
        steps.push(Step::RemoveTag {
            resource: primary.id.clone(),
            arn: primary.arn.clone(),
            key: tags::DNS_RECORD.into(),
        });
    }
    steps.push(Step::RemoveTag {
        resource: primary.id.clone(),
        arn: primary.arn.clone(),
        key: tags::STANDBY_REPLICA.into(),
    });
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Verdict;
    use proptest::prelude::*;

    const POLICY: Policy = Policy {
        dns_ttl: 30,
        now: 1_000_000,
        promotion_settle_secs: PROMOTION_SETTLE_SECS,
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

    fn failure() -> Signal {
        Signal {
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
        let signal = Signal {
            class: Some(EventClass::FailoverCompleted),
            named: Some("orders-2".into()),
        };
        let plan = decide(&subject, &signal, &POLICY);
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
        let plan = decide(&subject, &Signal::default(), &POLICY);
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
        let plan = decide(&subject, &Signal::default(), &POLICY);
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
        assert!(decide(&no_writer, &Signal::default(), &POLICY)
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
            &Signal {
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
        let Step::AddTag { key, value, .. } = &plan.steps[0] else {
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
                &Signal::default(),
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
        assert_eq!(plan.verdict, Verdict::Declined);
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
        assert_eq!(busy.verdict, Verdict::Declined);
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
            (Verdict::Declined, Severity::Critical)
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
        let plan = decide(&subject, &Signal::default(), &POLICY);
        assert_eq!(plan.verdict, Verdict::Declined);
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
        let plan = decide(&subject, &Signal::default(), &POLICY);
        assert_eq!(plan.verdict, Verdict::Declined);
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
                Step::AddTag { key, value, .. } => {
                    r.as_mut().unwrap().tags.insert(key.clone(), value.clone());
                }
                Step::RemoveTag { key, .. } => {
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
            let plan = decide(&subject, &Signal { class, named: None }, &POLICY);
            let promotes = plan.steps.iter().any(|s| matches!(s, Step::PromoteReplica { .. }));
            prop_assert!(!promotes || (is_failed(p) && r == "available" && !foreign));
            prop_assert_eq!(plan.verdict == Verdict::Act, !plan.steps.is_empty());
        }

        #[test]
        fn applying_the_plan_and_deciding_again_converges(p in arb_status(), r in arb_status(), class in arb_class(), current in proptest::option::of(Just("stale.example.com"))) {
            let subject = pair(p, Some(replica_of("orders-replica", "orders", r)), current);
            let plan = decide(&subject, &Signal { class, named: None }, &POLICY);
            let after = apply(&subject, &plan);
            let again = decide(&after, &Signal { class, named: None }, &POLICY);
            let promotes_again = again.steps.iter().any(|s| matches!(s, Step::PromoteReplica { .. }));
            prop_assert!(!promotes_again);
            if plan.verdict == Verdict::Act {
                prop_assert!(again.steps.is_empty(), "{:?}", again);
            }
        }
    }

    /// The world around one promotion, as RDS behaves: a promoted replica is
    /// `modifying` and still names its source until the next look.
    #[derive(Debug, Clone)]
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
                Step::AddTag {
                    arn, key, value, ..
                } => {
                    self.by_arn(arn).tags.insert(key.clone(), value.clone());
                }
                Step::RemoveTag { arn, key, .. } => {
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
                    .map(|s| decide(s, &Signal::default(), &policy))
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
        for k in 0..=plan.steps.len() {
            // The first k steps applied: step k refused for good, or the
            // process killed before it (with step k-1's answer lost, the
            // state is the same). Each prefix is also tried with RDS having
            // finished the promotion before the next delivery.
            for settled in [false, true] {
                let mut first = Db::failed();
                first.apply_all(&plan.steps[..k]);
                if settled {
                    first.tick();
                }
                // The next delivery's plan is cut too, at every step, and
                // the sweep finishes the job from there.
                let policy = Policy {
                    now: first.now,
                    ..POLICY
                };
                let second = first
                    .subjects()
                    .first()
                    .map(|s| decide(s, &failure(), &policy).steps)
                    .unwrap_or_default();
                for j in 0..=second.len() {
                    let mut db = first.clone();
                    db.apply_all(&second[..j]);
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
}
