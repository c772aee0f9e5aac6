//! MySQL, MariaDB and Aurora MySQL: `@@global.read_only`,
//! `@@innodb_read_only` (and `@@super_read_only` where it exists), who the
//! server is (`@@aurora_server_id`, else `@@hostname` and `@@server_id`),
//! and, on a replica, what it received and has not applied.

use std::net::SocketAddr;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};

use super::tls::tls_cause;
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
    stages(probe.limits, timings, log_in, |mut conn| async move {
        let found = questions(&mut conn).await;
        // Closed politely, within the same bound.
        let _ = conn.disconnect().await;
        found
    })
    .await
}

/// TCP (checked first: the driver's own error does not say refused from
/// unanswered), TLS (required) and the login.
async fn log_in(
    probe: &Probe,
    address: SocketAddr,
    endpoint: &str,
    login: &Login,
) -> Result<Conn, Failure> {
    let limit = probe.limits.connect;
    drop(connect(address, limit).await?);
    let ssl = match &probe.ca {
        // The operator's bundle only: not also the public roots.
        Some(ca) => SslOpts::default()
            .with_root_certs(vec![ca.pem.to_vec().into()])
            .with_disable_built_in_roots(true),
        None => SslOpts::default().with_danger_accept_invalid_certs(true),
    };
    let opts = OptsBuilder::default()
        // The certificate is checked against the endpoint; the address is
        // the one the application's name resolved to.
        .ip_or_hostname(endpoint)
        .resolved_ips(Some(vec![address.ip()]))
        .tcp_port(address.port())
        .user(Some(&login.user))
        .pass(Some(&login.password))
        .db_name(login.database.as_deref())
        .prefer_socket(false)
        // IAM database authentication sends its token with
        // mysql_clear_password when the server asks for it; the connection
        // is always TLS.
        .enable_cleartext_plugin(true)
        .ssl_opts(Some(ssl));
    match tokio::time::timeout(limit, Conn::new(opts)).await {
        Err(_) => Err(silent(address, limit)),
        Ok(Err(e)) => Err(classify(&e, address)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// The stage a connection error belongs to.
fn classify(e: &mysql_async::Error, address: SocketAddr) -> Failure {
    use mysql_async::{DriverError, Error, IoError};
    match e {
        // 1044/1045: access denied; 1049: unknown database; 1040: too many
        // connections; 1129-1130: the host is not allowed.
        Error::Server(s) if matches!(s.code, 1040 | 1044 | 1045 | 1049 | 1129 | 1130) => {
            failed(Stage::Login, format!("{} ({})", s.message, s.code))
        }
        Error::Server(s) => failed(Stage::Query, format!("{} ({})", s.message, s.code)),
        Error::Driver(DriverError::NoClientSslFlagFromServer) => failed(
            Stage::Tls,
            format!("{address} does not offer TLS: the probe never logs in unencrypted"),
        ),
        Error::Io(IoError::Tls(t)) => failed(Stage::Tls, format!("TLS with {address}: {t}")),
        other => match tls_cause(other) {
            Some(cause) => failed(Stage::Tls, format!("TLS with {address}: {cause}")),
            None => failed(Stage::Network, format!("{address}: {other}")),
        },
    }
}

/// One system variable, `None` where the server does not have it.
async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>, mysql_async::Error> {
    match conn
        .query_first::<Option<String>, _>(format!("SELECT @@{name}"))
        .await
    {
        Ok(v) => Ok(v.flatten()),
        // 1193: unknown system variable.
        Err(mysql_async::Error::Server(s)) if s.code == 1193 => Ok(None),
        Err(e) => Err(e),
    }
}

fn on(v: &Option<String>) -> bool {
    v.as_deref()
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("ON"))
}

/// Who the server is, whether it takes writes, and (a replica) its lag.
async fn questions(conn: &mut Conn) -> Result<Found, mysql_async::Error> {
    let read_only = variable(conn, "global.read_only").await?;
    let innodb = variable(conn, "innodb_read_only").await?;
    let super_ro = variable(conn, "global.super_read_only").await?;
    let version = variable(conn, "version").await?.unwrap_or_default();
    let identity = match variable(conn, "aurora_server_id").await? {
        Some(id) => id,
        None => format!(
            "{} (server_id {})",
            variable(conn, "hostname").await?.unwrap_or_default(),
            variable(conn, "server_id").await?.unwrap_or_default()
        ),
    };
    let mut because = vec![];
    for (value, name) in [
        (&read_only, "read_only=ON"),
        (&super_ro, "super_read_only=ON"),
        (&innodb, "innodb_read_only=ON"),
    ] {
        if on(value) {
            because.push(name.to_string());
        }
    }
    let lag = lag(conn).await?;
    Ok((
        Server {
            identity,
            version,
            writable: because.is_empty(),
            read_only_because: because,
        },
        lag,
    ))
}

/// The replica status, if the server replicates: the source position read
/// against the one executed, `Seconds_Behind_Source`, the SQL thread.
async fn lag(conn: &mut Conn) -> Result<Option<Lag>, mysql_async::Error> {
    let row: Option<Row> = match conn.query_first("SHOW REPLICA STATUS").await {
        Ok(row) => row,
        // 1064: a server older than the REPLICA keyword (MySQL < 8.0.22).
        Err(mysql_async::Error::Server(s)) if s.code == 1064 => {
            conn.query_first("SHOW SLAVE STATUS").await?
        }
        Err(e) => return Err(e),
    };
    Ok(row.map(|row| replica_lag(&row)))
}

/// A column by the first of its names that the row has (MySQL 8 says
/// `Source`, MariaDB and older MySQL `Master`).
fn column(row: &Row, names: &[&str]) -> Option<String> {
    let columns = row.columns_ref();
    names.iter().find_map(|n| {
        let i = columns.iter().position(|c| c.name_str() == *n)?;
        row.as_ref(i).and_then(|v| match v {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            other => Some(other.as_sql(true).trim_matches('\'').to_string()),
        })
    })
}

fn replica_lag(row: &Row) -> Lag {
    let read_file = column(row, &["Source_Log_File", "Master_Log_File"]);
    let read_pos = column(row, &["Read_Source_Log_Pos", "Read_Master_Log_Pos"]);
    let exec_file = column(row, &["Relay_Source_Log_File", "Relay_Master_Log_File"]);
    let exec_pos = column(row, &["Exec_Source_Log_Pos", "Exec_Master_Log_Pos"]);
    let seconds = column(row, &["Seconds_Behind_Source", "Seconds_Behind_Master"]);
    let sql = column(row, &["Replica_SQL_Running", "Slave_SQL_Running"]);
    let at = |f: &Option<String>, p: &Option<String>| match (f, p) {
        (Some(f), Some(p)) => Some(format!("{f}:{p}")),
        _ => None,
    };
    let position = |p: &Option<String>| p.as_deref().and_then(|p| p.parse::<u64>().ok());
    let same_file = read_file.is_some() && read_file == exec_file;
    let unapplied_bytes = match (same_file, position(&read_pos), position(&exec_pos)) {
        (true, Some(r), Some(e)) => Some(r.saturating_sub(e)),
        _ => None,
    };
    Lag {
        replicating: true,
        received: at(&read_file, &read_pos),
        applied: at(&exec_file, &exec_pos),
        unapplied_bytes,
        unapplied_elsewhere: !same_file && read_file.is_some() && exec_file.is_some(),
        seconds_behind: seconds.and_then(|s| s.parse().ok()),
        applier_stopped: sql.is_some_and(|s| !s.eq_ignore_ascii_case("Yes")),
    }
}
