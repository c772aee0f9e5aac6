//! The writer probe's adapter (feature `probe`): resolves the application's
//! name with the resolver the application uses, connects to the address
//! over TLS, logs in, and asks the engine who it is, whether it takes
//! writes and, on a standby, how far behind it is. Bounded in time at every
//! stage; nothing is written; the password never reaches a log, an error
//! or a proof.

#[cfg(feature = "secretsmanager")]
pub mod handler;
mod mysql;
mod postgres;
mod resolve;
mod tls;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::proof::{Engine, Failure, Lag, Proof, Server, Stage, Timings, Tls};

pub use resolve::Resolver;
pub use tls::{CaBundle, TlsError};

/// How to log in. The password (or IAM token) is never printed.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: String,
    /// The database to connect to (PostgreSQL needs one; `postgres` by
    /// default).
    pub database: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// What to probe: the application's name, the port and the engine.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub port: u16,
    pub engine: Engine,
}

/// The time each stage may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub resolve: Duration,
    /// The TCP connection, then the TLS handshake and the login.
    pub connect: Duration,
    /// The probe's questions, all together.
    pub query: Duration,
}

impl Default for Limits {
    /// Well inside a caller's deadline: at most 1 + 2 × 2 + 2 = 7 s.
    fn default() -> Self {
        Limits {
            resolve: Duration::from_secs(1),
            connect: Duration::from_secs(2),
            query: Duration::from_secs(2),
        }
    }
}

/// The probe: a resolver, a CA bundle (or none: encrypted only, and said
/// so), and its limits.
#[derive(Debug, Clone)]
pub struct Probe {
    pub resolver: Resolver,
    pub ca: Option<CaBundle>,
    pub limits: Limits,
}

/// A stage's failure: where, and why.
pub(crate) fn failed(stage: Stage, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        message: message.into(),
    }
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Probe {
    /// Probes `target` as `login`: every stage that completes is in the
    /// proof, and the first that does not is its `failure`.
    pub async fn probe(&self, target: &Target, login: &Login) -> Proof {
        self.probe_with(target, |_| std::future::ready(Ok(login.clone())))
            .await
    }

    /// Probes `target`, logging in as `login` gives once the name is
    /// resolved (it reads the proof so far: an IAM token is signed for the
    /// endpoint the name leads to); a login it cannot give is the proof's
    /// `login` failure.
    pub async fn probe_with<F, Fut>(&self, target: &Target, login: F) -> Proof
    where
        F: FnOnce(&Proof) -> Fut,
        Fut: Future<Output = Result<Login, Failure>>,
    {
        let mut proof = Proof::of(&target.name, target.port, target.engine);
        let started = Instant::now();
        let resolved = self
            .resolver
            .resolve(&target.name, self.limits.resolve)
            .await;
        proof.timings.resolve_ms = ms(started);
        let (chain, addresses) = match resolved {
            Ok(found) => found,
            Err(failure) => {
                proof.failure = Some(failure);
                return proof;
            }
        };
        proof.chain = chain;
        proof.addresses = addresses.iter().map(IpAddr::to_string).collect();
        let Some(ip) = addresses.first().copied() else {
            proof.failure = Some(failed(
                Stage::Dns,
                format!("{} has no address", target.name),
            ));
            return proof;
        };
        let address = SocketAddr::new(ip, target.port);
        let tls = match &self.ca {
            Some(_) => Tls::Verified {
                verified_for: proof.endpoint().to_string(),
            },
            None => Tls::EncryptedOnly,
        };
        let endpoint = proof.endpoint().to_string();
        let login = match login(&proof).await {
            Ok(login) => login,
            Err(failure) => {
                proof.failure = Some(failure);
                return proof;
            }
        };
        let login = &login;
        let asked = match target.engine {
            Engine::Postgres => {
                postgres::ask(self, address, &endpoint, login, &mut proof.timings).await
            }
            Engine::Mysql => mysql::ask(self, address, &endpoint, login, &mut proof.timings).await,
        };
        match asked {
            Ok((server, lag)) => {
                proof.tls = Some(tls);
                proof.server = Some(server);
                proof.lag = lag;
            }
            Err(failure) => {
                if !matches!(failure.stage, Stage::Network | Stage::Tls) {
                    proof.tls = Some(tls);
                }
                proof.failure = Some(failure);
            }
        }
        proof
    }
}

/// A TCP connection to `address` within `limit`, or why not: refused (the
/// port is closed, or nothing listens) or unanswered (a security group or
/// route that drops the traffic).
pub(crate) async fn connect(
    address: SocketAddr,
    limit: Duration,
) -> Result<tokio::net::TcpStream, Failure> {
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect(address)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(failed(
            Stage::Network,
            format!("{address} refused the connection: nothing listens on the port, or a firewall rejects it"),
        )),
        Ok(Err(e)) => Err(failed(Stage::Network, format!("{address}: {e}"))),
        Err(_) => Err(failed(
            Stage::Network,
            format!(
                "no answer from {address} within {:.1}s: a security group, network ACL or route drops the traffic",
                limit.as_secs_f64()
            ),
        )),
    }
}

/// What an engine's questions found: the server, and a standby's lag.
pub(crate) type Found = (Server, Option<Lag>);

/// An engine's two timed stages: `log_in` (the `connect_ms`), then `ask`
/// on the connection it made, within the query limit (the `query_ms`).
pub(crate) async fn stages<C, E, Asked>(
    limits: Limits,
    timings: &mut Timings,
    log_in: impl Future<Output = Result<C, Failure>>,
    ask: impl FnOnce(C) -> Asked,
) -> Result<Found, Failure>
where
    E: std::fmt::Display,
    Asked: Future<Output = Result<Found, E>>,
{
    let started = Instant::now();
    let conn = log_in.await;
    timings.connect_ms = ms(started);
    let conn = conn?;
    let started = Instant::now();
    let answer = tokio::time::timeout(limits.query, ask(conn)).await;
    timings.query_ms = ms(started);
    match answer {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(failed(Stage::Query, e.to_string())),
        Err(_) => Err(failed(
            Stage::Query,
            format!(
                "logged in, but the server did not answer within {:.1}s",
                limits.query.as_secs_f64()
            ),
        )),
    }
}

/// The failure of a server that accepted the connection and then said
/// nothing in time.
pub(crate) fn silent(address: SocketAddr, limit: Duration) -> Failure {
    failed(
        Stage::Network,
        format!(
            "{address} accepted the connection but did not complete the handshake within {:.1}s: the server is hung or overloaded",
            limit.as_secs_f64()
        ),
    )
}
