//! The reconcilers: one per function, each a [`Reconciler`] — where an
//! event says to look, what is there now, what to do about it — run by one
//! generic [`handle`]: classify, list the work (one item for an event, every
//! item for a sweep), then for each item observe → decide → execute (under
//! a lease) → report, and publish one report.

#[cfg(feature = "az-impairment")]
pub mod az_impairment;
#[cfg(feature = "rds-failover")]
pub mod rds_failover;
#[cfg(feature = "unhealthy-target")]
pub mod unhealthy_target;
pub mod unreported;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use thiserror::Error;
use tracing::Instrument;

use crate::aws::{reports, AwsError};
use crate::conclude::ReportContext;
use crate::context::{Ballast, Invocation};
use crate::decide::Plan;
use crate::event::Inbound;
use crate::execute::{execute, DEADLINE_MARGIN};
use crate::failure::{stand_down, Failure};
use crate::lease::{self, Lease};
use crate::report::{Outcome, Report};

/// One function's reconciler. The event (or the schedule, or an operator)
/// names an intent; the intent names the work; each item of the work is
/// observed, decided on (pure) and acted on; the handler reports.
pub trait Reconciler: Sync {
    /// The Lambda function's name, as in reports and metrics.
    const FUNCTION: &'static str;
    /// Where an event says to look.
    type Intent: Send;
    /// One thing to reconcile: a target group, a DB resource, a zone.
    type Item: Send + Sync;
    /// What [`Reconciler::observe`] reads about one item.
    type State: Send + Sync;

    /// Reads the event; `Err` is the reason it is ignored. No AWS call.
    fn intent_of(inbound: &Inbound) -> Result<Self::Intent, String>;

    /// The items an intent covers (an event names one, a sweep lists every
    /// one), or the report that ends the invocation before any.
    fn work(
        cx: &Cx<'_>,
        intent: Self::Intent,
    ) -> impl Future<Output = Result<Work<Self::Item>, Reconciled>> + Send;

    /// The live state of `item` (`None`: it does not exist). `seen` is what
    /// was read before the lease was won, for a reconciler that reads again
    /// only what another invocation may have changed meanwhile.
    fn observe(
        cx: &Cx<'_>,
        item: &Self::Item,
        seen: Option<Self::State>,
    ) -> impl Future<Output = Result<Option<Self::State>, AwsError>> + Send;

    /// The plan for `item` in `state` (pure, given the policy of `cx`).
    fn decide(cx: &Cx<'_>, item: &Self::Item, state: &Self::State) -> Plan;

    /// The resources one invocation at a time may change for `plan`.
    fn lease(item: &Self::Item, state: &Self::State, plan: &Plan) -> Option<lease::Scope>;

    /// The item as a report names it, e.g. `target group arn:…`.
    fn describe(item: &Self::Item) -> String;

    /// The item as a report's resource.
    fn resource(item: &Self::Item) -> String;

    /// One item: observe → decide → act under the lease. A reconciler
    /// whose work includes items settled without AWS overrides it.
    fn reconcile(cx: &Cx<'_>, item: &Self::Item) -> impl Future<Output = Reconciled> + Send {
        reconcile::<Self>(cx, item)
    }
}

/// Everything one invocation works with.
pub struct Cx<'a> {
    pub ballast: &'a Ballast,
    pub report: ReportContext,
    pub invocation: &'a Invocation,
}

/// What an intent asks for.
#[derive(Debug)]
pub struct Work<T> {
    pub items: Vec<T>,
    /// Reports settled while listing the items (reported first).
    pub settled: Vec<Reconciled>,
    /// A sweep reports every item in one merged report, even one item.
    pub sweep: bool,
    /// How a merged report names the items (`tagged DB resource(s)`).
    pub what: String,
    /// The situation reported when there is no item.
    pub none: String,
    /// An operator's rehearsal: decide and report, change nothing.
    pub rehearsal: bool,
    /// Parked copies a sweep's listing already read (`unreported::Seen`).
    pub seen: Arc<unreported::Seen>,
}

impl<T> Work<T> {
    /// An event's one item.
    pub fn one(item: T) -> Self {
        Work::of(vec![item], "", "")
    }

    /// Items an event names (one report each, merged when several).
    pub fn of(items: Vec<T>, what: impl Into<String>, none: impl Into<String>) -> Self {
        Work {
            items,
            settled: vec![],
            sweep: false,
            what: what.into(),
            none: none.into(),
            rehearsal: false,
            seen: Arc::default(),
        }
    }

    /// A sweep's items (always one merged report).
    pub fn sweep(items: Vec<T>, what: impl Into<String>, none: impl Into<String>) -> Self {
        Work {
            sweep: true,
            ..Work::of(items, what, none)
        }
    }
}

/// What reconciling one item yields: its report, and the failure (if any)
/// that should make Lambda retry once the report is out.
pub type Reconciled = (Report, Option<Failure>);

/// The Lambda handler of reconciler `R`: classify the payload, ignore what
/// `R` does not handle (with the reason), reconcile the work, report.
pub async fn handle<R: Reconciler>(
    ballast: &Ballast,
    payload: Value,
    invocation: Invocation,
) -> Result<Report, HandlerError> {
    let inbound = Inbound::classify(&payload);
    let cx = Cx {
        ballast,
        report: ReportContext {
            function: R::FUNCTION,
            trigger: inbound.trigger(&invocation.request_id),
            region: ballast.aws.region.clone(),
        },
        invocation: &invocation,
    };
    let mut seen = Arc::default();
    let (report, transient) = match R::intent_of(&inbound) {
        Err(reason) => (cx.report.ignored(reason), None),
        Ok(intent) => match R::work(&cx, intent).await {
            Err(early) => early,
            Ok(work) if work.rehearsal && !ballast.config.dry_run => {
                seen = Arc::clone(&work.seen);
                let rehearsal = ballast.rehearsal();
                run::<R>(
                    &Cx {
                        ballast: &rehearsal,
                        ..cx
                    },
                    work,
                )
                .await
            }
            Ok(work) => {
                seen = Arc::clone(&work.seen);
                run::<R>(&cx, work).await
            }
        },
    };
    finish(ballast, report, transient, invocation.deadline, &seen).await
}

/// Every item of `work`, one after the other; one report.
async fn run<R: Reconciler>(cx: &Cx<'_>, work: Work<R::Item>) -> Reconciled {
    let mut parts = Vec::with_capacity(work.settled.len() + work.items.len());
    let mut transient: Option<Failure> = None;
    for (report, t) in work.settled {
        transient = transient.or(t);
        parts.push(report);
    }
    for item in &work.items {
        // Every log line of this item carries its function and resource
        // (kube-runtime's `reconciling object` span is the model).
        let span = tracing::info_span!(
            "reconciling",
            function = R::FUNCTION,
            resource = %R::resource(item)
        );
        let (report, t) = R::reconcile(cx, item).instrument(span).await;
        transient = transient.or(t);
        parts.push(report);
    }
    if parts.is_empty() {
        return (
            cx.report
                .conclude(Plan::noop(work.none, vec![]), vec![], false),
            None,
        );
    }
    let report = match <[Report; 1]>::try_from(parts) {
        Ok([one]) if !work.sweep => one,
        Ok(one) => cx.report.merge(&work.what, one.into()),
        Err(parts) => cx.report.merge(&work.what, parts),
    };
    (report, transient)
}

/// One item, the way every reconciler does it: observe, decide, and carry
/// the plan out under the lease, deciding again on what the lease holder
/// reads.
pub async fn reconcile<R: Reconciler + ?Sized>(cx: &Cx<'_>, item: &R::Item) -> Reconciled {
    let state = match R::observe(cx, item, None).await {
        Ok(Some(state)) => state,
        Ok(None) => {
            let reason = format!("{} does not exist", R::describe(item));
            return (cx.report.ignored(reason), None);
        }
        Err(e) => return not_observed(cx, vec![R::resource(item)], e.into()),
    };
    let plan = R::decide(cx, item, &state);
    let scope = R::lease(item, &state, &plan);
    carry_out_leased(cx, plan, scope, || async {
        Ok(match R::observe(cx, item, Some(state)).await? {
            Some(state) => {
                let plan = R::decide(cx, item, &state);
                let scope = R::lease(item, &state, &plan);
                (plan, scope)
            }
            None => {
                let gone = format!("{} no longer exists", R::describe(item));
                (Plan::ignored(gone, vec![]), None)
            }
        })
    })
    .await
}

/// Why an invocation ends in a Lambda error (so Lambda retries it, then
/// hands it to the dead-letter queue). Anything else is answered with a report.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("{function}: transient AWS failure, Lambda will retry ({source}); report: {summary}")]
    Transient {
        function: String,
        summary: String,
        source: Failure,
    },
    #[error("{function}: the report could not be published ({source}); report: {report}")]
    Publish {
        function: String,
        report: String,
        source: AwsError,
    },
}

impl HandlerError {
    /// The invocation found another one changing its resource and stood
    /// down (Lambda retries it): by design, not a failure.
    pub fn is_stand_down(&self) -> bool {
        matches!(self, HandlerError::Transient { source, .. } if source.is_lock_held())
    }
}

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
async fn finish(
    ballast: &Ballast,
    report: Report,
    transient: Option<Failure>,
    deadline: Option<Instant>,
    seen: &unreported::Seen,
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
        unreported::publish_parked(ballast, &report, deadline, seen).await;
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

/// Execute a decided plan (dry run, deadline and lease honoured) and report it.
async fn carry_out(cx: &Cx<'_>, plan: Plan, lease: Option<&mut Lease>) -> Reconciled {
    let dry_run = cx.ballast.config.dry_run;
    let deadline = cx.invocation.deadline;
    let applied = execute(&plan, &cx.ballast.aws, dry_run, deadline, lease).await;
    let waiting = plan.retry.clone().map(|message| Failure::Waiting {
        resource: plan.resources.join(","),
        message,
    });
    let transient = applied
        .iter()
        .filter_map(|a| a.error.as_ref())
        .find(|e| e.retryable())
        .cloned()
        .or(waiting);
    (cx.report.conclude(plan, applied, dry_run), transient)
}

/// Carries out `plan` under a lease on `scope` (see [`lease`]) when it has
/// steps (it acts, or declines and trips a breaker) and this is not a dry
/// run: once the lease is won, `redecide` observes and decides again, and
/// that plan is carried out — only if the lease covers what it changes (the
/// state may have moved since the first look: a plan that needs more is
/// not carried out, the lease is given back, and Lambda retries, taking the
/// larger lease). A lease held by another invocation changes
/// nothing, is not published, and makes Lambda retry.
async fn carry_out_leased<F, Fut>(
    cx: &Cx<'_>,
    plan: Plan,
    scope: Option<lease::Scope>,
    redecide: F,
) -> Reconciled
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(Plan, Option<lease::Scope>), AwsError>>,
{
    let ballast = cx.ballast;
    let acts = !plan.steps.is_empty() && !ballast.config.dry_run;
    let Some(scope) = scope.filter(|_| acts) else {
        return carry_out(cx, plan, None).await;
    };
    let resources = plan.resources;
    let token = lease::token(&cx.invocation.request_id);
    let table = &ballast.config.lease_table;
    let leased = lease::acquire(&ballast.aws, table, cx.report.function, &scope, token).await;
    let mut won = match leased {
        Ok(lease::Leased::Won(won)) => won,
        Ok(lease::Leased::Lost { resource, holder }) => {
            let standing_down = Plan::noop(
                format!("Another invocation is changing {resource}: standing down, to be retried."),
                resources,
            );
            let plan = standing_down.with_reason(stand_down(&resource, &holder));
            let held = Failure::LockHeld { resource, holder };
            return (cx.report.conclude(plan, vec![], false), Some(held));
        }
        Err(e) => return not_observed(cx, resources, e.into()),
    };
    let result = match redecide().await {
        Ok((plan, needed)) if !covers(&scope, needed.as_ref(), &plan) => {
            let outside = needed.map(|n| n.keys().join(",")).unwrap_or_default();
            let message = format!(
                "the state changed before the lease was won: the plan now changes {outside}, beyond the lease on {}; retried with the larger lease",
                scope.keys().join(",")
            );
            let plan = Plan::noop(
                "The state changed before the lease was won: retried.",
                resources,
            )
            .with_reason(message.clone());
            let waiting = Failure::Waiting {
                resource: outside,
                message,
            };
            (cx.report.conclude(plan, vec![], false), Some(waiting))
        }
        Ok((plan, _)) => carry_out(cx, plan, Some(&mut won)).await,
        Err(e) => not_observed(cx, resources, e.into()),
    };
    won.release(&ballast.aws).await;
    result
}

/// Whether the lease on `leased` covers a plan that needs `needed` (`None`:
/// the reconciler needs no lease for it; a plan without steps needs none).
fn covers(leased: &lease::Scope, needed: Option<&lease::Scope>, plan: &Plan) -> bool {
    let have = leased.keys();
    plan.steps.is_empty() || needed.is_none_or(|n| n.keys().iter().all(|k| have.contains(k)))
}

/// Reading the live state failed: nothing was changed; retry if transient.
pub fn not_observed(cx: &Cx<'_>, resources: Vec<String>, failure: Failure) -> Reconciled {
    let report = cx.report.failed(resources, &failure);
    (report, failure.retryable().then_some(failure))
}

/// Each function's reading of a raw payload, as Lambda hands it over: JSON
/// parsing, classification, the report's trigger, and every function's
/// intent (or the reason it ignores the payload). No AWS call. This is the
/// surface the fuzzer exercises (`fuzz/`) and its regression inputs replay;
/// the property is that it answers for any bytes, never panicking.
#[cfg(all(
    feature = "fuzz",
    feature = "unhealthy-target",
    feature = "rds-failover",
    feature = "az-impairment"
))]
pub fn read_payload(bytes: &[u8]) -> Result<[Result<String, String>; 3], String> {
    let payload: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let inbound = Inbound::classify(&payload);
    let _ = inbound.trigger("fuzz");
    Ok([
        unhealthy_target::UnhealthyTarget::intent_of(&inbound).map(|i| format!("{i:?}")),
        rds_failover::RdsFailover::intent_of(&inbound).map(|i| format!("{i:?}")),
        az_impairment::AzImpairment::intent_of(&inbound).map(|i| format!("{i:?}")),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::Step;

    #[test]
    fn a_redecided_plan_runs_only_inside_its_lease() {
        let mark = |asg: &str| Step::MarkUnhealthy {
            instance_id: "i-1".into(),
            asg: asg.into(),
        };
        let plan = |steps| Plan::act("s", steps, vec![]);
        let web = lease::Scope::Groups(vec!["web".into()]);
        let both = lease::Scope::Groups(vec!["web".into(), "api".into()]);
        assert!(covers(&web, Some(&web), &plan(vec![mark("web")])));
        assert!(covers(&both, Some(&web), &plan(vec![mark("web")])));
        assert!(!covers(
            &web,
            Some(&both),
            &plan(vec![mark("web"), mark("api")])
        ));
        // A plan its reconciler needs no lease for (a CNAME kept on the
        // writer) runs under any.
        assert!(covers(&web, None, &plan(vec![mark("web")])));
        // Nothing to change needs no lease.
        assert!(covers(&web, None, &Plan::noop("s", vec![])));
        assert!(!covers(
            &web,
            Some(&lease::Scope::Db("orders".into())),
            &plan(vec![mark("web")])
        ));
    }
}
