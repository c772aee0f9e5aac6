//! The report builder: a plan plus what the executor applied → the
//! [`Report`] (the Lambda response and the SNS message), and one report for
//! a sweep of many. Above the executor, beside the reconcilers.

use crate::decide::{Plan, Step, Verdict};
use crate::event::{short_name, Trigger};
use crate::execute::Applied;
use crate::failure::Failure;
use crate::report::{
    now_rfc3339, ActionRecord, ActionStatus, Outcome, Report, Severity, REPORT_VERSION,
};

/// Who is reporting, about what: the fixed parts of every report.
#[derive(Debug, Clone)]
pub struct ReportContext {
    pub function: &'static str,
    pub trigger: Trigger,
    pub region: String,
}

impl ReportContext {
    fn report(&self, outcome: Outcome, severity: Severity, summary: String) -> Report {
        Report {
            version: REPORT_VERSION.into(),
            function: self.function.into(),
            outcome,
            severity,
            summary,
            trigger: self.trigger.clone(),
            resources: vec![],
            actions: vec![],
            reason: None,
            region: self.region.clone(),
            time: now_rfc3339(),
            evidence: Default::default(),
        }
    }

    /// The report of a decided (and, when it has steps, executed) plan. A
    /// declined plan may still have steps (the breaker it trips): it stays
    /// `declined` when they are done, and is `failed` when one is not.
    pub fn conclude(&self, plan: Plan, applied: Vec<Applied>, dry_run: bool) -> Report {
        let would = || -> String {
            let would: Vec<String> = plan.steps.iter().map(Step::describe).collect();
            format!("Dry run, nothing changed; would {}.", would.join("; "))
        };
        let failures: Vec<&Failure> = applied.iter().filter_map(|a| a.error.as_ref()).collect();
        let done: Vec<String> = plan
            .steps
            .iter()
            .zip(&applied)
            .filter(|(_, a)| a.record.status == ActionStatus::Done)
            .map(|(s, _)| s.describe())
            .collect();
        let failed = || {
            let reasons: Vec<String> = failures.iter().map(|e| e.to_string()).collect();
            (
                Outcome::Failed,
                Severity::Critical,
                format!(
                    "{} {} of {} actions did not complete ({} done).",
                    plan.situation,
                    failures.len(),
                    plan.steps.len(),
                    done.len()
                ),
                Some(reasons.join("; ")),
            )
        };
        let (outcome, severity, summary, reason) = match plan.verdict {
            Verdict::Ignored => (
                Outcome::Ignored,
                Severity::Info,
                plan.situation.clone(),
                plan.reason.clone(),
            ),
            Verdict::Noop => (
                Outcome::Noop,
                plan.severity,
                plan.situation.clone(),
                plan.reason.clone(),
            ),
            Verdict::Declined(_) if plan.steps.is_empty() => (
                Outcome::Declined,
                plan.severity,
                plan.situation.clone(),
                plan.reason.clone(),
            ),
            Verdict::Declined(_) if dry_run => (
                Outcome::Declined,
                plan.severity,
                format!("{} {}", plan.situation, would()),
                plan.reason.clone(),
            ),
            Verdict::Act if dry_run => (
                Outcome::DryRun,
                plan.severity.max(Severity::Warning),
                format!("{} {}", plan.situation, would()),
                plan.reason.clone(),
            ),
            Verdict::Act | Verdict::Declined(_) if !failures.is_empty() => failed(),
            Verdict::Act | Verdict::Declined(_) => (
                if plan.verdict == Verdict::Act {
                    Outcome::Remediated
                } else {
                    Outcome::Declined
                },
                plan.severity,
                format!("{} Done: {}.", plan.situation, done.join("; ")),
                plan.reason.clone(),
            ),
        };
        // Done, but not proven through the application's name (a writer
        // proof): not `remediated`, and a verified state that the name
        // does not bear out is no `noop`.
        let outcome = match outcome {
            Outcome::Remediated | Outcome::Noop if plan.unproven => Outcome::Failed,
            o => o,
        };
        let mut actions: Vec<ActionRecord> = applied.into_iter().map(|a| a.record).collect();
        actions.extend(plan.skipped);
        Report {
            resources: plan.resources,
            actions,
            reason,
            evidence: plan.evidence,
            ..self.report(outcome, severity, summary)
        }
    }

    /// One report for `parts` (one report per resource looked at): the
    /// outcome that matters most, every resource and action, each part's
    /// outcome in the summary and each non-trivial reason.
    pub fn merge(&self, what: &str, parts: Vec<Report>) -> Report {
        let mut outcome = Outcome::Noop;
        let mut severity = Severity::Info;
        let mut lines = vec![];
        let mut reasons = vec![];
        let mut merged = self.report(Outcome::Noop, Severity::Info, String::new());
        for part in parts {
            let name = part
                .resources
                .first()
                .map(|r| short_name(r).to_string())
                .unwrap_or_default();
            if part.outcome != Outcome::Ignored {
                outcome = outcome.worst(part.outcome);
                severity = severity.max(part.severity);
            }
            lines.push(format!("{name} {}", part.outcome.as_str()));
            if let (Some(r), true) = (&part.reason, part.outcome != Outcome::Noop) {
                reasons.push(format!("{name}: {r}"));
            }
            if part.outcome.is_published() && !part.evidence.is_empty() {
                merged
                    .evidence
                    .insert(name.clone(), serde_json::Value::Object(part.evidence));
            }
            merged.resources.extend(part.resources);
            merged.actions.extend(part.actions);
        }
        Report {
            outcome,
            severity,
            summary: format!("Sweep of {} {what}: {}.", lines.len(), lines.join(", ")),
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            ..merged
        }
    }

    /// The event concerns nothing Ballast acts on.
    pub fn ignored(&self, reason: impl Into<String>) -> Report {
        self.conclude(Plan::ignored(reason, vec![]), vec![], false)
    }

    /// Observing the world failed: nothing was changed.
    pub fn failed(&self, resources: Vec<String>, error: &Failure) -> Report {
        Report {
            resources,
            reason: Some(error.to_string()),
            ..self.report(
                Outcome::Failed,
                Severity::Critical,
                format!(
                    "Could not read the live state, so nothing was changed: {}.",
                    error.operation()
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ReportContext {
        ReportContext {
            function: "unhealthy-target",
            trigger: Trigger::direct("r"),
            region: "us-east-1".into(),
        }
    }

    fn plan() -> Plan {
        Plan {
            evidence: Default::default(),
            verdict: Verdict::Act,
            steps: vec![Step::MarkUnhealthy {
                instance_id: "i-1".into(),
                asg: "web".into(),
            }],
            skipped: vec![],
            situation: "1 of 2 targets impaired.".into(),
            reason: None,
            severity: Severity::Info,
            resources: vec!["arn:tg".into()],
            sequential: false,
            retry: None,
            unproven: false,
        }
    }

    fn applied(status: ActionStatus, error: Option<Failure>) -> Vec<Applied> {
        vec![Applied {
            record: plan().steps[0].record(status, "x"),
            error,
        }]
    }

    #[test]
    fn done_but_unproven_is_failed_with_the_plans_severity() {
        let unproven = Plan {
            unproven: true,
            severity: Severity::Warning,
            ..plan()
        };
        let r = ctx().conclude(unproven, applied(ActionStatus::Done, None), false);
        assert_eq!(
            (r.outcome, r.severity),
            (Outcome::Failed, Severity::Warning)
        );
        let noop = Plan {
            unproven: true,
            severity: Severity::Critical,
            ..Plan::noop("Verified; not proven.", vec![])
        };
        let r = ctx().conclude(noop, vec![], false);
        assert_eq!(
            (r.outcome, r.severity),
            (Outcome::Failed, Severity::Critical)
        );
        // A dry run says what it would do, proven or not.
        let dry = Plan {
            unproven: true,
            ..plan()
        };
        assert_eq!(ctx().conclude(dry, vec![], true).outcome, Outcome::DryRun);
    }

    #[test]
    fn all_steps_done_is_remediated() {
        let r = ctx().conclude(plan(), applied(ActionStatus::Done, None), false);
        assert_eq!(r.outcome, Outcome::Remediated);
        assert_eq!(
            r.summary,
            "1 of 2 targets impaired. Done: mark i-1 unhealthy in ASG web."
        );
    }

    #[test]
    fn dry_run_reports_what_it_would_do_as_a_warning() {
        let r = ctx().conclude(plan(), applied(ActionStatus::Skipped, None), true);
        assert_eq!(r.outcome, Outcome::DryRun);
        assert_eq!(r.severity, Severity::Warning);
        assert!(
            r.summary.contains("would mark i-1 unhealthy in ASG web"),
            "{}",
            r.summary
        );
    }

    #[test]
    fn a_failed_step_fails_the_report_with_its_error() {
        let err = Failure::Aws(crate::aws::AwsError {
            operation: "SetInstanceHealth",
            resource: "i-1".into(),
            code: Some("AccessDenied".into()),
            message: "AccessDenied: no".into(),
            retryable: false,
        });
        let r = ctx().conclude(plan(), applied(ActionStatus::Failed, Some(err)), false);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.severity, Severity::Critical);
        assert!(r
            .reason
            .unwrap()
            .contains("SetInstanceHealth on i-1 failed"));
    }
}
