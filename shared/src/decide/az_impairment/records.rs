//! `ballast:evacuated`: what an evacuation keeps on the group, and what
//! holds each zone out.

use std::collections::{BTreeMap, BTreeSet};

use crate::event::zonal::Signal;
use crate::records::{self, items, Extra, Fields, Record, Unreadable};
use crate::tags;

/// Why a zone is evacuated: every signal that asked for it, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hold {
    /// When the zone was evacuated (seconds since the epoch); absent in
    /// records written before Ballast kept signals.
    pub since: Option<i64>,
    pub signals: BTreeSet<Signal>,
    /// More signals asked than the record could name: no clearing signal
    /// restores the zone, only an operator's restore.
    pub overflow: bool,
}

impl Hold {
    /// A record written before Ballast kept signals: any clearing signal
    /// for the zone restores it, as it always did.
    pub fn unnamed(&self) -> bool {
        self.signals.is_empty() && !self.overflow
    }

    /// `alarm web-az-a, AWS Health issue 3fa94c01d2e7`.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.signals.iter().map(Signal::describe).collect();
        if self.overflow {
            names.push("more signals than the record can name (an operator must restore)".into());
        }
        if names.is_empty() {
            names.push("a record from before signals were kept".into());
        }
        names.join(", ")
    }

    pub(super) fn merge(&mut self, other: &Hold) {
        self.since = match (self.since, other.since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.signals.extend(other.signals.iter().cloned());
        self.overflow |= other.overflow;
    }
}

/// What `ballast:evacuated` records: the AZs the group is evacuated from
/// (each with when, and every signal that holds it out), and its subnets
/// and max size from before the first of them.
///
/// Encoded as
/// `azs=us-east-1a@1764590000 subnets=subnet-1/subnet-2 max=4 by=us-east-1a/alarm:web-canary by=us-east-1a/health:3fa94c01d2e7`:
/// tag values allow only letters, digits, spaces and `_ . : / = + - @`, at
/// most 256 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evacuation {
    pub azs: BTreeMap<String, Hold>,
    pub subnets: Vec<String>,
    pub max_size: i32,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

/// The signal token that stands for "more than the record names".
const OVERFLOW: &str = "more";

impl Record for Evacuation {
    const TAG: &'static str = tags::EVACUATED;
    const KEYS: &'static [&'static str] = &["azs", "subnets", "max", "by"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let list = |k: &str| -> Result<Vec<String>, String> {
            let items = items(f.one(k)?, '/');
            if items.is_empty() {
                Err(format!("{k}= names nothing"))
            } else {
                Ok(items)
            }
        };
        let mut azs = BTreeMap::new();
        for item in list("azs")? {
            let (az, since) = match item.split_once('@') {
                Some((az, t)) => (
                    az.to_string(),
                    Some(t.parse().map_err(|_| format!("{item} has no time"))?),
                ),
                None => (item, None),
            };
            azs.insert(
                az,
                Hold {
                    since,
                    ..Hold::default()
                },
            );
        }
        for v in f.all("by") {
            let unknown = || format!("by={v} names no zone of azs= and a signal");
            let (az, token) = v.split_once('/').ok_or_else(unknown)?;
            let hold = azs.get_mut(az).ok_or_else(unknown)?;
            if token == OVERFLOW {
                hold.overflow = true;
            } else {
                hold.signals
                    .insert(Signal::from_token(token).ok_or_else(unknown)?);
            }
        }
        Ok(Evacuation {
            azs,
            subnets: list("subnets")?,
            max_size: f.number("max")?,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let azs: Vec<String> = self
            .azs
            .iter()
            .map(|(az, hold)| match hold.since {
                Some(t) => format!("{az}@{t}"),
                None => az.clone(),
            })
            .collect();
        let mut out = vec![
            ("azs", azs.join("/")),
            ("subnets", self.subnets.join("/")),
            ("max", self.max_size.to_string()),
        ];
        for (az, hold) in &self.azs {
            for signal in &hold.signals {
                out.push(("by", format!("{az}/{}", signal.token())));
            }
            if hold.overflow {
                out.push(("by", format!("{az}/{OVERFLOW}")));
            }
        }
        out
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Evacuation {
    pub fn encode(&self) -> String {
        records::write(self)
    }

    /// The record, or why it is not one.
    pub fn parse(value: &str) -> Result<Evacuation, Unreadable> {
        records::read(value)
    }
}
