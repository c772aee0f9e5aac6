//! What the writer probe proves, as data: the application's name, the
//! addresses it resolved to, the server it reached and whether that server
//! takes writes, with timings — or the stage at which the proof failed.
//! Pure: the probe (`probe`, feature `probe`) fills it in; `rds-failover`
//! reads it as evidence.

use serde::{Deserialize, Serialize};

/// The engine family, as the SQL it is asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// MySQL, MariaDB, Aurora MySQL.
    Mysql,
    /// PostgreSQL, Aurora PostgreSQL.
    Postgres,
}

/// How the probe logs in, as a request names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Credentials {
    /// A Secrets Manager secret (ARN or name) holding `username` and
    /// `password` (the RDS-managed master secret's format; `dbname`, when
    /// the secret has one, is the database).
    Secret(String),
    /// IAM database authentication: a token the probe signs with its own
    /// role for the endpoint the name leads to, as this database user.
    Iam { user: String },
}

/// What `rds-failover` asks the writer probe (the function's payload):
/// `{"name": "db.internal.example.com", "port": 5432, "engine": "postgres",
/// "credentials": {"secret": "arn:aws:secretsmanager:..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Request {
    /// The application's name (the `ballast:dns-record` CNAME) or an
    /// endpoint.
    pub name: String,
    pub port: u16,
    pub engine: Engine,
    pub credentials: Credentials,
    /// The database to connect to (PostgreSQL; `postgres` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

impl Request {
    /// The request in a payload, or what is wrong with it.
    pub fn parse(payload: &serde_json::Value) -> Result<Request, String> {
        let request: Request = serde_json::from_value(payload.clone()).map_err(|e| {
            format!(
                "not a writer-probe request ({e}); expected {{\"name\": \"db.internal.example.com\", \"port\": 5432, \"engine\": \"postgres\"|\"mysql\", \"credentials\": {{\"secret\": \"<secret ARN or name>\"}} or {{\"iam\": {{\"user\": \"<database user>\"}}}}}}"
            )
        })?;
        let name = request.name.trim_end_matches('.');
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !valid {
            return Err(format!("name {:?} is not a DNS name", request.name));
        }
        if request.port == 0 {
            return Err("port 0 is not a port".into());
        }
        Ok(request)
    }
}

/// Where the proof stopped, for an operator to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The name did not resolve (no record, no answer from the resolver).
    Dns,
    /// No TCP connection to the address: a security group, a route, a
    /// server that is down (refused or unanswered).
    Network,
    /// The TLS handshake failed (the certificate does not verify, or the
    /// server does not offer TLS).
    Tls,
    /// The server refused the login (user, password, IAM token).
    Login,
    /// Connected and logged in, but the server did not answer the probe's
    /// questions in time, or answered with an error.
    Query,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Dns => "dns",
            Stage::Network => "network",
            Stage::Tls => "tls",
            Stage::Login => "login",
            Stage::Query => "query",
        }
    }
}

/// How the connection was protected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum Tls {
    /// The certificate chains to the operator's CA bundle and names
    /// `verified_for` (the endpoint the application's name leads to).
    Verified { verified_for: String },
    /// Encrypted, but not verified: no CA bundle was given. Says so in
    /// every report.
    EncryptedOnly,
}

/// The server the name reached, in its own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Server {
    /// Who it says it is: `@@aurora_server_id` or `@@hostname` (MySQL
    /// family), `aurora_db_instance_identifier()` or `inet_server_addr()`
    /// (PostgreSQL).
    pub identity: String,
    pub version: String,
    /// It takes writes: not read-only and not a standby.
    pub writable: bool,
    /// Why it does not, in the engine's terms (`read_only=ON`,
    /// `innodb_read_only=ON`, `in recovery`, `transaction_read_only=on`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_because: Vec<String>,
}

/// How far a standby is behind what it has received (data not yet
/// applied is lost by a promotion). Each figure is what the engine gives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Lag {
    /// It replicates at all (a replica status row, or `in recovery`).
    pub replicating: bool,
    /// The position received from the source (MySQL: `<file>:<pos>` read;
    /// PostgreSQL: `pg_last_wal_receive_lsn()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    /// The position applied (MySQL: `<file>:<pos>` executed; PostgreSQL:
    /// `pg_last_wal_replay_lsn()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    /// Bytes received and not yet applied, when the engine can tell
    /// (PostgreSQL always; MySQL within one binary log file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unapplied_bytes: Option<u64>,
    /// Received but not applied in another binary log file: an amount the
    /// engine cannot give in bytes (MySQL family).
    #[serde(default)]
    pub unapplied_elsewhere: bool,
    /// `Seconds_Behind_Source` (MySQL family; `None` when the SQL thread is
    /// stopped), or the age of the last replayed transaction (PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_behind: Option<f64>,
    /// The applier is stopped (MySQL `Replica_SQL_Running=No`, PostgreSQL
    /// replay paused).
    #[serde(default)]
    pub applier_stopped: bool,
}

impl Lag {
    /// Received data not yet applied: what a promotion now would lose.
    pub fn behind(&self) -> bool {
        self.unapplied_elsewhere || self.unapplied_bytes.is_some_and(|b| b > 0)
    }
}

/// Why the proof stopped, with the stage an operator fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub stage: Stage,
    /// The cause, without the password or token.
    pub message: String,
}

/// Milliseconds spent at each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Timings {
    pub resolve_ms: u64,
    pub connect_ms: u64,
    pub query_ms: u64,
}

/// One probe's answer: name → addresses → server → writable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proof {
    /// The name probed: the application's (`ballast:dns-record`).
    pub name: String,
    pub port: u16,
    pub engine: Engine,
    /// The CNAME chain the resolver followed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// The addresses the name resolved to; the first was connected to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<Server>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<Lag>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub timings: Timings,
}

impl Proof {
    /// A proof not yet begun.
    pub fn of(name: &str, port: u16, engine: Engine) -> Proof {
        Proof {
            name: name.to_string(),
            port,
            engine,
            chain: vec![],
            addresses: vec![],
            tls: None,
            server: None,
            lag: None,
            failure: None,
            timings: Timings::default(),
        }
    }

    /// The name reached a server that takes writes.
    pub fn proves_writer(&self) -> bool {
        self.failure.is_none() && self.server.as_ref().is_some_and(|s| s.writable)
    }

    /// The endpoint the name leads to: the last RDS endpoint of its CNAME
    /// chain (a name with an `rds` label: an Aurora cluster endpoint leads
    /// on to an instance endpoint, and a public instance endpoint on to an
    /// EC2 host name its certificate does not carry), else the chain's last
    /// name, else the name itself.
    pub fn endpoint(&self) -> &str {
        self.chain
            .iter()
            .rev()
            .find(|hop| hop.split('.').any(|label| label == "rds"))
            .or(self.chain.last())
            .map_or(self.name.as_str(), String::as_str)
    }

    /// One line for a report: `db.example.com → orders.xyz.rds.amazonaws.com
    /// → 10.0.1.5 → orders-1 writable (verified TLS, 3+12+2 ms)`.
    pub fn describe(&self) -> String {
        let mut hops = vec![self.name.clone()];
        hops.extend(self.chain.iter().cloned());
        if !self.addresses.is_empty() {
            hops.push(self.addresses.join(","));
        }
        let reached = match (&self.failure, &self.server) {
            (Some(f), _) => format!("failed at {}: {}", f.stage.as_str(), f.message),
            (None, Some(s)) if s.writable => format!("{} writable", s.identity),
            (None, Some(s)) => format!(
                "{} read-only ({})",
                s.identity,
                s.read_only_because.join(", ")
            ),
            (None, None) => "no answer".into(),
        };
        hops.push(reached);
        let tls = match &self.tls {
            Some(Tls::Verified { .. }) => "verified TLS",
            Some(Tls::EncryptedOnly) => "TLS encrypted, NOT verified",
            None => "no TLS",
        };
        let t = self.timings;
        format!(
            "{} ({tls}, {}+{}+{} ms)",
            hops.join(" → "),
            t.resolve_ms,
            t.connect_ms,
            t.query_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_says_each_hop_and_whether_tls_was_verified() {
        let mut p = Proof::of("db.example.com", 5432, Engine::Postgres);
        p.chain = vec!["orders.abc.us-east-1.rds.amazonaws.com".into()];
        p.addresses = vec!["10.0.1.5".into()];
        p.tls = Some(Tls::EncryptedOnly);
        p.server = Some(Server {
            identity: "10.0.1.5".into(),
            version: "PostgreSQL 15".into(),
            writable: false,
            read_only_because: vec!["in recovery".into()],
        });
        let line = p.describe();
        assert!(
            line.starts_with("db.example.com → orders.abc.us-east-1.rds.amazonaws.com → 10.0.1.5 → 10.0.1.5 read-only (in recovery)"),
            "{line}"
        );
        assert!(line.contains("NOT verified"), "{line}");
        assert!(!p.proves_writer());
        assert_eq!(p.endpoint(), "orders.abc.us-east-1.rds.amazonaws.com");
        // An Aurora cluster endpoint leads on to an instance endpoint, a
        // public instance on to an EC2 name: the last RDS endpoint it is.
        p.chain = vec![
            "orders.cluster-abc.us-east-1.rds.amazonaws.com".into(),
            "orders-1.abc.us-east-1.rds.amazonaws.com".into(),
            "ec2-3-5-7-9.compute-1.amazonaws.com".into(),
        ];
        assert_eq!(p.endpoint(), "orders-1.abc.us-east-1.rds.amazonaws.com");
        p.chain = vec!["db.other.example.com".into()];
        assert_eq!(p.endpoint(), "db.other.example.com");
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["tls"]["mode"], "encryptedOnly");
        let back: Proof = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_request_is_read_whole_or_refused_with_what_is_wrong() {
        let ok = serde_json::json!({
            "name": "db.internal.example.com", "port": 5432, "engine": "postgres",
            "credentials": {"secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1"}
        });
        let r = Request::parse(&ok).unwrap();
        assert_eq!((r.engine, r.port), (Engine::Postgres, 5432));
        for (bad, says) in [
            (
                serde_json::json!({"name": "x"}),
                "not a writer-probe request",
            ),
            (
                serde_json::json!({"name": "bad name!", "port": 1, "engine": "mysql", "credentials": {"secret": "s"}}),
                "not a DNS name",
            ),
            (
                serde_json::json!({"name": "a.b", "port": 0, "engine": "mysql", "credentials": {"secret": "s"}}),
                "port 0",
            ),
            (
                serde_json::json!({"name": "a.b", "port": 1, "engine": "oracle", "credentials": {"secret": "s"}}),
                "not a writer-probe request",
            ),
            (
                serde_json::json!({"name": "a.b", "port": 1, "engine": "mysql", "credentials": {"secret": "s"}, "password": "x"}),
                "unknown field",
            ),
        ] {
            let e = Request::parse(&bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn lag_counts_only_what_was_received_and_not_applied() {
        let mut lag = Lag {
            replicating: true,
            unapplied_bytes: Some(0),
            ..Lag::default()
        };
        assert!(!lag.behind());
        lag.unapplied_bytes = Some(1);
        assert!(lag.behind());
        lag.unapplied_bytes = None;
        lag.unapplied_elsewhere = true;
        assert!(lag.behind());
    }
}
