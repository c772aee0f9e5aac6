//! Test harness for Ballast: a real AWS emulator (moto in server mode), the
//! seeded multi-AZ stack, and a minimal Lambda Runtime API host that runs the
//! real release binaries. Used by the integration tests, the end-to-end test
//! and the demo.

pub mod databases;
pub mod dns;
pub mod host;
pub mod moto;
pub mod proving;
pub mod proxy;
pub mod servers;
pub mod stack;

use std::path::PathBuf;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> serde_json::Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Where the function binaries come from when not the release profile: the
/// demo runs the ones built beside it (`make demo` builds both in one debug
/// build); tests and benchmarks run the release binaries.
static FUNCTIONS_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Runs the function binaries from the directory of the running executable
/// (the demo: `target/debug/demo` beside `target/debug/unhealthy-target`).
/// `Err` names the first one missing, with the command that builds it.
pub fn use_functions_beside_this_program(functions: &[&str]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    for function in functions {
        let path = dir.join(function);
        if !path.exists() {
            return Err(format!(
                "{} is missing: build it with `cargo build --locked --bins -p ballast-tests -p {function}` (make demo does)",
                path.display()
            ));
        }
    }
    let _ = FUNCTIONS_DIR.set(dir);
    Ok(())
}

/// Runs the function binaries found in `dir` (a benchmark's before/after).
pub fn use_functions_from(dir: PathBuf) {
    let _ = FUNCTIONS_DIR.set(dir);
}

/// A function's binary: the release build (`make test` and `make bench`
/// build it), or the one beside the program if it asked for that.
pub fn function_binary(function: &str) -> PathBuf {
    if let Some(dir) = FUNCTIONS_DIR.get() {
        return dir.join(function);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("release").join(function);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release -p {function}` (make test and make bench do)",
        path.display()
    );
    path
}

/// A `Ballast` (configuration + clients) pointed at the emulator and the
/// stack's report topic.
pub fn ballast_for(moto: &moto::Moto, stack: &stack::Stack, dry_run: bool) -> ballast::Ballast {
    ballast::Ballast {
        config: ballast::Config {
            topic_arn: stack.topic_arn.clone(),
            dry_run,
            max_unhealthy_percent: 50,
            max_evacuated_azs: 1,
            dns_ttl: ballast::config::DEFAULT_DNS_TTL,
            evacuation_warn_hours: ballast::config::DEFAULT_EVACUATION_WARN_HOURS,
            replacement_budget: ballast::decide::unhealthy_target::Budget {
                percent: 30,
                window_secs: 3600,
            },
            lease_table: stack::LEASE_TABLE.into(),
            promotion_settle_secs: ballast::decide::rds_failover::PROMOTION_SETTLE_SECS,
            writer_probe: None,
            proof_grace_secs: 600,
            max_unapplied_bytes: 0,
        },
        aws: ballast::aws::Aws::new(&moto.sdk_config()),
    }
}

/// One emulator with the seed stack, and one function's handler with
/// Ballast's configuration and clients pointed at it.
pub struct World {
    pub moto: moto::Moto,
    pub stack: stack::Stack,
    pub ballast: ballast::Ballast,
    pub function: &'static str,
}

impl World {
    pub async fn start(function: &'static str, dry_run: bool) -> World {
        let moto = moto::Moto::start();
        let stack = stack::Stack::seed(&moto.sdk_config()).await;
        let ballast = ballast_for(&moto, &stack, dry_run);
        World {
            moto,
            stack,
            ballast,
            function,
        }
    }

    /// Invokes the function's handler in process, as Lambda would.
    pub async fn invoke(
        &self,
        payload: serde_json::Value,
    ) -> Result<ballast::Report, ballast::reconcile::HandlerError> {
        self.invoke_with(payload, ballast::Invocation::new("test-request"))
            .await
    }

    /// Invokes the handler with the given invocation context (a deadline).
    pub async fn invoke_with(
        &self,
        payload: serde_json::Value,
        invocation: ballast::Invocation,
    ) -> Result<ballast::Report, ballast::reconcile::HandlerError> {
        use ballast::reconcile::az_impairment::AzImpairment;
        use ballast::reconcile::rds_failover::RdsFailover;
        use ballast::reconcile::unhealthy_target::UnhealthyTarget;
        use ballast::reconcile::{handle, Reconciler};
        match self.function {
            UnhealthyTarget::FUNCTION => {
                handle::<UnhealthyTarget>(&self.ballast, payload, invocation).await
            }
            RdsFailover::FUNCTION => {
                handle::<RdsFailover>(&self.ballast, payload, invocation).await
            }
            AzImpairment::FUNCTION => {
                handle::<AzImpairment>(&self.ballast, payload, invocation).await
            }
            other => panic!("no function {other}"),
        }
    }

    /// Invokes the handler and asserts the payload is `ignored` for `reason`,
    /// with no action.
    pub async fn assert_ignored(&self, payload: serde_json::Value, reason: &str) {
        let report = self.run(payload.clone()).await;
        assert_eq!(
            report.outcome,
            ballast::Outcome::Ignored,
            "{payload}: {report:#?}"
        );
        let got = report.reason.as_deref().unwrap_or_default();
        assert!(
            got.contains(reason),
            "{payload}: expected a reason with {reason:?}, got {got:?}"
        );
        assert!(report.actions.is_empty(), "{payload}: {:?}", report.actions);
    }

    /// Invokes the handler and expects a report.
    pub async fn run(&self, payload: serde_json::Value) -> ballast::Report {
        self.invoke(payload)
            .await
            .expect("the handler answers with a report")
    }
}

/// Runs a function's release binary under a fresh Runtime API host, pointed
/// at the emulator and the report topic, with `extra` variables.
pub async fn start_function(
    function: &str,
    moto: &moto::Moto,
    topic_arn: &str,
    extra: &[(&str, &str)],
) -> (host::RuntimeHost, host::FunctionProcess) {
    spawn_function(
        function,
        moto.env(),
        topic_arn,
        extra,
        std::time::Duration::from_secs(120),
    )
    .await
}

async fn spawn_function(
    function: &str,
    env: Vec<(String, String)>,
    topic_arn: &str,
    extra: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (host::RuntimeHost, host::FunctionProcess) {
    spawn_named(function, function, env, topic_arn, extra, timeout).await
}

/// Like [`start_function`], deployed under the Lambda name `name` (a stack's
/// functions are `<stack>-<function>`).
pub async fn start_function_named(
    function: &str,
    name: &str,
    moto: &moto::Moto,
    topic_arn: &str,
    extra: &[(&str, &str)],
) -> (host::RuntimeHost, host::FunctionProcess) {
    let timeout = std::time::Duration::from_secs(120);
    spawn_named(function, name, moto.env(), topic_arn, extra, timeout).await
}

async fn spawn_named(
    function: &str,
    name: &str,
    mut env: Vec<(String, String)>,
    topic_arn: &str,
    extra: &[(&str, &str)],
    timeout: std::time::Duration,
) -> (host::RuntimeHost, host::FunctionProcess) {
    let host = host::RuntimeHost::start(name, timeout).await;
    env.push(("BALLAST_TOPIC_ARN".into(), topic_arn.into()));
    env.push(("BALLAST_LEASE_TABLE".into(), stack::LEASE_TABLE.into()));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let process = host.spawn(&function_binary(function), name, &env);
    (host, process)
}

/// A function's release binary as Lambda would run it — under a Runtime API
/// host with the function `timeout` (each invocation's deadline) — whose
/// AWS calls go through `proxy` to the emulator.
pub struct Deployed {
    pub host: host::RuntimeHost,
    pub process: host::FunctionProcess,
}

impl Deployed {
    pub async fn start(
        function: &str,
        moto: &moto::Moto,
        proxy: &proxy::Proxy,
        topic_arn: &str,
        timeout: std::time::Duration,
    ) -> Deployed {
        let (host, process) =
            spawn_function(function, proxy.env(moto), topic_arn, &[], timeout).await;
        Deployed { host, process }
    }

    /// One invocation: the report, or the Lambda error (which Lambda retries
    /// and, in the end, hands to the dead-letter queue).
    pub async fn invoke(
        &self,
        event: serde_json::Value,
    ) -> Result<ballast::Report, serde_json::Value> {
        match self.host.invoke(event).await {
            Ok(host::Answer::Response(v)) => {
                Ok(serde_json::from_value(v).expect("the response is a report"))
            }
            Ok(host::Answer::Error(e)) => Err(e),
            Err(e) => panic!("{e}; logs: {:#?}", self.process.logs()),
        }
    }

    /// The report, or a panic with the function's logs.
    pub async fn run(&self, event: serde_json::Value) -> ballast::Report {
        match self.invoke(event).await {
            Ok(report) => report,
            Err(e) => panic!("function error: {e}; logs: {:#?}", self.process.logs()),
        }
    }
}

/// A zonal canary alarm in the emulator (`Web/Canary ZonalFailurePercent`
/// for `az`, missing data breaching), set to `state`: what the sample
/// `events/az-impairment-alarm.json` reports on.
pub async fn zonal_canary(
    conf: &aws_config::SdkConfig,
    name: &str,
    az: &str,
    state: &str,
) -> aws_sdk_cloudwatch::Client {
    zonal_canary_treating_missing_data(conf, name, az, state, "breaching").await
}

/// [`zonal_canary`] with another `TreatMissingData`.
pub async fn zonal_canary_treating_missing_data(
    conf: &aws_config::SdkConfig,
    name: &str,
    az: &str,
    state: &str,
    missing: &str,
) -> aws_sdk_cloudwatch::Client {
    use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic};
    let cw = aws_sdk_cloudwatch::Client::new(conf);
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("Web/Canary")
        .metric_name("ZonalFailurePercent")
        .dimensions(
            Dimension::builder()
                .name("AvailabilityZone")
                .value(az)
                .build(),
        )
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data(missing)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm_state(&cw, name, state).await;
    cw
}

/// Sets an alarm's state in the emulator, as CloudWatch would.
pub async fn set_alarm_state(cw: &aws_sdk_cloudwatch::Client, name: &str, state: &str) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state.into())
        .state_reason("test")
        .send()
        .await
        .expect("SetAlarmState");
}

/// The `ballast` command's clients: AWS reads from the emulator, the Lambda
/// API from the Runtime API host of the deployed function.
pub fn operator(moto: &moto::Moto, host: &host::RuntimeHost) -> ballast_cli::Target {
    let conf = moto.sdk_config();
    let lambda = aws_sdk_lambda::config::Builder::from(&conf)
        .endpoint_url(host.lambda_endpoint())
        .build();
    ballast_cli::Target {
        aws: ballast::aws::Aws::new(&conf),
        lambda: aws_sdk_lambda::Client::from_conf(lambda),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
    }
}

/// Runs `ballast <args>` against `target`, as the binary would.
pub async fn ballast_command(target: &ballast_cli::Target, args: &[&str]) -> ballast_cli::Answer {
    use clap::Parser;
    let cli =
        ballast_cli::Cli::try_parse_from(std::iter::once("ballast").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    ballast_cli::execute(cli, target).await
}
