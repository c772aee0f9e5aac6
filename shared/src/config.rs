//! Configuration from the environment (README, "Contract", "Environment variables"), validated
//! once at start-up so that a bad value fails init instead of an invocation.

use thiserror::Error;

pub const TOPIC_ARN: &str = "BALLAST_TOPIC_ARN";
pub const DRY_RUN: &str = "BALLAST_DRY_RUN";
pub const MAX_UNHEALTHY_PERCENT: &str = "BALLAST_MAX_UNHEALTHY_PERCENT";
pub const MAX_EVACUATED_AZS: &str = "BALLAST_MAX_EVACUATED_AZS";
pub const DNS_TTL: &str = "BALLAST_DNS_TTL";
pub const EVACUATION_WARN_HOURS: &str = "BALLAST_EVACUATION_WARN_HOURS";
pub const MAX_REPLACED_PERCENT: &str = "BALLAST_MAX_REPLACED_PERCENT";
pub const REPLACEMENT_WINDOW_MINUTES: &str = "BALLAST_REPLACEMENT_WINDOW_MINUTES";
pub const LEASE_TABLE: &str = "BALLAST_LEASE_TABLE";
/// `rds-failover`: the writer-probe function to invoke (its name or ARN);
/// unset, no database is probed.
pub const WRITER_PROBE_FUNCTION: &str = "BALLAST_WRITER_PROBE_FUNCTION";
/// `rds-failover`: how long an opted-in writer may stay unproven through
/// the application's name before it is `critical`.
pub const PROOF_GRACE_MINUTES: &str = "BALLAST_PROOF_GRACE_MINUTES";
/// `rds-failover`: the most a promotion may lose — data an opted-in
/// standby received and has not applied, in bytes (the lag guard).
pub const PROMOTION_MAX_UNAPPLIED_BYTES: &str = "BALLAST_PROMOTION_MAX_UNAPPLIED_BYTES";
/// Set by the template and not read by the functions: the deployed
/// configuration `ballast doctor` reads back (`HostedZoneIds`,
/// `ZonalAlarmPrefix`).
pub const HOSTED_ZONE_IDS: &str = "BALLAST_HOSTED_ZONE_IDS";
pub const ZONAL_ALARM_PREFIX: &str = "BALLAST_ZONAL_ALARM_PREFIX";

/// After this long, every `az-impairment` sweep reports a zone still
/// evacuated as a warning (it restores nothing by age).
pub const DEFAULT_EVACUATION_WARN_HOURS: u32 = 12;

/// TTL of the CNAMEs Ballast writes: short, so clients follow a failover
/// quickly (RDS's own endpoints use 5 s).
pub const DEFAULT_DNS_TTL: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// SNS topic every non-trivial report is published to.
    pub topic_arn: String,
    /// Decide and report, but make no mutating call except the SNS publish.
    pub dry_run: bool,
    /// Above this share of impaired targets, decline: suspect the application.
    pub max_unhealthy_percent: u8,
    /// Never have more than this many AZs evacuated at once.
    pub max_evacuated_azs: u32,
    /// TTL in seconds of the CNAMEs Ballast upserts.
    pub dns_ttl: i64,
    /// A zone evacuated longer than this is reported by every sweep.
    pub evacuation_warn_hours: u32,
    /// The replacement budget of each managed ASG (`decide::unhealthy_target::budget`).
    pub replacement_budget: crate::decide::unhealthy_target::Budget,
    /// The DynamoDB table of leases (`lease`).
    pub lease_table: String,
    /// How long a requested promotion may go unseen by RDS before it is
    /// requested again (`decide::rds_failover::PROMOTION_SETTLE_SECS`); not
    /// configurable from the environment.
    pub promotion_settle_secs: i64,
    /// The writer-probe function (`rds-failover`), when the stack has one.
    pub writer_probe: Option<String>,
    /// [`PROOF_GRACE_MINUTES`], in seconds.
    pub proof_grace_secs: i64,
    /// [`PROMOTION_MAX_UNAPPLIED_BYTES`].
    pub max_unapplied_bytes: u64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{variable} is not set: expected {expected}")]
    Missing {
        variable: &'static str,
        expected: &'static str,
    },
    #[error("{variable}={value:?} is invalid: expected {expected}")]
    Invalid {
        variable: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    /// An empty value counts as unset, as CloudFormation passes empty
    /// parameters through as empty strings.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let vars = Vars(lookup);
        let topic_arn = vars.required(
            TOPIC_ARN,
            "an SNS topic ARN such as arn:aws:sns:us-east-1:123456789012:ballast-reports",
            is_sns_topic_arn,
        )?;
        let lease_table = vars.required(
            LEASE_TABLE,
            "a DynamoDB table name (3-255 letters, digits, '_', '-', '.'), the stack's lease table",
            is_table_name,
        )?;
        let dry_run = vars.flag(DRY_RUN)?;
        let max_unhealthy_percent = vars.number(
            MAX_UNHEALTHY_PERCENT,
            50,
            0..=100,
            "a whole number of percent from 0 to 100",
        )?;
        let max_evacuated_azs = vars.number(
            MAX_EVACUATED_AZS,
            1,
            0..=32,
            "a whole number of Availability Zones from 0 to 32",
        )?;
        let dns_ttl = vars.number(
            DNS_TTL,
            DEFAULT_DNS_TTL,
            1..=86_400,
            "a TTL in seconds from 1 to 86400",
        )?;
        let evacuation_warn_hours = vars.number(
            EVACUATION_WARN_HOURS,
            DEFAULT_EVACUATION_WARN_HOURS,
            1..=8_760,
            "a whole number of hours from 1 to 8760",
        )?;
        let percent = vars.number(
            MAX_REPLACED_PERCENT,
            30,
            1..=100,
            "a whole number of percent from 1 to 100",
        )?;
        let window_minutes: i64 = vars.number(
            REPLACEMENT_WINDOW_MINUTES,
            60,
            1..=1_440,
            "a whole number of minutes from 1 to 1440",
        )?;
        let writer_probe = vars
            .get(WRITER_PROBE_FUNCTION)
            .map(|v| v.trim().to_string())
            .map(|v| {
                if is_function_name(&v) {
                    Ok(v)
                } else {
                    Err(ConfigError::Invalid {
                        variable: WRITER_PROBE_FUNCTION,
                        value: v,
                        expected: "a Lambda function name or ARN (letters, digits, '-', '_', ':')",
                    })
                }
            })
            .transpose()?;
        let proof_grace_minutes: i64 = vars.number(
            PROOF_GRACE_MINUTES,
            10,
            1..=1_440,
            "a whole number of minutes from 1 to 1440",
        )?;
        let max_unapplied_bytes = vars.number(
            PROMOTION_MAX_UNAPPLIED_BYTES,
            0,
            0..=1_000_000_000_000,
            "a whole number of bytes from 0 to 1000000000000",
        )?;
        Ok(Config {
            max_unapplied_bytes,
            writer_probe,
            proof_grace_secs: proof_grace_minutes * 60,
            topic_arn,
            replacement_budget: crate::decide::unhealthy_target::Budget {
                percent,
                window_secs: window_minutes * 60,
            },
            dry_run,
            max_unhealthy_percent,
            max_evacuated_azs,
            dns_ttl,
            evacuation_warn_hours,
            lease_table,
            promotion_settle_secs: crate::decide::rds_failover::PROMOTION_SETTLE_SECS,
        })
    }
}

/// A Lambda function's name, partial or full ARN (1-170 characters).
fn is_function_name(v: &str) -> bool {
    (1..=170).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

/// The variables, read through a lookup; a blank one is unset.
struct Vars<F>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be set, trimmed, and `valid`.
    fn required(
        &self,
        variable: &'static str,
        expected: &'static str,
        valid: impl Fn(&str) -> bool,
    ) -> Result<String, ConfigError> {
        let value = self
            .get(variable)
            .ok_or(ConfigError::Missing { variable, expected })?
            .trim()
            .to_string();
        if !valid(&value) {
            return Err(ConfigError::Invalid {
                variable,
                value,
                expected,
            });
        }
        Ok(value)
    }

    /// `true` or `false`; unset is `false`.
    fn flag(&self, variable: &'static str) -> Result<bool, ConfigError> {
        match self.get(variable) {
            None => Ok(false),
            Some(v) => parse_bool(&v).ok_or(ConfigError::Invalid {
                variable,
                value: v,
                expected: "true or false",
            }),
        }
    }

    /// A whole number in `range` (which fits `T`), or `default` when unset.
    fn number<T: TryFrom<i64>>(
        &self,
        variable: &'static str,
        default: T,
        range: std::ops::RangeInclusive<i64>,
        expected: &'static str,
    ) -> Result<T, ConfigError> {
        let Some(v) = self.get(variable) else {
            return Ok(default);
        };
        v.trim()
            .parse::<i64>()
            .ok()
            .filter(|n| range.contains(n))
            .and_then(|n| T::try_from(n).ok())
            .ok_or(ConfigError::Invalid {
                variable,
                value: v,
                expected,
            })
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// DynamoDB's table names: 3 to 255 of `[a-zA-Z0-9_.-]`.
fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `arn:<partition>:sns:<region>:<account>:<name>`
fn is_sns_topic_arn(arn: &str) -> bool {
    crate::event::Arn::parse(arn).is_some_and(|a| {
        a.service == "sns"
            && !a.region.is_empty()
            && !a.account.is_empty()
            && !a.resource.contains(':')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ballast-reports";
    const TABLE: &str = "ballast-leases";

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_only_the_topic_is_set() {
        let c = config(&[(TOPIC_ARN, TOPIC), (LEASE_TABLE, TABLE)]).unwrap();
        assert_eq!(
            c,
            Config {
                topic_arn: TOPIC.into(),
                dry_run: false,
                max_unhealthy_percent: 50,
                max_evacuated_azs: 1,
                dns_ttl: DEFAULT_DNS_TTL,
                evacuation_warn_hours: 12,
                replacement_budget: crate::decide::unhealthy_target::Budget {
                    percent: 30,
                    window_secs: 3600,
                },
                lease_table: TABLE.into(),
                promotion_settle_secs: crate::decide::rds_failover::PROMOTION_SETTLE_SECS,
                writer_probe: None,
                proof_grace_secs: 600,
                max_unapplied_bytes: 0,
            }
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            (TOPIC_ARN, TOPIC),
            (LEASE_TABLE, TABLE),
            (DRY_RUN, "TRUE"),
            (MAX_UNHEALTHY_PERCENT, "34"),
            (MAX_EVACUATED_AZS, "2"),
            (DNS_TTL, "5"),
            (EVACUATION_WARN_HOURS, "48"),
            (WRITER_PROBE_FUNCTION, "ballast-writer-probe"),
            (PROOF_GRACE_MINUTES, "3"),
            (PROMOTION_MAX_UNAPPLIED_BYTES, "65536"),
        ])
        .unwrap();
        assert_eq!(c.max_unapplied_bytes, 65_536);
        assert_eq!(c.writer_probe.as_deref(), Some("ballast-writer-probe"));
        assert_eq!(c.proof_grace_secs, 180);
        assert!(c.dry_run);
        assert_eq!(c.max_unhealthy_percent, 34);
        assert_eq!(c.max_evacuated_azs, 2);
        assert_eq!(c.dns_ttl, 5);
        assert_eq!(c.evacuation_warn_hours, 48);
    }

    #[test]
    fn missing_topic_names_the_variable() {
        let err = config(&[]).unwrap_err();
        assert!(
            err.to_string().starts_with("BALLAST_TOPIC_ARN is not set"),
            "{err}"
        );
        let err = config(&[(TOPIC_ARN, TOPIC)]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("BALLAST_LEASE_TABLE is not set"),
            "{err}"
        );
        let err = config(&[(TOPIC_ARN, "  ")]).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { .. }));
    }

    #[test]
    fn bad_values_name_variable_value_and_expectation() {
        let cases = [
            (TOPIC_ARN, "my-topic", "an SNS topic ARN"),
            (LEASE_TABLE, "no", "a DynamoDB table name"),
            (LEASE_TABLE, "a table", "a DynamoDB table name"),
            (DRY_RUN, "maybe", "true or false"),
            (MAX_UNHEALTHY_PERCENT, "150", "from 0 to 100"),
            (MAX_UNHEALTHY_PERCENT, "-1", "from 0 to 100"),
            (MAX_EVACUATED_AZS, "many", "Availability Zones"),
            (DNS_TTL, "0", "from 1 to 86400"),
            (EVACUATION_WARN_HOURS, "0", "from 1 to 8760"),
            (MAX_REPLACED_PERCENT, "0", "from 1 to 100"),
            (REPLACEMENT_WINDOW_MINUTES, "1441", "from 1 to 1440"),
            (PROOF_GRACE_MINUTES, "0", "from 1 to 1440"),
            (PROMOTION_MAX_UNAPPLIED_BYTES, "-1", "from 0 to"),
            (
                WRITER_PROBE_FUNCTION,
                "a b",
                "a Lambda function name or ARN",
            ),
        ];
        for (var, value, expected) in cases {
            let mut vars = vec![(TOPIC_ARN, TOPIC), (LEASE_TABLE, TABLE)];
            vars.retain(|(k, _)| *k != var);
            vars.push((var, value));
            let msg = config(&vars).unwrap_err().to_string();
            assert!(msg.contains(var), "{msg}");
            assert!(msg.contains(&format!("{value:?}")), "{msg}");
            assert!(msg.contains(expected), "{msg}");
        }
    }
}
