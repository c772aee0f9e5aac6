//! One CloudWatch Embedded Metric Format record per invocation, written to
//! stdout as one JSON line: Lambda sends it to the function's log group and
//! CloudWatch extracts the metrics (no `PutMetricData`, no extra call or
//! permission). Specification:
//! docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
//!
//! Namespace `Ballast`; dimension sets `[function, outcome]` and `[outcome]`
//! (the second lets one alarm watch every function); metrics `Decisions`,
//! `ActionsDone`, `ActionsFailed`, `ActionsSkipped` (Count) and `Duration`
//! (Milliseconds).

use std::time::Duration;

use crate::report::{ActionStatus, Report};

pub const NAMESPACE: &str = "Ballast";
/// The metrics of every record, with their units.
pub const METRICS: [(&str, &str); 5] = [
    ("Decisions", "Count"),
    ("ActionsDone", "Count"),
    ("ActionsFailed", "Count"),
    ("ActionsSkipped", "Count"),
    ("Duration", "Milliseconds"),
];
/// The dimension sets each metric is written under.
pub const DIMENSION_SETS: [&[&str]; 2] = [&["function", "outcome"], &["outcome"]];
/// The outcome of an invocation that ended in a Lambda error (retried by
/// Lambda, then kept by the dead-letter queue) instead of a report.
pub const ERROR_OUTCOME: &str = "error";
/// The outcome of an invocation that found another one changing its
/// resource and stood down: a Lambda error by design (Lambda retries it),
/// which the template's error alarms subtract from `Errors`.
pub const STOOD_DOWN_OUTCOME: &str = "stood-down";

/// Lambda's log levels, least severe first: with JSON logs and an
/// application log level, Lambda drops a line whose `level` is below it,
/// and reads a line without `level` as `INFO`.
pub const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The `level` an EMF record carries so that Lambda's log-level filter
/// (`AWS_LAMBDA_LOG_LEVEL`, the template's `LogLevel`) keeps it: the
/// configured level itself when it is above `INFO`, else `INFO`. Without
/// it, `LogLevel=WARN` or `ERROR` would drop every metric, and with them
/// Ballast's own alarms.
pub fn kept_level(lambda_level: Option<&str>) -> &'static str {
    let configured = lambda_level.map(|l| l.trim().to_ascii_uppercase());
    let rank = |l: &str| LAMBDA_LEVELS.iter().position(|x| *x == l);
    match configured.as_deref().and_then(|c| rank(c).map(|i| (c, i))) {
        Some((_, i)) if i > 2 => LAMBDA_LEVELS[i],
        _ => "INFO",
    }
}

/// The EMF record of one invocation: its outcome, and its report when it
/// answered with one. `level` is [`kept_level`]'s.
pub fn record(
    function: &str,
    outcome: &str,
    report: Option<&Report>,
    duration: Duration,
    epoch_ms: u128,
    level: &str,
) -> serde_json::Value {
    let count = |status: ActionStatus| {
        report.map_or(0, |r| {
            r.actions.iter().filter(|a| a.status == status).count()
        })
    };
    serde_json::json!({
        "_aws": {
            "Timestamp": epoch_ms as u64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": DIMENSION_SETS,
                "Metrics": METRICS
                    .iter()
                    .map(|(name, unit)| serde_json::json!({"Name": name, "Unit": unit}))
                    .collect::<Vec<_>>(),
            }],
        },
        "level": level,
        "function": function,
        "outcome": outcome,
        "Decisions": 1,
        "ActionsDone": count(ActionStatus::Done),
        "ActionsFailed": count(ActionStatus::Failed),
        "ActionsSkipped": count(ActionStatus::Skipped),
        "Duration": duration.as_secs_f64() * 1000.0,
    })
}

/// Writes the record as one line on stdout (one `write` of a whole line, so
/// log lines of other tasks cannot split it).
pub fn emit(record: &serde_json::Value) {
    use std::io::Write;
    let line = format!("{record}\n");
    let _ = std::io::stdout().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Trigger;
    use crate::report::{ActionRecord, Outcome, Severity, REPORT_VERSION};

    #[test]
    fn a_record_follows_the_specification() {
        let action = |status| ActionRecord {
            kind: crate::report::ActionKind::MarkUnhealthy,
            target: "i-1".into(),
            asg: None,
            status,
            detail: String::new(),
        };
        let report = Report {
            version: REPORT_VERSION.into(),
            function: "unhealthy-target".into(),
            outcome: Outcome::Remediated,
            severity: Severity::Info,
            summary: String::new(),
            trigger: Trigger::direct("r"),
            resources: vec![],
            actions: vec![
                action(ActionStatus::Done),
                action(ActionStatus::Done),
                action(ActionStatus::Failed),
            ],
            reason: None,
            region: "us-east-1".into(),
            time: String::new(),
            evidence: Default::default(),
        };
        let r = record(
            "unhealthy-target",
            report.outcome.as_str(),
            Some(&report),
            Duration::from_millis(42),
            1_700_000_000_000,
            "INFO",
        );
        let directive = &r["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Ballast");
        // Every dimension and metric a directive names is a member of the root.
        for set in directive["Dimensions"].as_array().unwrap() {
            for d in set.as_array().unwrap() {
                assert!(r[d.as_str().unwrap()].is_string(), "{d}");
            }
        }
        for m in directive["Metrics"].as_array().unwrap() {
            assert!(r[m["Name"].as_str().unwrap()].is_number(), "{m}");
        }
        assert_eq!(r["outcome"], "remediated");
        assert_eq!(r["ActionsDone"], 2);
        assert_eq!(r["ActionsFailed"], 1);
        assert_eq!(r["ActionsSkipped"], 0);
        assert_eq!(r["Duration"], 42.0);
        let error = record(
            "rds-failover",
            ERROR_OUTCOME,
            None,
            Duration::ZERO,
            0,
            "WARN",
        );
        assert_eq!(error["level"], "WARN");
        assert_eq!(error["outcome"], "error");
        assert_eq!(error["Decisions"], 1);
        assert_eq!(error["ActionsDone"], 0);
    }

    /// Lambda keeps a line whose level is at or above the configured one.
    #[test]
    fn the_record_passes_every_log_level_filter() {
        let rank = |l: &str| LAMBDA_LEVELS.iter().position(|x| *x == l).unwrap();
        for configured in LAMBDA_LEVELS {
            let level = kept_level(Some(configured));
            assert!(rank(level) >= rank(configured), "{configured}: {level}");
            assert!(rank(level) >= rank("INFO"), "{configured}: {level}");
        }
        assert_eq!(kept_level(Some("warn")), "WARN");
        assert_eq!(kept_level(Some("loud")), "INFO");
        assert_eq!(kept_level(None), "INFO");
    }
}
