//! One-time init and the Lambda wiring shared by every function's `main`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::Aws;
use crate::config::{Config, ConfigError};

/// Everything an invocation needs, built once per process.
#[derive(Debug, Clone)]
pub struct Ballast {
    pub config: Config,
    pub aws: Aws,
}

impl Ballast {
    /// Reads and validates the configuration first (a bad value must fail
    /// init, before any AWS work), then loads the SDK configuration once.
    pub async fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        Ok(Ballast {
            config,
            aws: Aws::from_env().await,
        })
    }
}

/// Logging per Lambda's advanced logging controls: JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`, level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// Init for a function's `main`: tracing, then configuration and clients.
/// Invalid configuration is logged as one clear line and the process exits,
/// which Lambda reports as an init failure.
pub async fn init(function: &'static str) -> Ballast {
    init_tracing();
    match Ballast::from_env().await {
        Ok(ballast) => {
            tracing::info!(function, dry_run = ballast.config.dry_run, region = %ballast.aws.region, "ballast ready");
            ballast
        }
        Err(e) => {
            tracing::error!(function, error = %e, "invalid configuration");
            eprintln!("ballast {function}: invalid configuration: {e}");
            std::process::exit(2);
        }
    }
}

/// The parts of the Lambda context an invocation uses.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// When the Lambda deadline falls, as a monotonic instant.
    pub deadline: Option<Instant>,
}

impl Invocation {
    pub fn new(request_id: impl Into<String>) -> Self {
        Invocation {
            request_id: request_id.into(),
            deadline: None,
        }
    }

    pub fn from_context(ctx: &lambda_runtime::Context) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let deadline = (ctx.deadline > 0)
            .then(|| Instant::now() + Duration::from_millis(ctx.deadline.saturating_sub(now_ms)));
        Invocation {
            request_id: ctx.request_id.clone(),
            deadline,
        }
    }
}

/// A function's whole `main`: init once, then serve invocations with
/// `handler` until Lambda stops the process. The init state lives as long
/// as the process, so it is leaked to a `'static` reference.
pub async fn serve<H, Fut>(function: &'static str, handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(&'static Ballast, serde_json::Value, Invocation) -> Fut,
    Fut: std::future::Future<Output = Result<crate::Report, crate::reconcile::HandlerError>>,
{
    let ballast: &'static Ballast = Box::leak(Box::new(init(function).await));
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let invocation = Invocation::from_context(&event.context);
            let started = Instant::now();
            let answer = handler(ballast, event.payload, invocation);
            async move {
                let answer = answer.await;
                let epoch_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                crate::metrics::emit(&crate::metrics::record(
                    function,
                    crate::metrics::outcome_of(&answer),
                    answer.as_ref().ok(),
                    started.elapsed(),
                    epoch_ms,
                ));
                answer
            }
        },
    ))
    .await
}
