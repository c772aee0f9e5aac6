//! The writer probe against real servers (`scripts/databases.sh`:
//! PostgreSQL 15 and MariaDB 10.11, each a primary and a streaming replica,
//! TLS on) through a real DNS server: the application's name, its CNAME
//! chain and addresses, the server reached and whether it takes writes, a
//! standby's unapplied data, and every failure at its stage.

use std::net::Ipv4Addr;
use std::time::Duration;

use ballast::probe::{CaBundle, Limits, Login, Probe, Resolver, Target};
use ballast::proof::{Engine, Proof, Stage, Tls};
use ballast_tests::dns::{Answer, DnsServer};
use ballast_tests::servers::*;

const NAME: &str = "db.app.ballast.test";

/// A DNS server where the application's name is a CNAME to `endpoint`,
/// which resolves to `address`.
async fn dns(endpoint: &str, address: Ipv4Addr) -> DnsServer {
    let dns = DnsServer::start().await;
    dns.set(NAME, Answer::Cname(endpoint.into()));
    dns.set(endpoint, Answer::A(vec![address]));
    dns
}

fn probe(dns: &DnsServer, ca: Option<String>) -> Probe {
    Probe {
        resolver: Resolver::At(dns.addr),
        ca: ca.map(|path| CaBundle::read(&path).expect("the CA bundle")),
        limits: Limits {
            resolve: Duration::from_millis(500),
            connect: Duration::from_millis(1500),
            query: Duration::from_millis(1500),
        },
    }
}

fn prober() -> Login {
    Login {
        user: PROBER.0.into(),
        password: PROBER.1.into(),
        database: None,
    }
}

fn target(engine: Engine) -> Target {
    Target {
        name: NAME.into(),
        port: match engine {
            Engine::Postgres => PG_PORT,
            Engine::Mysql => MY_PORT,
        },
        engine,
    }
}

async fn prove(endpoint: &str, address: Ipv4Addr, engine: Engine) -> Proof {
    databases();
    let dns = dns(endpoint, address).await;
    probe(&dns, Some(ca_bundle()))
        .probe(&target(engine), &prober())
        .await
}

#[tokio::test]
async fn the_postgres_writer_is_proven_through_the_applications_name() {
    let proof = prove("pg-1.rds.ballast.test", PG_PRIMARY, Engine::Postgres).await;
    assert!(proof.proves_writer(), "{}", proof.describe());
    assert_eq!(proof.chain, ["pg-1.rds.ballast.test"]);
    assert_eq!(proof.addresses, ["127.0.0.11"]);
    assert_eq!(
        proof.tls,
        Some(Tls::Verified {
            verified_for: "pg-1.rds.ballast.test".into()
        })
    );
    let server = proof.server.as_ref().unwrap();
    assert_eq!(server.identity, "127.0.0.11:15432");
    assert!(server.version.starts_with("PostgreSQL 15"), "{server:?}");
    assert_eq!(proof.lag, None, "a primary has no replication lag");
    println!("{}", proof.describe());
}

#[tokio::test]
async fn a_name_on_the_postgres_standby_reaches_a_read_only_server() {
    let proof = prove("pg-2.rds.ballast.test", PG_REPLICA, Engine::Postgres).await;
    assert!(!proof.proves_writer(), "{}", proof.describe());
    assert_eq!(proof.failure, None);
    let server = proof.server.as_ref().unwrap();
    assert_eq!(server.identity, "127.0.0.12:15432");
    assert!(server
        .read_only_because
        .iter()
        .any(|r| r.contains("in recovery")));
    let lag = proof.lag.as_ref().expect("a standby's lag");
    assert!(
        lag.replicating && lag.received.is_some() && lag.applied.is_some(),
        "{lag:?}"
    );
    assert!(
        proof.describe().contains("read-only (in recovery"),
        "{}",
        proof.describe()
    );
}

#[tokio::test]
async fn the_mariadb_writer_is_proven_and_its_replica_is_read_only() {
    let primary = prove("my-1.rds.ballast.test", MY_PRIMARY, Engine::Mysql).await;
    assert!(primary.proves_writer(), "{}", primary.describe());
    let server = primary.server.as_ref().unwrap();
    assert!(server.identity.ends_with("(server_id 1)"), "{server:?}");
    assert!(server.version.contains("MariaDB"), "{server:?}");
    assert_eq!(primary.lag, None);

    let replica = prove("my-2.rds.ballast.test", MY_REPLICA, Engine::Mysql).await;
    assert!(!replica.proves_writer(), "{}", replica.describe());
    let server = replica.server.as_ref().unwrap();
    assert!(server.identity.ends_with("(server_id 2)"), "{server:?}");
    assert_eq!(server.read_only_because, ["read_only=ON"]);
    let lag = replica.lag.as_ref().expect("a replica's status");
    // (Its applier may be stopped: another test pauses it.)
    assert!(lag.replicating && lag.received.is_some(), "{lag:?}");
    assert_eq!(
        replica.tls,
        Some(Tls::Verified {
            verified_for: "my-2.rds.ballast.test".into()
        })
    );
}

/// Polls `check` for up to 10 s.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}

#[tokio::test]
async fn a_postgres_standby_that_has_not_replayed_what_it_received_shows_the_gap() {
    databases();
    psql(PG_REPLICA, "SELECT pg_wal_replay_pause()");
    let resume = Undo(Box::new(|| {
        psql(PG_REPLICA, "SELECT pg_wal_replay_resume()");
    }));
    psql(
        PG_PRIMARY,
        "INSERT INTO writes (note) SELECT 'unreplayed' FROM generate_series(1, 200)",
    );
    eventually("the standby received more than it replayed", || {
        psql(
            PG_REPLICA,
            "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) > 0",
        ) == "t"
    })
    .await;
    let behind = prove("pg-2.rds.ballast.test", PG_REPLICA, Engine::Postgres).await;
    drop(resume);
    let lag = behind.lag.clone().expect("the standby's lag");
    assert!(lag.behind() && lag.applier_stopped, "{lag:?}");
    assert!(
        lag.unapplied_bytes.unwrap() > 0 && lag.received != lag.applied,
        "{lag:?}"
    );

    eventually("the standby caught up", || {
        psql(
            PG_REPLICA,
            "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) = 0",
        ) == "t"
    })
    .await;
    let caught_up = prove("pg-2.rds.ballast.test", PG_REPLICA, Engine::Postgres).await;
    let lag = caught_up.lag.expect("the standby's lag");
    assert!(!lag.behind() && !lag.applier_stopped, "{lag:?}");
}

#[tokio::test]
async fn a_mariadb_replica_that_has_not_applied_what_it_received_shows_the_gap() {
    databases();
    mariadb(MY_REPLICA, "STOP REPLICA SQL_THREAD");
    let resume = Undo(Box::new(|| {
        mariadb(MY_REPLICA, "START REPLICA SQL_THREAD");
    }));
    mariadb(
        MY_PRIMARY,
        "INSERT INTO app.writes (note) VALUES ('unapplied'), ('unapplied')",
    );
    eventually("the replica received the writes", || {
        replica_status("Read_Master_Log_Pos") != replica_status("Exec_Master_Log_Pos")
    })
    .await;
    let behind = prove("my-2.rds.ballast.test", MY_REPLICA, Engine::Mysql).await;
    drop(resume);
    let lag = behind.lag.clone().expect("the replica's status");
    assert!(lag.behind() && lag.applier_stopped, "{lag:?}");
    assert_eq!(
        lag.seconds_behind, None,
        "the SQL thread is stopped: {lag:?}"
    );
    assert!(lag.unapplied_bytes.unwrap() > 0, "{lag:?}");
}

#[tokio::test]
async fn each_failure_names_its_stage() {
    databases();
    let dns = dns("pg-1.rds.ballast.test", PG_PRIMARY).await;
    let with_ca = probe(&dns, Some(ca_bundle()));

    // DNS: a name that does not exist.
    let mut missing = target(Engine::Postgres);
    missing.name = "nothing.app.ballast.test".into();
    let p = with_ca.probe(&missing, &prober()).await;
    assert_eq!(
        p.failure.as_ref().unwrap().stage,
        Stage::Dns,
        "{}",
        p.describe()
    );

    // The network: a closed port (refused).
    let mut closed = target(Engine::Postgres);
    closed.port = 15499;
    let p = with_ca.probe(&closed, &prober()).await;
    let f = p.failure.as_ref().unwrap();
    assert_eq!(f.stage, Stage::Network, "{}", p.describe());
    assert!(f.message.contains("refused"), "{f:?}");

    // The network: a server that accepts and never answers (hung).
    let hung = tokio::net::TcpListener::bind("127.0.0.31:0").await.unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    dns.set(
        "hung.rds.ballast.test",
        Answer::A(vec![Ipv4Addr::new(127, 0, 0, 31)]),
    );
    dns.set(NAME, Answer::Cname("hung.rds.ballast.test".into()));
    for engine in [Engine::Postgres, Engine::Mysql] {
        let t = Target {
            port: hung_port,
            ..target(engine)
        };
        let started = std::time::Instant::now();
        let p = with_ca.probe(&t, &prober()).await;
        let f = p.failure.as_ref().unwrap();
        assert_eq!(f.stage, Stage::Network, "{engine:?}: {}", p.describe());
        assert!(
            f.message.contains("did not complete the handshake"),
            "{f:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "bounded in time"
        );
    }
    held.abort();

    // The login: a wrong password, on both engines.
    for (endpoint, address, engine) in [
        ("pg-1.rds.ballast.test", PG_PRIMARY, Engine::Postgres),
        ("my-1.rds.ballast.test", MY_PRIMARY, Engine::Mysql),
    ] {
        dns.set(NAME, Answer::Cname(endpoint.into()));
        dns.set(endpoint, Answer::A(vec![address]));
        let wrong = Login {
            password: "not-the-password".into(),
            ..prober()
        };
        let p = with_ca.probe(&target(engine), &wrong).await;
        let f = p.failure.as_ref().unwrap();
        assert_eq!(f.stage, Stage::Login, "{engine:?}: {}", p.describe());
        let text = serde_json::to_string(&p).unwrap() + &p.describe() + &format!("{wrong:?}");
        assert!(
            !text.contains("not-the-password"),
            "the password leaked: {text}"
        );

        // TLS: a CA bundle that did not sign the server's certificate.
        let p = probe(&dns, Some(other_ca_bundle()))
            .probe(&target(engine), &prober())
            .await;
        assert_eq!(
            p.failure.as_ref().unwrap().stage,
            Stage::Tls,
            "{engine:?}: {}",
            p.describe()
        );

        // TLS: a certificate that does not name the endpoint.
        dns.set(NAME, Answer::Cname("db.elsewhere.test".into()));
        dns.set("db.elsewhere.test", Answer::A(vec![address]));
        let p = with_ca.probe(&target(engine), &prober()).await;
        assert_eq!(
            p.failure.as_ref().unwrap().stage,
            Stage::Tls,
            "{engine:?}: {}",
            p.describe()
        );

        // Without a bundle: encrypted, and the proof says it is not verified.
        let p = probe(&dns, None).probe(&target(engine), &prober()).await;
        assert!(p.proves_writer(), "{engine:?}: {}", p.describe());
        assert_eq!(p.tls, Some(Tls::EncryptedOnly));
        assert!(p.describe().contains("NOT verified"));
    }
}

#[tokio::test]
async fn the_probes_password_is_in_no_proof_and_no_log_line() {
    let proofs = [
        prove("pg-1.rds.ballast.test", PG_PRIMARY, Engine::Postgres).await,
        prove("my-2.rds.ballast.test", MY_REPLICA, Engine::Mysql).await,
    ];
    for p in proofs {
        let text = serde_json::to_string(&p).unwrap() + &p.describe();
        assert!(!text.contains(PROBER.1), "{text}");
    }
    assert!(!format!("{:?}", prober()).contains(PROBER.1));
}
