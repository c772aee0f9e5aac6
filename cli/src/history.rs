//! `ballast history`: what Ballast decided, as a timeline, from the
//! functions' own logs. Each invocation logs its report whole (the
//! `decision` line, `reconcile::publish`); one CloudWatch Logs Insights
//! query over the functions' log groups finds them, bounded in rows and in
//! time, and the command reads each report back and prints one line per
//! decision, oldest first.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::types::QueryStatus;

use ballast::report::{Function, Outcome, Report};

use crate::{cut_at_word, json_text, steer, Answer, Exit, Target};

/// How long the command waits for Logs Insights before it stops the query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Between two reads of a running query's results.
const POLL: Duration = Duration::from_secs(1);
/// Logs Insights returns at most this many rows.
pub const MAX_LIMIT: u32 = 10_000;

/// What to look for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Seconds before now.
    pub since: Duration,
    pub functions: Vec<Function>,
    pub outcome: Option<Outcome>,
    /// A substring of a resource the report names.
    pub resource: Option<String>,
    pub limit: u32,
}

/// `90s`, `30m`, `6h`, `7d`, `2w`: a duration before now.
pub fn parse_since(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad =
        || format!("--since {text:?}: give a number and a unit (s, m, h, d or w), e.g. 6h or 7d");
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(n.saturating_mul(secs)))
}

/// A string literal of the Logs Insights query language.
fn literal(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The Logs Insights query: the decision lines (and, to keep `limit`
/// meaningful, the outcome and resource as substrings of the line), newest
/// first. What it returns is filtered again exactly by [`decisions`].
pub fn query_string(q: &Query) -> String {
    let mut filter = vec![format!("@message like {}", literal("decision"))];
    if let Some(o) = q.outcome {
        filter.push(format!("@message like {}", literal(o.as_str())));
    }
    if let Some(r) = &q.resource {
        filter.push(format!("@message like {}", literal(r)));
    }
    format!(
        "fields @timestamp, @message\n| filter {}\n| sort @timestamp desc\n| limit {}",
        filter.join(" and "),
        q.limit
    )
}

/// The report a log line carries, if it is a decision line: a JSON line
/// (`LogFormat: JSON`, the template's) with `fields.message` `decision`
/// and the report in `fields.report`, or a text line ending in
/// `report={…}`.
pub fn report_of(line: &str) -> Option<Report> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = &v["fields"];
        if fields["message"] != "decision" {
            return None;
        }
        return serde_json::from_str(fields["report"].as_str()?).ok();
    }
    let (head, report) = line.split_once(" report=")?;
    head.contains("decision")
        .then(|| serde_json::from_str(report.trim()).ok())
        .flatten()
}

/// The decisions among `lines` that match `q`, oldest first.
pub fn decisions<'a>(lines: impl IntoIterator<Item = &'a str>, q: &Query) -> Vec<Report> {
    let names: Vec<&str> = q.functions.iter().map(|f| f.as_str()).collect();
    let mut out: Vec<Report> = lines
        .into_iter()
        .filter_map(report_of)
        .filter(|r| names.contains(&r.function.as_str()))
        .filter(|r| q.outcome.is_none_or(|o| r.outcome == o))
        .filter(|r| {
            q.resource
                .as_deref()
                .is_none_or(|s| r.resources.iter().any(|res| res.contains(s)))
        })
        .collect();
    out.sort_by(|a, b| a.time.cmp(&b.time));
    out
}

/// One line per decision (time, function, outcome, severity, resource,
/// summary); with `details`, each report whole below its line.
pub fn render(reports: &[Report], details: bool) -> String {
    if reports.is_empty() {
        return "No decision in that window.\n".into();
    }
    let mut out = String::new();
    for r in reports {
        let resource = match r.resources_phrase() {
            none if none.is_empty() => "-".to_string(),
            phrase => phrase,
        };
        // To the second: `2026-12-07T10:36:38Z`.
        let time = match r.time.split_once('.') {
            Some((seconds, _)) => format!("{seconds}Z"),
            None => r.time.clone(),
        };
        out.push_str(&format!(
            "{}  {:<16} {:<10} {:<8} {}  {}\n",
            time,
            r.function,
            r.outcome.as_str(),
            r.severity.as_str(),
            resource,
            cut_at_word(&r.summary, 160)
        ));
        if details {
            for line in r.email_text().lines() {
                out.push_str(&format!("    {line}\n"));
            }
            out.push('\n');
        }
    }
    out
}

/// `ballast history`.
pub async fn run(target: &Target, stack: &str, q: &Query, details: bool, json: bool) -> Answer {
    let mut groups = vec![];
    let mut missing = vec![];
    for f in &q.functions {
        let name = steer::function_name(stack, f.as_str());
        match log_group(target, &name).await {
            Ok(Some(group)) => groups.push(group),
            Ok(None) => missing.push(name),
            Err(e) => return Answer::err(Exit::Aws, e),
        }
    }
    if groups.is_empty() {
        return Answer::err(
            Exit::Aws,
            format!(
                "no function {} in {}: is --stack right (the stack's StackName output)?",
                missing.join(", "),
                target.aws.region
            ),
        );
    }
    let lines = match insights(target, &groups, q).await {
        Ok(lines) => lines,
        Err(e) => return Answer::err(Exit::Aws, e),
    };
    let reports = decisions(lines.iter().map(String::as_str), q);
    let mut answer = if json {
        Answer::out(Exit::Ok, json_text(&reports))
    } else {
        Answer::out(Exit::Ok, render(&reports, details))
    };
    if !missing.is_empty() {
        answer.stderr = format!(
            "ballast: no function {}: its decisions are not shown\n",
            missing.join(", ")
        );
    }
    answer
}

/// A function's log group (`LoggingConfig.LogGroup`, else Lambda's default
/// `/aws/lambda/<name>`); `None` when the function does not exist.
async fn log_group(target: &Target, function: &str) -> Result<Option<String>, String> {
    match target
        .lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(out) => Ok(Some(
            out.logging_config()
                .and_then(|l| l.log_group())
                .map(str::to_string)
                .unwrap_or_else(|| format!("/aws/lambda/{function}")),
        )),
        Err(e) => {
            let e = ballast::aws::AwsError::from_sdk("GetFunctionConfiguration", function, e);
            if e.code.as_deref() == Some("ResourceNotFoundException") {
                Ok(None)
            } else {
                Err(e.to_string())
            }
        }
    }
}

/// Runs the query over `groups` and returns the `@message` of each row,
/// waiting at most [`QUERY_TIMEOUT`] (then the query is stopped).
async fn insights(target: &Target, groups: &[String], q: &Query) -> Result<Vec<String>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let start = now.saturating_sub(q.since.as_secs());
    let aws_error = |op, e: ballast::aws::AwsError| -> String {
        match e.code.as_deref() {
            Some("AccessDeniedException") => format!(
                "{op} refused: allow logs:StartQuery, logs:GetQueryResults and logs:StopQuery on the functions' log groups ({})",
                groups.join(", ")
            ),
            Some("LimitExceededException") => format!(
                "{op}: Logs Insights is running as many queries as the account allows; try again in a minute ({e})"
            ),
            _ => e.to_string(),
        }
    };
    let started = target
        .logs
        .start_query()
        .set_log_group_names(Some(groups.to_vec()))
        .start_time(i64::try_from(start).unwrap_or(0))
        // Seconds, inclusive of the whole current one.
        .end_time(i64::try_from(now + 1).unwrap_or(i64::MAX))
        .query_string(query_string(q))
        .limit(i32::try_from(q.limit.min(MAX_LIMIT)).unwrap_or(1000))
        .send()
        .await
        .map_err(|e| {
            aws_error(
                "StartQuery",
                ballast::aws::AwsError::from_sdk("StartQuery", groups.join(","), e),
            )
        })?;
    let id = started.query_id().unwrap_or_default().to_string();
    let deadline = Instant::now() + QUERY_TIMEOUT;
    loop {
        let out = target
            .logs
            .get_query_results()
            .query_id(&id)
            .send()
            .await
            .map_err(|e| {
                aws_error(
                    "GetQueryResults",
                    ballast::aws::AwsError::from_sdk("GetQueryResults", &id, e),
                )
            })?;
        match out.status() {
            Some(QueryStatus::Complete) => {
                return Ok(out
                    .results()
                    .iter()
                    .filter_map(|row| {
                        row.iter()
                            .find(|f| f.field() == Some("@message"))
                            .and_then(|f| f.value())
                            .map(str::to_string)
                    })
                    .collect())
            }
            Some(s @ (QueryStatus::Failed | QueryStatus::Cancelled | QueryStatus::Timeout)) => {
                return Err(format!(
                    "Logs Insights ended query {id} as {}: try a shorter --since or one --function",
                    s.as_str()
                ))
            }
            _ if Instant::now() >= deadline => {
                let _ = target.logs.stop_query().query_id(&id).send().await;
                return Err(format!(
                    "Logs Insights did not finish within {} s (query {id} stopped): try a shorter --since or one --function",
                    QUERY_TIMEOUT.as_secs()
                ));
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ballast::event::Trigger;
    use ballast::report::{Evidence, Severity, REPORT_VERSION};

    fn report(function: &str, outcome: Outcome, time: &str, resource: &str) -> Report {
        Report {
            version: REPORT_VERSION.into(),
            function: function.into(),
            outcome,
            severity: Severity::Warning,
            summary: format!("{outcome:?} {resource}"),
            resources: vec![resource.into()],
            actions: vec![],
            trigger: Trigger {
                source: "aws.events".into(),
                detail_type: "Scheduled Event".into(),
                id: "e-1".into(),
            },
            reason: None,
            region: "us-east-1".into(),
            time: time.into(),
            evidence: Evidence::new(),
        }
    }

    /// A decision line as the functions write it with JSON logs.
    fn json_line(r: &Report) -> String {
        serde_json::json!({
            "level": "INFO",
            "fields": {"message": "decision", "outcome": r.outcome.as_str(), "report": serde_json::to_string(r).unwrap()},
            "span": {"function": r.function, "name": "reconciling"},
        })
        .to_string()
    }

    fn all() -> Query {
        Query {
            since: Duration::from_secs(3600),
            functions: Function::ALL.to_vec(),
            outcome: None,
            resource: None,
            limit: 100,
        }
    }

    #[test]
    fn since_takes_a_number_and_a_unit() {
        assert_eq!(parse_since("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_since("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_since(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        for bad in ["", "h", "6", "6x", "-1h", "0m", "1.5h"] {
            assert!(parse_since(bad).unwrap_err().contains("--since"), "{bad}");
        }
    }

    #[test]
    fn the_query_filters_decisions_newest_first_within_the_limit() {
        let q = Query {
            outcome: Some(Outcome::Declined),
            resource: Some("web\"x".into()),
            limit: 50,
            ..all()
        };
        assert_eq!(
            query_string(&q),
            "fields @timestamp, @message\n| filter @message like \"decision\" and @message like \"declined\" and @message like \"web\\\"x\"\n| sort @timestamp desc\n| limit 50"
        );
    }

    #[test]
    fn decision_lines_are_read_back_filtered_and_in_time_order() {
        let a = report(
            "az-impairment",
            Outcome::Remediated,
            "2026-12-07T10:00:02Z",
            "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u:autoScalingGroupName/web",
        );
        let b = report(
            "unhealthy-target",
            Outcome::Declined,
            "2026-12-07T10:00:01Z",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc",
        );
        let c = report(
            "rds-failover",
            Outcome::Noop,
            "2026-12-07T10:00:03Z",
            "arn:aws:rds:us-east-1:1:db:orders",
        );
        // Text logs carry the report after `report=`.
        let text = format!(
            "INFO reconciling{{function=rds-failover}}: decision outcome=\"noop\" report={}",
            serde_json::to_string(&c).unwrap()
        );
        let lines = [
            json_line(&a),
            json_line(&b),
            text,
            // Not decisions: a step, an EMF record, a foreign function's line.
            r#"{"level":"INFO","fields":{"message":"step applied","kind":"tag-asg"}}"#.to_string(),
            r#"{"_aws":{"CloudWatchMetrics":[]},"function":"az-impairment","outcome":"remediated","Decisions":1}"#.to_string(),
            json_line(&report("other", Outcome::Remediated, "2026-12-07T10:00:04Z", "x")),
            "garbage".to_string(),
        ];
        let got = |q: &Query| -> Vec<String> {
            decisions(lines.iter().map(String::as_str), q)
                .into_iter()
                .map(|r| r.function)
                .collect()
        };
        assert_eq!(
            got(&all()),
            ["unhealthy-target", "az-impairment", "rds-failover"]
        );
        assert_eq!(
            got(&Query {
                outcome: Some(Outcome::Declined),
                ..all()
            }),
            ["unhealthy-target"]
        );
        assert_eq!(
            got(&Query {
                resource: Some("autoScalingGroupName/web".into()),
                ..all()
            }),
            ["az-impairment"]
        );
        assert_eq!(
            got(&Query {
                functions: vec![Function::RdsFailover],
                ..all()
            }),
            ["rds-failover"]
        );
    }

    #[test]
    fn each_decision_is_one_line_and_details_add_the_report() {
        let mut r = report(
            "az-impairment",
            Outcome::Remediated,
            "2026-12-07T10:00:02.123456Z",
            "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u:autoScalingGroupName/web",
        );
        r.summary = "word ".repeat(60);
        let out = render(std::slice::from_ref(&r), false);
        assert_eq!(out.lines().count(), 1);
        assert!(
            out.starts_with("2026-12-07T10:00:02Z  az-impairment    remediated warning  web  word"),
            "{out}"
        );
        assert!(out.trim_end().ends_with('…'), "{out}");
        let detailed = render(&[r], true);
        assert!(
            detailed.contains("    Ballast az-impairment: remediated (warning)"),
            "{detailed}"
        );
        assert_eq!(render(&[], false), "No decision in that window.\n");
    }
}
