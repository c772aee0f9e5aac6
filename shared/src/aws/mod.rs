//! The imperative shell: one module per AWS service, each the only place
//! that talks to it. Clients are built once per process from one shared
//! `SdkConfig` read from Lambda's environment, which honours
//! `AWS_ENDPOINT_URL` (an emulator needs no code change).

#[cfg(feature = "cloudwatch")]
pub mod alarms;
#[cfg(feature = "elbv2")]
pub mod balancer;
#[cfg(feature = "rds")]
pub mod database;
#[cfg(feature = "route53")]
pub mod dns;
#[cfg(feature = "autoscaling")]
pub mod fleet;
pub mod leases;
#[cfg(feature = "ec2")]
pub mod network;
pub mod reports;
#[cfg(feature = "lambda")]
pub mod writer_probe;
#[cfg(feature = "zonal-shift")]
pub mod zonal_shift;

use std::time::Duration;

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS, TRANSIENT_ERRORS};
use aws_smithy_http_client::{tls, Builder};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use thiserror::Error;

/// Every client this build uses (its Cargo features), built once at init
/// and shared by invocations.
#[derive(Debug, Clone)]
pub struct Aws {
    pub region: String,
    pub sns: aws_sdk_sns::Client,
    /// The lease table (every function takes leases).
    pub dynamodb: aws_sdk_dynamodb::Client,
    #[cfg(feature = "autoscaling")]
    pub autoscaling: aws_sdk_autoscaling::Client,
    #[cfg(feature = "elbv2")]
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    #[cfg(feature = "rds")]
    pub rds: aws_sdk_rds::Client,
    #[cfg(feature = "route53")]
    pub route53: aws_sdk_route53::Client,
    #[cfg(feature = "ec2")]
    pub ec2: aws_sdk_ec2::Client,
    #[cfg(feature = "cloudwatch")]
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    #[cfg(feature = "zonal-shift")]
    pub zonal_shift: aws_sdk_arczonalshift::Client,
    /// `rds-failover` invokes the writer probe.
    #[cfg(feature = "lambda")]
    pub lambda: aws_sdk_lambda::Client,
}

impl Aws {
    /// Clients configured from the function's environment (`lambda_config`).
    pub fn from_env() -> Self {
        let aws = Self::new(&lambda_config(|name| std::env::var(name).ok()));
        // The SDK's service-specific endpoint variable, for the one service
        // an emulator may serve apart (the writer probe's Invoke).
        #[cfg(feature = "lambda")]
        if let Some(url) = std::env::var("AWS_ENDPOINT_URL_LAMBDA")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            return aws.with_lambda_endpoint(&url);
        }
        aws
    }

    /// The Lambda client pointed at `url` (an emulator of the Invoke API).
    #[cfg(feature = "lambda")]
    pub fn with_lambda_endpoint(self, url: &str) -> Self {
        let conf = self.lambda.config().to_builder().endpoint_url(url).build();
        Aws {
            lambda: aws_sdk_lambda::Client::from_conf(conf),
            ..self
        }
    }

    /// Clients for `conf`, every one with [`timeouts`] (I4).
    pub fn new(conf: &SdkConfig) -> Self {
        let conf = &conf.to_builder().timeout_config(timeouts()).build();
        Aws {
            region: conf
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            sns: aws_sdk_sns::Client::new(conf),
            dynamodb: aws_sdk_dynamodb::Client::new(conf),
            #[cfg(feature = "autoscaling")]
            autoscaling: aws_sdk_autoscaling::Client::new(conf),
            #[cfg(feature = "elbv2")]
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(conf),
            #[cfg(feature = "rds")]
            rds: aws_sdk_rds::Client::new(conf),
            #[cfg(feature = "route53")]
            route53: aws_sdk_route53::Client::new(conf),
            #[cfg(feature = "ec2")]
            ec2: aws_sdk_ec2::Client::new(conf),
            #[cfg(feature = "cloudwatch")]
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
            #[cfg(feature = "zonal-shift")]
            zonal_shift: aws_sdk_arczonalshift::Client::new(conf),
            #[cfg(feature = "lambda")]
            lambda: aws_sdk_lambda::Client::new(conf),
        }
    }
}

/// The SDK configuration of a function from its environment, with
/// Ballast's time-outs: for a function that needs other clients than
/// [`Aws`]'s (the writer probe's Secrets Manager).
pub fn sdk_config_from_env() -> SdkConfig {
    lambda_config(|name| std::env::var(name).ok())
}

/// The SDK configuration of a function, from what Lambda puts in its
/// environment (`env` looks a variable up):
/// - the region: `AWS_REGION` (Lambda sets it), else `AWS_DEFAULT_REGION`;
/// - the execution role's credentials: `AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read when a call is signed;
/// - `AWS_ENDPOINT_URL` for every service, when set and not switched off by
///   `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` (an emulator);
/// - `AWS_USE_FIPS_ENDPOINT`, `AWS_USE_DUALSTACK_ENDPOINT` (`true`/`false`):
///   FIPS 140 and dual-stack endpoints, where a partition requires them;
/// - the SDK's standard retries (3 attempts), [`timeouts`], [`http_client`].
///
/// Not aws-config's default chain: shared config files, SSO, web identity,
/// container and instance-metadata credentials never apply inside a Lambda
/// function on a custom runtime, and their code (an STS client, the profile
/// parser, an IMDS client) was about 325 KB of each function's zip. The CLI,
/// which runs where those apply, keeps the full chain.
fn lambda_config(env: impl Fn(&str) -> Option<String>) -> SdkConfig {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let flag = |name: &str| set(name).map(|v| v.trim().eq_ignore_ascii_case("true"));
    let region = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION"));
    let ignore_endpoints = flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") == Some(true);
    let mut conf = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region.map(Region::new))
        .credentials_provider(SharedCredentialsProvider::new(
            EnvironmentVariableCredentialsProvider::new(),
        ))
        .retry_config(RetryConfig::standard())
        .timeout_config(timeouts())
        // The clock of presigned requests (the writer probe's IAM tokens).
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .http_client(http_client());
    conf.set_use_fips(flag("AWS_USE_FIPS_ENDPOINT"));
    conf.set_use_dual_stack(flag("AWS_USE_DUALSTACK_ENDPOINT"));
    if !ignore_endpoints {
        conf.set_endpoint_url(set("AWS_ENDPOINT_URL"));
    }
    conf.build()
}

/// The HTTP client of every AWS call (functions, CLI, tests): the SDK's own
/// (hyper, rustls, the system's trusted roots, the SDK's pooling), with
/// rustls on the *ring* crypto provider instead of the SDK's default
/// aws-lc-rs: the same TLS 1.2/1.3, and about a megabyte less in each
/// function's zip and a C library less to cross-compile for arm64.
pub fn http_client() -> SharedHttpClient {
    Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// How long one AWS call may take. The control-plane calls Ballast makes
/// answer in well under a second when AWS is healthy; during the incidents
/// Ballast exists for, a hung connection must not eat the invocation:
/// - connect: 3 s — an endpoint that does not accept a connection by then is
///   not going to;
/// - one attempt: 10 s — ten times a slow answer, then the SDK retries on a
///   fresh connection;
/// - the whole operation, retries and back-off included: 30 s — half the
///   shortest function timeout (60 s), so a second call and the report still
///   fit. The executor also bounds every step by the Lambda deadline.
fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// An AWS call that failed, after the SDK's own retries.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{operation} on {resource} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub resource: String,
    /// The service's error code (`Throttling`, `ValidationError`, ...), if any.
    pub code: Option<String>,
    pub message: String,
    /// Throttling, 5xx, time-outs and broken connections are worth retrying;
    /// validation and access errors are not.
    pub retryable: bool,
}

/// An error in one line for a person: what failed, and its root cause
/// (`dispatch failure: Connection refused (os error 111)`), not the SDK's
/// whole chain of wrappers.
fn plain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut root = None;
    let mut next = err.source();
    while let Some(e) = next {
        root = Some(e);
        next = e.source();
    }
    let outer = err.to_string();
    let inner = root.map(ToString::to_string).unwrap_or_default();
    if inner.is_empty() || outer.contains(&inner) {
        outer
    } else {
        format!("{outer}: {inner}")
    }
}

impl AwsError {
    pub fn from_sdk<E>(
        operation: &'static str,
        resource: impl Into<String>,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let (retryable, message) = match &err {
            SdkError::ServiceError(ctx) => {
                let status = ctx.raw().status().as_u16();
                // The SDK's own lists of codes that mean "slow down" or
                // "try again" (RequestTimeout among them), across protocols.
                let throttled = code.as_deref().is_some_and(|c| {
                    THROTTLING_ERRORS.contains(&c) || TRANSIENT_ERRORS.contains(&c)
                });
                let message = match (err.code(), err.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => format!("HTTP {status}: {}", DisplayErrorContext(&err)),
                };
                (throttled || status == 429 || status >= 500, message)
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (true, plain(&err)),
            _ => (false, plain(&err)),
        };
        AwsError {
            operation,
            resource: resource.into(),
            code,
            message,
            retryable,
        }
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::PublishError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(status: u16, code: &str) -> AwsError {
        let err = PublishError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty());
        AwsError::from_sdk(
            "SetInstanceHealth",
            "i-1",
            SdkError::service_error(err, raw),
        )
    }

    #[test]
    fn throttling_and_server_errors_are_retried_validation_and_access_are_not() {
        for (status, code) in [
            (400, "Throttling"),
            (400, "ThrottlingException"),
            (503, "RequestLimitExceeded"),
            (429, "TooManyRequestsException"),
            (500, "InternalFailure"),
            (503, "ServiceUnavailable"),
            (400, "RequestTimeout"),
            (400, "RequestTimeoutException"),
            (400, "EC2ThrottledException"),
        ] {
            assert!(service(status, code).retryable, "{status} {code}");
        }
        for (status, code) in [
            (400, "ValidationError"),
            (403, "AccessDenied"),
            (403, "AccessDeniedException"),
            (400, "InvalidDBInstanceState"),
            (404, "DBInstanceNotFound"),
        ] {
            assert!(!service(status, code).retryable, "{status} {code}");
        }
        let e = service(400, "Throttling");
        assert_eq!(e.code.as_deref(), Some("Throttling"));
        assert_eq!(
            e.to_string(),
            "SetInstanceHealth on i-1 failed: Throttling: m"
        );
    }

    fn config(vars: &[(&str, &str)]) -> SdkConfig {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        lambda_config(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn a_function_takes_region_and_endpoint_from_lambdas_environment() {
        let conf = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
        ]);
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(conf.endpoint_url(), Some("http://127.0.0.1:5000"));
        assert!(conf.credentials_provider().is_some());
        assert!(conf.http_client().is_some());
        assert_eq!(conf.retry_config().map(|r| r.max_attempts()), Some(3));
        assert_eq!(
            conf.timeout_config().and_then(|t| t.operation_timeout()),
            Some(Duration::from_secs(30))
        );

        let conf = config(&[("AWS_DEFAULT_REGION", "us-east-2"), ("AWS_REGION", " ")]);
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("us-east-2"));
        assert_eq!(conf.endpoint_url(), None);
        assert_eq!((conf.use_fips(), conf.use_dual_stack()), (None, None));

        let conf = config(&[
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_USE_DUALSTACK_ENDPOINT", "false"),
        ]);
        assert_eq!(
            (conf.use_fips(), conf.use_dual_stack()),
            (Some(true), Some(false))
        );

        let conf = config(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]);
        assert_eq!(conf.region(), None);
        assert_eq!(conf.endpoint_url(), None);
    }

    #[test]
    fn a_connection_error_reads_as_its_root_cause() {
        let io: SdkError<PublishError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into()),
        );
        let e = AwsError::from_sdk("Publish", "topic", io);
        assert!(e.message.starts_with("dispatch failure"), "{}", e.message);
        assert!(
            e.message.to_lowercase().contains("refused"),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("ConnectorError"),
            "no Debug dump: {}",
            e.message
        );
    }

    #[test]
    fn time_outs_and_broken_connections_are_retried() {
        let timeout: SdkError<PublishError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert!(AwsError::from_sdk("SetInstanceHealth", "i-1", timeout).retryable);
        let io: SdkError<PublishError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(AwsError::from_sdk("SetInstanceHealth", "i-1", io).retryable);
        let build: SdkError<PublishError, HttpResponse> =
            SdkError::construction_failure("missing field");
        assert!(!AwsError::from_sdk("SetInstanceHealth", "i-1", build).retryable);
    }
}
