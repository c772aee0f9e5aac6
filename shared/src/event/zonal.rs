//! Signals that an Availability Zone is impaired, or has recovered: AWS
//! Health EC2 issues, ARC zonal autoshift, per-AZ CloudWatch alarms.
//!
//! AZ *names* (`us-east-1a`) differ per account; AZ *IDs* (`use1-az2`) do
//! not. Health may give either; ARC gives IDs. [`ZoneRef`] keeps which one
//! it is, and the reconciler maps IDs with `DescribeAvailabilityZones`.

use serde::Deserialize;
use serde_json::Value;

use super::Envelope;

pub const HEALTH_EVENT: &str = "AWS Health Event";
pub const AUTOSHIFT_IN_PROGRESS: &str = "Autoshift In Progress";
pub const AUTOSHIFT_COMPLETED: &str = "Autoshift Completed";

/// An Availability Zone as an event names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ZoneRef {
    /// `us-east-1a`
    Name(String),
    /// `use1-az2`
    Id(String),
}

impl ZoneRef {
    /// Recognises an AZ name (region + one letter, e.g. `eu-west-1b`,
    /// `us-gov-west-1a`) or an AZ ID (`use1-az2`, `euw1-az3`).
    pub fn parse(s: &str) -> Option<ZoneRef> {
        let s = s.trim().to_ascii_lowercase();
        // Every AZ name and ID is ASCII; checking first also keeps the
        // byte-wise split below on a character boundary (found by fuzzing:
        // `"availabilityZone": "\u1615"` panicked).
        if !s.is_ascii() {
            return None;
        }
        if let Some((prefix, n)) = s.split_once("-az") {
            let ok = !prefix.is_empty()
                && prefix.chars().all(|c| c.is_ascii_alphanumeric())
                && !n.is_empty()
                && n.chars().all(|c| c.is_ascii_digit());
            return ok.then_some(ZoneRef::Id(s));
        }
        let (region, letter) = s.split_at(s.len().checked_sub(1)?);
        let letter_ok = letter.chars().all(|c| c.is_ascii_lowercase());
        let region_ok = region.ends_with(|c: char| c.is_ascii_digit())
            && region.contains('-')
            && region
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        (letter_ok && region_ok).then_some(ZoneRef::Name(s))
    }

    pub fn as_str(&self) -> &str {
        match self {
            ZoneRef::Name(s) | ZoneRef::Id(s) => s,
        }
    }
}

/// Move capacity out of a zone, or bring it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Evacuate,
    Restore,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Evacuate => "evacuate",
            Direction::Restore => "restore",
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawHealth {
    service: String,
    event_type_category: String,
    event_type_code: String,
    status_code: String,
    availability_zone: Option<String>,
    affected_entities: Vec<RawEntity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawEntity {
    entity_value: String,
}

/// From an `AWS Health Event`: EC2 issues only; `open` evacuates, `closed`
/// restores. `startTime`/`endTime` (RFC 1123 strings, `endTime` often
/// absent) are not needed: `statusCode` says whether it is over.
pub fn from_health(envelope: &Envelope) -> Result<(Direction, Vec<ZoneRef>), String> {
    let h: RawHealth = serde_json::from_value(envelope.detail.clone())
        .map_err(|e| format!("malformed AWS Health event: {e}"))?;
    if !h.service.eq_ignore_ascii_case("EC2") {
        return Err(format!(
            "AWS Health event for {} (only EC2 issues move capacity)",
            h.service
        ));
    }
    if !h.event_type_category.eq_ignore_ascii_case("issue") {
        return Err(format!(
            "AWS Health {} event {} is not an issue (scheduled changes and notifications move no capacity)",
            h.event_type_category, h.event_type_code
        ));
    }
    let direction = match h.status_code.to_ascii_lowercase().as_str() {
        "open" => Direction::Evacuate,
        "closed" => Direction::Restore,
        other => {
            return Err(format!(
                "AWS Health issue {} has status {other:?}: nothing to do yet",
                h.event_type_code
            ))
        }
    };
    let mut zones: Vec<ZoneRef> = h
        .availability_zone
        .iter()
        .map(String::as_str)
        .chain(h.affected_entities.iter().map(|e| e.entity_value.as_str()))
        .filter_map(ZoneRef::parse)
        .collect();
    zones.sort();
    zones.dedup();
    if zones.is_empty() {
        return Err(format!(
            "AWS Health issue {} names no Availability Zone (regional issues move no capacity)",
            h.event_type_code
        ));
    }
    Ok((direction, zones))
}

/// From ARC `Autoshift In Progress` / `Autoshift Completed`: `awayFrom` is
/// an AZ ID.
pub fn from_autoshift(envelope: &Envelope) -> Result<(Direction, Vec<ZoneRef>), String> {
    let direction = match envelope.detail_type.as_str() {
        AUTOSHIFT_IN_PROGRESS => Direction::Evacuate,
        AUTOSHIFT_COMPLETED => Direction::Restore,
        other => return Err(format!("ARC {other} events move no capacity")),
    };
    let away = envelope
        .detail
        .pointer("/metadata/awayFrom")
        .or_else(|| envelope.detail.get("awayFrom"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "{} event without detail.metadata.awayFrom",
                envelope.detail_type
            )
        })?;
    let zone = ZoneRef::parse(away)
        .ok_or_else(|| format!("awayFrom {away:?} is not an Availability Zone"))?;
    Ok((direction, vec![zone]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Inbound;
    use serde_json::json;

    fn envelope(source: &str, detail_type: &str, detail: Value) -> Envelope {
        let e = json!({"version":"0","id":"1","detail-type":detail_type,"source":source,"account":"123456789012",
            "time":"2026-11-21T10:00:00Z","region":"us-east-1","resources":[],"detail":detail});
        match Inbound::classify(&e) {
            Inbound::EventBridge(env) => *env,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_ascii_zones_are_refused_not_panicked_on() {
        for z in [
            "\u{1615}",
            "us-east-1\u{e9}",
            "\u{e9}-az1",
            "use1-az\u{661}",
        ] {
            assert_eq!(ZoneRef::parse(z), None, "{z:?}");
        }
    }

    #[test]
    fn zone_names_and_ids_are_recognised() {
        assert_eq!(
            ZoneRef::parse("us-east-1a"),
            Some(ZoneRef::Name("us-east-1a".into()))
        );
        assert_eq!(
            ZoneRef::parse("us-gov-west-1b"),
            Some(ZoneRef::Name("us-gov-west-1b".into()))
        );
        assert_eq!(
            ZoneRef::parse("use1-az2"),
            Some(ZoneRef::Id("use1-az2".into()))
        );
        for bad in [
            "us-east-1",
            "i-0123456789abcdef0",
            "",
            "a",
            "arn:aws:ec2:us-east-1a",
        ] {
            assert_eq!(ZoneRef::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn health_issue_open_evacuates_the_named_zones() {
        let e = envelope(
            "aws.health",
            HEALTH_EVENT,
            json!({"service":"EC2","eventTypeCategory":"issue",
            "eventTypeCode":"AWS_EC2_OPERATIONAL_ISSUE","statusCode":"open","startTime":"Sat, 21 Nov 2026 09:52:00 GMT",
            "affectedEntities":[{"entityValue":"us-east-1a"},{"entityValue":"i-0abc"}]}),
        );
        assert_eq!(
            from_health(&e),
            Ok((
                Direction::Evacuate,
                vec![ZoneRef::Name("us-east-1a".into())]
            ))
        );
        let closed = envelope(
            "aws.health",
            HEALTH_EVENT,
            json!({"service":"EC2","eventTypeCategory":"issue",
            "eventTypeCode":"AWS_EC2_OPERATIONAL_ISSUE","statusCode":"closed","availabilityZone":"use1-az2"}),
        );
        assert_eq!(
            from_health(&closed),
            Ok((Direction::Restore, vec![ZoneRef::Id("use1-az2".into())]))
        );
    }

    #[test]
    fn health_events_that_move_no_capacity_are_refused() {
        let base = |service: &str, category: &str, status: &str, az: Value| {
            envelope(
                "aws.health",
                HEALTH_EVENT,
                json!({"service":service,"eventTypeCategory":category,
                "eventTypeCode":"X","statusCode":status,"availabilityZone":az}),
            )
        };
        assert!(
            from_health(&base("RDS", "issue", "open", json!("us-east-1a")))
                .unwrap_err()
                .contains("only EC2")
        );
        assert!(
            from_health(&base("EC2", "scheduledChange", "open", json!("us-east-1a")))
                .unwrap_err()
                .contains("not an issue")
        );
        assert!(
            from_health(&base("EC2", "issue", "upcoming", json!("us-east-1a")))
                .unwrap_err()
                .contains("upcoming")
        );
        assert!(from_health(&base("EC2", "issue", "open", Value::Null))
            .unwrap_err()
            .contains("names no Availability Zone"));
    }

    #[test]
    fn autoshift_maps_to_a_zone_id() {
        let e = envelope(
            "aws.arc-zonal-shift",
            AUTOSHIFT_IN_PROGRESS,
            json!({"version":"0.0.1","metadata":{"awayFrom":"use1-az1"}}),
        );
        assert_eq!(
            from_autoshift(&e),
            Ok((Direction::Evacuate, vec![ZoneRef::Id("use1-az1".into())]))
        );
        let done = envelope(
            "aws.arc-zonal-shift",
            AUTOSHIFT_COMPLETED,
            json!({"metadata":{"awayFrom":"use1-az1"}}),
        );
        assert_eq!(from_autoshift(&done).unwrap().0, Direction::Restore);
        let empty = envelope("aws.arc-zonal-shift", AUTOSHIFT_COMPLETED, json!({}));
        assert!(from_autoshift(&empty).is_err());
    }
}
