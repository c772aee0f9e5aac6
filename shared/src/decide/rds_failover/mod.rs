//! `rds-failover`: verify the writer, keep the tagged CNAME on it, and —
//! opt-in — promote a standby read replica when its primary has failed.
//!
//! - `records`: the `ballast:promotion` record and the `ballast:dns-record`
//!   tag;
//! - `verify`: a writer verified (cluster, or instance) and the record kept
//!   on it;
//! - `promote`: a failed primary's standby promoted, or the promotion
//!   finished;
//! - `prove`: the writer proven through the application's name, for a
//!   resource that opts in;
//! - `evidence`: the facts a decision rests on.

mod evidence;
mod promote;
mod prove;
#[cfg(test)]
mod prove_tests;
mod records;
#[cfg(test)]
mod tests;
mod verify;

pub use evidence::evidence;
pub use promote::{refused_promotion, RefusedPromotion};
pub use prove::{
    engine_of, finding, guard_lag, promotion_candidate, prove, request, stage_fix, standby_request,
    Probed,
};
pub use records::{parse_dns_tag, ProbeLogin, ProbeTag, Promotion, Unproven};
// The RDS read model lives with the other resources; named here too.
pub use crate::resources::{normalise, Cluster, ClusterMember, Instance};

use super::Plan;
use crate::event::rds::EventClass;

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

/// The live state, and what the writer probe said about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub subject: Subject,
    /// The writer proof through the application's name.
    pub probed: Probed,
    /// A failed primary's standby, probed at its own endpoint: how far it
    /// is behind what it received (the lag guard).
    pub standby: Probed,
    /// A failed primary's standby that is not probed: CloudWatch's
    /// `ReplicaLag` of it, as evidence.
    pub replica_lag: Option<ReplicaLag>,
}

/// CloudWatch's `ReplicaLag` of a standby, as read.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplicaLag {
    /// Seconds, at an epoch second.
    Seconds { value: f64, at: i64 },
    /// No datapoint in the last ten minutes.
    NoData,
    /// The read failed: why.
    Unread(String),
}

/// What prompted the look: an RDS event's class, or none (sweep, direct).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prompt {
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
    /// How long an opted-in writer may stay unproven through the
    /// application's name (retried meanwhile) before it is `critical`.
    pub proof_grace_secs: i64,
    /// The most a promotion may lose: data the standby received and has
    /// not applied, in bytes (`BALLAST_PROMOTION_MAX_UNAPPLIED_BYTES`).
    pub max_unapplied_bytes: u64,
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

/// The API's plan, with the writer proof's.
pub fn decide_proven(observed: &Observed, prompt: &Prompt, policy: &Policy) -> Plan {
    let plan = decide(&observed.subject, prompt, policy);
    let plan = guard_lag(
        plan,
        &observed.standby,
        observed.replica_lag.as_ref(),
        policy,
    );
    prove(plan, &observed.subject, &observed.probed, policy)
}

pub fn decide(subject: &Subject, prompt: &Prompt, policy: &Policy) -> Plan {
    let plan = match subject {
        Subject::Cluster {
            cluster,
            writer,
            dns_current,
        } => verify::cluster(
            cluster,
            writer.as_ref(),
            dns_current.as_ref(),
            prompt,
            policy,
        ),
        Subject::Instance {
            primary,
            standby,
            dns_current,
        } => verify::instance(
            primary,
            standby.as_ref(),
            dns_current.as_ref(),
            prompt,
            policy,
        ),
    };
    plan.with_evidence(evidence(subject, prompt, policy))
}
