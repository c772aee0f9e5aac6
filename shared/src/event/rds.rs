//! EventBridge `RDS DB Cluster Event` and `RDS DB Instance Event`.
//!
//! Keyed off `detail.SourceArn`: `SourceIdentifier` is sometimes the bare
//! name and sometimes carries an `rds:` prefix. The event only says which
//! resource to look at and how urgent it is; the live state decides.

use serde::Deserialize;

use super::{Arn, Envelope};

pub const CLUSTER_EVENT: &str = "RDS DB Cluster Event";
pub const INSTANCE_EVENT: &str = "RDS DB Instance Event";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Cluster,
    Instance,
}

/// What kind of thing the event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// RDS-EVENT-0013 (Multi-AZ), 0070/0072/0073 (cluster).
    FailoverStarted,
    /// RDS-EVENT-0015, 0049 (Multi-AZ), 0071 (cluster), other `failover` events.
    FailoverCompleted,
    /// RDS-EVENT-0034 (failover not attempted), 0069 (cluster failover failed).
    FailoverFailed,
    /// Any `failure`-category event (0031, 0035, 0036, 0221, ...).
    Failure,
    /// RDS-EVENT-0004 (shutdown), 0006 (restarted), 0022 (error restarting).
    Availability,
    /// RDS-EVENT-0045, 0046, 0057, 0062 (`read replica` category, on the replica).
    ReadReplica,
    /// RDS-EVENT-0087: the DB instance has been stopped.
    Stopped,
}

impl EventClass {
    /// Events after which a primary may be gone: only then can a standby
    /// replica be promoted (and only if the live state agrees).
    pub fn suggests_primary_failure(self) -> bool {
        matches!(
            self,
            EventClass::Failure
                | EventClass::Stopped
                | EventClass::FailoverFailed
                | EventClass::Availability
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventClass::FailoverStarted => "failover started",
            EventClass::FailoverCompleted => "failover completed",
            EventClass::FailoverFailed => "failover failed",
            EventClass::Failure => "failure",
            EventClass::Availability => "availability",
            EventClass::ReadReplica => "read replica",
            EventClass::Stopped => "stopped",
        }
    }

    /// The class of an event, from its ID first and its categories second;
    /// `None` for events `rds-failover` does not act on.
    pub fn of(event_id: &str, categories: &[String]) -> Option<EventClass> {
        let class = match event_id {
            "RDS-EVENT-0013" | "RDS-EVENT-0070" | "RDS-EVENT-0072" | "RDS-EVENT-0073" => {
                EventClass::FailoverStarted
            }
            "RDS-EVENT-0015" | "RDS-EVENT-0049" | "RDS-EVENT-0071" => EventClass::FailoverCompleted,
            "RDS-EVENT-0034" | "RDS-EVENT-0069" => EventClass::FailoverFailed,
            "RDS-EVENT-0004" | "RDS-EVENT-0006" | "RDS-EVENT-0022" => EventClass::Availability,
            "RDS-EVENT-0045" | "RDS-EVENT-0046" | "RDS-EVENT-0057" | "RDS-EVENT-0062" => {
                EventClass::ReadReplica
            }
            "RDS-EVENT-0087" => EventClass::Stopped,
            _ => {
                let has = |c: &str| categories.iter().any(|x| x.eq_ignore_ascii_case(c));
                if has("failure") {
                    EventClass::Failure
                } else if has("failover") {
                    EventClass::FailoverCompleted
                } else {
                    return None;
                }
            }
        };
        Some(class)
    }
}

/// One RDS event, reduced to what Ballast needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsEvent {
    pub kind: SourceKind,
    /// DB cluster or DB instance identifier.
    pub identifier: String,
    pub source_arn: Option<String>,
    pub event_id: String,
    pub categories: Vec<String>,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RawDetail {
    event_categories: Vec<String>,
    source_type: String,
    source_arn: String,
    source_identifier: String,
    #[serde(rename = "EventID")]
    event_id: String,
    message: String,
}

impl RdsEvent {
    /// `Err` is the reason the event cannot be used.
    pub fn from_eventbridge(envelope: &Envelope) -> Result<RdsEvent, String> {
        let kind = match envelope.detail_type.as_str() {
            CLUSTER_EVENT => SourceKind::Cluster,
            INSTANCE_EVENT => SourceKind::Instance,
            other => {
                return Err(format!(
                    "{other} is not an RDS DB cluster or instance event"
                ))
            }
        };
        let detail: RawDetail = serde_json::from_value(envelope.detail.clone())
            .map_err(|e| format!("malformed RDS event detail: {e}"))?;
        let arn = Some(detail.source_arn.clone())
            .filter(|a| !a.is_empty())
            .or_else(|| envelope.resources.as_ref().and_then(|r| r.first().cloned()));
        let from_arn = arn.as_deref().and_then(Arn::parse).and_then(|a| {
            let (prefix, id) = a.resource.split_once(':')?;
            let kind_ok = matches!(
                (prefix, kind),
                ("cluster", SourceKind::Cluster) | ("db", SourceKind::Instance)
            );
            kind_ok.then(|| id.to_string())
        });
        let identifier = from_arn
            .or_else(|| {
                let id = detail.source_identifier.trim();
                let id = id.strip_prefix("rds:").unwrap_or(id);
                (!id.is_empty()).then(|| id.to_string())
            })
            .ok_or_else(|| {
                "RDS event names no source (no SourceArn, resources or SourceIdentifier)"
                    .to_string()
            })?;
        let _ = detail.source_type;
        Ok(RdsEvent {
            kind,
            identifier,
            source_arn: arn,
            event_id: detail.event_id,
            categories: detail.event_categories,
            message: detail.message,
        })
    }

    pub fn class(&self) -> Option<EventClass> {
        EventClass::of(&self.event_id, &self.categories)
    }

    /// The DB instance a failover message names ("Completed failover to DB
    /// instance: orders-2", "Started cross AZ failover to DB instance: x").
    pub fn named_instance(&self) -> Option<String> {
        let (_, tail) = self.message.rsplit_once("DB instance:")?;
        let name = tail.trim().trim_end_matches('.').trim();
        (!name.is_empty() && !name.contains(' ')).then(|| name.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Inbound;
    use serde_json::{json, Value};

    fn envelope(detail_type: &str, detail: Value) -> Envelope {
        let e = json!({"version":"0","id":"1","detail-type":detail_type,"source":"aws.rds","account":"123456789012",
            "time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],"detail":detail});
        match Inbound::classify(&e) {
            Inbound::EventBridge(env) => *env,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cluster_event_keys_off_the_source_arn() {
        let e = RdsEvent::from_eventbridge(&envelope(
            CLUSTER_EVENT,
            json!({
            "EventCategories": ["failover"], "SourceType": "CLUSTER",
            "SourceArn": "arn:aws:rds:us-east-1:123456789012:cluster:orders",
            "SourceIdentifier": "rds:orders", "EventID": "RDS-EVENT-0071",
            "Message": "Completed failover to DB instance: orders-2"}),
        ))
        .unwrap();
        assert_eq!(e.kind, SourceKind::Cluster);
        assert_eq!(e.identifier, "orders");
        assert_eq!(e.class(), Some(EventClass::FailoverCompleted));
        assert_eq!(e.named_instance().as_deref(), Some("orders-2"));
    }

    #[test]
    fn source_identifier_with_rds_prefix_is_the_fallback() {
        let e = RdsEvent::from_eventbridge(&envelope(INSTANCE_EVENT, json!({
            "EventCategories": ["failure"], "SourceIdentifier": "rds:orders-primary", "EventID": "RDS-EVENT-0031",
            "Message": "DB instance put into failed state"}))).unwrap();
        assert_eq!(e.identifier, "orders-primary");
        assert_eq!(e.class(), Some(EventClass::Failure));
        assert!(e.class().unwrap().suggests_primary_failure());
    }

    #[test]
    fn event_ids_are_classified() {
        let none: Vec<String> = vec![];
        for (id, class) in [
            ("RDS-EVENT-0013", EventClass::FailoverStarted),
            ("RDS-EVENT-0072", EventClass::FailoverStarted),
            ("RDS-EVENT-0073", EventClass::FailoverStarted),
            ("RDS-EVENT-0015", EventClass::FailoverCompleted),
            ("RDS-EVENT-0049", EventClass::FailoverCompleted),
            ("RDS-EVENT-0071", EventClass::FailoverCompleted),
            ("RDS-EVENT-0069", EventClass::FailoverFailed),
            ("RDS-EVENT-0034", EventClass::FailoverFailed),
            ("RDS-EVENT-0087", EventClass::Stopped),
            ("RDS-EVENT-0045", EventClass::ReadReplica),
        ] {
            assert_eq!(EventClass::of(id, &none), Some(class), "{id}");
        }
        assert_eq!(
            EventClass::of("RDS-EVENT-0221", &["failure".to_string()]),
            Some(EventClass::Failure)
        );
        assert_eq!(
            EventClass::of("RDS-EVENT-0088", &["notification".to_string()]),
            None
        );
        assert_eq!(
            EventClass::of("RDS-EVENT-0002", &["backup".to_string()]),
            None
        );
    }

    #[test]
    fn an_event_without_any_source_is_refused() {
        let r = RdsEvent::from_eventbridge(&envelope(
            INSTANCE_EVENT,
            json!({"EventID": "RDS-EVENT-0049"}),
        ));
        assert!(r.unwrap_err().contains("names no source"));
    }
}
