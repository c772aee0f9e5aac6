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
const AUTOSHIFT_IN_PROGRESS: &str = "Autoshift In Progress";
const AUTOSHIFT_COMPLETED: &str = "Autoshift Completed";
const FIS_AUTOSHIFT_IN_PROGRESS: &str = "FIS Experiment Autoshift In Progress";
const FIS_AUTOSHIFT_COMPLETED: &str = "FIS Experiment Autoshift Completed";
const FIS_AUTOSHIFT_CANCELED: &str = "FIS Experiment Autoshift Canceled";

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

/// What asked for a zone to be evacuated. The evacuation record keeps every
/// signal of a zone; a clearing signal removes only itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Signal {
    /// An AWS Health issue, by a digest of its event ARN (the ARN is the
    /// same on the open and the closed event, and in the backup Region).
    Health(String),
    /// A CloudWatch alarm, by name (the sweep reads it back).
    Alarm(String),
    /// An ARC zonal autoshift away from the zone.
    Autoshift,
    /// An ARC autoshift started by an AWS FIS experiment (a drill).
    FisAutoshift,
    /// An operator's direct invoke (or `ballast evacuate`).
    Operator,
}

impl Signal {
    /// The Health signal of an event ARN: 12 hex digits of its FNV-1a hash,
    /// short enough for several to fit the record's tag.
    pub fn health(event_arn: &str) -> Signal {
        let hash = event_arn.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Signal::Health(format!("{:012x}", hash >> 16))
    }

    /// How the record names it: `health:<digest>`, `alarm:<name>` (bytes
    /// outside the tag alphabet escaped as `+XX`), `autoshift`, `fis`,
    /// `operator`.
    pub fn token(&self) -> String {
        match self {
            Signal::Health(digest) => format!("health:{digest}"),
            Signal::Alarm(name) => format!("alarm:{}", escape(name)),
            Signal::Autoshift => "autoshift".into(),
            Signal::FisAutoshift => "fis".into(),
            Signal::Operator => "operator".into(),
        }
    }

    pub fn from_token(token: &str) -> Option<Signal> {
        match token.split_once(':') {
            Some(("health", digest)) if !digest.is_empty() => Some(Signal::Health(digest.into())),
            Some(("alarm", name)) => unescape(name).filter(|n| !n.is_empty()).map(Signal::Alarm),
            None if token == "autoshift" => Some(Signal::Autoshift),
            None if token == "fis" => Some(Signal::FisAutoshift),
            None if token == "operator" => Some(Signal::Operator),
            _ => None,
        }
    }

    /// For people: `alarm web-az-a`, `AWS Health issue 3fa94c01d2e7`, ...
    pub fn describe(&self) -> String {
        match self {
            Signal::Health(digest) => format!("AWS Health issue {digest}"),
            Signal::Alarm(name) => format!("alarm {name}"),
            Signal::Autoshift => "ARC autoshift".into(),
            Signal::FisAutoshift => "FIS experiment autoshift".into(),
            Signal::Operator => "an operator".into(),
        }
    }
}

/// Tag values allow letters, digits, spaces and `_ . : / = + - @`; spaces
/// and `+` have a meaning in the record, so they are escaped too.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.:/=-@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b == b'+' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    String::from_utf8(bytes).ok()
}

/// A zonal signal as an event carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonalSignal {
    pub direction: Direction,
    /// The zones the event names (several, or none, are possible for
    /// Health; the reconciler acts only on exactly one of its Region).
    pub zones: Vec<ZoneRef>,
    pub signal: Signal,
    /// What the event said, for the report (Health's sentence).
    pub evidence: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawHealth {
    event_arn: String,
    service: String,
    event_type_category: String,
    event_type_code: String,
    status_code: String,
    /// Not in AWS's EventBridge events (a field of the Health *API*), but
    /// honoured when present.
    availability_zone: Option<String>,
    affected_entities: Vec<RawEntity>,
    event_description: Vec<RawDescription>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawEntity {
    entity_value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawDescription {
    latest_description: String,
}

/// The zones a text names (`use1-az6`, `USE1-AZ6`, `us-east-1a`), each with
/// the sentence it appears in.
fn zones_in_text(text: &str) -> Vec<(ZoneRef, String)> {
    let mut found: Vec<(ZoneRef, String)> = vec![];
    for sentence in text
        .split(['.', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        for word in sentence.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if let Some(zone) = ZoneRef::parse(word) {
                if !found.iter().any(|(z, _)| *z == zone) {
                    found.push((zone, format!("{sentence}.")));
                }
            }
        }
    }
    found
}

/// From an `AWS Health Event`: EC2 issues only; `open` evacuates, `closed`
/// clears. AWS's EventBridge events for public issues name the zone only in
/// the description's prose (usually as an AZ ID); `availabilityZone` and
/// `affectedEntities` are read first when present. The event ARN is the
/// signal's identity.
pub fn from_health(envelope: &Envelope) -> Result<ZonalSignal, String> {
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
    if h.event_arn.trim().is_empty() {
        return Err(format!(
            "AWS Health issue {} has no eventArn: its closing event could not be told apart",
            h.event_type_code
        ));
    }
    let mut zones: Vec<ZoneRef> = h
        .availability_zone
        .iter()
        .map(String::as_str)
        .chain(h.affected_entities.iter().map(|e| e.entity_value.as_str()))
        .filter_map(ZoneRef::parse)
        .collect();
    let mut evidence = None;
    if zones.is_empty() {
        let text: Vec<&str> = h
            .event_description
            .iter()
            .map(|d| d.latest_description.as_str())
            .collect();
        for (zone, sentence) in zones_in_text(&text.join("\n")) {
            evidence.get_or_insert(sentence);
            zones.push(zone);
        }
    } else {
        evidence = Some(format!(
            "AWS Health names {} in the event's fields.",
            zones
                .iter()
                .map(ZoneRef::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    zones.sort();
    zones.dedup();
    if zones.is_empty() && direction == Direction::Evacuate {
        return Err(format!(
            "AWS Health issue {} names no Availability Zone: a Region-wide issue moves no capacity \
             (moving between zones of an impaired Region does not help)",
            h.event_type_code
        ));
    }
    Ok(ZonalSignal {
        direction,
        zones,
        signal: Signal::health(h.event_arn.trim()),
        evidence,
    })
}

/// From ARC: `Autoshift In Progress` / `Completed`, and the same for FIS
/// experiments. `awayFrom` is an AZ ID. Practice runs and manual shifts
/// move no capacity.
pub fn from_autoshift(envelope: &Envelope) -> Result<ZonalSignal, String> {
    let (direction, signal) = match envelope.detail_type.as_str() {
        AUTOSHIFT_IN_PROGRESS => (Direction::Evacuate, Signal::Autoshift),
        AUTOSHIFT_COMPLETED => (Direction::Restore, Signal::Autoshift),
        FIS_AUTOSHIFT_IN_PROGRESS => (Direction::Evacuate, Signal::FisAutoshift),
        FIS_AUTOSHIFT_COMPLETED | FIS_AUTOSHIFT_CANCELED => {
            (Direction::Restore, Signal::FisAutoshift)
        }
        other if other.starts_with("Practice Run") => {
            return Err(format!(
                "ARC {other}: practice runs test a resource's zonal shift and never move capacity"
            ))
        }
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
    Ok(ZonalSignal {
        direction,
        zones: vec![zone],
        signal,
        evidence: None,
    })
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

    fn sample(name: &str) -> Envelope {
        let path = format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        match Inbound::classify(&serde_json::from_str(&text).unwrap()) {
            Inbound::EventBridge(env) => *env,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_public_ec2_issue_names_its_zone_only_in_the_description() {
        let open = from_health(&sample("health-ec2-issue-open.json")).unwrap();
        assert_eq!(open.direction, Direction::Evacuate);
        assert_eq!(open.zones, vec![ZoneRef::Id("use1-az6".into())]);
        let evidence = open.evidence.unwrap();
        assert!(
            evidence.contains("single Availability Zone (USE1-AZ6)"),
            "{evidence}"
        );
        let closed = from_health(&sample("health-ec2-issue-closed.json")).unwrap();
        assert_eq!(closed.direction, Direction::Restore);
        // The same issue: the same signal, so the closing event clears it.
        assert_eq!(closed.signal, open.signal);
        assert!(matches!(&open.signal, Signal::Health(d) if d.len() == 12));
    }

    #[test]
    fn the_documented_region_wide_issue_moves_nothing() {
        let err = from_health(&sample("health-ec2-issue-public.json")).unwrap_err();
        assert!(err.contains("names no Availability Zone"), "{err}");
        assert!(err.contains("Region-wide"), "{err}");
    }

    #[test]
    fn structured_zone_fields_are_honoured_when_present() {
        let e = envelope(
            "aws.health",
            HEALTH_EVENT,
            json!({"eventArn":"arn:aws:health:us-east-1::event/EC2/X/X_1","service":"EC2","eventTypeCategory":"issue",
            "eventTypeCode":"AWS_EC2_OPERATIONAL_ISSUE","statusCode":"open",
            "affectedEntities":[{"entityValue":"us-east-1a"},{"entityValue":"i-0abc"}],
            "eventDescription":[{"latestDescription":"Instances in use1-az1 and use1-az2."}]}),
        );
        let s = from_health(&e).unwrap();
        assert_eq!(s.zones, vec![ZoneRef::Name("us-east-1a".into())]);
    }

    #[test]
    fn every_zone_a_description_names_is_found() {
        let found = zones_in_text(
            "Connectivity issues in USE1-AZ4 and us-east-1b.\nUS-EAST-1 Region otherwise healthy (use1-az4).",
        );
        let zones: Vec<&str> = found.iter().map(|(z, _)| z.as_str()).collect();
        assert_eq!(zones, ["use1-az4", "us-east-1b"]);
        assert_eq!(
            found[0].1,
            "Connectivity issues in USE1-AZ4 and us-east-1b."
        );
        assert!(zones_in_text(
            "We are investigating increased API Error rates in the US-EAST-1 Region."
        )
        .is_empty());
    }

    #[test]
    fn health_events_that_move_no_capacity_are_refused() {
        let base = |service: &str, category: &str, status: &str, arn: &str| {
            envelope(
                "aws.health",
                HEALTH_EVENT,
                json!({"eventArn":arn,"service":service,"eventTypeCategory":category,
                "eventTypeCode":"X","statusCode":status,
                "eventDescription":[{"latestDescription":"in a single Availability Zone (USE1-AZ6)"}]}),
            )
        };
        let arn = "arn:aws:health:us-east-1::event/EC2/X/X_1";
        assert!(from_health(&base("RDS", "issue", "open", arn))
            .unwrap_err()
            .contains("only EC2"));
        assert!(from_health(&base("EC2", "scheduledChange", "open", arn))
            .unwrap_err()
            .contains("not an issue"));
        assert!(from_health(&base("EC2", "issue", "upcoming", arn))
            .unwrap_err()
            .contains("upcoming"));
        assert!(from_health(&base("EC2", "issue", "open", ""))
            .unwrap_err()
            .contains("no eventArn"));
        assert!(from_health(&base("EC2", "issue", "open", arn)).is_ok());
    }

    #[test]
    fn signals_round_trip_through_their_tokens() {
        for s in [
            Signal::health("arn:aws:health:us-east-1::event/EC2/X/X_1"),
            Signal::Alarm("web az-a canary+p99 (é)".into()),
            Signal::Alarm("ballast-az-web-canary-us-east-1a".into()),
            Signal::Autoshift,
            Signal::FisAutoshift,
            Signal::Operator,
        ] {
            let token = s.token();
            assert!(
                token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:/=+-@".contains(c)),
                "{token}"
            );
            assert_eq!(Signal::from_token(&token), Some(s), "{token}");
        }
        assert_eq!(Signal::Alarm("a b".into()).token(), "alarm:a+20b");
        for bad in ["", "alarm:", "alarm:+4", "health:", "nope", "alarm:+ZZ"] {
            assert_eq!(Signal::from_token(bad), None, "{bad}");
        }
        assert_ne!(Signal::health("a"), Signal::health("b"));
    }

    #[test]
    fn autoshift_and_fis_autoshift_are_signals_practice_runs_are_not() {
        let s = from_autoshift(&sample("arc-autoshift-in-progress.json")).unwrap();
        assert_eq!(
            (s.direction, s.zones, s.signal),
            (
                Direction::Evacuate,
                vec![ZoneRef::Id("use1-az6".into())],
                Signal::Autoshift
            )
        );
        let done = from_autoshift(&sample("arc-autoshift-completed.json")).unwrap();
        assert_eq!(
            (done.direction, done.signal),
            (Direction::Restore, Signal::Autoshift)
        );
        let fis = from_autoshift(&sample("arc-fis-autoshift-in-progress.json")).unwrap();
        assert_eq!(
            (fis.direction, fis.signal),
            (Direction::Evacuate, Signal::FisAutoshift)
        );
        for dt in [FIS_AUTOSHIFT_COMPLETED, FIS_AUTOSHIFT_CANCELED] {
            let e = envelope(
                "aws.arc-zonal-shift",
                dt,
                json!({"metadata":{"awayFrom":"use1-az1"}}),
            );
            assert_eq!(from_autoshift(&e).unwrap().direction, Direction::Restore);
        }
        let practice = from_autoshift(&sample("arc-practice-run-interrupted.json")).unwrap_err();
        assert!(practice.contains("practice runs"), "{practice}");
        let manual = envelope(
            "aws.arc-zonal-shift",
            "Manual Shift Started",
            json!({"metadata":{"awayFrom":"use1-az1"}}),
        );
        assert!(from_autoshift(&manual)
            .unwrap_err()
            .contains("move no capacity"));
        let empty = envelope("aws.arc-zonal-shift", AUTOSHIFT_COMPLETED, json!({}));
        assert!(from_autoshift(&empty).is_err());
    }
}
