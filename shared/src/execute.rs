//! The executor: applies a [`Plan`]'s steps (or, in dry run, applies
//! nothing), records each step's status, and turns plan + records into the
//! [`Report`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::aws::{database, dns, fleet, Aws, AwsError};
use crate::decide::{Plan, Step, Verdict};
use crate::event::Trigger;
use crate::report::{
    now_rfc3339, ActionRecord, ActionStatus, Outcome, Report, Severity, REPORT_VERSION,
};

/// No step is started with less than this left before the Lambda deadline:
/// enough to finish a call and to publish the report of what remains.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// One step's result.
#[derive(Debug, Clone)]
pub struct Applied {
    pub record: ActionRecord,
    pub error: Option<AwsError>,
}

/// The longest Ballast waits in one invocation for a promoted replica to be
/// `available` or for Route 53 to report `INSYNC`.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// Applies `plan.steps` as per-resource chains (see [`Step::chain`]): the
/// steps of one chain run in order and a chain stops at its first failure
/// (or at a step not started for the deadline), so that what a chain leaves
/// behind is always a prefix of it — the decisions order each chain so that
/// every prefix is safe (records before effects, effects before removing
/// records). Chains of different resources are independent: one ASG's
/// failure does not stop another's evacuation. A sequential plan is one
/// chain. Every step is bounded by the deadline minus [`DEADLINE_MARGIN`].
pub async fn execute(
    plan: &Plan,
    aws: &Aws,
    dry_run: bool,
    deadline: Option<Instant>,
) -> Vec<Applied> {
    let mut applied: Vec<Applied> = Vec::with_capacity(plan.steps.len());
    // Chains stopped, with why their remaining steps are not started.
    let mut stopped: BTreeMap<&str, &str> = BTreeMap::new();
    for step in &plan.steps {
        let chain = if plan.sequential { "" } else { step.chain() };
        let waited_on = step.after().and_then(|a| stopped.get(a));
        if let Some(why) = stopped.get(chain).or(waited_on) {
            applied.push(Applied {
                record: step.record(ActionStatus::Skipped, *why),
                error: None,
            });
            continue;
        }
        if dry_run {
            applied.push(Applied {
                record: step.record(ActionStatus::Skipped, "dry run: not applied"),
                error: None,
            });
            continue;
        }
        if deadline.is_some_and(|d| d.saturating_duration_since(Instant::now()) < DEADLINE_MARGIN) {
            stopped.insert(chain, FAILED_BEFORE);
            applied.push(Applied {
                record: step.record(
                    ActionStatus::Skipped,
                    "not started: the invocation deadline is near; Lambda retries the invocation, which finishes it",
                ),
                error: Some(deadline_error(step, "invocation deadline reached before this step")),
            });
            continue;
        }
        let result = match budget(deadline) {
            Some(left) => tokio::time::timeout(left, apply(step, aws, wait_until(deadline)))
                .await
                .unwrap_or_else(|_| {
                    Err(deadline_error(
                        step,
                        "stopped: the step ran into the invocation deadline (its outcome is unknown; the retry re-reads it)",
                    ))
                }),
            None => apply(step, aws, wait_until(deadline)).await,
        };
        tracing::info!(
            kind = step.kind(),
            target = step.target(),
            ok = result.is_ok(),
            "step applied"
        );
        applied.push(match result {
            Ok(StepResult::Done(detail)) => Applied {
                record: step.record(ActionStatus::Done, detail),
                error: None,
            },
            Ok(StepResult::Deferred(detail)) => {
                // What follows a deferred step waits for it too.
                stopped.insert(
                    chain,
                    "not started: waiting for an earlier step, left to the next event or sweep",
                );
                Applied {
                    record: step.record(ActionStatus::Skipped, detail),
                    error: None,
                }
            }
            Err(err) => {
                stopped.insert(chain, FAILED_BEFORE);
                Applied {
                    record: step.record(ActionStatus::Failed, err.to_string()),
                    error: Some(err),
                }
            }
        });
    }
    applied
}

const FAILED_BEFORE: &str = "not started: an earlier step failed";

/// How long a step may run: until the deadline minus the margin.
fn budget(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .saturating_sub(DEADLINE_MARGIN)
    })
}

/// A step not started, or cut short, by the invocation deadline: retryable,
/// so that Lambda delivers the event again and the next invocation finishes.
fn deadline_error(step: &Step, message: &str) -> AwsError {
    AwsError {
        operation: "deadline",
        resource: step.target().into(),
        code: Some("DeadlineNear".into()),
        message: message.into(),
        retryable: true,
    }
}

/// How long a step may wait: [`MAX_WAIT`], or less when the deadline is near.
fn wait_until(deadline: Option<Instant>) -> Instant {
    let cap = Instant::now() + MAX_WAIT;
    deadline.map_or(cap, |d| {
        cap.min(d.checked_sub(DEADLINE_MARGIN).unwrap_or(d))
    })
}

/// A step either happened, or is deliberately left to the next event.
enum StepResult {
    Done(String),
    Deferred(String),
}

async fn apply(step: &Step, aws: &Aws, until: Instant) -> Result<StepResult, AwsError> {
    match step {
        Step::MarkUnhealthy { instance_id, asg } => {
            fleet::mark_unhealthy(&aws.autoscaling, instance_id).await?;
            Ok(StepResult::Done(format!(
                "SetInstanceHealth(Unhealthy, ShouldRespectGracePeriod=true): ASG {asg} replaces it"
            )))
        }
        Step::UpdateGroup {
            asg,
            subnets,
            max_size,
        } => {
            fleet::update_group(&aws.autoscaling, asg, subnets, *max_size).await?;
            Ok(StepResult::Done(format!(
                "VPCZoneIdentifier={}{}",
                subnets.join(","),
                max_size
                    .map(|m| format!(", MaxSize={m}"))
                    .unwrap_or_default()
            )))
        }
        Step::TagGroup { asg, key, value } => {
            fleet::tag_group(&aws.autoscaling, asg, key, value).await?;
            Ok(StepResult::Done(format!("{key}={value}")))
        }
        Step::UntagGroup { asg, key } => {
            fleet::untag_group(&aws.autoscaling, asg, key).await?;
            Ok(StepResult::Done(format!("{key} removed")))
        }
        Step::SuspendProcesses { asg, processes } => {
            fleet::suspend_processes(&aws.autoscaling, asg, processes).await?;
            Ok(StepResult::Done(format!(
                "SuspendProcesses({}): ASG {asg} no longer replaces unhealthy instances by itself",
                processes.join(",")
            )))
        }
        Step::ResumeProcesses { asg, processes } => {
            fleet::resume_processes(&aws.autoscaling, asg, processes).await?;
            Ok(StepResult::Done(format!(
                "ResumeProcesses({}): ASG {asg} replaces unhealthy instances again",
                processes.join(",")
            )))
        }
        Step::PromoteReplica { replica, primary } => {
            database::promote_read_replica(&aws.rds, replica).await?;
            Ok(StepResult::Done(format!(
                "PromoteReadReplica: {replica} no longer replicates from {primary}"
            )))
        }
        Step::AddTag {
            arn, key, value, ..
        } => {
            database::add_tag(&aws.rds, arn, key, value).await?;
            Ok(StepResult::Done(format!("{key}={value}")))
        }
        Step::RemoveTag { arn, key, .. } => {
            database::remove_tag(&aws.rds, arn, key).await?;
            Ok(StepResult::Done(format!("{key} removed")))
        }
        Step::UpsertCname {
            zone_id,
            name,
            value,
            ttl,
            previous,
            when_available,
        } => {
            if let Some(db) = when_available {
                let status = wait_available(aws, db, until).await?;
                if status != "available" {
                    return Ok(StepResult::Deferred(format!(
                        "{db} is {status}, not yet available: the next event or sweep points {name} at it"
                    )));
                }
            }
            let done = dns::upsert_cname(&aws.route53, zone_id, name, value, *ttl, until).await?;
            let sync = if done.in_sync {
                "INSYNC".to_string()
            } else {
                format!(
                    "PENDING after {}s (Route 53 finishes it)",
                    done.waited.as_secs()
                )
            };
            Ok(StepResult::Done(format!(
                "{} -> {value} (TTL {ttl}s, change {}, {sync})",
                previous.as_deref().unwrap_or("(absent)"),
                done.change_id
            )))
        }
    }
}

/// Polls the DB instance until it is `available` or `until` passes; returns
/// the last status seen.
async fn wait_available(aws: &Aws, db: &str, until: Instant) -> Result<String, AwsError> {
    loop {
        let status = database::describe_instance(&aws.rds, db)
            .await?
            .map_or_else(|| "missing".to_string(), |i| i.status);
        if status == "available" || Instant::now() + Duration::from_secs(5) >= until {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

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
        let failures: Vec<&AwsError> = applied.iter().filter_map(|a| a.error.as_ref()).collect();
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
            Verdict::Declined if plan.steps.is_empty() => (
                Outcome::Declined,
                plan.severity,
                plan.situation.clone(),
                plan.reason.clone(),
            ),
            Verdict::Declined if dry_run => (
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
            Verdict::Act | Verdict::Declined if !failures.is_empty() => failed(),
            Verdict::Act | Verdict::Declined => (
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

    /// The event concerns nothing Ballast acts on.
    pub fn ignored(&self, reason: impl Into<String>) -> Report {
        self.conclude(Plan::ignored(reason, vec![]), vec![], false)
    }

    /// Observing the world failed: nothing was changed.
    pub fn failed(&self, resources: Vec<String>, error: &AwsError) -> Report {
        Report {
            resources,
            reason: Some(error.to_string()),
            ..self.report(
                Outcome::Failed,
                Severity::Critical,
                format!(
                    "Could not read the live state, so nothing was changed: {}.",
                    error.operation
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
        }
    }

    fn applied(status: ActionStatus, error: Option<AwsError>) -> Vec<Applied> {
        vec![Applied {
            record: plan().steps[0].record(status, "x"),
            error,
        }]
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
        let err = AwsError {
            operation: "SetInstanceHealth",
            resource: "i-1".into(),
            code: Some("AccessDenied".into()),
            message: "AccessDenied: no".into(),
            retryable: false,
        };
        let r = ctx().conclude(plan(), applied(ActionStatus::Failed, Some(err)), false);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.severity, Severity::Critical);
        assert!(r
            .reason
            .unwrap()
            .contains("SetInstanceHealth on i-1 failed"));
    }
}
