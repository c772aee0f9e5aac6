//! The Lambda adapter: a function's whole `main` is [`serve`] of its
//! [`Reconciler`]. Init once, then one generic handler per invocation, and
//! one metrics record per answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::context::{init, Ballast, Invocation};
use crate::metrics;
use crate::reconcile::{handle, HandlerError, Reconciler};
use crate::report::Report;

/// Init once, then serve invocations with `R`'s handler until Lambda stops
/// the process; each invocation holds the init state by an `Arc`.
pub async fn serve<R: Reconciler>() -> Result<(), lambda_runtime::Error> {
    let function = R::FUNCTION;
    let ballast: Arc<Ballast> = Arc::new(init(function));
    let level = metrics::kept_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let invocation = Invocation::from_context(&event.context);
            let started = Instant::now();
            let ballast = Arc::clone(&ballast);
            async move {
                let answer = handle::<R>(&ballast, event.payload, invocation).await;
                let epoch_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                metrics::emit(&metrics::record(
                    function,
                    outcome_of(&answer),
                    answer.as_ref().ok(),
                    started.elapsed(),
                    epoch_ms,
                    level,
                ));
                answer
            }
        },
    ))
    .await
}

/// The metrics outcome of an invocation's answer.
fn outcome_of(answer: &Result<Report, HandlerError>) -> &'static str {
    match answer {
        Ok(report) => report.outcome.as_str(),
        Err(e) if e.is_stand_down() => metrics::STOOD_DOWN_OUTCOME,
        Err(_) => metrics::ERROR_OUTCOME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsError;
    use crate::failure::Failure;

    #[test]
    fn a_stand_down_is_not_an_error() {
        let transient = |source| HandlerError::Transient {
            function: "az-impairment".into(),
            summary: String::new(),
            source,
        };
        let held = Failure::LockHeld {
            resource: "web".into(),
            holder: "x".into(),
        };
        assert_eq!(
            outcome_of(&Err(transient(held))),
            metrics::STOOD_DOWN_OUTCOME
        );
        let throttled = Failure::Aws(AwsError {
            operation: "DescribeAutoScalingGroups",
            resource: "web".into(),
            code: Some("Throttling".into()),
            message: String::new(),
            retryable: true,
        });
        assert_eq!(
            outcome_of(&Err(transient(throttled))),
            metrics::ERROR_OUTCOME
        );
    }
}
