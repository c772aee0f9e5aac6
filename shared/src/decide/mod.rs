//! Pure decisions: (observed state, policy) → [`Plan`]. No I/O here; every
//! branch is unit- and property-tested.

pub mod az_impairment;
mod chains;
mod decline;
#[cfg(test)]
mod prefixes;
pub mod rds_failover;
pub mod unhealthy_target;

pub use chains::Chains;
pub use decline::Decline;
#[cfg(test)]
pub(crate) use prefixes::prefixes;

use crate::report::{ActionKind, ActionRecord, ActionStatus, Evidence, Severity};

/// One mutating call the executor may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `SetInstanceHealth(Unhealthy, ShouldRespectGracePeriod=true)`: the ASG
    /// replaces the instance with its own launch template and lifecycle hooks.
    MarkUnhealthy { instance_id: String, asg: String },
    /// `PromoteReadReplica`: the replica becomes a standalone primary.
    PromoteReplica { replica: String, primary: String },
    /// `AddTagsToResource` on a DB instance or cluster.
    TagDatabase {
        resource: String,
        arn: String,
        key: String,
        value: String,
    },
    /// `RemoveTagsFromResource` on a DB instance or cluster.
    UntagDatabase {
        resource: String,
        arn: String,
        key: String,
    },
    /// `UpdateAutoScalingGroup`: new subnets, and a max size when it must change.
    UpdateGroup {
        asg: String,
        subnets: Vec<String>,
        max_size: Option<i32>,
    },
    /// `CreateOrUpdateTags` on an Auto Scaling group.
    TagGroup {
        asg: String,
        key: String,
        value: String,
    },
    /// `DeleteTags` on an Auto Scaling group.
    UntagGroup { asg: String, key: String },
    /// `SuspendProcesses` on an Auto Scaling group (the breaker trips).
    SuspendProcesses { asg: String, processes: Vec<String> },
    /// `ResumeProcesses` on an Auto Scaling group: only processes Ballast
    /// suspended (the breaker closes).
    ResumeProcesses { asg: String, processes: Vec<String> },
    /// `ChangeResourceRecordSets` UPSERT of a CNAME, then a bounded wait for
    /// INSYNC. With `when_available`, first wait (bounded) for that DB
    /// instance to be `available`; if it is not, the step is left to the next
    /// event or sweep.
    UpsertCname {
        zone_id: String,
        name: String,
        value: String,
        ttl: i64,
        previous: Option<String>,
        when_available: Option<String>,
    },
}

impl Step {
    pub fn kind(&self) -> ActionKind {
        match self {
            Step::MarkUnhealthy { .. } => ActionKind::MarkUnhealthy,
            Step::PromoteReplica { .. } => ActionKind::PromoteReplica,
            Step::TagDatabase { .. } => ActionKind::Tag,
            Step::UntagDatabase { .. } => ActionKind::Untag,
            Step::UpsertCname { .. } => ActionKind::UpsertCname,
            Step::UpdateGroup { .. } => ActionKind::UpdateAsg,
            Step::TagGroup { .. } => ActionKind::TagAsg,
            Step::UntagGroup { .. } => ActionKind::UntagAsg,
            Step::SuspendProcesses { .. } => ActionKind::SuspendProcesses,
            Step::ResumeProcesses { .. } => ActionKind::ResumeProcesses,
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Step::MarkUnhealthy { instance_id, .. } => instance_id,
            Step::PromoteReplica { replica, .. } => replica,
            Step::TagDatabase { resource, .. } | Step::UntagDatabase { resource, .. } => resource,
            Step::UpsertCname { name, .. } => name,
            Step::UpdateGroup { asg, .. }
            | Step::TagGroup { asg, .. }
            | Step::UntagGroup { asg, .. }
            | Step::SuspendProcesses { asg, .. }
            | Step::ResumeProcesses { asg, .. } => asg,
        }
    }

    pub fn asg(&self) -> Option<&str> {
        match self {
            Step::MarkUnhealthy { asg, .. }
            | Step::UpdateGroup { asg, .. }
            | Step::TagGroup { asg, .. }
            | Step::UntagGroup { asg, .. }
            | Step::SuspendProcesses { asg, .. }
            | Step::ResumeProcesses { asg, .. } => Some(asg),
            _ => None,
        }
    }

    /// The resource whose chain of steps this one belongs to: the executor
    /// stops a chain at its first failure and runs the others on.
    /// Marks are independent of each other; an ASG's records, subnet
    /// changes and processes are one chain.
    pub fn chain(&self) -> &str {
        match self {
            Step::MarkUnhealthy { instance_id, .. } => instance_id,
            other => other.asg().unwrap_or_else(|| other.target()),
        }
    }

    /// The chain this step waits on, besides its own: a mark is not started
    /// once its ASG's chain has stopped (its `ballast:replaced` record,
    /// written before it, did not land).
    pub fn after(&self) -> Option<&str> {
        match self {
            Step::MarkUnhealthy { asg, .. } => Some(asg),
            _ => None,
        }
    }

    /// In the operator's words, for summaries ("mark i-0abc unhealthy in ASG web").
    pub fn describe(&self) -> String {
        match self {
            Step::MarkUnhealthy { instance_id, asg } => {
                format!("mark {instance_id} unhealthy in ASG {asg}")
            }
            Step::PromoteReplica { replica, primary } => {
                format!("promote read replica {replica} of {primary}")
            }
            Step::TagDatabase {
                resource,
                key,
                value,
                ..
            } => format!("tag {resource} {key}={value}"),
            Step::UntagDatabase { resource, key, .. } => {
                format!("remove tag {key} from {resource}")
            }
            Step::UpdateGroup {
                asg,
                subnets,
                max_size,
            } => format!(
                "set ASG {asg} subnets to {}{}",
                subnets.join(","),
                max_size
                    .map(|m| format!(" and max size to {m}"))
                    .unwrap_or_default()
            ),
            Step::TagGroup { asg, key, value } => format!("tag ASG {asg} {key}={value}"),
            Step::UntagGroup { asg, key } => format!("remove tag {key} from ASG {asg}"),
            Step::SuspendProcesses { asg, processes } => {
                format!("suspend {} of ASG {asg}", processes.join(", "))
            }
            Step::ResumeProcesses { asg, processes } => {
                format!("resume {} of ASG {asg}", processes.join(", "))
            }
            Step::UpsertCname {
                name,
                value,
                previous,
                ..
            } => format!(
                "point {name} at {value} (was {})",
                previous.as_deref().unwrap_or("absent")
            ),
        }
    }

    /// The report line for this step with `status`.
    pub fn record(&self, status: ActionStatus, detail: impl Into<String>) -> ActionRecord {
        ActionRecord {
            kind: self.kind(),
            target: self.target().into(),
            asg: self.asg().map(str::to_string),
            status,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Apply `steps`.
    Act,
    /// A guardrail holds: apply nothing (but what the refusal itself does,
    /// the breaker it trips), tell a human why.
    Declined(Decline),
    /// The live state is already what it should be.
    Noop,
    /// Not Ballast's business (unmanaged, wrong kind of resource).
    Ignored,
}

/// What to do and why. `situation` is one sentence about the observed state;
/// the report's summary is built from it and from what execution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub verdict: Verdict,
    pub steps: Vec<Step>,
    /// Actions considered and not taken, each with its reason.
    pub skipped: Vec<ActionRecord>,
    pub situation: String,
    pub reason: Option<String>,
    /// Severity when the plan is carried out as decided.
    pub severity: Severity,
    pub resources: Vec<String>,
    /// The whole plan is one chain: each step needs the previous ones, stop
    /// at the first failure. Otherwise each resource's steps are a chain of
    /// their own ([`Step::chain`]).
    pub sequential: bool,
    /// The observed facts the decision rested on (the report's `evidence`).
    pub evidence: Evidence,
    /// The plan waits on AWS (a promotion RDS has not shown yet): the
    /// invocation asks Lambda to deliver the event again, for this reason,
    /// instead of ending it with a success.
    pub retry: Option<String>,
    /// What the plan does (or found) is not proven through the
    /// application's name (`rds-failover`'s writer proof): it is reported
    /// `failed` even when every step is done.
    pub unproven: bool,
}

impl Plan {
    /// Nothing to do: the state is what it should be (or is not Ballast's
    /// to change yet).
    pub fn noop(situation: impl Into<String>, resources: Vec<String>) -> Self {
        Plan {
            evidence: Default::default(),
            verdict: Verdict::Noop,
            steps: vec![],
            skipped: vec![],
            situation: situation.into(),
            reason: None,
            severity: Severity::Info,
            resources,
            sequential: false,
            retry: None,
            unproven: false,
        }
    }

    /// The event concerns nothing this function acts on.
    pub fn ignored(reason: impl Into<String>, resources: Vec<String>) -> Self {
        let reason = reason.into();
        Plan {
            verdict: Verdict::Ignored,
            ..Plan::noop(format!("Ignored: {reason}."), resources).with_reason(reason)
        }
    }

    /// `steps` bring the state where it should be.
    pub fn act(situation: impl Into<String>, steps: Vec<Step>, resources: Vec<String>) -> Self {
        Plan {
            verdict: Verdict::Act,
            steps,
            ..Plan::noop(situation, resources)
        }
    }

    /// A guardrail refuses to act, for `reason` (steps, if any, are what
    /// the refusal itself does: the breaker it trips).
    pub fn declined(
        why: Decline,
        situation: impl Into<String>,
        reason: impl Into<String>,
        resources: Vec<String>,
    ) -> Self {
        Plan {
            verdict: Verdict::Declined(why),
            ..Plan::noop(situation, resources).with_reason(reason)
        }
    }

    pub fn with_reason(self, reason: impl Into<String>) -> Self {
        Plan {
            reason: Some(reason.into()),
            ..self
        }
    }

    /// Every reason, `; `-joined; none leaves the reason unset.
    pub fn with_reasons(self, reasons: Vec<String>) -> Self {
        Plan {
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            ..self
        }
    }

    pub fn with_situation(self, situation: impl Into<String>) -> Self {
        Plan {
            situation: situation.into(),
            ..self
        }
    }

    pub fn with_severity(self, severity: Severity) -> Self {
        Plan { severity, ..self }
    }

    pub fn with_steps(self, steps: Vec<Step>) -> Self {
        Plan { steps, ..self }
    }

    /// Actions looked at and deliberately not taken, with why.
    pub fn with_skipped(self, skipped: Vec<ActionRecord>) -> Self {
        Plan { skipped, ..self }
    }

    /// The steps run as one chain: one failure stops all that follow.
    pub fn in_sequence(self) -> Self {
        Plan {
            sequential: true,
            ..self
        }
    }

    pub fn with_evidence(self, evidence: Evidence) -> Self {
        Plan { evidence, ..self }
    }

    /// The plan waits on AWS: Lambda is asked to deliver the event again.
    pub fn retried(self, why: impl Into<String>) -> Self {
        Plan {
            retry: Some(why.into()),
            ..self
        }
    }
}
