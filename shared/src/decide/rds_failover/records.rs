//! What Ballast reads and writes on a DB resource: the
//! `ballast:promotion` record and the `ballast:dns-record` tag.

use std::collections::BTreeMap;

use crate::records::{self, Extra, Fields, Record, Unreadable};
use crate::resources::{normalise, Instance};
use crate::tags;

/// The record of a promotion, `ballast:promotion` on the replica: written
/// **before** `PromoteReadReplica` (`requested`) and updated once RDS
/// accepted it (`promoted`). Later deliveries read it to finish the
/// promotion instead of promoting twice (RDS refuses a second promotion, and
/// a promoting replica still names its source for minutes).
///
/// Encoded as `from=<primary id> state=requested|promoted at=<epoch seconds>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    pub from: String,
    pub promoted: bool,
    pub at: i64,
    /// Fields a later version wrote, kept.
    pub extra: Extra,
}

impl Record for Promotion {
    const TAG: &'static str = tags::PROMOTION;
    const KEYS: &'static [&'static str] = &["from", "state", "at"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let from = f.one("from")?;
        if from.is_empty() {
            return Err("from= names no primary".into());
        }
        Ok(Promotion {
            from: from.to_string(),
            promoted: match f.one("state")? {
                "promoted" => true,
                "requested" => false,
                other => return Err(format!("state={other} is neither requested nor promoted")),
            },
            at: f.number("at")?,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let state = if self.promoted {
            "promoted"
        } else {
            "requested"
        };
        vec![
            ("from", self.from.clone()),
            ("state", state.into()),
            ("at", self.at.to_string()),
        ]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

impl Promotion {
    pub fn encode(&self) -> String {
        records::write(self)
    }

    pub fn parse(value: &str) -> Result<Promotion, Unreadable> {
        records::read(value)
    }

    /// The record on `instance`, if it names `primary`.
    pub fn of(instance: &Instance, primary: &str) -> Option<Promotion> {
        instance
            .tags
            .get(tags::PROMOTION)
            .and_then(|v| Promotion::parse(v).ok())
            .filter(|p| p.from == primary)
    }
}

/// `ballast:dns-record` = `<HostedZoneId>/<record name>` → (zone, name).
/// A `/hostedzone/` prefix, as the API prints zone IDs, is accepted.
pub fn parse_dns_tag(value: &str) -> Result<(String, String), String> {
    let v = value.trim();
    let v = v
        .strip_prefix("/hostedzone/")
        .or_else(|| v.strip_prefix("hostedzone/"))
        .unwrap_or(v);
    match v.split_once('/') {
        Some((zone, name)) if !zone.is_empty() && !name.trim_matches('.').is_empty() && !name.contains('/') => {
            Ok((zone.to_string(), normalise(name)))
        }
        _ => Err(format!(
            "{}={value:?} is not <HostedZoneId>/<record name>, e.g. Z0123456789ABCDEFGHIJ/db.internal.example.com",
            tags::DNS_RECORD
        )),
    }
}

pub(super) fn dns_tag(tags: &BTreeMap<String, String>) -> Option<Result<(String, String), String>> {
    tags.get(tags::DNS_RECORD).map(|v| parse_dns_tag(v))
}

/// `ballast:writer-probe`: the opt-in to the writer proof, and how the
/// probe logs in. `secret=master` is the secret RDS manages for the master
/// user (its ARN, `…:secret:rds!…`, cannot be a tag value: RDS refuses `!`
/// in tags); `secret=<name or ARN>` any other secret with `username` and
/// `password`; `auth=iam user=<database user>` IAM database
/// authentication as that user; `db=<database>` the database to connect
/// to (PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTag {
    pub login: ProbeLogin,
    pub database: Option<String>,
    pub extra: Extra,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeLogin {
    /// The DB resource's `MasterUserSecret`.
    MasterSecret,
    /// A secret's name or ARN.
    Secret(String),
    /// An IAM database authentication token for this database user.
    Iam { user: String },
}

impl Record for ProbeTag {
    const TAG: &'static str = tags::WRITER_PROBE;
    const KEYS: &'static [&'static str] = &["secret", "auth", "user", "db"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        let login = match (f.opt("secret")?, f.opt("auth")?) {
            (Some(_), Some(_)) => return Err("secret= and auth= both: name one login".into()),
            (None, None) => return Err("no secret= nor auth=iam".into()),
            (Some(""), None) => return Err("secret= names no secret".into()),
            (Some("master"), None) => ProbeLogin::MasterSecret,
            (Some(named), None) => ProbeLogin::Secret(named.to_string()),
            (None, Some("iam")) => match f.opt("user")? {
                Some(user) if !user.is_empty() => ProbeLogin::Iam {
                    user: user.to_string(),
                },
                _ => return Err("auth=iam names no user=".into()),
            },
            (None, Some(other)) => return Err(format!("auth={other} is not iam")),
        };
        let database = f.opt("db")?.filter(|d| !d.is_empty()).map(str::to_string);
        Ok(ProbeTag {
            login,
            database,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = match &self.login {
            ProbeLogin::MasterSecret => vec![("secret", "master".to_string())],
            ProbeLogin::Secret(n) => vec![("secret", n.clone())],
            ProbeLogin::Iam { user } => vec![("auth", "iam".to_string()), ("user", user.clone())],
        };
        if let Some(db) = &self.database {
            fields.push(("db", db.clone()));
        }
        fields
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}

/// `ballast:unproven`: since when an opted-in resource's writer has not
/// been proven through the application's name. Written before the step
/// that changes the writer or the record (and when a proof first fails),
/// removed once the probe proves the writer: its removal is the
/// `remediated` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unproven {
    pub since: i64,
    pub extra: Extra,
}

impl Record for Unproven {
    const TAG: &'static str = tags::UNPROVEN;
    const KEYS: &'static [&'static str] = &["since"];

    fn from_fields(f: Fields<'_>, extra: Extra) -> Result<Self, String> {
        Ok(Unproven {
            since: f.number("since")?,
            extra,
        })
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        vec![("since", self.since.to_string())]
    }

    fn extra(&self) -> &Extra {
        &self.extra
    }
}
