//! The imperative shell: one module per AWS service, each the only place
//! that talks to it. Clients are built once per process from one shared
//! `SdkConfig`, which honours `AWS_ENDPOINT_URL` (an emulator needs no code
//! change).

pub mod alarms;
pub mod balancer;
pub mod database;
pub mod dns;
pub mod fleet;
pub mod network;
pub mod reports;
pub mod zonal_shift;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use thiserror::Error;

/// Every client Ballast uses, built once at init and shared by invocations.
#[derive(Debug, Clone)]
pub struct Aws {
    pub region: String,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub sns: aws_sdk_sns::Client,
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub zonal_shift: aws_sdk_arczonalshift::Client,
}

impl Aws {
    /// Loads the standard SDK configuration (region, credentials,
    /// `AWS_ENDPOINT_URL`) once.
    pub async fn from_env() -> Self {
        let conf = aws_config::load_defaults(BehaviorVersion::latest()).await;
        Self::new(&conf)
    }

    /// Clients for `conf`, every one with [`timeouts`] (I4).
    pub fn new(conf: &SdkConfig) -> Self {
        let conf = &conf.to_builder().timeout_config(timeouts()).build();
        Aws {
            region: conf
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            autoscaling: aws_sdk_autoscaling::Client::new(conf),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(conf),
            sns: aws_sdk_sns::Client::new(conf),
            rds: aws_sdk_rds::Client::new(conf),
            route53: aws_sdk_route53::Client::new(conf),
            ec2: aws_sdk_ec2::Client::new(conf),
            cloudwatch: aws_sdk_cloudwatch::Client::new(conf),
            zonal_shift: aws_sdk_arczonalshift::Client::new(conf),
        }
    }
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
pub fn timeouts() -> TimeoutConfig {
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

/// Error codes that mean "slow down" across the query and JSON protocols.
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "PriorRequestNotComplete",
    "SlowDown",
    "RequestThrottled",
    "ProvisionedThroughputExceededException",
    "Throttled",
];

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
                let throttled = code
                    .as_deref()
                    .is_some_and(|c| THROTTLING_CODES.contains(&c));
                let message = match (err.code(), err.message()) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.to_string(),
                    _ => format!("HTTP {status}: {}", DisplayErrorContext(&err)),
                };
                (throttled || status == 429 || status >= 500, message)
            }
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => (true, DisplayErrorContext(&err).to_string()),
            _ => (false, DisplayErrorContext(&err).to_string()),
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
    use aws_sdk_autoscaling::operation::set_instance_health::SetInstanceHealthError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service(status: u16, code: &str) -> AwsError {
        let err = SetInstanceHealthError::generic(
            ErrorMetadata::builder().code(code).message("m").build(),
        );
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

    #[test]
    fn time_outs_and_broken_connections_are_retried() {
        let timeout: SdkError<SetInstanceHealthError, HttpResponse> =
            SdkError::timeout_error("operation timed out");
        assert!(AwsError::from_sdk("SetInstanceHealth", "i-1", timeout).retryable);
        let io: SdkError<SetInstanceHealthError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert!(AwsError::from_sdk("SetInstanceHealth", "i-1", io).retryable);
        let build: SdkError<SetInstanceHealthError, HttpResponse> =
            SdkError::construction_failure("missing field");
        assert!(!AwsError::from_sdk("SetInstanceHealth", "i-1", build).retryable);
    }
}
