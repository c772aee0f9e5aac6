//! A real DNS server for the writer probe's tests: UDP on loopback,
//! answering `A` queries from its table the way a recursive resolver
//! answers the application — the CNAME chain, then the addresses — and
//! `NXDOMAIN` for a name it does not have. The tests change its table as
//! Route 53 would change (a CNAME repointed), and the probe asks it through
//! `BALLAST_PROBE_RESOLVER`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// What the server answers for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Cname(String),
    A(Vec<Ipv4Addr>),
}

type Table = Arc<Mutex<BTreeMap<String, Answer>>>;

/// The server, running until dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    table: Table,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("a UDP port");
        let addr = socket.local_addr().expect("its address");
        let table: Table = Arc::default();
        let served = Arc::clone(&table);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                if let Some(reply) = answer(&served, &buf[..n]) {
                    let _ = socket.send_to(&reply, peer).await;
                }
            }
        });
        DnsServer { addr, table, task }
    }

    /// `name` answers `answer` from now on (a record created or changed).
    pub fn set(&self, name: &str, answer: Answer) {
        self.table
            .lock()
            .expect("the table")
            .insert(key(name), answer);
    }

    /// `name` no longer exists.
    pub fn remove(&self, name: &str) {
        self.table.lock().expect("the table").remove(&key(name));
    }
}

/// The reply to one query message; `None` for a message that is not one.
fn answer(table: &Table, bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.clone());
    let table = table.lock().ok()?.clone();
    let mut code = ResponseCode::NoError;
    for q in &query.queries {
        let mut name = key(&q.name().to_string());
        if !table.contains_key(&name) {
            code = ResponseCode::NXDomain;
            continue;
        }
        // The chain, as a recursive resolver returns it, at most 8 deep.
        for _ in 0..8 {
            let owner = Name::from_ascii(format!("{name}.")).ok()?;
            match table.get(&name) {
                Some(Answer::Cname(target)) => {
                    let target = key(target);
                    let data = RData::CNAME(CNAME(Name::from_ascii(format!("{target}.")).ok()?));
                    reply.add_answer(Record::from_rdata(owner, 5, data));
                    name = target;
                }
                Some(Answer::A(ips)) => {
                    if q.query_type() == RecordType::A {
                        for ip in ips {
                            reply.add_answer(Record::from_rdata(
                                owner.clone(),
                                5,
                                RData::A(A(*ip)),
                            ));
                        }
                    }
                    break;
                }
                None => {
                    code = ResponseCode::NXDomain;
                    break;
                }
            }
        }
    }
    reply.metadata.response_code = code;
    reply.to_vec().ok()
}

/// The bridge between the emulator and the tests' DNS server: every CNAME
/// of a Route 53 zone, as the emulator has it now, and each emulated RDS
/// endpoint answered with the address of the local server that plays it.
/// Called when the test lets Route 53's change reach the resolver.
pub async fn sync_from_route53(
    dns: &DnsServer,
    route53: &aws_sdk_route53::Client,
    zone_id: &str,
    endpoints: &[(String, Ipv4Addr)],
) {
    let sets = route53
        .list_resource_record_sets()
        .hosted_zone_id(zone_id)
        .send()
        .await
        .expect("ListResourceRecordSets");
    for set in sets.resource_record_sets() {
        if set.r#type() == &aws_sdk_route53::types::RrType::Cname {
            if let Some(value) = set.resource_records().first() {
                dns.set(set.name(), Answer::Cname(value.value().to_string()));
            }
        }
    }
    for (endpoint, address) in endpoints {
        dns.set(endpoint, Answer::A(vec![*address]));
    }
}
