//! The facts a decision of `unhealthy-target` rests on.

use std::collections::{BTreeMap, BTreeSet};

use super::breaker::Breaker;
use super::state::{TargetGroupState, TargetState};
use super::Policy;
use crate::event::short_name;
use crate::report::Evidence;

/// How many impaired targets the evidence names, at most.
const EVIDENCE_TARGETS: usize = 10;

/// The facts a decision on `tg` rests on: target counts by state against
/// the guardrail, the impaired targets, and per managed ASG its capacity,
/// health-check type, budget and breaker.
pub fn evidence(tg: &TargetGroupState, policy: &Policy) -> Evidence {
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &tg.targets {
        *states.entry(t.health.as_str()).or_default() += 1;
    }
    let counted = tg.targets.iter().filter(|t| t.health != "draining").count();
    let impaired: Vec<&TargetState> = tg.targets.iter().filter(|t| t.is_impaired()).collect();
    let mut groups = serde_json::Map::new();
    for g in &tg.groups {
        // An unreadable record: the evidence says so instead of a count.
        let replaced = match g.marks() {
            Ok(marks) => serde_json::json!(g
                .own
                .spent_with(marks.within(policy.now, policy.budget.window_secs))),
            Err(e) => serde_json::json!(e.to_string()),
        };
        let breaker = match g.breaker() {
            Breaker::Closed => "closed".to_string(),
            Breaker::Open(s) => format!("open ({} since {})", s.why, crate::report::rfc3339(s.at)),
            Breaker::Unreadable(v) => format!("unreadable record {v:?}"),
        };
        groups.insert(
            g.name.clone(),
            serde_json::json!({
                "desired": g.desired,
                "healthCheckType": g.health_check_type,
                "replacedInWindow": replaced,
                "allowance": policy.budget.allowance(g.desired),
                "breaker": breaker,
                "suspendedProcesses": g.suspended_processes,
            }),
        );
    }
    let mut e = Evidence::new();
    e.insert("targetGroup".into(), short_name(&tg.arn).into());
    e.insert("targets".into(), serde_json::json!(states));
    e.insert(
        "impaired".into(),
        serde_json::json!(format!(
            "{} of {counted} (guardrail {}%)",
            impaired.len(),
            policy.max_unhealthy_percent
        )),
    );
    if !impaired.is_empty() {
        let named: Vec<String> = impaired
            .iter()
            .take(EVIDENCE_TARGETS)
            .map(|t| format!("{} ({})", t.id, t.why_impaired()))
            .collect();
        e.insert("impairedTargets".into(), serde_json::json!(named));
    }
    if !groups.is_empty() {
        e.insert("groups".into(), serde_json::Value::Object(groups));
    }
    e
}

/// Several impaired targets all in one AZ while another AZ still serves is a
/// hint of zonal trouble rather than of bad instances.
pub(super) fn az_hint(counted: &[&TargetState], impaired: &[&TargetState]) -> Option<String> {
    if impaired.len() < 2 {
        return None;
    }
    let sick: BTreeSet<&str> = impaired.iter().filter_map(|t| t.az.as_deref()).collect();
    let [az] = sick.iter().copied().collect::<Vec<_>>()[..] else {
        return None;
    };
    if impaired.iter().any(|t| t.az.is_none()) {
        return None;
    }
    let healthy: BTreeSet<&str> = counted
        .iter()
        .filter(|t| t.health == "healthy")
        .filter_map(|t| t.az.as_deref())
        .filter(|a| *a != az)
        .collect();
    if healthy.is_empty() {
        return None;
    }
    Some(format!(
        "All {} impaired targets are in {az} while {} healthy: possible AZ impairment.",
        impaired.len(),
        healthy.iter().copied().collect::<Vec<_>>().join(", ")
            + if healthy.len() == 1 { " is" } else { " are" }
    ))
}
