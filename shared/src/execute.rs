//! The executor: applies a [`Plan`]'s steps (or, in dry run, applies
//! nothing) and records each step's status. Turning plan and records into
//! the report is `conclude`'s.

use std::time::{Duration, Instant};

#[cfg(feature = "rds")]
use crate::aws::database;
#[cfg(feature = "route53")]
use crate::aws::dns;
#[cfg(feature = "autoscaling")]
use crate::aws::fleet;
use crate::aws::Aws;
#[cfg(feature = "rds")]
use crate::aws::AwsError;
use crate::decide::{Chains, Plan, Step};
use crate::failure::Failure;
use crate::lease::{self, Lease};
use crate::report::{ActionRecord, ActionStatus};

/// No step is started with less than this left before the Lambda deadline:
/// enough to finish a call and to publish the report of what remains.
pub(crate) const DEADLINE_MARGIN: Duration = Duration::from_secs(3);

/// One step's result.
#[derive(Debug, Clone)]
pub struct Applied {
    pub record: ActionRecord,
    pub error: Option<Failure>,
}

/// The longest Ballast waits in one invocation for a promoted replica to be
/// `available` or for Route 53 to report `INSYNC`.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Applies `plan.steps` as per-resource chains (see [`Step::chain`]): the
/// steps of one chain run in order and a chain stops at its first failure
/// (or at a step not started for the deadline), so that what a chain leaves
/// behind is always a prefix of it — the decisions order each chain so that
/// every prefix is safe (records before effects, effects before removing
/// records). Chains of different resources are independent: one ASG's
/// failure does not stop another's evacuation. A sequential plan is one
/// chain. Every step is bounded by the deadline minus [`DEADLINE_MARGIN`].
///
/// Under a `lease`, a step is started only once the lease covers it (it is
/// extended first, [`Lease::cover`]) and is cut at the lease's end; a lease
/// that cannot be kept stops every chain.
pub(crate) async fn execute(
    plan: &Plan,
    aws: &Aws,
    dry_run: bool,
    deadline: Option<Instant>,
    mut lease: Option<&mut Lease>,
) -> Vec<Applied> {
    let mut applied: Vec<Applied> = Vec::with_capacity(plan.steps.len());
    let mut chains = Chains::of(plan);
    let mut lease_lost = false;
    for step in &plan.steps {
        let lost = lease_lost.then_some(LEASE_LOST);
        if let Some(why) = chains.blocked(step).or(lost) {
            applied.push(Applied {
                record: step.record(ActionStatus::Skipped, why),
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
            chains.stop(step, FAILED_BEFORE);
            applied.push(Applied {
                record: step.record(
                    ActionStatus::Skipped,
                    "not started: the invocation deadline is near; Lambda retries the invocation, which finishes it",
                ),
                error: Some(deadline_error(step, "invocation deadline reached before this step")),
            });
            continue;
        }
        if let Some(lease) = lease.as_deref_mut() {
            if let Err(err) = lease.cover(aws, need(step)).await {
                lease_lost = true;
                applied.push(Applied {
                    record: step.record(ActionStatus::Skipped, format!("{LEASE_LOST} ({err})")),
                    error: Some(err),
                });
                continue;
            }
        }
        let result = bounded(step, aws, deadline, lease.as_deref()).await;
        tracing::info!(
            kind = step.kind().as_str(),
            target = step.target(),
            ok = result.is_ok(),
            "step applied"
        );
        applied.push(settle(step, result, &mut chains));
    }
    applied
}

/// `step` applied, cut at the deadline (minus the margin) or the end of
/// the lease, whichever is first.
async fn bounded(
    step: &Step,
    aws: &Aws,
    deadline: Option<Instant>,
    lease: Option<&Lease>,
) -> Result<StepResult, Failure> {
    let left = lease.map(Lease::left);
    let Some(left) = time_left(deadline).into_iter().chain(left).min() else {
        return apply(step, aws, wait_until(deadline)).await;
    };
    tokio::time::timeout(left, apply(step, aws, wait_until(deadline)))
        .await
        .unwrap_or_else(|_| {
            Err(deadline_error(
                step,
                "stopped: the step ran into the invocation deadline or the end of its lease (its outcome is unknown; the retry re-reads it)",
            ))
        })
}

/// The report line of a step's `result`; a step deferred or failed stops
/// its chain.
fn settle<'a>(
    step: &'a Step,
    result: Result<StepResult, Failure>,
    chains: &mut Chains<'a>,
) -> Applied {
    match result {
        Ok(StepResult::Done(detail)) => Applied {
            record: step.record(ActionStatus::Done, detail),
            error: None,
        },
        Ok(StepResult::Deferred(detail)) => {
            // What follows a deferred step waits for it too.
            chains.stop(
                step,
                "not started: waiting for an earlier step, left to the next event or sweep",
            );
            Applied {
                record: step.record(ActionStatus::Skipped, detail),
                error: None,
            }
        }
        Err(err) => {
            chains.stop(step, FAILED_BEFORE);
            Applied {
                record: step.record(ActionStatus::Failed, err.to_string()),
                error: Some(err),
            }
        }
    }
}

const FAILED_BEFORE: &str = "not started: an earlier step failed";
const LEASE_LOST: &str =
    "not started: the lease could not be kept; Lambda retries the invocation, which finishes it";

/// How much lease a step needs before it starts: one call, or, for a step
/// that waits (a promoted replica's availability, Route 53's `INSYNC`), the
/// wait and a call.
fn need(step: &Step) -> Duration {
    match step {
        Step::UpsertCname { .. } => MAX_WAIT + lease::STEP,
        _ => lease::STEP,
    }
}

/// How long a step may run: until the deadline minus the margin.
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| {
        d.saturating_duration_since(Instant::now())
            .saturating_sub(DEADLINE_MARGIN)
    })
}

/// A step not started, or cut short, by the invocation deadline: retryable,
/// so that Lambda delivers the event again and the next invocation finishes.
fn deadline_error(step: &Step, message: &str) -> Failure {
    Failure::DeadlineNear {
        resource: step.target().into(),
        message: message.into(),
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
    #[cfg_attr(not(all(feature = "route53", feature = "rds")), allow(dead_code))]
    Deferred(String),
}

#[cfg_attr(
    not(all(feature = "route53", feature = "rds")),
    allow(unused_variables)
)]
async fn apply(step: &Step, aws: &Aws, until: Instant) -> Result<StepResult, Failure> {
    match step {
        #[cfg(feature = "autoscaling")]
        Step::MarkUnhealthy { .. }
        | Step::UpdateGroup { .. }
        | Step::TagGroup { .. }
        | Step::UntagGroup { .. }
        | Step::SuspendProcesses { .. }
        | Step::ResumeProcesses { .. } => apply_to_group(step, aws).await,
        #[cfg(feature = "rds")]
        Step::PromoteReplica { .. } | Step::TagDatabase { .. } | Step::UntagDatabase { .. } => {
            apply_to_database(step, aws).await
        }
        #[cfg(all(feature = "route53", feature = "rds"))]
        Step::UpsertCname { .. } => upsert_cname(step, aws, until).await,
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// A step of a service this function is not built with: its decisions
/// never plan one.
fn not_built(step: &Step) -> Failure {
    Failure::NotBuilt {
        kind: step.kind().as_str(),
        resource: step.target().to_string(),
    }
}

/// A step on an Auto Scaling group.
#[cfg(feature = "autoscaling")]
async fn apply_to_group(step: &Step, aws: &Aws) -> Result<StepResult, Failure> {
    let done = match step {
        Step::MarkUnhealthy { instance_id, asg } => {
            fleet::mark_unhealthy(&aws.autoscaling, instance_id).await?;
            format!("SetInstanceHealth(Unhealthy, ShouldRespectGracePeriod=true): ASG {asg} replaces it")
        }
        Step::UpdateGroup {
            asg,
            subnets,
            max_size,
        } => {
            fleet::update_group(&aws.autoscaling, asg, subnets, *max_size).await?;
            format!(
                "VPCZoneIdentifier={}{}",
                subnets.join(","),
                max_size
                    .map(|m| format!(", MaxSize={m}"))
                    .unwrap_or_default()
            )
        }
        Step::TagGroup { asg, key, value } => {
            fleet::tag_group(&aws.autoscaling, asg, key, value).await?;
            format!("{key}={value}")
        }
        Step::UntagGroup { asg, key } => {
            fleet::untag_group(&aws.autoscaling, asg, key).await?;
            format!("{key} removed")
        }
        Step::SuspendProcesses { asg, processes } => {
            fleet::suspend_processes(&aws.autoscaling, asg, processes).await?;
            format!(
                "SuspendProcesses({}): ASG {asg} no longer replaces unhealthy instances by itself",
                processes.join(",")
            )
        }
        Step::ResumeProcesses { asg, processes } => {
            fleet::resume_processes(&aws.autoscaling, asg, processes).await?;
            format!(
                "ResumeProcesses({}): ASG {asg} replaces unhealthy instances again",
                processes.join(",")
            )
        }
        other => return Err(not_built(other)),
    };
    Ok(StepResult::Done(done))
}

/// A step on a DB instance or cluster.
#[cfg(feature = "rds")]
async fn apply_to_database(step: &Step, aws: &Aws) -> Result<StepResult, Failure> {
    match step {
        Step::PromoteReplica { replica, primary } => {
            match database::promote_read_replica(&aws.rds, replica).await {
                Ok(()) => Ok(StepResult::Done(format!(
                    "PromoteReadReplica: {replica} no longer replicates from {primary}"
                ))),
                Err(e) if e.has_code(INVALID_STATE) => {
                    refused_promotion(aws, replica, primary, e).await
                }
                Err(e) => Err(e.into()),
            }
        }
        Step::TagDatabase {
            arn, key, value, ..
        } => {
            database::add_tag(&aws.rds, arn, key, value).await?;
            Ok(StepResult::Done(format!("{key}={value}")))
        }
        Step::UntagDatabase { arn, key, .. } => {
            database::remove_tag(&aws.rds, arn, key).await?;
            Ok(StepResult::Done(format!("{key} removed")))
        }
        other => Err(not_built(other)),
    }
}

/// The CNAME upserted (once the DB instance it waits for, if any, is
/// available), and Route 53's `INSYNC` waited for, bounded.
#[cfg(all(feature = "route53", feature = "rds"))]
async fn upsert_cname(step: &Step, aws: &Aws, until: Instant) -> Result<StepResult, Failure> {
    let Step::UpsertCname {
        zone_id,
        name,
        value,
        ttl,
        previous,
        when_available,
    } = step
    else {
        return Err(not_built(step));
    };
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

#[cfg(feature = "rds")]
const INVALID_STATE: &str = "InvalidDBInstanceState";

/// RDS refused a promotion (`InvalidDBInstanceState`, whatever the reason):
/// the replica, read again, says whether one is under way (the step is
/// done: finish the job) or not yet possible (a retryable failure).
#[cfg(feature = "rds")]
async fn refused_promotion(
    aws: &Aws,
    replica: &str,
    primary: &str,
    refusal: AwsError,
) -> Result<StepResult, Failure> {
    use crate::decide::rds_failover::{refused_promotion, RefusedPromotion};
    let now = database::describe_instance(&aws.rds, replica).await?;
    match refused_promotion(now.as_ref(), primary) {
        RefusedPromotion::UnderWay(why) => Ok(StepResult::Done(format!(
            "PromoteReadReplica answered {INVALID_STATE}; {why}"
        ))),
        RefusedPromotion::NotYet(why) => Err(Failure::Aws(AwsError {
            message: format!("{}; {why}, retried", refusal.message),
            retryable: true,
            ..refusal
        })),
    }
}

#[cfg(feature = "rds")]
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
