//! The writer proof end to end, through the release binaries: `rds-failover`
//! under the Runtime API host, against moto's RDS, Route 53 and SNS,
//! invoking the `writer-probe` binary (its own host serves Lambda's Invoke,
//! which moto runs only in Docker) with its login in moto's Secrets
//! Manager; the probe resolves through the tests' DNS server, which serves
//! moto's Route 53 records and answers each emulated RDS endpoint with the
//! local MariaDB server that plays it (`scripts/databases.sh`: a primary
//! at 127.0.0.21, a read-only replica at 127.0.0.22).

use ballast::report::{ActionStatus, Outcome, Severity};
use ballast::Report;
use ballast_tests::databases::{Databases, CLUSTER, MULTI_AZ, PRIMARY, REPLICA};
use ballast_tests::dns::sync_from_route53;
use ballast_tests::moto::Moto;
use ballast_tests::proving::{opt_in, secret, Rig};
use ballast_tests::servers::*;
use ballast_tests::stack::Stack;
use serde_json::json;

const WRONG_PASSWORD: &str = "not-the-probe-secret";

/// The emulator with the seed stack and databases, and the rig.
struct Proving {
    _moto: Moto,
    stack: Stack,
    dbs: Databases,
    rig: Rig,
}

impl Proving {
    async fn start() -> Proving {
        databases();
        let moto = Moto::start();
        let stack = Stack::seed(&moto.sdk_config()).await;
        let dbs = Databases::seed(&moto.sdk_config()).await;
        secret(&moto, "orders/prober", PROBER.1).await;
        secret(&moto, "orders/stale-prober", WRONG_PASSWORD).await;
        let rig = Rig::start(&moto, &stack.topic_arn, &dbs).await;
        Proving {
            _moto: moto,
            stack,
            dbs,
            rig,
        }
    }

    async fn opt_in(&self, arn: &str, value: &str) {
        opt_in(&self.dbs, arn, value).await;
    }

    /// Opts the DB instance `id` in with `value`.
    async fn opt_in_instance(&self, id: &str, value: &str) {
        let arn = self
            .dbs
            .instance(id)
            .await
            .db_instance_arn()
            .unwrap()
            .to_string();
        self.opt_in(&arn, value).await;
    }

    /// Route 53's records reach the resolver.
    async fn propagate(&self) {
        self.rig.propagate(&self.dbs).await;
    }

    /// One invocation of rds-failover: its report — the answer, or, when
    /// it asked Lambda to retry, the one it published (none for a quiet
    /// retry) — and the Lambda error, if any.
    async fn invoke(&self, db: &str) -> (Option<Report>, Option<String>) {
        match self.rig.invoke(json!({"dbIdentifier": db})).await {
            Ok(report) => (Some(report), None),
            Err(e) => {
                let published = self.stack.reports().await;
                (published.last().map(|d| d.report.clone()), Some(e))
            }
        }
    }

    /// An invocation answered with its report, no retry.
    async fn settled(&self, db: &str) -> Report {
        match self.invoke(db).await {
            (Some(report), None) => report,
            other => panic!("{db}: {other:#?}"),
        }
    }

    /// An invocation that asked Lambda to retry, having published a report.
    async fn retried(&self, db: &str) -> Report {
        match self.invoke(db).await {
            (Some(report), Some(_)) => report,
            other => panic!("{db}: {other:#?}"),
        }
    }

    fn logs(&self) -> Vec<String> {
        self.rig.logs()
    }
}

fn proof(report: &Report) -> &serde_json::Value {
    &report.evidence["proof"]
}

#[tokio::test]
async fn the_seed_topologies_writers_are_proven_through_their_names() {
    let p = Proving::start().await;
    let _as_is = mariadb_replica_as_is();
    let cluster_arn = p.dbs.cluster().await.db_cluster_arn().unwrap().to_string();
    p.opt_in(&cluster_arn, "secret=orders/prober").await;
    for db in [MULTI_AZ, PRIMARY] {
        p.opt_in_instance(db, "secret=orders/prober").await;
    }
    for db in [CLUSTER, MULTI_AZ, PRIMARY] {
        let started = std::time::Instant::now();
        let report = p.settled(db).await;
        // A figure for BENCHMARKS.md, not an assertion.
        println!(
            "rds-failover {db} with the probe: {} ms end to end",
            started.elapsed().as_millis()
        );
        assert_eq!(report.outcome, Outcome::Noop, "{db}: {report:#?}");
        assert!(
            report
                .summary
                .contains("Proven through the application's name"),
            "{db}: {}",
            report.summary
        );
        let proof = proof(&report);
        assert_eq!(proof["server"]["writable"], true, "{db}: {proof}");
        assert_eq!(proof["tls"]["mode"], "encryptedOnly", "{db}: {proof}");
        assert!(
            report.summary.contains("NOT verified"),
            "{}",
            report.summary
        );
        println!("{db}: {}", report.summary);
    }
}

#[tokio::test]
async fn a_name_left_on_the_read_only_server_is_repointed_and_remediated_only_once_proven() {
    let p = Proving::start().await;
    let _as_is = mariadb_replica_as_is();
    p.opt_in_instance(MULTI_AZ, "secret=orders/prober").await;
    // The application's name still leads to the old, now read-only server.
    let stale = p.dbs.instance_endpoint(REPLICA).await;
    p.dbs.set_record(MULTI_AZ, &stale).await;
    p.propagate().await;

    // Not proven yet: Lambda retries.
    let first = p.retried(MULTI_AZ).await;
    assert_eq!(
        (first.outcome, first.severity),
        (Outcome::Failed, Severity::Warning),
        "{first:#?}"
    );
    assert!(
        first
            .summary
            .contains("Not remediated until the probe proves"),
        "{}",
        first.summary
    );
    assert_eq!(proof(&first)["server"]["writable"], false);
    let kinds: Vec<(&str, ActionStatus)> = first
        .actions
        .iter()
        .map(|a| (a.kind.as_str(), a.status))
        .collect();
    assert_eq!(
        kinds,
        [
            ("tag", ActionStatus::Done),
            ("upsert-cname", ActionStatus::Done)
        ]
    );
    assert!(p.dbs.tags(MULTI_AZ).await.contains_key("ballast:unproven"));

    // Before the change reaches the resolver, a retry is still unproven,
    // and quiet (within the grace).
    let (published, error) = p.invoke(MULTI_AZ).await;
    assert!(published.is_none(), "{published:#?}");
    let error = error.expect("a retry");
    assert!(error.contains("Stale resolver"), "{error}");

    p.propagate().await;
    let proven = p.settled(MULTI_AZ).await;
    assert_eq!(proven.outcome, Outcome::Remediated, "{proven:#?}");
    assert!(
        proven
            .summary
            .contains("Proven through the application's name"),
        "{}",
        proven.summary
    );
    assert_eq!(proof(&proven)["server"]["writable"], true);
    assert!(!p.dbs.tags(MULTI_AZ).await.contains_key("ballast:unproven"));
    let after = p.settled(MULTI_AZ).await;
    assert_eq!(after.outcome, Outcome::Noop, "{after:#?}");
}

#[tokio::test]
async fn a_writer_that_refuses_writes_and_a_refused_login_are_findings_without_credentials() {
    let p = Proving::start().await;
    let _as_is = mariadb_replica_as_is();
    p.opt_in_instance(MULTI_AZ, "secret=orders/prober").await;
    // The API's writer is served by a read-only server (a promoted replica
    // whose parameter group keeps read_only on).
    let endpoint = p.dbs.instance_endpoint(MULTI_AZ).await;
    p.rig
        .dns
        .set(&endpoint, ballast_tests::dns::Answer::A(vec![MY_REPLICA]));
    let report = p.retried(MULTI_AZ).await;
    assert_eq!(report.outcome, Outcome::Failed, "{report:#?}");
    assert!(
        report.summary.contains("The writer refuses writes"),
        "{}",
        report.summary
    );
    let reason = report.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("aws rds modify-db-parameter-group --db-parameter-group-name"),
        "{reason}"
    );
    assert!(
        reason.contains("ParameterName=read_only,ParameterValue=0"),
        "{reason}"
    );

    // A login the server refuses: said at its stage.
    p.opt_in_instance(PRIMARY, "secret=orders/stale-prober")
        .await;
    let login = p.retried(PRIMARY).await;
    assert_eq!(login.outcome, Outcome::Failed, "{login:#?}");
    assert!(
        login.summary.contains("failed at login"),
        "{}",
        login.summary
    );

    // No password in any report or log line.
    let mut texts: Vec<String> = p
        .stack
        .reports()
        .await
        .into_iter()
        .map(|d| d.report.to_json())
        .collect();
    texts.push(report.to_json());
    texts.push(login.to_json());
    texts.extend(p.logs());
    for text in &texts {
        for password in [PROBER.1, WRONG_PASSWORD] {
            assert!(!text.contains(password), "a password in {text}");
        }
    }
}

/// The primary fails while its standby has not applied what it received:
/// the promotion is declined, critical, with the figures; once the standby
/// catches up it is promoted, reported `failed` until proven; the test
/// bridge promotes the local replica as RDS would, but a parameter group
/// keeps `read_only` on: "the writer refuses writes"; the fix applied, the
/// next look proves the writer through the name: `remediated`.
#[tokio::test]
async fn a_failover_waits_for_the_standby_to_catch_up_then_is_proven() {
    let p = Proving::start().await;
    p.opt_in_instance(PRIMARY, "secret=orders/prober").await;
    let turn = mariadb_replica_lock();
    mariadb(MY_REPLICA, "STOP REPLICA SQL_THREAD");
    let resume = Undo(Box::new(|| {
        mariadb(MY_REPLICA, "START REPLICA SQL_THREAD");
    }));
    mariadb(
        MY_PRIMARY,
        "INSERT INTO app.writes (note) VALUES ('written before the failure')",
    );
    eventually("the replica received the write", || {
        replica_status("Read_Master_Log_Pos") != replica_status("Exec_Master_Log_Pos")
    })
    .await;
    p.dbs.stop(PRIMARY).await;

    let declined = p.retried(PRIMARY).await;
    drop(resume);
    assert_eq!(
        (declined.outcome, declined.severity),
        (Outcome::Declined, Severity::Critical),
        "{declined:#?}"
    );
    assert!(
        declined
            .summary
            .contains("has received data it has not applied")
            && declined.summary.contains("bytes unapplied"),
        "{}",
        declined.summary
    );
    assert!(declined.actions.is_empty(), "{:?}", declined.actions);
    assert!(!p.dbs.tags(REPLICA).await.contains_key("ballast:promotion"));
    let lag = &declined.evidence["standbyProof"]["lag"];
    assert!(lag["unappliedBytes"].as_u64().unwrap() > 0, "{lag}");

    eventually("the replica applied what it received", || {
        replica_status("Read_Master_Log_Pos") == replica_status("Exec_Master_Log_Pos")
    })
    .await;
    let promoted = p.retried(PRIMARY).await;
    assert_eq!(promoted.outcome, Outcome::Failed, "{promoted:#?}");
    assert!(
        promoted
            .actions
            .iter()
            .any(|a| a.kind.as_str() == "promote-replica" && a.status == ActionStatus::Done),
        "{promoted:#?}"
    );
    assert!(
        promoted
            .summary
            .contains("Not remediated until the probe proves"),
        "{}",
        promoted.summary
    );
    let replica_tags = p.dbs.tags(REPLICA).await;
    for key in [
        "ballast:dns-record",
        "ballast:writer-probe",
        "ballast:unproven",
    ] {
        assert!(replica_tags.contains_key(key), "{key}: {replica_tags:?}");
    }

    // The bridge: RDS promoted the replica, and the local replica that
    // plays it is promoted the same way — but its parameter group keeps
    // read_only on. Route 53's change reaches the resolver.
    let promoted_server = Promoted::apply(true);
    sync_from_route53(&p.rig.dns, &p.dbs.route53, &p.dbs.zone_id, &[]).await;
    // The promotion's record is there, within its grace: a quiet retry
    // (not published again), the finding in the answer and the fix in the
    // logged decision.
    let (published, error) = p.invoke(REPLICA).await;
    assert!(published.is_none(), "{published:#?}");
    let error = error.expect("a retry");
    assert!(error.contains("The writer refuses writes"), "{error}");
    assert!(
        p.rig
            .failover
            .1
            .logs()
            .iter()
            .any(|l| l.contains("ParameterName=read_only,ParameterValue=0")),
        "the fix is logged"
    );
    // The parameter fixed: the next look proves the writer.
    promoted_server.take_writes();
    let proven = p.settled(REPLICA).await;
    assert_eq!(proven.outcome, Outcome::Remediated, "{proven:#?}");
    assert!(
        proven
            .summary
            .contains("Proven through the application's name"),
        "{}",
        proven.summary
    );
    assert!(!p.dbs.tags(REPLICA).await.contains_key("ballast:unproven"));
    drop(promoted_server);
    drop(turn);
}

/// `ballast doctor` asks the deployed probe about each opted-in database:
/// proven (TLS not verified here: a warning that says so), a refused login
/// failing with its fix — applied, the check no longer fails — and a
/// database whose opt-in cannot be asked.
#[tokio::test]
async fn doctor_probes_each_opted_in_database_and_its_login_fix_fixes() {
    let p = Proving::start().await;
    let _as_is = mariadb_replica_as_is();
    p.opt_in_instance(MULTI_AZ, "secret=orders/prober").await;
    p.opt_in_instance(PRIMARY, "secret=orders/stale-prober")
        .await;
    let cluster_arn = p.dbs.cluster().await.db_cluster_arn().unwrap().to_string();
    p.opt_in(&cluster_arn, "secret=master").await;
    let conf = p._moto.sdk_config();
    let lambda = aws_sdk_lambda::config::Builder::from(&conf)
        .endpoint_url(p.rig.probe.0.lambda_endpoint())
        .build();
    let target = ballast_cli::Target {
        aws: ballast::aws::Aws::new(&conf).with_lambda_endpoint(&p.rig.probe.0.lambda_endpoint()),
        lambda: aws_sdk_lambda::Client::from_conf(lambda),
        logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
    };
    let audit = || async {
        let answer =
            ballast_tests::ballast_command(&target, &["--json", "doctor", "--stack", "ballast"])
                .await;
        let json: serde_json::Value = serde_json::from_str(&answer.stdout).unwrap();
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == "writer-probe")
            .map(|c| (c["subject"].as_str().unwrap().to_string(), c.clone()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = audit().await;
    let says = |db: &str, verdict: &str, field: &str, text: &str| {
        let c = &before[&format!("db/{db}")];
        assert_eq!(c["verdict"], verdict, "{c}");
        assert!(c[field].as_str().unwrap_or_default().contains(text), "{c}");
    };
    says(MULTI_AZ, "warn", "detail", "NOT verified");
    says(PRIMARY, "fail", "detail", "failed at login");
    says(PRIMARY, "fail", "fix", "secret");
    says(CLUSTER, "fail", "detail", "ManageMasterUserPassword");

    // The login fix: the secret holds the current password.
    aws_sdk_secretsmanager::Client::new(&conf)
        .put_secret_value()
        .secret_id("orders/stale-prober")
        .secret_string(json!({"username": PROBER.0, "password": PROBER.1}).to_string())
        .send()
        .await
        .expect("PutSecretValue");
    let after = audit().await;
    let orders = &after[&format!("db/{PRIMARY}")];
    assert_eq!(
        orders["verdict"], "warn",
        "proven, TLS not verified: {orders}"
    );
    // `ballast status` shows each opted-in database's proof, asked now.
    let status =
        ballast_tests::ballast_command(&target, &["--json", "status", "--stack", "ballast"]).await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let billing = status["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == MULTI_AZ)
        .unwrap();
    let line = billing["proof"].as_str().unwrap();
    assert!(
        line.starts_with("warn: proven") && line.contains("writable"),
        "{line}"
    );
    for c in before.values().chain(after.values()) {
        for password in [PROBER.1, WRONG_PASSWORD] {
            assert!(!c.to_string().contains(password), "{c}");
        }
    }
}

/// A probe that cannot connect says where, through both binaries: a closed
/// port (refused) is the `network` stage, with the security-group fix; a
/// server that accepts and never answers (hung) is the `network` stage
/// too, bounded in time — and, the record already written, a quiet retry.
#[tokio::test]
async fn a_probe_that_cannot_connect_names_the_network_stage() {
    let p = Proving::start().await;
    p.opt_in_instance(MULTI_AZ, "secret=orders/prober").await;
    let endpoint = p.dbs.instance_endpoint(MULTI_AZ).await;
    // Nothing listens on the database port there.
    p.rig.dns.set(
        &endpoint,
        ballast_tests::dns::Answer::A(vec![std::net::Ipv4Addr::new(127, 0, 0, 32)]),
    );
    let refused = p.retried(MULTI_AZ).await;
    assert_eq!(refused.outcome, Outcome::Failed, "{refused:#?}");
    assert!(
        refused.summary.contains("failed at network") && refused.summary.contains("refused"),
        "{}",
        refused.summary
    );
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("security group"),
        "{:?}",
        refused.reason
    );

    // A server that accepts and says nothing.
    let hung = tokio::net::TcpListener::bind(("127.0.0.33", MY_PORT))
        .await
        .expect("a listener on the database port");
    let held = tokio::spawn(async move {
        let mut open = vec![];
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    p.rig.dns.set(
        &endpoint,
        ballast_tests::dns::Answer::A(vec![std::net::Ipv4Addr::new(127, 0, 0, 33)]),
    );
    let (published, error) = p.invoke(MULTI_AZ).await;
    held.abort();
    assert!(published.is_none(), "within the grace: {published:#?}");
    let error = error.expect("a retry");
    assert!(
        error.contains("failed at network") && error.contains("did not complete the handshake"),
        "{error}"
    );
}
