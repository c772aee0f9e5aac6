//! The writer proof's rig around the emulator: the tests' DNS server fed
//! from moto's Route 53 (each emulated RDS endpoint answered with the local
//! MariaDB server that plays it), the `writer-probe` binary under its own
//! Runtime API host (which serves Lambda's Invoke: moto runs functions only
//! in Docker), and `rds-failover` pointed at it. Used by the writer proof's
//! tests and the demo.

use std::net::Ipv4Addr;
use std::time::Duration;

use ballast::Report;
use serde_json::json;

use crate::databases::{Databases, CLUSTER, MULTI_AZ, PRIMARY, REPLICA};
use crate::dns::{sync_from_route53, DnsServer};
use crate::host::{Answer, FunctionProcess, RuntimeHost};
use crate::moto::Moto;
use crate::servers::{MY_PRIMARY, MY_REPLICA, PROBER};
use crate::{function_binary, start_function};

/// The writer probe of a stack called `ballast`, named as the template
/// names it.
pub const PROBE: &str = "ballast-writer-probe";

/// The probe, rds-failover, and the DNS bridge between them and the
/// emulator. The local servers must be up (`servers::databases`).
pub struct Rig {
    pub dns: DnsServer,
    /// Each emulated endpoint, and the local server that plays it.
    pub endpoints: Vec<(String, Ipv4Addr)>,
    pub probe: (RuntimeHost, FunctionProcess),
    pub failover: (RuntimeHost, FunctionProcess),
}

/// A Secrets Manager secret with the probe's login and `password`.
pub async fn secret(moto: &Moto, name: &str, password: &str) {
    aws_sdk_secretsmanager::Client::new(&moto.sdk_config())
        .create_secret()
        .name(name)
        .secret_string(json!({"username": PROBER.0, "password": password}).to_string())
        .send()
        .await
        .expect("CreateSecret");
}

/// Tags `arn` `ballast:writer-probe` = `value`.
pub async fn opt_in(dbs: &Databases, arn: &str, value: &str) {
    dbs.rds
        .add_tags_to_resource()
        .resource_name(arn)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("ballast:writer-probe")
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("AddTagsToResource");
}

impl Rig {
    /// The seed databases' endpoints mapped as they stand (the writers on
    /// the primary server, readers and replicas on the read-only one), the
    /// records synced, both functions started; rds-failover reports to
    /// `topic_arn`.
    pub async fn start(moto: &Moto, topic_arn: &str, dbs: &Databases) -> Rig {
        let writer = dbs.writer().await;
        let members = [format!("{CLUSTER}-1"), format!("{CLUSTER}-2")];
        let mut endpoints = vec![
            (dbs.cluster_endpoint().await, MY_PRIMARY),
            (dbs.instance_endpoint(MULTI_AZ).await, MY_PRIMARY),
            (dbs.instance_endpoint(PRIMARY).await, MY_PRIMARY),
            (dbs.instance_endpoint(REPLICA).await, MY_REPLICA),
        ];
        for m in &members {
            let server = if *m == writer { MY_PRIMARY } else { MY_REPLICA };
            endpoints.push((dbs.instance_endpoint(m).await, server));
        }
        let dns = DnsServer::start().await;
        sync_from_route53(&dns, &dbs.route53, &dbs.zone_id, &endpoints).await;

        let probe_host = RuntimeHost::start(PROBE, Duration::from_secs(30)).await;
        let mut env = moto.env();
        env.push(("BALLAST_PROBE_RESOLVER".into(), dns.addr.to_string()));
        let probe = probe_host.spawn(&function_binary("writer-probe"), PROBE, &env);
        let lambda = probe_host.lambda_endpoint();
        let failover = start_function(
            "rds-failover",
            moto,
            topic_arn,
            &[
                ("BALLAST_WRITER_PROBE_FUNCTION", PROBE),
                ("AWS_ENDPOINT_URL_LAMBDA", &lambda),
            ],
        )
        .await;
        Rig {
            dns,
            endpoints,
            probe: (probe_host, probe),
            failover,
        }
    }

    /// Route 53's records, as the emulator has them now, reach the resolver.
    pub async fn propagate(&self, dbs: &Databases) {
        sync_from_route53(&self.dns, &dbs.route53, &dbs.zone_id, &self.endpoints).await;
    }

    /// One invocation of rds-failover with `event`: its answer, or the
    /// Lambda error it asked to be retried with.
    pub async fn invoke(&self, event: serde_json::Value) -> Result<Report, String> {
        let (host, process) = &self.failover;
        match host.invoke(event).await {
            Ok(Answer::Response(v)) => Ok(serde_json::from_value(v).expect("a report")),
            Ok(Answer::Error(e)) => Err(e.to_string()),
            Err(e) => panic!("{e}; logs: {:#?}", process.logs()),
        }
    }

    /// Both functions' log lines.
    pub fn logs(&self) -> Vec<String> {
        let mut all = self.failover.1.logs();
        all.extend(self.probe.1.logs());
        all
    }
}
