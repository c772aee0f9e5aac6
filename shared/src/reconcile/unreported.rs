//! Reports that could not be published (I6).
//!
//! A report is tried [`super::PUBLISH_TRIES`] times. When SNS still refuses
//! it, the Lambda error carries the whole report (the dead-letter queue
//! keeps it), and a compact copy is parked on the first resource the report
//! names (the subject), in the tag `ballast:unreported`: the place the next
//! delivery of the same event is sure to look at again. A later delivery that
//! finds the work done (`noop`) publishes the parked report, marked as late,
//! and only then removes the tag (publish before removing the record).

use std::collections::BTreeMap;

#[cfg(feature = "elbv2")]
use crate::aws::balancer;
#[cfg(feature = "rds")]
use crate::aws::database;
#[cfg(feature = "autoscaling")]
use crate::aws::fleet;
use crate::aws::Aws;
use crate::context::Ballast;
use crate::records::{self, Extra, Fields, Record, Unreadable};
use crate::report::{now_rfc3339, Outcome, Report, Severity};
use crate::tags;

/// A resource a report names that can carry the tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    /// An Auto Scaling group, by name.
    #[cfg(feature = "autoscaling")]
    Group(String),
    /// A DB instance or cluster, by ARN.
    #[cfg(feature = "rds")]
    Db(String),
    /// A target group, by ARN.
    #[cfg(feature = "elbv2")]
    TargetGroup(String),
}

impl Place {
    /// The place a report's resource (an ARN) stands for, if it can be tagged.
    pub fn of(resource: &str) -> Option<Place> {
        #[cfg(feature = "autoscaling")]
        if let Some((_, name)) = resource.split_once(":autoScalingGroupName/") {
            return Some(Place::Group(name.to_string()));
        }
        let arn = crate::event::Arn::parse(resource)?;
        match (arn.service, arn.resource) {
            #[cfg(feature = "rds")]
            ("rds", r) if r.starts_with("db:") || r.starts_with("cluster:") => {
                Some(Place::Db(resource.into()))
            }
            #[cfg(feature = "elbv2")]
            ("elasticloadbalancing", r) if r.starts_with("targetgroup/") => {
                Some(Place::TargetGroup(resource.into()))
            }
            _ => None,
        }
    }

    #[cfg(feature = "autoscaling")]
    fn group(&self) -> Option<String> {
        #[allow(unreachable_patterns)]
        match self {
            Place::Group(name) => Some(name.clone()),
            _ => None,
        }
    }

    #[cfg(feature = "elbv2")]
    fn target_group(&self) -> Option<String> {
        #[allow(unreachable_patterns)]
        match self {
            Place::TargetGroup(arn) => Some(arn.clone()),
            _ => None,
        }
    }

    #[cfg(feature = "rds")]
    fn db(&self) -> Option<String> {
        #[allow(unreachable_patterns)]
        match self {
            Place::Db(arn) => Some(arn.clone()),
            _ => None,
        }
    }

    fn name(&self) -> &str {
        match self {
            #[cfg(feature = "autoscaling")]
            Place::Group(n) => n,
            #[cfg(feature = "rds")]
            Place::Db(n) => n,
            #[cfg(feature = "elbv2")]
            Place::TargetGroup(n) => n,
        }
    }
}

fn places(report: &Report) -> Vec<Place> {
    let mut places: Vec<Place> = report
        .resources
        .iter()
        .filter_map(|r| Place::of(r))
        .collect();
    places.sort();
    places.dedup();
    places
}

/// The parked copy: `o=<outcome> s=<severity> at=<time> ev=<event id>
/// m=<summary>`, in the characters every service's tag values allow
/// (letters, digits, spaces, `_ . : / = + - @`), at most 256 of them (a
/// longer summary is cut, ending in `...`).
pub fn encode(report: &Report) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c) {
                    c
                } else {
                    ' '
                }
            })
            .collect()
    };
    let mut value = records::write(&Parked {
        outcome: report.outcome,
        severity: report.severity,
        at: clean(&report.time).replace(' ', "_"),
        event: clean(&report.trigger.id).replace(' ', "_"),
        summary: clean(&report.summary),
        extra: Extra::default(),
    });
    if value.len() > tags::VALUE_MAX {
        value.truncate(tags::VALUE_MAX - "...".len());
        value.push_str("...");
    }
    value
}

/// What a parked copy says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub outcome: Outcome,
    pub severity: Severity,
    pub at: String,
    pub event: String,
    pub summary: String,
    /// Fields a later version wrote (a parked copy is read and removed,
    /// never rewritten).
    pub extra: Extra,
}

impl Record for Parked {
    const TAG: &'static str = tags::UNREPORTED;
    const KEYS: &'static [&'static str] = &["o", "s", "at", "ev", "m"];
    const TAIL: Option<&'static str> = Some("m");

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let word = |k: &str| -> Result<serde_json::Value, String> {
            Ok(serde_json::Value::String(f.one(k)?.to_string()))
        };
        Ok(Parked {
            outcome: serde_json::from_value(word("o")?).map_err(|e| format!("o=: {e}"))?,
            severity: serde_json::from_value(word("s")?).map_err(|e| format!("s=: {e}"))?,
            at: f.one("at")?.to_string(),
            event: f.opt("ev")?.unwrap_or_default().to_string(),
            summary: f.one("m")?.to_string(),
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("o", self.outcome.as_str().into()),
            ("s", self.severity.as_str().into()),
            ("at", self.at.clone()),
            ("ev", self.event.clone()),
            ("m", self.summary.clone()),
        ]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

pub fn parse(value: &str) -> Result<Parked, Unreadable> {
    records::read(value)
}

/// Parks `report` on the first resource it names that can carry the tag:
/// the subject the same event leads back to (one place, so the copy is
/// published once). A failure is logged: the Lambda error still carries
/// the report.
pub async fn park(aws: &Aws, report: &Report) {
    let value = encode(report);
    if let Some(place) = report.resources.iter().find_map(|r| Place::of(r)) {
        let result: Result<(), crate::aws::AwsError> = match &place {
            #[cfg(feature = "autoscaling")]
            Place::Group(name) => {
                fleet::tag_group(&aws.autoscaling, name, tags::UNREPORTED, &value).await
            }
            #[cfg(feature = "rds")]
            Place::Db(arn) => database::add_tag(&aws.rds, arn, tags::UNREPORTED, &value).await,
            #[cfg(feature = "elbv2")]
            Place::TargetGroup(arn) => {
                balancer::add_tag(&aws.elbv2, arn, tags::UNREPORTED, &value).await
            }
        };
        match result {
            Ok(()) => tracing::warn!(
                resource = place.name(),
                "report parked for a later delivery"
            ),
            Err(e) => tracing::error!(error = %e, "report not parked either"),
        }
    }
}

/// The `ballast:unreported` values a sweep's listing already read, by
/// resource (a DB resource's ARN; `None`: no parked copy there): the parked
/// copies on those resources are looked up here, not read again.
pub type Seen = BTreeMap<String, Option<String>>;

/// Up to this many DB resources, their parked copies are read one
/// `ListTagsForResource` each; beyond, from one listing of them all.
#[cfg(feature = "rds")]
const TAG_READS_AT_MOST: usize = 3;

/// The parked copies on the resources `report` names, each with where it
/// was found (from `seen` where the sweep's listing read them).
async fn find(
    aws: &Aws,
    report: &Report,
    seen: &Seen,
) -> Result<BTreeMap<String, Vec<Place>>, crate::aws::AwsError> {
    let mut found: BTreeMap<String, Vec<Place>> = BTreeMap::new();
    let (known, places): (Vec<Place>, Vec<Place>) = places(report)
        .into_iter()
        .partition(|p| seen.contains_key(p.name()));
    for place in known {
        if let Some(Some(v)) = seen.get(place.name()) {
            found.entry(v.clone()).or_default().push(place);
        }
    }
    #[cfg(feature = "autoscaling")]
    {
        let groups: Vec<String> = places.iter().filter_map(Place::group).collect();
        if !groups.is_empty() {
            for g in fleet::describe_groups(&aws.autoscaling, &groups).await? {
                if let Some(v) = g.tags.get(tags::UNREPORTED) {
                    found
                        .entry(v.clone())
                        .or_default()
                        .push(Place::Group(g.name));
                }
            }
        }
    }
    #[cfg(feature = "elbv2")]
    {
        let target_groups: Vec<String> = places.iter().filter_map(Place::target_group).collect();
        for chunk in target_groups.chunks(20) {
            for (arn, v) in balancer::tag_values(&aws.elbv2, chunk, tags::UNREPORTED).await? {
                found.entry(v).or_default().push(Place::TargetGroup(arn));
            }
        }
    }
    #[cfg(feature = "rds")]
    {
        let dbs: Vec<String> = places.iter().filter_map(Place::db).collect();
        if dbs.len() > TAG_READS_AT_MOST {
            // A sweep's report names every tagged database: one listing
            // (its pages carry each resource's tags) instead of a
            // `ListTagsForResource` each.
            let listing = database::list(&aws.rds).await?;
            let tags_of: BTreeMap<&str, &BTreeMap<String, String>> = listing
                .clusters
                .iter()
                .map(|c| (c.arn.as_str(), &c.tags))
                .chain(listing.instances.iter().map(|i| (i.arn.as_str(), &i.tags)))
                .collect();
            for arn in dbs {
                if let Some(v) = tags_of
                    .get(arn.as_str())
                    .and_then(|t| t.get(tags::UNREPORTED))
                {
                    found.entry(v.clone()).or_default().push(Place::Db(arn));
                }
            }
        } else {
            for arn in dbs {
                if let Some(v) = database::tag_value(&aws.rds, &arn, tags::UNREPORTED).await? {
                    found.entry(v).or_default().push(Place::Db(arn));
                }
            }
        }
    }
    Ok(found)
}

/// After a `noop` (the work found done): publishes every report parked on
/// the resources `report` names, marked late, then removes it where found.
/// Returns how many were published. Failures are logged and leave the
/// record for the next delivery.
pub async fn publish_parked(
    ballast: &Ballast,
    report: &Report,
    deadline: Option<std::time::Instant>,
    seen: &Seen,
) -> usize {
    let found = match find(&ballast.aws, report, seen).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "parked reports not read");
            return 0;
        }
    };
    let mut published = 0;
    for (value, places) in found {
        let parked = match parse(&value) {
            Ok(parked) => parked,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable parked report left in place");
                continue;
            }
        };
        let late = Report {
            outcome: parked.outcome,
            severity: parked.severity,
            summary: format!("Reported late: {}", parked.summary),
            resources: places.iter().map(|p| p.name().to_string()).collect(),
            actions: vec![],
            reason: Some(format!(
                "Ballast acted at {} on event {} and SNS refused the report then; this delivery found the work \
                 done and publishes it now",
                parked.at, parked.event
            )),
            time: now_rfc3339(),
            evidence: Default::default(),
            ..report.clone()
        };
        if let Err(e) = super::publish(ballast, &late, deadline).await {
            tracing::warn!(error = %e, "parked report still not published");
            continue;
        }
        published += 1;
        for place in places {
            let result: Result<(), crate::aws::AwsError> = match &place {
                #[cfg(feature = "autoscaling")]
                Place::Group(name) => {
                    fleet::untag_group(&ballast.aws.autoscaling, name, tags::UNREPORTED).await
                }
                #[cfg(feature = "rds")]
                Place::Db(arn) => {
                    database::remove_tag(&ballast.aws.rds, arn, tags::UNREPORTED).await
                }
                #[cfg(feature = "elbv2")]
                Place::TargetGroup(arn) => {
                    balancer::remove_tag(&ballast.aws.elbv2, arn, tags::UNREPORTED).await
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "published parked report not removed; it may be published again");
            }
        }
    }
    published
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Trigger;

    fn report() -> Report {
        Report {
            version: "1".into(),
            function: "az-impairment".into(),
            outcome: Outcome::Remediated,
            severity: Severity::Warning,
            summary: "us-east-1a is impaired: moving 1 Auto Scaling group(s) (web), capacity kept; done.".into(),
            trigger: Trigger::direct("req-1"),
            resources: vec![
                "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:f9d9:autoScalingGroupName/web".into(),
                "arn:aws:rds:us-east-1:123456789012:db:orders".into(),
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/50dc6c495c0c9188".into(),
                "us-east-1a".into(),
            ],
            actions: vec![],
            reason: None,
            region: "us-east-1".into(),
            time: "2026-12-01T12:00:00Z".into(),
            evidence: Default::default(),
        }
    }

    #[test]
    fn the_places_are_what_the_report_names_and_can_be_tagged() {
        assert_eq!(
            places(&report()),
            [
                Place::Group("web".into()),
                Place::Db("arn:aws:rds:us-east-1:123456789012:db:orders".into()),
                Place::TargetGroup(
                    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/50dc6c495c0c9188".into()
                ),
            ]
        );
        assert_eq!(
            Place::of("arn:aws:rds:us-east-1:1:cluster:orders-aurora")
                .map(|p| p.name().to_string())
                .as_deref(),
            Some("arn:aws:rds:us-east-1:1:cluster:orders-aurora")
        );
        assert_eq!(Place::of("arn:aws:sns:us-east-1:1:topic"), None);
    }

    #[test]
    fn the_parked_copy_round_trips_within_tag_rules() {
        let value = encode(&report());
        assert!(value.len() <= 256);
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _.:/=+-@".contains(c)),
            "{value}"
        );
        let parked = parse(&value).unwrap();
        assert_eq!(parked.outcome, Outcome::Remediated);
        assert_eq!(parked.severity, Severity::Warning);
        assert_eq!(parked.at, "2026-12-01T12:00:00Z");
        assert!(
            parked
                .summary
                .starts_with("us-east-1a is impaired: moving 1 Auto Scaling group s   web"),
            "{}",
            parked.summary
        );
        let mut long = report();
        long.summary = "x".repeat(400);
        assert_eq!(encode(&long).len(), 256);
        assert!(parse("rubbish").is_err());
        // What a later version adds is read past.
        let later = parse(&value.replacen(" m=", " zz=1 m=", 1)).unwrap();
        assert_eq!(
            Parked {
                extra: Extra::default(),
                ..later
            },
            parked
        );
    }
}
