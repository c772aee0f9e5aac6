//! The facts a decision of `rds-failover` rests on.

use super::records::dns_tag;
use super::{Policy, Prompt, Subject};
use crate::report::Evidence;
use crate::resources::Instance;
use crate::tags;

fn instance_facts(i: &Instance) -> serde_json::Value {
    serde_json::json!({
        "id": i.id,
        "status": i.status,
        "az": i.az,
        "multiAz": i.multi_az,
        "readReplicaOf": i.source,
        "endpoint": i.endpoint,
    })
}

/// The facts a decision rests on: the writer (or primary and standby) and
/// their states, the event's class, and where the record points.
pub fn evidence(subject: &Subject, prompt: &Prompt, policy: &Policy) -> Evidence {
    let mut e = Evidence::new();
    let (tags, dns_current) = match subject {
        Subject::Cluster {
            cluster,
            writer,
            dns_current,
        } => {
            let writers: Vec<&str> = cluster
                .members
                .iter()
                .filter(|m| m.is_writer)
                .map(|m| m.id.as_str())
                .collect();
            e.insert(
                "cluster".into(),
                serde_json::json!({"id": cluster.id, "status": cluster.status, "endpoint": cluster.endpoint, "writers": writers}),
            );
            if let Some(w) = writer {
                e.insert("writer".into(), instance_facts(w));
            }
            (&cluster.tags, dns_current)
        }
        Subject::Instance {
            primary,
            standby,
            dns_current,
        } => {
            e.insert("primary".into(), instance_facts(primary));
            if let Some(s) = standby {
                e.insert("standby".into(), instance_facts(s));
            }
            let tags = match standby {
                Some(s) if s.tags.contains_key(tags::DNS_RECORD) => &s.tags,
                _ => &primary.tags,
            };
            (tags, dns_current)
        }
    };
    if let Some(class) = prompt.class {
        e.insert("event".into(), format!("{class:?}").into());
    }
    if let Some(Ok((zone, name))) = dns_tag(tags) {
        e.insert(
            crate::report::hint::RECORD.into(),
            serde_json::json!({"zone": zone, "name": name, "pointedAt": dns_current, "ttl": policy.dns_ttl}),
        );
    }
    e
}
