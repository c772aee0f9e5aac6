//! The reconcilers: one per function, each observe → decide → execute →
//! report. An event says where to look; the live state says what to do.

pub mod az_impairment;
pub mod lease;
pub mod rds_failover;
pub mod unhealthy_target;
pub mod unreported;

use thiserror::Error;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws::{reports, AwsError};
use crate::decide::Plan;
use crate::event::short_name;
use crate::event::Inbound;
use crate::execute::ReportContext;
use crate::execute::{execute, DEADLINE_MARGIN};
use crate::report::{Outcome, Report, Severity};
use crate::runtime::Ballast;
use crate::runtime::Invocation;

/// Why an invocation ends in a Lambda error (so Lambda retries it, then
/// hands it to the dead-letter queue). Anything else is answered with a report.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("{function}: transient AWS failure, Lambda will retry ({source}); report: {summary}")]
    Transient {
        function: String,
        summary: String,
        source: AwsError,
    },
    #[error("{function}: the report could not be published ({source}); report: {report}")]
    Publish {
        function: String,
        report: String,
        source: AwsError,
    },
}

/// Publishing a report is tried this many times (each with the SDK's own
/// retries), with these pauses between tries, within the deadline margin.
pub const PUBLISH_TRIES: usize = 3;
const PUBLISH_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

/// Publishes `report`, trying again (bounded, I6) when SNS refuses or fails:
/// a report is the only trace of what Ballast did for its subscribers.
pub async fn publish(
    ballast: &Ballast,
    report: &Report,
    deadline: Option<Instant>,
) -> Result<String, AwsError> {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = reports::publish(&ballast.aws.sns, &ballast.config.topic_arn, report).await;
        let pause = PUBLISH_PAUSES.get(tries - 1).copied();
        match (result, pause) {
            (Ok(id), _) => return Ok(id),
            (Err(e), Some(pause))
                if tries < PUBLISH_TRIES && time_left(deadline) > pause + DEADLINE_MARGIN =>
            {
                tracing::warn!(error = %e, tries, "report not published yet; trying again");
                tokio::time::sleep(pause).await;
            }
            (Err(e), _) => return Err(e),
        }
    }
}

fn time_left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}

/// Logs the report, publishes it when its outcome is worth a message, and
/// turns a transient failure into a Lambda error after the report is out.
/// A report that cannot be published is the Lambda error itself, whole, so
/// that the dead-letter queue keeps it.
pub async fn finish(
    ballast: &Ballast,
    report: Report,
    transient: Option<AwsError>,
    deadline: Option<Instant>,
) -> Result<Report, HandlerError> {
    let json = report.to_json();
    tracing::info!(outcome = report.outcome.as_str(), report = %json, "decision");
    if report.outcome.is_published() {
        match publish(ballast, &report, deadline).await {
            Ok(id) => tracing::info!(message_id = %id, "report published"),
            Err(source) => {
                tracing::error!(error = %source, "report not published");
                if !ballast.config.dry_run {
                    unreported::park(&ballast.aws, &report).await;
                }
                return Err(HandlerError::Publish {
                    function: report.function.clone(),
                    report: json,
                    source,
                });
            }
        }
    }
    if report.outcome == Outcome::Noop && !ballast.config.dry_run {
        unreported::publish_parked(ballast, &report, deadline).await;
    }
    match transient {
        Some(source) => Err(HandlerError::Transient {
            function: report.function.clone(),
            summary: report.summary.clone(),
            source,
        }),
        None => Ok(report),
    }
}

/// The first retryable error among `errors`, if any.
pub fn first_transient<'a>(errors: impl IntoIterator<Item = &'a AwsError>) -> Option<AwsError> {
    errors.into_iter().find(|e| e.retryable).cloned()
}

impl HandlerError {
    /// The invocation found another one changing its resource and stood
    /// down (Lambda retries it): by design, not a failure.
    pub fn is_stand_down(&self) -> bool {
        matches!(self, HandlerError::Transient { source, .. } if source.has_code(LOCK_HELD))
    }
}

/// The error code of a lease found held.
pub const LOCK_HELD: &str = "LockHeld";

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Transient { .. } => "Ballast.TransientAwsError",
            HandlerError::Publish { .. } => "Ballast.ReportNotPublished",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// One report for a sweep over `parts` (one report per resource looked at):
/// the outcome that matters most, every resource and action, each part's
/// outcome in the summary and each non-trivial reason.
pub fn merge_sweep(ctx: &ReportContext, what: &str, parts: Vec<Report>) -> Report {
    let mut report = ctx.conclude(crate::decide::Plan::noop("", vec![]), vec![], false);
    let mut outcome = Outcome::Noop;
    let mut severity = Severity::Info;
    let mut lines = vec![];
    let mut reasons = vec![];
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
            report
                .evidence
                .insert(name.clone(), serde_json::Value::Object(part.evidence));
        }
        report.resources.extend(part.resources);
        report.actions.extend(part.actions);
    }
    report.outcome = outcome;
    report.severity = severity;
    report.summary = format!("Sweep of {} {what}: {}.", lines.len(), lines.join(", "));
    report.reason = (!reasons.is_empty()).then(|| reasons.join("; "));
    report
}

/// What reconciling one resource yields: its report, and the transient AWS
/// error (if any) that should make Lambda retry once the report is out.
pub type Reconciled = (Report, Option<AwsError>);

/// A handler's frame, the same for every function: classify the payload,
/// ignore what the function does not handle (with the reason), `act` on the
/// rest, then report.
pub async fn respond<I, F, Fut>(
    ballast: &Ballast,
    function: &'static str,
    payload: Value,
    invocation: &Invocation,
    intent_of: fn(&Inbound) -> Result<I, String>,
    act: F,
) -> Result<Report, HandlerError>
where
    F: FnOnce(ReportContext, I) -> Fut,
    Fut: Future<Output = Reconciled>,
{
    let inbound = Inbound::classify(&payload);
    let ctx = ReportContext {
        function,
        trigger: inbound.trigger(&invocation.request_id),
        region: ballast.aws.region.clone(),
    };
    let (report, transient) = match intent_of(&inbound) {
        Err(reason) => (ctx.ignored(reason), None),
        Ok(intent) => act(ctx, intent).await,
    };
    finish(ballast, report, transient, invocation.deadline).await
}

/// Execute a decided plan (dry run and deadline honoured) and report it.
pub async fn carry_out(
    ballast: &Ballast,
    ctx: &ReportContext,
    plan: Plan,
    invocation: &Invocation,
) -> Reconciled {
    let applied = execute(
        &plan,
        &ballast.aws,
        ballast.config.dry_run,
        invocation.deadline,
    )
    .await;
    let transient = first_transient(applied.iter().filter_map(|a| a.error.as_ref()));
    (
        ctx.conclude(plan, applied, ballast.config.dry_run),
        transient,
    )
}

/// Carries out `plan` under a lease on `scope` (see [`lease`]) when it has
/// steps (it acts, or declines and trips a breaker) and this is not a dry
/// run: once the lease is won, `redecide` observes and
/// decides again, and that plan is carried out. A lease held by another
/// invocation changes nothing, is not published, and makes Lambda retry.
pub async fn carry_out_leased<F, Fut>(
    ballast: &Ballast,
    ctx: &ReportContext,
    plan: Plan,
    scope: Option<lease::Scope>,
    invocation: &Invocation,
    redecide: F,
) -> Reconciled
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Plan, AwsError>>,
{
    let acts = !plan.steps.is_empty() && !ballast.config.dry_run;
    let Some(scope) = scope.filter(|_| acts) else {
        return carry_out(ballast, ctx, plan, invocation).await;
    };
    let resources = plan.resources;
    let token = lease::token(&invocation.request_id);
    let until = lease::expiry(invocation.deadline);
    let leased = lease::acquire(
        &ballast.aws,
        scope,
        token,
        until,
        ballast.config.lease_settle,
    )
    .await;
    let won = match leased {
        Ok(lease::Leased::Won(won)) => won,
        Ok(lease::Leased::Lost { resource, holder }) => {
            let error = lease_held(&resource, &holder);
            let standing_down = Plan {
                evidence: Default::default(),
                reason: Some(error.message.clone()),
                ..Plan::noop(
                    format!(
                        "Another invocation is changing {resource}: standing down, to be retried."
                    ),
                    resources,
                )
            };
            return (ctx.conclude(standing_down, vec![], false), Some(error));
        }
        Err(e) => return not_observed(ctx, resources, e),
    };
    let result = match redecide().await {
        Ok(plan) => carry_out(ballast, ctx, plan, invocation).await,
        Err(e) => not_observed(ctx, resources, e),
    };
    won.release(&ballast.aws).await;
    result
}

/// The error that makes Lambda retry an invocation that found the lease
/// held: by then the holder has acted, and the retry finds the state
/// converged (or, for another AZ, decides under the limit).
pub fn lease_held(resource: &str, holder: &str) -> AwsError {
    AwsError {
        operation: "lease",
        resource: resource.to_string(),
        code: Some(LOCK_HELD.into()),
        message: format!(
            "another invocation ({holder}) is changing {resource}; this one stands down and is retried"
        ),
        retryable: true,
    }
}

/// Reading the live state failed: nothing was changed; retry if transient.
pub fn not_observed(ctx: &ReportContext, resources: Vec<String>, error: AwsError) -> Reconciled {
    let report = ctx.failed(resources, &error);
    (report, error.retryable.then_some(error))
}

/// Each function's reading of a raw payload, as Lambda hands it over: JSON
/// parsing, classification, the report's trigger, and every function's
/// intent (or the reason it ignores the payload). No AWS call. This is the
/// surface the fuzzer exercises (`fuzz/`) and its regression inputs replay;
/// the property is that it answers for any bytes, never panicking.
pub fn read_payload(bytes: &[u8]) -> Result<[Result<String, String>; 3], String> {
    let payload: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let inbound = Inbound::classify(&payload);
    let _ = inbound.trigger("fuzz");
    Ok([
        unhealthy_target::intent_of(&inbound).map(|i| format!("{i:?}")),
        rds_failover::intent_of(&inbound).map(|i| format!("{i:?}")),
        az_impairment::intent_of(&inbound).map(|i| format!("{i:?}")),
    ])
}
