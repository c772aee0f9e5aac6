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

/// The events after which a DB instance is down for good until someone acts
/// (RDS User Guide, *Amazon RDS event categories and event messages*):
/// put into `failed` or an incompatible state (0031, 0035, 0036, 0315), shut
/// down at the storage-full threshold (0221, category `availability`), or
/// placed into `inaccessible-encryption-credentials` (0419, `availability`).
/// The other `failure`-category events (Enhanced Monitoring, option and
/// Statspack set-up, storage autoscaling, upgrade pre-checks, RDS Custom,
/// domain joins; 0058, 0079-0081, 0165, 0188, 0219-0224, 0237, 0254,
/// 0278-0285, 0306, 0328, 0329, 0353, 0356, 0418, 0420, 0421, ...) leave a
/// serving database serving: `rds-failover` ignores them.
const PRIMARY_DOWN_EVENTS: [&str; 6] = [
    "RDS-EVENT-0031",
    "RDS-EVENT-0035",
    "RDS-EVENT-0036",
    "RDS-EVENT-0221",
    "RDS-EVENT-0315",
    "RDS-EVENT-0419",
];

/// "Abandoning user requested failover since a failover recently occurred":
/// RDS did nothing, and the failover it points at had its own events.
const FAILOVER_ABANDONED: &str = "RDS-EVENT-0034";

/// What kind of thing the event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventClass {
    /// RDS-EVENT-0013 (Multi-AZ), 0070/0072/0073 (cluster).
    FailoverStarted,
    /// RDS-EVENT-0015, 0049 (Multi-AZ), 0071 (cluster), other `failover` events.
    FailoverCompleted,
    /// RDS-EVENT-0069 (cluster failover failed).
    FailoverFailed,
    /// One of the [`PRIMARY_DOWN_EVENTS`].
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
    /// `Err` says why `rds-failover` does not act on it.
    pub fn of(event_id: &str, categories: &[String]) -> Result<EventClass, &'static str> {
        if PRIMARY_DOWN_EVENTS.contains(&event_id) {
            return Ok(EventClass::Failure);
        }
        let class = match event_id {
            "RDS-EVENT-0013" | "RDS-EVENT-0070" | "RDS-EVENT-0072" | "RDS-EVENT-0073" => {
                EventClass::FailoverStarted
            }
            "RDS-EVENT-0015" | "RDS-EVENT-0049" | "RDS-EVENT-0071" => EventClass::FailoverCompleted,
            "RDS-EVENT-0069" => EventClass::FailoverFailed,
            FAILOVER_ABANDONED => return Err(
                "RDS abandoned a requested failover because one recently occurred: nothing moved, and the earlier failover had its own events",
            ),
            "RDS-EVENT-0004" | "RDS-EVENT-0006" | "RDS-EVENT-0022" => EventClass::Availability,
            "RDS-EVENT-0045" | "RDS-EVENT-0046" | "RDS-EVENT-0057" | "RDS-EVENT-0062" => {
                EventClass::ReadReplica
            }
            "RDS-EVENT-0087" => EventClass::Stopped,
            _ => {
                let has = |c: &str| categories.iter().any(|x| x.eq_ignore_ascii_case(c));
                if has("failover") {
                    EventClass::FailoverCompleted
                } else if has("failure") {
                    return Err(
                        "this failure-category event leaves the database serving (monitoring, options, storage autoscaling, upgrades, RDS Custom); rds-failover acts on the ones that take it down: 0031, 0035, 0036, 0221, 0315, 0419",
                    );
                } else {
                    return Err(
                        "not an event rds-failover acts on (failover, primary-down, availability, read replica and stop events are)",
                    );
                }
            }
        };
        Ok(class)
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

    pub fn class(&self) -> Result<EventClass, &'static str> {
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
        assert_eq!(e.class(), Ok(EventClass::FailoverCompleted));
        assert_eq!(e.named_instance().as_deref(), Some("orders-2"));
    }

    #[test]
    fn source_identifier_with_rds_prefix_is_the_fallback() {
        let e = RdsEvent::from_eventbridge(&envelope(INSTANCE_EVENT, json!({
            "EventCategories": ["failure"], "SourceIdentifier": "rds:orders-primary", "EventID": "RDS-EVENT-0031",
            "Message": "DB instance put into failed state"}))).unwrap();
        assert_eq!(e.identifier, "orders-primary");
        assert_eq!(e.class(), Ok(EventClass::Failure));
        assert!(e.class().unwrap().suggests_primary_failure());
    }

    #[test]
    fn event_ids_are_classified() {
        let cats = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (id, categories, class) in [
            (
                "RDS-EVENT-0013",
                cats(&["failover"]),
                EventClass::FailoverStarted,
            ),
            (
                "RDS-EVENT-0072",
                cats(&["failover"]),
                EventClass::FailoverStarted,
            ),
            (
                "RDS-EVENT-0073",
                cats(&["failover"]),
                EventClass::FailoverStarted,
            ),
            (
                "RDS-EVENT-0015",
                cats(&["failover"]),
                EventClass::FailoverCompleted,
            ),
            (
                "RDS-EVENT-0049",
                cats(&["failover"]),
                EventClass::FailoverCompleted,
            ),
            (
                "RDS-EVENT-0071",
                cats(&["failover"]),
                EventClass::FailoverCompleted,
            ),
            (
                "RDS-EVENT-0051",
                cats(&["failover"]),
                EventClass::FailoverCompleted,
            ),
            (
                "RDS-EVENT-0069",
                cats(&["failover"]),
                EventClass::FailoverFailed,
            ),
            ("RDS-EVENT-0031", cats(&["failure"]), EventClass::Failure),
            ("RDS-EVENT-0035", cats(&["failure"]), EventClass::Failure),
            ("RDS-EVENT-0315", cats(&["failure"]), EventClass::Failure),
            // Storage full and KMS key lost are `availability` events.
            (
                "RDS-EVENT-0221",
                cats(&["availability"]),
                EventClass::Failure,
            ),
            (
                "RDS-EVENT-0419",
                cats(&["availability"]),
                EventClass::Failure,
            ),
            (
                "RDS-EVENT-0004",
                cats(&["availability"]),
                EventClass::Availability,
            ),
            (
                "RDS-EVENT-0087",
                cats(&["notification"]),
                EventClass::Stopped,
            ),
            (
                "RDS-EVENT-0045",
                cats(&["read replica"]),
                EventClass::ReadReplica,
            ),
        ] {
            assert_eq!(EventClass::of(id, &categories), Ok(class), "{id}");
        }
        // A refused failover is not a failed one, and failures that leave
        // the database serving are not a reason to look at a promotion.
        assert!(EventClass::of(FAILOVER_ABANDONED, &cats(&["failover"]))
            .unwrap_err()
            .contains("abandoned a requested failover"));
        for id in [
            "RDS-EVENT-0079",
            "RDS-EVENT-0058",
            "RDS-EVENT-0223",
            "RDS-EVENT-0418",
        ] {
            assert!(
                EventClass::of(id, &cats(&["failure"]))
                    .unwrap_err()
                    .contains("leaves the database serving"),
                "{id}"
            );
        }
        for (id, category) in [
            ("RDS-EVENT-0088", "notification"),
            ("RDS-EVENT-0002", "backup"),
            ("RDS-EVENT-0222", "availability"),
        ] {
            assert!(EventClass::of(id, &cats(&[category])).is_err(), "{id}");
        }
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
