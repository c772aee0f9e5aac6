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

/// The credentials a request names: `username` and `password` (and
/// `dbname`) from the secret. Its value never leaves this function.
async fn login(
    secrets: &aws_sdk_secretsmanager::Client,
    request: &Request,
) -> Result<Login, Failure> {
    let Credentials::Secret(id) = &request.credentials;
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

/// One request: the login, then the probe.
pub async fn answer(
    probe: &Probe,
    secrets: &aws_sdk_secretsmanager::Client,
    payload: &Value,
) -> Result<Proof, String> {
    let request = Request::parse(payload)?;
    let target = Target {
        name: request.name.clone(),
        port: request.port,
        engine: request.engine,
    };
    let started = Instant::now();
    match login(secrets, &request).await {
        Ok(login) => Ok(probe.probe(&target, &login).await),
        Err(failure) => {
            let mut proof = Proof::of(&target.name, target.port, target.engine);
            proof.failure = Some(failure);
            tracing::warn!(ms = started.elapsed().as_millis() as u64, "no login");
            Ok(proof)
        }
    }
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
    let conf = crate::aws::sdk_config_from_env();
    let secrets = aws_sdk_secretsmanager::Client::new(&conf);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let probe = Arc::clone(&probe);
            let secrets = secrets.clone();
            async move {
                let started = Instant::now();
                let proof = answer(&probe, &secrets, &event.payload).await;
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
}
