//! The fleet breaker: while Ballast declines to replace a target group's
//! instances, it suspends the `ReplaceUnhealthy` process of each ASG that
//! would replace them by itself, and resumes only what it suspended once the
//! target group is back within the guardrail. Its record is
//! `ballast:suspended`.

use super::decision::GroupDecision;
use super::state::BudgetedGroup;
use crate::decide::Step;
use crate::event::short_name;
use crate::records::{self, items, Extra, Fields, Record, Unreadable};
use crate::tags;

/// Why the breaker trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trip {
    /// The target group's impaired share is over the guardrail.
    Share,
    /// The group's replacement budget is spent.
    Budget,
}

impl Trip {
    fn code(self) -> &'static str {
        match self {
            Trip::Share => "share",
            Trip::Budget => "budget",
        }
    }
}

/// The breaker of group `g` for target group `tg` (its ARN): trips it
/// (the record before `SuspendProcesses`), keeps it open, or closes it
/// (`ResumeProcesses` before the record goes) once no target group holds it.
pub(super) fn decide(
    d: &mut GroupDecision,
    tg: &str,
    g: &BudgetedGroup,
    trip: Option<Trip>,
    over_share: bool,
    now: i64,
) {
    let key = target_group_key(tg);
    match (trip, g.breaker()) {
        (Some(_), Breaker::Closed) if g.is_suspended(REPLACE_UNHEALTHY) => {
            d.trips = true;
            d.notes.push(format!(
                "ASG {}'s {REPLACE_UNHEALTHY} is already suspended, not by Ballast: \
                 left to whoever suspended it.",
                g.name
            ));
        }
        (Some(why), Breaker::Closed) => trip_closed(d, tg, g, why, now),
        (Some(_), Breaker::Open(record)) => keep_open(d, key, g, &record),
        (_, Breaker::Unreadable(value)) => d.notes.push(format!(
            "ASG {} carries an unreadable {}={value:?}: Ballast leaves its processes as they are; \
             fix or remove the tag.",
            g.name,
            tags::SUSPENDED
        )),
        (None, Breaker::Open(record))
            if !over_share && record.target_groups.iter().any(|t| t == key) =>
        {
            release(d, tg, g, &record)
        }
        _ => {}
    }
}

/// A closed breaker trips: the record, then `SuspendProcesses`.
fn trip_closed(d: &mut GroupDecision, tg: &str, g: &BudgetedGroup, why: Trip, now: i64) {
    d.trips = true;
    let record = Suspended {
        processes: vec![REPLACE_UNHEALTHY.into()],
        at: now,
        why: why.code().into(),
        target_groups: vec![target_group_key(tg).into()],
        extra: Extra::default(),
    };
    d.steps.push(Step::TagGroup {
        asg: g.name.clone(),
        key: tags::SUSPENDED.into(),
        value: record.encode(),
    });
    d.steps.push(Step::SuspendProcesses {
        asg: g.name.clone(),
        processes: record.processes,
    });
    d.notes.push(format!(
        "Breaker: ASG {} replaces unhealthy instances by itself (health check type {}); \
         its {REPLACE_UNHEALTHY} is suspended until {} is back within the guardrail.",
        g.name,
        g.health_check_type,
        short_name(tg)
    ));
}

/// An open breaker stays open: this target group joins its record, and
/// what someone resumed behind Ballast's back is suspended again.
fn keep_open(d: &mut GroupDecision, key: &str, g: &BudgetedGroup, record: &Suspended) {
    d.trips = true;
    if let Some(more) = record.holding(key) {
        d.steps.push(Step::TagGroup {
            asg: g.name.clone(),
            key: tags::SUSPENDED.into(),
            value: more.encode(),
        });
    }
    let missing: Vec<String> = record
        .processes
        .iter()
        .filter(|p| !g.is_suspended(p))
        .cloned()
        .collect();
    if missing.is_empty() {
        d.notes.push(format!(
            "Breaker open: ASG {}'s {} suspended by Ballast since {}.",
            g.name,
            record.processes.join(", "),
            crate::report::rfc3339(record.at)
        ));
        return;
    }
    d.notes.push(format!(
        "Breaker: ASG {}'s {} is suspended again (the record says Ballast suspended it).",
        g.name,
        missing.join(", ")
    ));
    d.steps.push(Step::SuspendProcesses {
        asg: g.name.clone(),
        processes: missing,
    });
}

/// Target group `tg` is back within the guardrail: it lets go of the
/// breaker, which closes when no other target group holds it.
fn release(d: &mut GroupDecision, tg: &str, g: &BudgetedGroup, record: &Suspended) {
    let key = target_group_key(tg);
    let mut rest = record.clone();
    rest.target_groups.retain(|t| t != key);
    if !rest.target_groups.is_empty() {
        d.steps.push(Step::TagGroup {
            asg: g.name.clone(),
            key: tags::SUSPENDED.into(),
            value: rest.encode(),
        });
        d.notes.push(format!(
            "{} is back within the guardrail; the breaker of ASG {} stays open for {}.",
            short_name(tg),
            g.name,
            rest.target_groups.join(", ")
        ));
        return;
    }
    let resume: Vec<String> = record
        .processes
        .iter()
        .filter(|p| g.is_suspended(p))
        .cloned()
        .collect();
    if !resume.is_empty() {
        d.steps.push(Step::ResumeProcesses {
            asg: g.name.clone(),
            processes: resume,
        });
    }
    d.steps.push(Step::UntagGroup {
        asg: g.name.clone(),
        key: tags::SUSPENDED.into(),
    });
    d.notes.push(format!(
        "{} is back within the guardrail: the breaker closes, ASG {} resumes {}.",
        short_name(tg),
        g.name,
        record.processes.join(", ")
    ));
}

/// Who holds an ASG's `ReplaceUnhealthy` suspended, as its tags say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Breaker {
    /// No `ballast:suspended` record.
    Closed,
    /// Ballast's record.
    Open(Suspended),
    /// A `ballast:suspended` value Ballast cannot read: left alone.
    Unreadable(String),
}

/// The process the breaker suspends: the one with which an ASG replaces
/// the instances its health check finds unhealthy.
pub const REPLACE_UNHEALTHY: &str = "ReplaceUnhealthy";

/// The breaker's record, `ballast:suspended`: `p=<processes> at=<epoch
/// seconds> why=<share|budget> tg=<target group>,...`. The processes are
/// the only ones Ballast ever resumes; the target groups are those whose
/// decline holds the breaker open (`name/id`, from their ARNs): it closes
/// when the last of them is back within the guardrail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspended {
    pub processes: Vec<String>,
    pub at: i64,
    pub why: String,
    pub target_groups: Vec<String>,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

impl Record for Suspended {
    const TAG: &'static str = tags::SUSPENDED;
    const KEYS: &'static [&'static str] = &["p", "at", "why", "tg"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let processes = items(f.one("p")?, ',');
        if processes.is_empty() {
            return Err("no process in p=".into());
        }
        Ok(Suspended {
            processes,
            at: f.number("at")?,
            why: f.opt("why")?.unwrap_or_default().to_string(),
            target_groups: items(f.opt("tg")?.unwrap_or_default(), ','),
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("p", self.processes.join(",")),
            ("at", self.at.to_string()),
            ("why", self.why.clone()),
            ("tg", self.target_groups.join(",")),
        ]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Suspended {
    pub fn parse(value: &str) -> Result<Suspended, Unreadable> {
        records::read(value)
    }

    pub fn encode(&self) -> String {
        records::write(self)
    }

    /// The record with `tg` added, when it still fits a tag value (when it
    /// does not, the target groups already named hold the breaker open, and
    /// the next look at `tg` after they close trips it again).
    pub fn holding(&self, tg: &str) -> Option<Suspended> {
        if self.target_groups.iter().any(|t| t == tg) {
            return None;
        }
        let mut more = self.clone();
        more.target_groups.push(tg.to_string());
        (more.encode().len() <= tags::VALUE_MAX).then_some(more)
    }
}

/// How a target group is named in the breaker's record: `name/id`, the
/// tail of its ARN.
pub fn target_group_key(arn: &str) -> &str {
    crate::event::Arn::parse(arn)
        .and_then(|a| a.resource.strip_prefix("targetgroup/"))
        .unwrap_or(arn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suspended_record_round_trips_and_names_its_target_groups() {
        let tg =
            "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/73e2d6bc24d8a067";
        assert_eq!(target_group_key(tg), "web/73e2d6bc24d8a067");
        let r = Suspended {
            processes: vec![REPLACE_UNHEALTHY.into()],
            at: 1_796_140_800,
            why: "share".into(),
            target_groups: vec![target_group_key(tg).into()],
            extra: Extra::default(),
        };
        let value = r.encode();
        assert_eq!(
            value,
            "p=ReplaceUnhealthy at=1796140800 why=share tg=web/73e2d6bc24d8a067"
        );
        assert_eq!(Suspended::parse(&value), Ok(r.clone()));
        assert_eq!(r.holding("web/73e2d6bc24d8a067"), None);
        let two = r.holding("api/0123456789abcdef").unwrap();
        assert_eq!(two.target_groups.len(), 2);
        // Target groups beyond what a tag holds are not recorded.
        let mut full = two;
        for k in 0..10 {
            if let Some(more) =
                full.holding(&format!("a-long-target-group-name-{k:05}/0123456789abcdef"))
            {
                full = more;
            }
        }
        assert!(full.encode().len() <= tags::VALUE_MAX);
        for bad in [
            "",
            "p= at=1",
            "p=ReplaceUnhealthy",
            "p=ReplaceUnhealthy at=x",
            "p=A p=B at=1",
        ] {
            assert!(Suspended::parse(bad).is_err(), "{bad}");
        }
        // A field a later version adds is read past and kept.
        let later = Suspended::parse("x=1 p=A at=1").unwrap();
        assert_eq!(
            (later.processes.clone(), later.at),
            (vec!["A".to_string()], 1)
        );
        assert_eq!(
            later.holding("web/1").unwrap().encode(),
            "p=A at=1 why= tg=web/1 x=1"
        );
    }
}
