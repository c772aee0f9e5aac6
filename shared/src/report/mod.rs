//! The report (README, "Contract" and "Reading the reports"): the Lambda response of every
//! invocation, and the SNS message subscribers receive.

use serde::{Deserialize, Serialize};

use crate::event::{short_name, Trigger};

pub mod notice;

pub const REPORT_VERSION: &str = "1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Remediated,
    Declined,
    DryRun,
    Noop,
    Ignored,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Remediated,
        Outcome::Declined,
        Outcome::DryRun,
        Outcome::Noop,
        Outcome::Ignored,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Remediated => "remediated",
            Outcome::Declined => "declined",
            Outcome::DryRun => "dry-run",
            Outcome::Noop => "noop",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
        }
    }

    /// `ignored` and `noop` are answered but not published.
    pub fn is_published(self) -> bool {
        !matches!(self, Outcome::Ignored | Outcome::Noop)
    }

    /// How much a human must look at it; used to merge the parts of a sweep.
    fn weight(self) -> u8 {
        match self {
            Outcome::Ignored => 0,
            Outcome::Noop => 1,
            Outcome::DryRun => 2,
            Outcome::Remediated => 3,
            Outcome::Declined => 4,
            Outcome::Failed => 5,
        }
    }

    /// The outcome of several parts seen together: the one that matters most.
    pub fn worst(self, other: Outcome) -> Outcome {
        if other.weight() > self.weight() {
            other
        } else {
            self
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    Done,
    Skipped,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Done => "done",
            ActionStatus::Skipped => "skipped",
            ActionStatus::Failed => "failed",
        }
    }
}

/// The evidence keys the chat notice reads (`report::notice`): written by
/// `decide` with these names, so a rename cannot silently break a notice.
pub mod hint {
    /// az-impairment: the zone a decision is about.
    pub const AVAILABILITY_ZONE: &str = "availabilityZone";
    /// az-impairment: `evacuate`, `restore` or `hold`.
    pub const CHANGE: &str = "change";
    /// rds-failover: the CNAME (`zone`, `name`, `pointedAt`, `ttl`).
    pub const RECORD: &str = "record";
}

/// Ballast's functions, by their names in reports (`function`), metrics and
/// the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Function {
    UnhealthyTarget,
    RdsFailover,
    AzImpairment,
}

impl Function {
    pub const ALL: [Function; 3] = [
        Function::UnhealthyTarget,
        Function::RdsFailover,
        Function::AzImpairment,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Function::UnhealthyTarget => "unhealthy-target",
            Function::RdsFailover => "rds-failover",
            Function::AzImpairment => "az-impairment",
        }
    }

    /// The function a report's `function` names, if it is one of Ballast's.
    pub fn named(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

/// What an action of a report is: `actions[].kind` on the wire. The kinds
/// of plan steps, and the two a group's skipped move is recorded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    MarkUnhealthy,
    PromoteReplica,
    /// A tag on a DB instance or cluster.
    Tag,
    Untag,
    UpsertCname,
    UpdateAsg,
    TagAsg,
    UntagAsg,
    SuspendProcesses,
    ResumeProcesses,
    /// A group not moved out of a zone (skipped, with why).
    Evacuate,
    /// A group not moved back into a zone (skipped, with why).
    Restore,
}

impl ActionKind {
    pub const ALL: [ActionKind; 12] = [
        ActionKind::MarkUnhealthy,
        ActionKind::PromoteReplica,
        ActionKind::Tag,
        ActionKind::Untag,
        ActionKind::UpsertCname,
        ActionKind::UpdateAsg,
        ActionKind::TagAsg,
        ActionKind::UntagAsg,
        ActionKind::SuspendProcesses,
        ActionKind::ResumeProcesses,
        ActionKind::Evacuate,
        ActionKind::Restore,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::MarkUnhealthy => "mark-unhealthy",
            ActionKind::PromoteReplica => "promote-replica",
            ActionKind::Tag => "tag",
            ActionKind::Untag => "untag",
            ActionKind::UpsertCname => "upsert-cname",
            ActionKind::UpdateAsg => "update-asg",
            ActionKind::TagAsg => "tag-asg",
            ActionKind::UntagAsg => "untag-asg",
            ActionKind::SuspendProcesses => "suspend-processes",
            ActionKind::ResumeProcesses => "resume-processes",
            ActionKind::Evacuate => "evacuate",
            ActionKind::Restore => "restore",
        }
    }
}

impl std::fmt::Display for ActionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kind == "tag-asg"`: the wire string, for tests and scripts.
impl PartialEq<&str> for ActionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One action in a report: done, skipped (with why) or failed (with the error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub kind: ActionKind,
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asg: Option<String>,
    pub status: ActionStatus,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: String,
    pub function: String,
    pub outcome: Outcome,
    pub severity: Severity,
    pub summary: String,
    pub trigger: Trigger,
    pub resources: Vec<String>,
    pub actions: Vec<ActionRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub region: String,
    pub time: String,
    /// The observed facts the decision rested on (counts and states, signal
    /// ids, the writer and its status): compact, structured, additive to the
    /// contract (`version` stays "1"); absent when nothing was observed.
    #[serde(default, skip_serializing_if = "Evidence::is_empty")]
    pub evidence: Evidence,
}

/// The `evidence` of a report: names to observed facts, in name order.
pub type Evidence = serde_json::Map<String, serde_json::Value>;

/// The SNS `Subject` limit.
pub const SUBJECT_MAX: usize = 100;

impl Report {
    pub fn to_json(&self) -> String {
        // Strings, numbers and JSON values: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `[ballast] <function>: <outcome> <resource>`, at most 100 characters,
    /// printable ASCII only (SNS rejects control characters in subjects).
    pub fn subject(&self) -> String {
        let resource = match self.resources_phrase() {
            r if r.is_empty() => r,
            r => format!(" {r}"),
        };
        let raw = format!(
            "[ballast] {}: {}{}",
            self.function,
            self.outcome.as_str(),
            resource
        );
        let mut subject: String = raw
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if subject.len() > SUBJECT_MAX {
            subject.truncate(SUBJECT_MAX - 3);
            subject.push_str("...");
        }
        subject
    }

    /// The resources in a few words: the first one's short name, and how
    /// many more (empty when there is none).
    pub fn resources_phrase(&self) -> String {
        match self.resources.as_slice() {
            [] => String::new(),
            [one] => short_name(one).to_string(),
            [first, rest @ ..] => format!("{} (+{} more)", short_name(first), rest.len()),
        }
    }

    /// The readable rendering sent to email subscribers.
    pub fn email_text(&self) -> String {
        let mut out = format!(
            "Ballast {}: {} ({})\n\n{}\n",
            self.function,
            self.outcome.as_str(),
            self.severity.as_str(),
            self.summary
        );
        if let Some(reason) = &self.reason {
            out.push_str(&format!("\nReason: {reason}\n"));
        }
        if !self.actions.is_empty() {
            out.push_str("\nActions:\n");
            for a in &self.actions {
                let asg = a
                    .asg
                    .as_deref()
                    .map(|g| format!(" (ASG {g})"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  [{}] {} {}{}: {}\n",
                    a.status.as_str(),
                    a.kind,
                    a.target,
                    asg,
                    a.detail
                ));
            }
        }
        if !self.resources.is_empty() {
            out.push_str("\nResources:\n");
            for r in &self.resources {
                out.push_str(&format!("  {r}\n"));
            }
        }
        if !self.evidence.is_empty() {
            out.push_str("\nEvidence:\n");
            for line in evidence_lines(&self.evidence) {
                out.push_str(&format!("  {line}\n"));
            }
        }
        let next = notice::next_steps(self);
        if !next.is_empty() {
            out.push_str("\nNext steps:\n");
            for step in next {
                out.push_str(&format!("  {step}\n"));
            }
        }
        out.push_str(&format!(
            "\nTrigger: {} / {} / {}\nRegion:  {}\nTime:    {}\n",
            self.trigger.source, self.trigger.detail_type, self.trigger.id, self.region, self.time
        ));
        out
    }

    /// The SNS `Message` for `MessageStructure: json`: `default` is the JSON
    /// report (SQS, Lambda, Firehose subscribers), `email` the readable text,
    /// `https` the chat notice (Amazon Q Developer in chat applications is an
    /// HTTPS subscriber; `notice`).
    pub fn sns_message(&self) -> String {
        serde_json::json!({
            "default": self.to_json(),
            "email": self.email_text(),
            "https": notice::chat_notice(self).to_string(),
        })
        .to_string()
    }

    /// SNS message attributes, so subscribers can filter.
    pub fn sns_attributes(&self) -> [(&'static str, &str); 3] {
        [
            ("function", self.function.as_str()),
            ("outcome", self.outcome.as_str()),
            ("severity", self.severity.as_str()),
        ]
    }
}

/// One `name: value` line per fact, nested objects flattened with dots.
pub fn evidence_lines(evidence: &Evidence) -> Vec<String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, v, out);
                }
            }
            serde_json::Value::String(s) => out.push(format!("{prefix}: {s}")),
            serde_json::Value::Array(items) if items.iter().all(|i| i.is_string()) => {
                let items: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                out.push(format!("{prefix}: {}", items.join(", ")));
            }
            other => out.push(format!("{prefix}: {other}")),
        }
    }
    let mut out = vec![];
    walk("", &serde_json::Value::Object(evidence.clone()), &mut out);
    out
}

/// Now, as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    format_rfc3339(time::OffsetDateTime::now_utc())
}

/// An epoch-seconds time as RFC 3339 (UTC), for reports.
pub fn rfc3339(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .map_or_else(|_| epoch.to_string(), format_rfc3339)
}

fn format_rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// Now, in seconds since the epoch.
pub fn now_epoch() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(resources: Vec<String>) -> Report {
        Report {
            version: REPORT_VERSION.into(),
            function: "unhealthy-target".into(),
            outcome: Outcome::DryRun,
            severity: Severity::Warning,
            summary: "Would mark 1 instance unhealthy.".into(),
            trigger: Trigger::direct("req-1"),
            resources,
            actions: vec![ActionRecord {
                kind: ActionKind::MarkUnhealthy,
                target: "i-1".into(),
                asg: Some("web".into()),
                status: ActionStatus::Skipped,
                detail: "dry run".into(),
            }],
            reason: None,
            region: "us-east-1".into(),
            time: now_rfc3339(),
            evidence: Evidence::new(),
        }
    }

    #[test]
    fn json_uses_the_contract_names() {
        let v: serde_json::Value = serde_json::from_str(&report(vec![]).to_json()).unwrap();
        assert_eq!(v["version"], "1");
        assert_eq!(v["outcome"], "dry-run");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["trigger"]["detailType"], "Direct Invocation");
        assert_eq!(v["actions"][0]["status"], "skipped");
        assert_eq!(v["actions"][0]["asg"], "web");
        assert!(v.get("reason").is_none());
        time::OffsetDateTime::parse(
            v["time"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
    }

    #[test]
    fn subject_names_function_outcome_and_resource() {
        let r = report(vec![
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/abc".into(),
        ]);
        assert_eq!(
            r.subject(),
            "[ballast] unhealthy-target: dry-run targetgroup/web/abc"
        );
    }

    #[test]
    fn subject_is_at_most_100_printable_ascii_characters() {
        let long = format!(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/{}é\n/x",
            "w".repeat(150)
        );
        let s = report(vec![long, "other".into()]).subject();
        assert!(s.len() <= SUBJECT_MAX, "{} chars", s.len());
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s}");
        assert!(s.ends_with("..."));
    }

    #[test]
    fn sns_message_carries_json_default_and_email_text() {
        let r = report(vec!["arn:x:y:z:1:r".into()]);
        let m: serde_json::Value = serde_json::from_str(&r.sns_message()).unwrap();
        let back: Report = serde_json::from_str(m["default"].as_str().unwrap()).unwrap();
        assert_eq!(back, r);
        let email = m["email"].as_str().unwrap();
        assert!(
            email.contains("[skipped] mark-unhealthy i-1 (ASG web): dry run"),
            "{email}"
        );
        assert_eq!(r.sns_attributes()[1], ("outcome", "dry-run"));
    }

    #[test]
    fn worst_outcome_wins() {
        assert_eq!(
            Outcome::Noop.worst(Outcome::Remediated),
            Outcome::Remediated
        );
        assert_eq!(Outcome::Failed.worst(Outcome::Declined), Outcome::Failed);
        assert_eq!(Outcome::Ignored.worst(Outcome::Noop), Outcome::Noop);
    }
}
