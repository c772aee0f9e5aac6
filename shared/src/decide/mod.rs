//! Pure decisions: (observed state, policy) → [`Plan`]. No I/O here; every
//! branch is unit- and property-tested.

pub mod unhealthy_target;

use crate::report::{ActionRecord, ActionStatus, Severity};

/// One mutating call the executor may make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `SetInstanceHealth(Unhealthy, ShouldRespectGracePeriod=true)`: the ASG
    /// replaces the instance with its own launch template and lifecycle hooks.
    MarkUnhealthy { instance_id: String, asg: String },
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Step::MarkUnhealthy { .. } => "mark-unhealthy",
        }
    }

    pub fn target(&self) -> &str {
        match self {
            Step::MarkUnhealthy { instance_id, .. } => instance_id,
        }
    }

    pub fn asg(&self) -> Option<&str> {
        match self {
            Step::MarkUnhealthy { asg, .. } => Some(asg),
        }
    }

    /// In the operator's words, for summaries ("mark i-0abc unhealthy in ASG web").
    pub fn describe(&self) -> String {
        match self {
            Step::MarkUnhealthy { instance_id, asg } => {
                format!("mark {instance_id} unhealthy in ASG {asg}")
            }
        }
    }

    /// The report line for this step with `status`.
    pub fn record(&self, status: ActionStatus, detail: impl Into<String>) -> ActionRecord {
        ActionRecord {
            kind: self.kind().into(),
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
    /// A guardrail holds: apply nothing, tell a human.
    Declined,
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
}

impl Plan {
    pub fn noop(situation: impl Into<String>, resources: Vec<String>) -> Self {
        Plan {
            verdict: Verdict::Noop,
            steps: vec![],
            skipped: vec![],
            situation: situation.into(),
            reason: None,
            severity: Severity::Info,
            resources,
        }
    }

    pub fn ignored(reason: impl Into<String>, resources: Vec<String>) -> Self {
        let reason = reason.into();
        Plan {
            verdict: Verdict::Ignored,
            situation: format!("Ignored: {reason}."),
            reason: Some(reason),
            ..Plan::noop("", resources)
        }
    }
}
