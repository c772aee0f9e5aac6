//! The `writer-probe` function: reads its configuration at init (naming
//! the variable that is wrong), then answers each request with a [`Proof`].
//! It holds no mutating AWS permission: the one AWS call is
//! `GetSecretValue` on the secret the request names.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{CaBundle, Limits, Login, Probe, Resolver, Target};
use crate::proof::{Credentials, Failure, Proof, Request, Stage};

/// `<ip>[:<port>]` of the nameserver to ask instead of the system's.
pub const RESOLVER: &str = "BALLAST_PROBE_RESOLVER";
/// A PEM file of the CA certificates that sign the databases'
/// certificates (for RDS, the Region's bundle, shipped with the function
/// or in a layer); without it, TLS is encrypted but not verified.
pub const CA_BUNDLE: &str = "BALLAST_PROBE_CA_BUNDLE";

/// Bad configuration, naming the variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable}={value:?} is not {expected}")]
    Invalid {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{variable}: {source}")]
    Ca {
        variable: &'static str,
        source: super::TlsError,
    },
}

/// The probe, from the function's environment.
pub fn probe_from_env(env: impl Fn(&str) -> Option<String>) -> Result<Probe, ConfigError> {
    let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    let resolver = match set(RESOLVER) {
        None => Resolver::System,
        Some(v) => Resolver::parse(&v).ok_or(ConfigError::Invalid {
            variable: RESOLVER,
            value: v,
            expected: "an IP address with an optional port, such as 10.0.0.2 or 127.0.0.1:5353",
        })?,
    };
    let ca = set(CA_BUNDLE)
        .map(|path| CaBundle::read(path.trim()))
        .transpose()
        .map_err(|source| ConfigError::Ca {
            variable: CA_BUNDLE,
            source,
        })?;
    Ok(Probe {
        resolver,
        ca,
        limits: Limits::default(),
    })
}

/// The login a request names, for the endpoint the name led to: the
/// secret's `username` and `password` (and `dbname`), or an IAM token. Its
/// value never leaves this function but into the connection.
async fn login(aws: &Clients, request: &Request, endpoint: &str) -> Result<Login, Failure> {
    match &request.credentials {
        Credentials::Secret(id) => secret_login(&aws.secrets, id, request).await,
        Credentials::Iam { user } => {
            let token = iam_token(&aws.config, endpoint, request.port, user)
                .await
                .map_err(|why| Failure {
                    stage: Stage::Login,
                    message: format!(
                        "no IAM database authentication token for {user}@{endpoint}: {why}"
                    ),
                })?;
            Ok(Login {
                user: user.clone(),
                password: token,
                database: request.database.clone(),
            })
        }
    }
}

/// An IAM database authentication token: a presigned `connect` request to
/// `endpoint:port` as `user`, signed with the function's role, valid for
/// 15 minutes (the SDK's `aws_sdk_rds::auth_token`).
pub async fn iam_token(
    config: &aws_config::SdkConfig,
    endpoint: &str,
    port: u16,
    user: &str,
) -> Result<String, String> {
    use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config};
    let generator = AuthTokenGenerator::new(
        Config::builder()
            .hostname(endpoint.trim_end_matches('.'))
            .port(u64::from(port))
            .username(user)
            .build()
            .map_err(|e| e.to_string())?,
    );
    generator
        .auth_token(config)
        .await
        .map(|t| t.to_string())
        .map_err(|e| e.to_string())
}

async fn secret_login(
    secrets: &aws_sdk_secretsmanager::Client,
    id: &str,
    request: &Request,
) -> Result<Login, Failure> {
    let unreadable = |why: String| Failure {
        stage: Stage::Login,
        message: format!("the secret {id} cannot be read: {why}"),
    };
    let answer = secrets
        .get_secret_value()
        .secret_id(id)
        .send()
        .await
        .map_err(|e| unreadable(crate::aws::AwsError::from_sdk("GetSecretValue", id, e).message))?;
    let text = answer
        .secret_string()
        .ok_or_else(|| unreadable("it holds no string".into()))?;
    let fields: Value = serde_json::from_str(text)
        .map_err(|_| unreadable("it is not JSON with username and password".into()))?;
    let field = |k: &str| fields.get(k).and_then(Value::as_str).map(str::to_string);
    match (field("username"), field("password")) {
        (Some(user), Some(password)) => Ok(Login {
            user,
            password,
            database: request.database.clone().or_else(|| field("dbname")),
        }),
        _ => Err(unreadable("it has no username and password".into())),
    }
}

/// What the probe's logins read: Secrets Manager, and the configuration
/// (credentials, Region, clock) IAM tokens are signed with.
#[derive(Clone)]
pub struct Clients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub config: aws_config::SdkConfig,
}

impl Clients {
    pub fn new(config: aws_config::SdkConfig) -> Clients {
        Clients {
            secrets: aws_sdk_secretsmanager::Client::new(&config),
            config,
        }
    }
}

/// One request: the probe, logging in once the name is resolved.
pub async fn answer(probe: &Probe, aws: &Clients, payload: &Value) -> Result<Proof, String> {
    let request = Request::parse(payload)?;
    let target = Target {
        name: request.name.clone(),
        port: request.port,
        engine: request.engine,
    };
    let started = Instant::now();
    let proof = probe
        .probe_with(&target, |so_far| {
            let endpoint = so_far.endpoint().to_string();
            let request = &request;
            // Boxed: the SDK's futures nested in the probe's make a type too
            // deep for the compiler's layout of the function's main future.
            Box::pin(async move { login(aws, request, &endpoint).await })
        })
        .await;
    if proof
        .failure
        .as_ref()
        .is_some_and(|f| f.stage == Stage::Login)
    {
        tracing::warn!(ms = started.elapsed().as_millis() as u64, "no login");
    }
    Ok(proof)
}

/// The function's main loop.
pub async fn serve() -> Result<(), lambda_runtime::Error> {
    crate::context::init_tracing();
    let probe = match probe_from_env(|name| std::env::var(name).ok()) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return Err(e.to_string().into());
        }
    };
    let aws = Clients::new(crate::aws::sdk_config_from_env());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let probe = Arc::clone(&probe);
            let aws = aws.clone();
            async move {
                let started = Instant::now();
                let proof = answer(&probe, &aws, &event.payload).await;
                match &proof {
                    Ok(p) => tracing::info!(
                        proof = %p.describe(),
                        writer = p.proves_writer(),
                        ms = duration_ms(started.elapsed()),
                        "probed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "ignored"),
                }
                proof.map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configuration_names_the_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let p = probe_from_env(env(&[])).unwrap();
        assert_eq!(p.resolver, Resolver::System);
        assert!(p.ca.is_none());
        let e = probe_from_env(env(&[(RESOLVER, "dns.example.com")])).unwrap_err();
        assert!(e.to_string().starts_with("BALLAST_PROBE_RESOLVER="), "{e}");
        let e = probe_from_env(env(&[(CA_BUNDLE, "/nonexistent/ca.pem")])).unwrap_err();
        assert!(
            e.to_string().starts_with("BALLAST_PROBE_CA_BUNDLE: "),
            "{e}"
        );
        let p = probe_from_env(env(&[(RESOLVER, "127.0.0.1:5353")])).unwrap();
        assert_eq!(p.resolver, Resolver::At("127.0.0.1:5353".parse().unwrap()));
    }

    /// The token is botocore's for the same input (its test
    /// `test_generate_db_auth_token`: credentials akid/skid, us-east-1,
    /// 2016-11-07T17:39:33Z), byte for byte.
    #[tokio::test]
    async fn an_iam_token_is_the_one_botocore_signs() {
        use aws_smithy_async::time::StaticTimeSource;
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_478_540_373);
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("akid", "skid", None, None, "test"),
                ),
            )
            .time_source(StaticTimeSource::new(at))
            .build();
        let token = iam_token(
            &config,
            "prod-instance.us-east-1.rds.amazonaws.com.",
            3306,
            "someusername",
        )
        .await
        .unwrap();
        assert_eq!(
            token,
            "prod-instance.us-east-1.rds.amazonaws.com:3306/?Action=connect&DBUser=someusername&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=akid%2F20161107%2Fus-east-1%2Frds-db%2Faws4_request&X-Amz-Date=20161107T173933Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Signature=d1138cdbc0ca63eec012ec0fc6c2267e03642168f5884a7795320d4c18374c61"
        );
    }
}
