//! Tolerant models of the events Ballast reacts to.
//!
//! An event only says *where to look*; each function turns it into a small
//! request (a target group, a database, an AZ) or into [`Ignored`] with a
//! reason. Parsing never fails hard: an unknown shape is answered, not retried.

pub mod alarm;
pub mod rds;
pub mod zonal;

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What caused an invocation, as shown in the report (`trigger`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub source: String,
    pub detail_type: String,
    pub id: String,
}

impl Trigger {
    /// An operator's direct invoke (`aws lambda invoke` with a small payload).
    pub fn direct(request_id: &str) -> Self {
        Trigger {
            source: "direct".into(),
            detail_type: "Direct Invocation".into(),
            id: request_id.into(),
        }
    }
}

/// The event is not one this function acts on; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub trigger: Trigger,
    pub reason: String,
}

/// An EventBridge event, when the payload has that shape.
pub type Envelope = EventBridgeEvent<Value>;

/// The payload as far as it can be told apart without knowing the function.
#[derive(Debug, Clone)]
pub enum Inbound {
    EventBridge(Box<Envelope>),
    /// A CloudWatch alarm invoking the function directly (alarm Lambda action).
    AlarmAction(alarm::AlarmChange),
    /// Any other JSON object: a direct invoke by an operator or a test.
    Direct(serde_json::Map<String, Value>),
    /// Not a JSON object at all.
    Other(String),
}

impl Inbound {
    pub fn classify(payload: &Value) -> Inbound {
        let Some(object) = payload.as_object() else {
            return Inbound::Other(format!(
                "payload is a JSON {}, not an event object",
                json_kind(payload)
            ));
        };
        if object.contains_key("detail-type") && object.contains_key("source") {
            return match serde_json::from_value::<Envelope>(payload.clone()) {
                Ok(envelope) => Inbound::EventBridge(Box::new(envelope)),
                Err(e) => Inbound::Other(format!("malformed EventBridge event: {e}")),
            };
        }
        if let Some(Value::Array(records)) = object.get("Records") {
            let source = records
                .first()
                .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
                .and_then(Value::as_str)
                .unwrap_or("unknown source");
            return Inbound::Other(format!(
                "a batch of {} record(s) from {source} is not an event Ballast handles",
                records.len()
            ));
        }
        if object.contains_key("alarmData") {
            return match alarm::AlarmChange::from_alarm_action(payload) {
                Ok(change) => Inbound::AlarmAction(change),
                Err(e) => Inbound::Other(format!("malformed CloudWatch alarm action payload: {e}")),
            };
        }
        Inbound::Direct(object.clone())
    }

    /// The report's `trigger` for this payload.
    pub fn trigger(&self, request_id: &str) -> Trigger {
        match self {
            Inbound::EventBridge(e) => Trigger {
                source: e.source.clone(),
                detail_type: e.detail_type.clone(),
                id: e.id.clone().unwrap_or_else(|| request_id.to_string()),
            },
            Inbound::AlarmAction(a) => Trigger {
                source: "aws.cloudwatch".into(),
                detail_type: "CloudWatch Alarm Action".into(),
                id: a
                    .alarm_arn
                    .clone()
                    .unwrap_or_else(|| request_id.to_string()),
            },
            Inbound::Direct(_) | Inbound::Other(_) => Trigger::direct(request_id),
        }
    }
}

/// Why a direct invoke was not understood: what `function` needs, and the
/// keys it was given.
pub fn direct_usage(
    function: &str,
    needs: &str,
    object: &serde_json::Map<String, Value>,
) -> String {
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    format!(
        "not an event {function} handles: a direct invoke needs {needs} (keys given: [{}])",
        keys.join(", ")
    )
}

pub fn is_scheduled(envelope: &Envelope) -> bool {
    envelope.source == "aws.events" && envelope.detail_type == "Scheduled Event"
}

pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The partition of a region: ARNs are built from the event's region.
pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("us-iso-") {
        "aws-iso"
    } else if region.starts_with("us-isob-") {
        "aws-iso-b"
    } else {
        "aws"
    }
}

/// The fields of an ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(arn: &'a str) -> Option<Arn<'a>> {
        let mut it = arn.splitn(6, ':');
        if it.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: it.next()?,
            service: it.next()?,
            region: it.next()?,
            account: it.next()?,
            resource: it.next()?,
        };
        (!arn.partition.is_empty() && !arn.service.is_empty() && !arn.resource.is_empty())
            .then_some(arn)
    }
}

/// The short, readable end of an ARN (`targetgroup/web/6d0ecf831eec9f09`),
/// or the string itself when it is not an ARN.
pub fn short_name(arn_or_id: &str) -> &str {
    let resource = Arn::parse(arn_or_id).map_or(arn_or_id, |a| a.resource);
    // autoScalingGroup:<uuid>:autoScalingGroupName/<name> → <name>
    resource
        .split_once(":autoScalingGroupName/")
        .map_or(resource, |(_, name)| name)
}

/// The reason a function ignores an EventBridge event it has no rule for.
pub fn not_handled(function: &str, envelope: &Envelope) -> String {
    format!(
        "{function} does not handle {} events from {}",
        envelope.detail_type, envelope.source
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_objects_are_told_apart() {
        assert!(
            matches!(Inbound::classify(&json!("hello")), Inbound::Other(r) if r.contains("string"))
        );
        assert!(matches!(Inbound::classify(&json!([1])), Inbound::Other(r) if r.contains("array")));
        assert!(matches!(Inbound::classify(&json!({})), Inbound::Direct(m) if m.is_empty()));
    }

    #[test]
    fn eventbridge_envelope_is_recognised_and_gives_the_trigger() {
        let e = json!({"version":"0","id":"abc","detail-type":"Scheduled Event","source":"aws.events",
            "account":"123456789012","time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],"detail":{}});
        let inbound = Inbound::classify(&e);
        let Inbound::EventBridge(env) = &inbound else {
            panic!("{inbound:?}")
        };
        assert!(is_scheduled(env));
        assert_eq!(inbound.trigger("req").id, "abc");
        assert_eq!(inbound.trigger("req").detail_type, "Scheduled Event");
    }

    #[test]
    fn arn_parts_and_short_names() {
        let arn =
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/6d0ecf831eec9f09";
        let a = Arn::parse(arn).unwrap();
        assert_eq!(a.service, "elasticloadbalancing");
        assert_eq!(a.account, "123456789012");
        assert_eq!(short_name(arn), "targetgroup/web/6d0ecf831eec9f09");
        assert_eq!(short_name("i-0123"), "i-0123");
        assert_eq!(
            short_name(
                "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:6d3c-1f:autoScalingGroupName/web"
            ),
            "web"
        );
        assert_eq!(Arn::parse("arn:aws"), None);
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
        assert_eq!(partition_of("us-gov-west-1"), "aws-us-gov");
        assert_eq!(partition_of("eu-west-1"), "aws");
    }
}
