//! What `unhealthy-target` reads of a target group and the managed groups
//! behind it.

use super::breaker::{Breaker, Suspended};
use super::budget::{OwnReplacements, Replaced};
use crate::records::Unreadable;
use crate::resources::Group;
use crate::tags;

/// A target group as observed: its targets' health joined with their ASG,
/// and the managed ASGs behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupState {
    pub arn: String,
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub targets: Vec<TargetState>,
    /// Managed ASGs attached to the target group or with instances in it.
    pub groups: Vec<BudgetedGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub id: String,
    /// ELB target health state: `healthy`, `unhealthy`, `unused`, `draining`, ...
    pub health: String,
    /// ELB reason code, e.g. `Target.InvalidState`, `Target.FailedHealthChecks`.
    pub reason: Option<String>,
    pub az: Option<String>,
    /// The instance's Auto Scaling group, when it has one.
    pub member: Option<AsgMembership>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsgMembership {
    pub asg: String,
    /// Tagged `ballast:managed=true`.
    pub managed: bool,
    /// The ASG's view: `Healthy` or `Unhealthy`.
    pub health_status: String,
    /// `InService`, `Pending`, `Terminating`, `Standby`, ...
    pub lifecycle_state: String,
}

/// A managed ASG, with what the budget and the breaker read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetedGroup {
    pub name: String,
    pub desired: i32,
    /// `EC2`, `ELB`, `VPC_LATTICE`, or several of them comma-separated.
    pub health_check_type: String,
    /// Suspended processes, whoever suspended them.
    pub suspended_processes: Vec<String>,
    /// The `ballast:replaced` tag, as read.
    pub replaced: Option<String>,
    /// The `ballast:suspended` tag, as read.
    pub suspended: Option<String>,
    /// The ASG's health-check replacements inside the budget window.
    pub own: OwnReplacements,
}

impl From<Group> for BudgetedGroup {
    /// What the budget and the breaker read of a group; its own
    /// replacements are counted apart (only an impaired instance needs them).
    fn from(g: Group) -> Self {
        BudgetedGroup {
            desired: g.desired_capacity,
            replaced: g.tags.get(tags::REPLACED).cloned(),
            suspended: g.tags.get(tags::SUSPENDED).cloned(),
            health_check_type: g.health_check_type,
            suspended_processes: g.suspended_processes,
            own: OwnReplacements::default(),
            name: g.name,
        }
    }
}

impl BudgetedGroup {
    /// With ELB health checks the ASG replaces every instance its target
    /// groups find unhealthy by itself, whatever Ballast decides.
    pub(super) fn replaces_by_itself(&self) -> bool {
        self.health_check_type
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("ELB"))
    }

    pub(super) fn is_suspended(&self, process: &str) -> bool {
        self.suspended_processes.iter().any(|p| p == process)
    }

    /// Ballast's marks in the group; an unreadable record is an error (held:
    /// the budget it counts is unknown).
    pub(super) fn marks(&self) -> Result<Replaced, Unreadable> {
        self.replaced
            .as_deref()
            .map_or_else(|| Ok(Replaced::default()), Replaced::parse)
    }
}

impl BudgetedGroup {
    pub fn breaker(&self) -> Breaker {
        match self.suspended.as_deref() {
            None => Breaker::Closed,
            Some(v) => {
                Suspended::parse(v).map_or_else(|_| Breaker::Unreadable(v.into()), Breaker::Open)
            }
        }
    }
}

impl TargetState {
    /// Impaired: failing health checks, or a stopped/stopping instance, which
    /// ELB reports as `unused` with reason `Target.InvalidState`.
    pub fn is_impaired(&self) -> bool {
        self.health == "unhealthy"
            || (self.health == "unused" && self.reason.as_deref() == Some("Target.InvalidState"))
    }

    pub(super) fn why_impaired(&self) -> String {
        match (self.health.as_str(), self.reason.as_deref()) {
            ("unused", Some("Target.InvalidState")) => "instance stopped".into(),
            (state, Some(reason)) => format!("{state}, {reason}"),
            (state, None) => state.into(),
        }
    }

    pub(super) fn in_group(&self, asg: &str) -> bool {
        self.member.as_ref().is_some_and(|m| m.asg == asg)
    }

    pub(super) fn in_service(&self) -> bool {
        self.member
            .as_ref()
            .is_some_and(|m| m.lifecycle_state == "InService")
    }

    /// Ballast may mark it: in service, in a managed ASG, not yet marked.
    pub(super) fn is_markable(&self) -> bool {
        self.member.as_ref().is_some_and(|m| {
            m.managed
                && m.lifecycle_state == "InService"
                && !m.health_status.eq_ignore_ascii_case("unhealthy")
        })
    }
}
