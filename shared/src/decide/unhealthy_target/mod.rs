//! `unhealthy-target`: which impaired targets to hand to their Auto Scaling
//! group for replacement, under the unhealthy-share guardrail and each
//! group's replacement budget; and the fleet breaker, which suspends an
//! ASG's own `ReplaceUnhealthy` while Ballast declines and resumes it (only
//! what it suspended) once the target group is back within the guardrail.
//!
//! - `state`: what is read of the target group and its groups;
//! - `budget`: the replacement budget and its record, `ballast:replaced`;
//! - `breaker`: the breaker's record, `ballast:suspended`, and its steps;
//! - `decision`: the decision over the target group, group by group;
//! - `evidence`: the facts a decision rests on.

mod breaker;
pub mod budget;
mod decision;
mod evidence;
mod state;
#[cfg(test)]
mod tests;

pub use breaker::{target_group_key, Breaker, Suspended, REPLACE_UNHEALTHY};
pub use budget::{Budget, OwnReplacements, Replaced};
pub use evidence::evidence;
pub use state::{AsgMembership, BudgetedGroup, TargetGroupState, TargetState};

use super::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `BALLAST_MAX_UNHEALTHY_PERCENT`.
    pub max_unhealthy_percent: u8,
    /// `BALLAST_MAX_REPLACED_PERCENT` / `BALLAST_REPLACEMENT_WINDOW_MINUTES`.
    pub budget: Budget,
    /// Epoch seconds.
    pub now: i64,
}

pub fn decide(tg: &TargetGroupState, policy: &Policy) -> Plan {
    decision::decide_plan(tg, policy).with_evidence(evidence(tg, policy))
}
