//! The real database servers of the writer probe's tests, started by
//! `scripts/databases.sh` (PostgreSQL 15 and MariaDB 10.11, each a primary
//! and a streaming replica on loopback addresses of their own, TLS on), and
//! what the tests know of them.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::workspace_root;

pub const PG_PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
pub const PG_REPLICA: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 12);
pub const PG_PORT: u16 = 15432;
pub const MY_PRIMARY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
pub const MY_REPLICA: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 22);
pub const MY_PORT: u16 = 13306;
/// The probe's login on every server.
pub const PROBER: (&str, &str) = ("prober", "probe-secret");
/// The tests' own login (writes, pausing replication).
pub const ADMIN: (&str, &str) = ("ballast", "ballast-admin");

/// The servers' directory, once they are up (started on first use; the
/// script is idempotent and locked, so every test process may ask).
pub fn databases() -> &'static PathBuf {
    try_databases().unwrap_or_else(|e| panic!("{e}"))
}

/// [`databases`], or why the servers could not be started (the demo goes
/// on without them).
pub fn try_databases() -> Result<&'static PathBuf, String> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace_root().join("target/databases");
        let status = std::process::Command::new("bash")
            .arg(workspace_root().join("scripts/databases.sh"))
            .env("BALLAST_DB_DIR", &dir)
            .status()
            .map_err(|e| format!("bash scripts/databases.sh: {e}"))?;
        if status.success() {
            Ok(dir)
        } else {
            Err(format!("scripts/databases.sh failed: {status}"))
        }
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The CA that signed the servers' certificate (PEM).
pub fn ca_bundle() -> String {
    databases().join("tls/ca.pem").display().to_string()
}

/// A CA that signed nothing here.
pub fn other_ca_bundle() -> String {
    databases().join("tls/other-ca.pem").display().to_string()
}

/// Runs `sql` on a PostgreSQL server as the tests' own login.
pub fn psql(server: Ipv4Addr, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .arg(format!(
            "host={server} port={PG_PORT} user={} dbname=postgres sslmode=require",
            ADMIN.0
        ))
        .args(["-Atc", sql])
        .env("PGPASSWORD", ADMIN.1)
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs `sql` on a MariaDB server as the tests' own login.
pub fn mariadb(server: Ipv4Addr, sql: &str) -> String {
    let out = std::process::Command::new("mariadb")
        .args(["--no-defaults", "--ssl", "-N", "-s"])
        .arg(format!("-h{server}"))
        .arg(format!("-P{MY_PORT}"))
        .arg(format!("-u{}", ADMIN.0))
        .arg(format!("-p{}", ADMIN.1))
        .args(["-e", sql])
        .output()
        .expect("mariadb runs");
    assert!(
        out.status.success(),
        "mariadb {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A field of the MariaDB replica's `SHOW REPLICA STATUS`.
pub fn replica_status(field: &str) -> String {
    let out = std::process::Command::new("mariadb")
        .args(["--no-defaults", "--ssl", "-h127.0.0.22"])
        .arg(format!("-P{MY_PORT}"))
        .arg(format!("-u{}", ADMIN.0))
        .arg(format!("-p{}", ADMIN.1))
        .args(["-e", "SHOW REPLICA STATUS\\G"])
        .output()
        .expect("mariadb runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix(&format!("{field}: "))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The MariaDB replica's turn: test processes run in parallel and share
/// the servers, so a test that changes the replica (stops its applier,
/// promotes it) holds this exclusively, and a test that relies on it being
/// a read-only, replicating replica holds it shared. A lock on a file
/// beside the servers, released when dropped or when the process dies.
pub fn mariadb_replica_lock() -> std::fs::File {
    let file = replica_lock_file();
    file.lock().expect("the MariaDB replica's lock");
    file
}

/// [`mariadb_replica_lock`], shared: the replica stays as it is meanwhile.
pub fn mariadb_replica_as_is() -> std::fs::File {
    let file = replica_lock_file();
    file.lock_shared()
        .expect("the MariaDB replica's lock, shared");
    file
}

fn replica_lock_file() -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(databases().join("mariadb-replica.lock"))
        .expect("the lock file")
}

/// The test harness's bridge from the emulator to the local servers: what
/// RDS does to the server when it promotes a MariaDB read replica — stop
/// replication, and (unless the parameter group keeps it on, `read_only`)
/// take writes. Undone when dropped: `read_only` on, replication started
/// again from where it stopped (the test writes nothing to it meanwhile).
/// The caller holds [`mariadb_replica_lock`].
pub struct Promoted;

impl Promoted {
    pub fn apply(read_only: bool) -> Promoted {
        mariadb(MY_REPLICA, "STOP REPLICA");
        if !read_only {
            mariadb(MY_REPLICA, "SET GLOBAL read_only = OFF");
        }
        Promoted
    }

    /// The fix for a promoted server that still refuses writes, as the
    /// parameter group's `read_only=0` applies it.
    pub fn take_writes(&self) {
        mariadb(MY_REPLICA, "SET GLOBAL read_only = OFF");
    }
}

impl Drop for Promoted {
    fn drop(&mut self) {
        mariadb(MY_REPLICA, "SET GLOBAL read_only = ON");
        mariadb(MY_REPLICA, "START REPLICA");
    }
}

/// Runs `undo` when dropped: a test that pauses replication resumes it
/// even when it fails.
pub struct Undo(pub Box<dyn Fn()>);

impl Drop for Undo {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Waits (bounded: 10 s) for `check`, which asks a server.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}
