//! PostgreSQL and Aurora PostgreSQL: `pg_is_in_recovery()`,
//! `transaction_read_only`, `inet_server_addr()` (or Aurora's instance
//! identifier) and, on a standby, what it received and has not replayed.

use std::net::SocketAddr;

use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{client_config, tls_cause};
use super::{connect, failed, silent, stages, Found, Login, Probe};
use crate::proof::{Failure, Lag, Server, Stage, Timings};

pub(super) async fn ask(
    probe: &Probe,
    address: SocketAddr,
    endpoint: &str,
    login: &Login,
    timings: &mut Timings,
) -> Result<Found, Failure> {
    let log_in = log_in(probe, address, endpoint, login);
    stages(probe.limits, timings, log_in, |client| async move {
        questions(&client).await
    })
    .await
}

/// TCP, TLS (required: a server without it fails the probe) and the login.
async fn log_in(
    probe: &Probe,
    address: SocketAddr,
    endpoint: &str,
    login: &Login,
) -> Result<Client, Failure> {
    let limit = probe.limits.connect;
    let stream = connect(address, limit).await?;
    let tls = client_config(probe.ca.as_ref()).map_err(|e| failed(Stage::Tls, e.to_string()))?;
    let connector = MakeTlsConnect::<tokio::net::TcpStream>::make_tls_connect(
        &mut MakeRustlsConnect::new(tls),
        endpoint,
    )
    .map_err(|e| {
        failed(
            Stage::Tls,
            format!("{endpoint} is not a name a certificate can carry: {e}"),
        )
    })?;
    let mut config = tokio_postgres::Config::new();
    config
        .host(endpoint)
        .port(address.port())
        .user(&login.user)
        .password(login.password.as_bytes())
        .dbname(login.database.as_deref().unwrap_or("postgres"))
        .application_name("ballast-writer-probe")
        .ssl_mode(SslMode::Require);
    let (client, connection) =
        match tokio::time::timeout(limit, config.connect_raw(stream, connector)).await {
            Err(_) => return Err(silent(address, limit)),
            Ok(Err(e)) => return Err(classify(&e, address)),
            Ok(Ok(pair)) => pair,
        };
    tokio::spawn(async move {
        // The connection ends with the client; its error, if any, is the
        // query's.
        let _ = connection.await;
    });
    Ok(client)
}

/// The stage a connection error belongs to.
fn classify(e: &tokio_postgres::Error, address: SocketAddr) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let login = code.code().starts_with("28")
            || *code == SqlState::INVALID_CATALOG_NAME
            || *code == SqlState::TOO_MANY_CONNECTIONS;
        let stage = if login { Stage::Login } else { Stage::Query };
        return failed(stage, format!("{} ({})", db.message(), code.code()));
    }
    if let Some(cause) = tls_cause(e) {
        return failed(Stage::Tls, format!("TLS with {address}: {cause}"));
    }
    let text = e.to_string();
    if text.contains("TLS") || text.contains("tls") {
        return failed(Stage::Tls, format!("TLS with {address}: {text}"));
    }
    failed(Stage::Network, format!("{address}: {text}"))
}

/// Who the server is, whether it takes writes, and (a standby) its lag.
async fn questions(client: &Client) -> Result<Found, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), current_setting('transaction_read_only'), \
             coalesce(host(inet_server_addr()) || ':' || inet_server_port(), 'local'), \
             current_setting('server_version')",
            &[],
        )
        .await?;
    let in_recovery: bool = row.try_get(0)?;
    let read_only: String = row.try_get(1)?;
    let mut identity: String = row.try_get(2)?;
    let version: String = row.try_get(3)?;
    // Aurora names the instance; elsewhere the function does not exist.
    if let Ok(aurora) = client
        .query_one("SELECT aurora_db_instance_identifier()", &[])
        .await
    {
        if let Ok(id) = aurora.try_get::<_, String>(0) {
            identity = id;
        }
    }
    let mut because = vec![];
    if in_recovery {
        because.push("in recovery (a standby)".to_string());
    }
    if read_only == "on" {
        because.push("transaction_read_only=on".to_string());
    }
    let lag = if in_recovery {
        Some(lag(client).await?)
    } else {
        None
    };
    Ok((
        Server {
            identity,
            version: format!("PostgreSQL {version}"),
            writable: because.is_empty(),
            read_only_because: because,
        },
        lag,
    ))
}

/// What the standby received and has not replayed, and how old its last
/// replayed transaction is.
async fn lag(client: &Client) -> Result<Lag, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
             pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8, \
             extract(epoch from now() - pg_last_xact_replay_timestamp())::float8, \
             pg_is_wal_replay_paused()",
            &[],
        )
        .await?;
    let unapplied: Option<f64> = row.try_get(2)?;
    Ok(Lag {
        replicating: true,
        received: row.try_get(0)?,
        applied: row.try_get(1)?,
        // A non-negative whole number of bytes, from a float8.
        unapplied_bytes: unapplied.map(|b| b.max(0.0).round() as u64),
        unapplied_elsewhere: false,
        seconds_behind: row.try_get(3)?,
        applier_stopped: row.try_get(4)?,
    })
}
