//! `az-impairment`: move managed Auto Scaling groups out of an impaired AZ
//! (remove its subnets, keep the capacity) and bring them back, under
//! guardrails. The state of an evacuation lives on the ASG itself, in the
//! `ballast:evacuated` tag.
//!
//! - `state`: what is read of the fleet;
//! - `records`: the `ballast:evacuated` record and the holds it keeps;
//! - `holds`: which zones are held out, by what, and when a hold is over;
//! - `evacuate` and `restore`: the two decisions;
//! - `evidence`: the facts a decision rests on.

mod evacuate;
mod evidence;
mod holds;
mod records;
mod restore;
mod state;
#[cfg(test)]
mod tests;

pub use evidence::evidence;
pub use holds::{holds, resync, still_held, zones_holding, Readings};
pub use records::{Evacuation, Hold};
pub use state::{FleetState, ZonedGroup};

use super::Plan;
use crate::event::zonal::Signal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `BALLAST_MAX_EVACUATED_AZS`.
    pub max_evacuated_azs: u32,
    /// Now, in seconds since the epoch: when a zone's evacuation starts.
    pub now: i64,
}

/// What a signal asks of a zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Evacuate the zone, and record the signal as a reason to stay out.
    Raise(Signal),
    /// These signals are over: remove them; restore the zone when none is left.
    Clear(Vec<Signal>),
    /// An operator's restore: every signal of the zone is cleared.
    ClearAll,
}

pub fn decide(fleet: &FleetState, change: &Change, az: &str, policy: &Policy) -> Plan {
    let plan = match change {
        Change::Raise(signal) => evacuate::evacuate(fleet, signal, az, policy),
        Change::Clear(_) | Change::ClearAll => restore::restore(fleet, change, az),
    };
    plan.with_evidence(evidence(fleet, change, az))
}
