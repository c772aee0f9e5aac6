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
    let _as_is = mariadb_replica_as_is();
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
    let _turn = mariadb_replica_lock();
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

mod release_binary {
    use super::*;
    use ballast_tests::function_binary;
    use ballast_tests::host::{Answer as Reply, RuntimeHost};
    use ballast_tests::moto::Moto;

    const FUNCTION: &str = "writer-probe";

    async fn secret(moto: &Moto, name: &str, value: serde_json::Value) -> String {
        let client = aws_sdk_secretsmanager::Client::new(&moto.sdk_config());
        client
            .create_secret()
            .name(name)
            .secret_string(value.to_string())
            .send()
            .await
            .expect("moto creates the secret")
            .arn()
            .expect("its ARN")
            .to_string()
    }

    /// The release binary under the Runtime API host, its secrets in
    /// moto's Secrets Manager, its resolver the tests' DNS server: the
    /// writer proven, a stale name found read-only, a missing secret and a
    /// bad request answered plainly, the password in no log line.
    #[tokio::test]
    async fn the_release_binary_proves_the_writer_with_the_secrets_login() {
        databases();
        let _as_is = mariadb_replica_as_is();
        let moto = Moto::start();
        // The RDS-managed master secret's shape: username and password.
        let pg = secret(
            &moto,
            "rds!db-orders",
            serde_json::json!({"username": PROBER.0, "password": PROBER.1}),
        )
        .await;
        let my = secret(
            &moto,
            "rds!db-shop",
            serde_json::json!({"username": PROBER.0, "password": PROBER.1, "engine": "mariadb"}),
        )
        .await;
        let dns = dns("pg-1.rds.ballast.test", PG_PRIMARY).await;
        dns.set("my-2.rds.ballast.test", Answer::A(vec![MY_REPLICA]));
        dns.set(
            "shop.app.ballast.test",
            Answer::Cname("my-2.rds.ballast.test".into()),
        );
        let host = RuntimeHost::start(FUNCTION, Duration::from_secs(30)).await;
        let mut env = moto.env();
        env.push(("BALLAST_PROBE_RESOLVER".into(), dns.addr.to_string()));
        env.push(("BALLAST_PROBE_CA_BUNDLE".into(), ca_bundle()));
        let spawned = std::time::Instant::now();
        let process = host.spawn(&function_binary(FUNCTION), FUNCTION, &env);

        let ask = |name: &str, port: u16, engine: &str, secret: &str| serde_json::json!({"name": name, "port": port, "engine": engine, "credentials": {"secret": secret}});
        let proof = |reply: Reply| match reply {
            Reply::Response(v) => serde_json::from_value::<Proof>(v).expect("a proof"),
            Reply::Error(e) => panic!("the probe failed: {e}"),
        };

        let p = proof(
            host.invoke(ask(NAME, PG_PORT, "postgres", &pg))
                .await
                .unwrap(),
        );
        assert!(p.proves_writer(), "{}", p.describe());
        assert_eq!(p.server.as_ref().unwrap().identity, "127.0.0.11:15432");
        // Figures, not assertions (BENCHMARKS.md has the measured ones).
        if let Some(ready) = host.first_next() {
            println!("writer-probe init: {} ms", (ready - spawned).as_millis());
        }
        for (engine, port, secret, name) in [
            ("postgres", PG_PORT, &pg, NAME),
            ("mysql", MY_PORT, &my, "shop.app.ballast.test"),
        ] {
            let started = std::time::Instant::now();
            let p = proof(host.invoke(ask(name, port, engine, secret)).await.unwrap());
            println!(
                "writer-probe {engine}: {} ms end to end; {}",
                started.elapsed().as_millis(),
                p.describe()
            );
        }

        // A name left on a read-only server: reached, and said so.
        let p = proof(
            host.invoke(ask("shop.app.ballast.test", MY_PORT, "mysql", &my))
                .await
                .unwrap(),
        );
        assert!(!p.proves_writer(), "{}", p.describe());
        assert_eq!(
            p.server.as_ref().unwrap().read_only_because,
            ["read_only=ON"]
        );

        // A secret that does not exist: the login stage, naming it.
        let p = proof(
            host.invoke(ask(NAME, PG_PORT, "postgres", "rds!db-gone"))
                .await
                .unwrap(),
        );
        let f = p.failure.expect("no login");
        assert_eq!(f.stage, Stage::Login);
        assert!(f.message.contains("rds!db-gone"), "{f:?}");

        // A bad request: a Lambda error that says what is wrong.
        match host
            .invoke(serde_json::json!({"name": "db"}))
            .await
            .unwrap()
        {
            Reply::Error(e) => assert!(e.to_string().contains("not a writer-probe request"), "{e}"),
            Reply::Response(v) => panic!("answered a bad request: {v}"),
        }

        let logs = process.logs().join("\n");
        assert!(logs.contains("probed"), "{logs}");
        assert!(
            !logs.contains(PROBER.1),
            "the password is in a log line: {logs}"
        );
        assert!(host.init_error().is_none());
    }

    /// Bad configuration fails at init, naming the variable.
    #[tokio::test]
    async fn bad_configuration_fails_at_init_naming_the_variable() {
        let host = RuntimeHost::start(FUNCTION, Duration::from_secs(30)).await;
        for (variable, value) in [
            ("BALLAST_PROBE_RESOLVER", "dns.example.com"),
            ("BALLAST_PROBE_CA_BUNDLE", "/nonexistent/ca.pem"),
        ] {
            let env = vec![
                ("AWS_REGION".to_string(), "us-east-1".to_string()),
                (variable.to_string(), value.to_string()),
            ];
            let logs = host
                .init_fails(&function_binary(FUNCTION), FUNCTION, &env)
                .await;
            assert!(logs.contains(variable) && logs.contains(value), "{logs}");
        }
        assert!(host.first_next().is_none());
    }
}
