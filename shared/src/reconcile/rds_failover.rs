//! `rds-failover`: an RDS event, a sweep or an operator names a DB cluster or
//! instance; the writer is verified, the tagged CNAME kept on it, and a
//! standby replica promoted when its primary has failed.

use std::sync::Arc;

use serde_json::Value;

use super::{not_observed, Cx, Reconciled, Reconciler, Work};
use crate::aws::database::{self, Listing};
use crate::aws::{alarms, writer_probe};
use crate::aws::{dns, AwsError};
use crate::context::Ballast;
use crate::decide::rds_failover::{
    decide_proven, parse_dns_tag, promotion_candidate, request, standby_request, Cluster, Instance,
    Observed, Policy, Probed, Promotion, Prompt, ReplicaLag, Subject,
};
use crate::decide::{Plan, Step};
use crate::event::rds::{RdsEvent, SourceKind, CLUSTER_EVENT, INSTANCE_EVENT};
use crate::event::{direct_usage, is_scheduled, json_kind, not_handled, Inbound};
use crate::lease;
use crate::proof::Request;
use crate::tags;

pub const FUNCTION: &str = crate::report::Function::RdsFailover.as_str();

/// Which DB resource to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Cluster(String),
    Instance(String),
    /// A direct invoke's `dbIdentifier`: a cluster or an instance.
    Either(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    Db {
        target: Target,
        prompt: Prompt,
    },
    /// Every DB resource carrying a Ballast tag.
    Sweep,
}

/// Reads the event; `Err` is the reason it is ignored.
fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
    match inbound {
        Inbound::Other(reason) => Err(reason.clone()),
        Inbound::AlarmAction(a) => Err(format!(
            "{FUNCTION} does not act on CloudWatch alarms (alarm {})",
            a.alarm_name
        )),
        Inbound::EventBridge(env) if is_scheduled(env) => Ok(Intent::Sweep),
        Inbound::EventBridge(env)
            if env.source == "aws.rds"
                && (env.detail_type == CLUSTER_EVENT || env.detail_type == INSTANCE_EVENT) =>
        {
            let event = RdsEvent::from_eventbridge(env)?;
            let class = event.class().map_err(|why| {
                format!(
                    "{} [{}] on {}: {why}",
                    if event.event_id.is_empty() {
                        "an RDS event without EventID"
                    } else {
                        &event.event_id
                    },
                    event.categories.join(", "),
                    event.identifier
                )
            })?;
            let target = match event.kind {
                SourceKind::Cluster => Target::Cluster(event.identifier.clone()),
                SourceKind::Instance => Target::Instance(event.identifier.clone()),
            };
            Ok(Intent::Db {
                target,
                prompt: Prompt {
                    class: Some(class),
                    named: event.named_instance(),
                },
            })
        }
        Inbound::EventBridge(env) => Err(not_handled(FUNCTION, env)),
        Inbound::Direct(object) => match object.get("dbIdentifier") {
            Some(Value::String(id)) if is_db_identifier(id) => Ok(Intent::Db {
                target: Target::Either(id.clone()),
                prompt: Prompt::default(),
            }),
            Some(Value::String(id)) => Err(format!(
                "dbIdentifier {id:?} is not a DB cluster or instance identifier"
            )),
            Some(other) => Err(format!(
                "dbIdentifier must be a string, not a {}",
                json_kind(other)
            )),
            None => Err(direct_usage(
                FUNCTION,
                "{\"dbIdentifier\": \"...\"}",
                object,
            )),
        },
    }
}

/// RDS identifiers: 1–63 letters, digits and hyphens, starting with a letter.
fn is_db_identifier(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// The reconciler of `rds-failover`.
pub struct RdsFailover;

/// A DB resource to reconcile, what the event says about it, and the
/// sweep's listing to observe it from.
#[derive(Debug, Clone)]
pub struct Db {
    pub target: Target,
    pub prompt: Prompt,
    pub listed: Option<Arc<Listing>>,
}

impl Reconciler for RdsFailover {
    const FUNCTION: &'static str = FUNCTION;
    type Intent = Intent;
    type Item = Db;
    type State = Observed;

    fn intent_of(inbound: &Inbound) -> Result<Intent, String> {
        intent_of(inbound)
    }

    async fn work(cx: &Cx<'_>, intent: Intent) -> Result<Work<Db>, Reconciled> {
        match intent {
            Intent::Db { target, prompt } => Ok(Work::one(Db {
                target,
                prompt,
                listed: None,
            })),
            Intent::Sweep => sweep(cx).await,
        }
    }

    async fn observe(
        cx: &Cx<'_>,
        db: &Db,
        seen: Option<Observed>,
    ) -> Result<Option<Observed>, AwsError> {
        // Under the lease, everything is read again from RDS; the proof
        // read before it stands (one probe per delivery).
        let listed = db.listed.as_deref().filter(|_| seen.is_none());
        let Some(subject) = observe(cx.ballast, &db.target, listed).await? else {
            return Ok(None);
        };
        let (probed, standby, replica_lag) = match seen {
            Some(seen) => (seen.probed, seen.standby, seen.replica_lag),
            None => {
                let (probed, standby) = probe(cx.ballast, &subject).await;
                let lag = match (&standby, promotion_candidate(&subject)) {
                    (Probed::NotOptedIn, Some((_, replica))) => {
                        Some(replica_lag(cx.ballast, &replica.id).await)
                    }
                    _ => None,
                };
                (probed, standby, lag)
            }
        };
        Ok(Some(Observed {
            subject,
            probed,
            standby,
            replica_lag,
        }))
    }

    fn decide(cx: &Cx<'_>, db: &Db, observed: &Observed) -> Plan {
        let config = &cx.ballast.config;
        let policy = Policy {
            dns_ttl: config.dns_ttl,
            now: crate::report::now_epoch(),
            promotion_settle_secs: config.promotion_settle_secs,
            proof_grace_secs: config.proof_grace_secs,
            max_unapplied_bytes: config.max_unapplied_bytes,
        };
        decide_proven(observed, &db.prompt, &policy)
    }

    fn lease(_: &Db, observed: &Observed, plan: &Plan) -> Option<lease::Scope> {
        // A promotion is leased on the failed primary: two invocations must
        // not both promote (AWS refuses the second, or, later, promotes
        // twice). Finishing one (moving the tags off the primary) is leased
        // alike.
        let promotes = plan.steps.iter().any(|s| {
            matches!(s, Step::PromoteReplica { .. })
                || matches!(s, Step::UntagDatabase { key, .. } if key == tags::STANDBY_REPLICA)
        });
        match (&observed.subject, promotes) {
            (Subject::Instance { primary, .. }, true) => Some(lease::Scope::Db(primary.id.clone())),
            _ => None,
        }
    }

    fn describe(db: &Db) -> String {
        format!("DB resource {}", target_name(&db.target))
    }

    fn resource(db: &Db) -> String {
        target_name(&db.target).to_string()
    }
}

fn target_name(target: &Target) -> &str {
    match target {
        Target::Cluster(id) | Target::Instance(id) | Target::Either(id) => id,
    }
}

/// Where DB resources are read: RDS, or the listing a sweep read once.
#[derive(Clone, Copy)]
struct Rds<'a> {
    client: &'a aws_sdk_rds::Client,
    listed: Option<&'a Listing>,
}

impl Rds<'_> {
    async fn instance(&self, id: &str) -> Result<Option<Instance>, AwsError> {
        match self.listed {
            Some(listing) => Ok(listing.instance(id)),
            None => database::describe_instance(self.client, id).await,
        }
    }

    async fn cluster(&self, id: &str) -> Result<Option<Cluster>, AwsError> {
        match self.listed {
            Some(listing) => Ok(listing.cluster(id)),
            None => database::describe_cluster(self.client, id).await,
        }
    }
}

/// Reads the live state around the target: a cluster with its writer, or an
/// instance with its standby replica, and the tagged record's current value.
/// An Aurora member resolves to its cluster, a read replica to its primary.
/// With `listed` (a sweep's one listing), DB resources are read from it.
pub async fn observe(
    ballast: &Ballast,
    target: &Target,
    listed: Option<&Listing>,
) -> Result<Option<Subject>, AwsError> {
    let rds = Rds {
        client: &ballast.aws.rds,
        listed,
    };
    let instance = match target {
        Target::Cluster(id) => return observe_cluster(ballast, rds, id).await,
        Target::Either(id) => match observe_cluster(ballast, rds, id).await? {
            Some(subject) => return Ok(Some(subject)),
            None => rds.instance(id).await?,
        },
        Target::Instance(id) => rds.instance(id).await?,
    };
    let Some(mut primary) = instance else {
        return Ok(None);
    };
    if let Some(cluster) = primary.cluster.clone() {
        return observe_cluster(ballast, rds, &cluster).await;
    }
    // A read replica is never the writer: its events (replication errors, a
    // restart) and any tags it inherited are handled at its primary. A
    // replica Ballast promoted may still name its source; it is handled at
    // that source until the promotion has moved the tags, then on its own.
    if let Some(source) = primary.source.clone() {
        let promoted = Promotion::of(&primary, &source).is_some();
        if let Some(p) = rds.instance(&source).await? {
            let finishing = p
                .tags
                .get(tags::STANDBY_REPLICA)
                .is_some_and(|r| r.trim() == primary.id);
            if !promoted || finishing {
                primary = p;
            }
        }
    }
    let standby = match primary.tags.get(tags::STANDBY_REPLICA) {
        Some(r) if !r.trim().is_empty() => rds.instance(r.trim()).await?,
        _ => None,
    };
    let dns_current = current_record(ballast, primary.tags.get(tags::DNS_RECORD)).await?;
    Ok(Some(Subject::Instance {
        primary,
        standby,
        dns_current,
    }))
}

async fn observe_cluster(
    ballast: &Ballast,
    rds: Rds<'_>,
    id: &str,
) -> Result<Option<Subject>, AwsError> {
    let Some(cluster) = rds.cluster(id).await? else {
        return Ok(None);
    };
    let writer = match cluster.members.iter().find(|m| m.is_writer) {
        Some(m) => rds.instance(&m.id).await?,
        None => None,
    };
    let dns_current = current_record(ballast, cluster.tags.get(tags::DNS_RECORD)).await?;
    Ok(Some(Subject::Cluster {
        cluster,
        writer,
        dns_current,
    }))
}

/// CloudWatch's `ReplicaLag` of a standby about to be promoted without the
/// probe: evidence only, so a failed read is said, never fatal.
async fn replica_lag(ballast: &Ballast, replica: &str) -> ReplicaLag {
    match alarms::replica_lag(&ballast.aws.cloudwatch, replica).await {
        Ok(Some((value, at))) => ReplicaLag::Seconds { value, at },
        Ok(None) => ReplicaLag::NoData,
        Err(e) => ReplicaLag::Unread(e.to_string()),
    }
}

/// What the writer probe says about `subject`, when it opts in: one
/// synchronous invoke through the application's name, and one more at a
/// failed primary's standby (the lag guard). A probe that does not answer
/// is a finding, not a failure to observe: the API's decision stands on
/// its own.
async fn probe(ballast: &Ballast, subject: &Subject) -> (Probed, Probed) {
    let function = ballast.config.writer_probe.as_deref();
    let through_name = match request(subject, function.is_some()) {
        Ok(r) => ask(ballast, &r).await,
        Err(probed) => probed,
    };
    let standby = match standby_request(subject, function.is_some()) {
        Some(r) => ask(ballast, &r).await,
        None => Probed::NotOptedIn,
    };
    (through_name, standby)
}

async fn ask(ballast: &Ballast, request: &Request) -> Probed {
    let function = ballast.config.writer_probe.as_deref().unwrap_or_default();
    match writer_probe::invoke(&ballast.aws.lambda, function, request).await {
        Ok(writer_probe::Answer::Proof(proof)) => {
            tracing::info!(proof = %proof.describe(), writer = proof.proves_writer(), "probed");
            Probed::Proof(proof)
        }
        Ok(writer_probe::Answer::Refused(why)) => Probed::Unanswered(why),
        Err(e) => Probed::Unanswered(e.to_string()),
    }
}

/// The CNAME's value when the tag is usable (an unusable tag is the
/// decision's to report).
async fn current_record(
    ballast: &Ballast,
    tag: Option<&String>,
) -> Result<Option<String>, AwsError> {
    match tag.map(|t| parse_dns_tag(t)) {
        Some(Ok((zone, name))) => dns::current_cname(&ballast.aws.route53, &zone, &name).await,
        _ => Ok(None),
    }
}

/// Every DB resource carrying a Ballast tag, observed from one listing.
async fn sweep(cx: &Cx<'_>) -> Result<Work<Db>, Reconciled> {
    let listing = database::list(&cx.ballast.aws.rds)
        .await
        .map_err(|e| not_observed(cx, vec!["tagged DB resources".into()], e.into()))?;
    let listing = Arc::new(listing);
    let (clusters, instances) = listing.tagged();
    let targets = clusters
        .into_iter()
        .map(|c| Target::Cluster(c.id))
        .chain(instances.into_iter().map(|i| Target::Instance(i.id)))
        .map(|target| Db {
            target,
            prompt: Prompt::default(),
            listed: Some(Arc::clone(&listing)),
        })
        .collect();
    // The parked copies on them are in the listing too: read from it.
    let seen = listing
        .clusters
        .iter()
        .map(|c| (&c.arn, &c.tags))
        .chain(listing.instances.iter().map(|i| (&i.arn, &i.tags)))
        .map(|(arn, tags)| (arn.clone(), tags.get(tags::UNREPORTED).cloned()))
        .collect();
    Ok(Work {
        seen: Arc::new(seen),
        ..Work::sweep(
            targets,
            "tagged DB resource(s)",
            "Sweep: no DB cluster or instance carries a ballast tag.",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::rds::EventClass;
    use serde_json::json;

    fn intent(payload: Value) -> Result<Intent, String> {
        intent_of(&Inbound::classify(&payload))
    }

    fn rds_event(detail_type: &str, event_id: &str, categories: &[&str], arn: &str) -> Value {
        json!({"version":"0","id":"e","detail-type":detail_type,"source":"aws.rds","account":"123456789012",
            "time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[arn],
            "detail":{"EventCategories":categories,"SourceArn":arn,"EventID":event_id,"Message":"m","SourceIdentifier":"x"}})
    }

    #[test]
    fn cluster_and_instance_events_name_their_resource() {
        let i = intent(rds_event(
            CLUSTER_EVENT,
            "RDS-EVENT-0071",
            &["failover"],
            "arn:aws:rds:us-east-1:1:cluster:orders",
        ));
        assert!(
            matches!(i, Ok(Intent::Db { target: Target::Cluster(ref c), ref prompt }) if c == "orders" && prompt.class == Some(EventClass::FailoverCompleted))
        );
        let i = intent(rds_event(
            INSTANCE_EVENT,
            "RDS-EVENT-0049",
            &["failover"],
            "arn:aws:rds:us-east-1:1:db:orders",
        ));
        assert!(
            matches!(i, Ok(Intent::Db { target: Target::Instance(ref c), .. }) if c == "orders")
        );
    }

    #[test]
    fn unknown_rds_events_are_ignored_with_their_id() {
        let r = intent(rds_event(
            INSTANCE_EVENT,
            "RDS-EVENT-0002",
            &["backup"],
            "arn:aws:rds:us-east-1:1:db:orders",
        ));
        assert!(r
            .unwrap_err()
            .starts_with("RDS-EVENT-0002 [backup] on orders: not an event rds-failover acts on"));
    }

    #[test]
    fn direct_invoke_takes_a_db_identifier() {
        assert!(matches!(
            intent(json!({"dbIdentifier": "orders-1"})),
            Ok(Intent::Db {
                target: Target::Either(_),
                ..
            })
        ));
        assert!(intent(json!({"dbIdentifier": "1bad id"})).is_err());
        assert!(intent(json!({"dbIdentifier": 3}))
            .unwrap_err()
            .contains("must be a string"));
        assert!(intent(json!({})).unwrap_err().contains("dbIdentifier"));
    }
}
