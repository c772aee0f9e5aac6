//! The per-process context: configuration and AWS clients, built once at
//! init, and the parts of the Lambda context an invocation uses. It imports
//! nothing above it (no reconciler, no Lambda adapter).

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

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
    pub fn from_env() -> Result<Self, ConfigError> {
        let config = Config::from_env()?;
        Ok(Ballast {
            config,
            aws: Aws::from_env(),
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

/// Logging per Lambda's advanced logging controls, as `lambda_runtime`'s
/// default subscriber does it: JSON lines when `AWS_LAMBDA_LOG_FORMAT=JSON`,
/// the level from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `INFO`.
/// `RUST_LOG` may also name levels per target (`ballast=debug,hyper=warn`);
/// the span and field filters of `EnvFilter` are not supported, which keeps
/// a regex engine out of every function.
pub(crate) fn init_tracing() {
    let env = |name| std::env::var(name).ok();
    let filter = log_filter(env("AWS_LAMBDA_LOG_LEVEL"), env("RUST_LOG"));
    let logs = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let json = env("AWS_LAMBDA_LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        logs.json().finish().with(filter).init();
    } else {
        logs.finish().with(filter).init();
    }
}

/// The log filter: `RUST_LOG`'s per-target levels (when it parses), with
/// `AWS_LAMBDA_LOG_LEVEL` (or `RUST_LOG`'s own default, or `INFO`) for
/// every other target.
fn log_filter(lambda_level: Option<String>, rust_log: Option<String>) -> Targets {
    let targets: Targets = rust_log
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or_default();
    let level = lambda_level
        .and_then(|l| LevelFilter::from_str(&l).ok())
        .or(targets.default_level())
        .unwrap_or(LevelFilter::INFO);
    targets.with_default(level)
}

/// Init for a function's `main`: tracing, then configuration and clients.
/// Invalid configuration is logged as one clear line and the process exits,
/// which Lambda reports as an init failure.
pub fn init(function: &'static str) -> Ballast {
    init_tracing();
    match Ballast::from_env() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn the_lambda_level_wins_and_rust_log_names_levels_per_target() {
        let f = log_filter(Some("DEBUG".into()), None);
        assert!(f.would_enable("ballast", &Level::DEBUG));
        assert!(!f.would_enable("ballast", &Level::TRACE));
        let f = log_filter(None, None);
        assert!(f.would_enable("ballast", &Level::INFO));
        assert!(!f.would_enable("ballast", &Level::DEBUG));
        let f = log_filter(None, Some("warn,ballast=trace".into()));
        assert!(f.would_enable("ballast::reconcile", &Level::TRACE));
        assert!(!f.would_enable("hyper", &Level::INFO));
        let f = log_filter(Some("error".into()), Some("hyper=debug".into()));
        assert!(f.would_enable("hyper", &Level::DEBUG));
        assert!(!f.would_enable("ballast", &Level::WARN));
        // An unreadable value falls back to INFO, as lambda_runtime does.
        let f = log_filter(Some("loud".into()), Some("ballast=loud".into()));
        assert!(f.would_enable("ballast", &Level::INFO));
    }
}
