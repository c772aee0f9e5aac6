//! The per-process context: configuration and AWS clients, built once at
//! init, and the parts of the Lambda context an invocation uses. It imports
//! nothing above it (no reconciler, no Lambda adapter).

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

    /// The same, in dry run: an operator's rehearsal decides and reports
    /// and changes nothing.
    pub fn rehearsal(&self) -> Self {
        Ballast {
            config: Config {
                dry_run: true,
                ..self.config.clone()
            },
            aws: self.aws.clone(),
        }
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
