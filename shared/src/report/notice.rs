//! Chat notices: every published report rendered in the *custom notification*
//! schema of Amazon Q Developer in chat applications (formerly AWS Chatbot),
//! which drops any SNS message it does not know. The notice travels in the
//! `https` key of the report's SNS JSON message structure (the chat service
//! subscribes to the topic over HTTPS), so it needs no second publish and
//! inherits the report's attributes, filter policies and I6.
//!
//! Schema (documented: docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html):
//! `version` "1.0", `source` "custom", optional `id`; `content` with
//! `textType` "client-markdown", `title`, `description`, `nextSteps`,
//! `keywords`; `metadata` with `threadId`, `summary`, `eventType`,
//! `relatedResources`, `additionalContext` (string to string).

use serde::{Deserialize, Serialize};

use super::{evidence_lines, hint, ActionKind, ActionStatus, Function, Outcome, Report, Severity};
use crate::event::short_name;

/// The documented limits of a custom notification's title and description.
const TITLE_MAX: usize = 250;
const DESCRIPTION_MAX: usize = 8000;
/// Ballast's own bounds, so a notice stays one screen in a channel.
const NEXT_STEPS_MAX: usize = 5;
const RELATED_MAX: usize = 10;
const THREAD_ID_MAX: usize = 128;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notice {
    pub version: String,
    pub source: String,
    pub id: String,
    pub content: Content,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Content {
    pub text_type: String,
    pub title: String,
    pub description: String,
    pub next_steps: Vec<String>,
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub thread_id: String,
    pub summary: String,
    pub event_type: String,
    pub related_resources: Vec<String>,
    pub additional_context: std::collections::BTreeMap<String, String>,
}

/// The chat notice of `report`.
pub fn notice(report: &Report) -> Notice {
    let icon = match report.severity {
        Severity::Critical => ":rotating_light:",
        Severity::Warning => ":warning:",
        Severity::Info => ":white_check_mark:",
    };
    let title = format!(
        "{icon} Ballast {}: {} {}",
        report.function,
        report.outcome.as_str(),
        headline_resource(report)
    );
    let mut additional = std::collections::BTreeMap::new();
    for (k, v) in [
        ("function", report.function.as_str()),
        ("outcome", report.outcome.as_str()),
        ("severity", report.severity.as_str()),
        ("region", report.region.as_str()),
        ("trigger", report.trigger.id.as_str()),
        ("time", report.time.as_str()),
    ] {
        additional.insert(k.to_string(), v.to_string());
    }
    Notice {
        version: "1.0".into(),
        source: "custom".into(),
        id: format!("ballast/{}/{}", report.function, report.trigger.id),
        content: Content {
            text_type: "client-markdown".into(),
            title: clip(&title, TITLE_MAX),
            description: clip(&description(report), DESCRIPTION_MAX),
            next_steps: next_steps(report)
                .into_iter()
                .take(NEXT_STEPS_MAX)
                .collect(),
            keywords: vec![
                report.severity.as_str().to_string(),
                report.outcome.as_str().to_string(),
                report.function.clone(),
                report.region.clone(),
            ],
        },
        metadata: Metadata {
            thread_id: thread_id(report),
            summary: report.subject(),
            event_type: format!("ballast:{}:{}", report.function, report.outcome.as_str()),
            related_resources: report.resources.iter().take(RELATED_MAX).cloned().collect(),
            additional_context: additional,
        },
    }
}

/// The notice as the JSON the chat service reads.
pub fn chat_notice(report: &Report) -> serde_json::Value {
    // Strings and lists of strings: serialising cannot fail.
    serde_json::to_value(notice(report)).unwrap_or_default()
}

fn description(report: &Report) -> String {
    let mut out = report.summary.clone();
    if let Some(reason) = &report.reason {
        out.push_str(&format!("\n\n*Reason:* {reason}"));
    }
    if !report.evidence.is_empty() {
        out.push_str("\n\n*Evidence*");
        for line in evidence_lines(&report.evidence) {
            out.push_str(&format!("\n• {line}"));
        }
    }
    if !report.actions.is_empty() {
        out.push_str("\n\n*Actions*");
        for a in &report.actions {
            out.push_str(&format!(
                "\n• [{}] {} `{}`: {}",
                a.status.as_str(),
                a.kind,
                a.target,
                a.detail
            ));
        }
    }
    out
}

/// The resource a notice is about: the zone for `az-impairment` (the
/// incident is the zone, whatever groups it moved), else the first resource.
fn headline_resource(report: &Report) -> String {
    evidence_str(report, hint::AVAILABILITY_ZONE)
        .map_or_else(|| report.resources_phrase(), str::to_string)
}

/// One thread per incident: the function and what it is about (the zone,
/// the target group, the database), so an evacuation and its restore, or a
/// breaker's trip and its close, read as one conversation.
pub fn thread_id(report: &Report) -> String {
    let about = evidence_str(report, hint::AVAILABILITY_ZONE)
        .map(str::to_string)
        .or_else(|| report.resources.first().map(|r| short_name(r).to_string()))
        .unwrap_or_else(|| "sweep".into());
    let raw = format!("ballast-{}-{about}", report.function);
    let safe: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:/".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    clip(&safe, THREAD_ID_MAX)
}

fn evidence_str<'a>(report: &'a Report, key: &str) -> Option<&'a str> {
    report.evidence.get(key).and_then(|v| v.as_str())
}

fn done(report: &Report, kind: ActionKind) -> bool {
    report
        .actions
        .iter()
        .any(|a| a.kind == kind && a.status == ActionStatus::Done)
}

/// The exact commands that undo or finish what the report says, then
/// where to look. Empty for outcomes that are not published.
pub fn next_steps(report: &Report) -> Vec<String> {
    if !report.outcome.is_published() {
        return vec![];
    }
    let region = &report.region;
    let mut steps = vec![];
    match Function::named(&report.function) {
        Some(Function::AzImpairment) => {
            if let (Some(az), Some(change)) = (
                evidence_str(report, hint::AVAILABILITY_ZONE),
                evidence_str(report, hint::CHANGE),
            ) {
                let moved = done(report, ActionKind::UpdateAsg) || done(report, ActionKind::TagAsg);
                match change {
                    "evacuate" if moved || report.outcome == Outcome::Failed => steps.push(format!(
                        "When {az} is healthy again, restore it: `ballast restore {az} --region {region}`"
                    )),
                    "restore" if moved || report.outcome == Outcome::Failed => steps.push(format!(
                        "If {az} is still impaired, evacuate it again: `ballast evacuate {az} --region {region}`"
                    )),
                    "hold" => steps.push(format!(
                        "Once every signal holding {az} is over, restore it: `ballast restore {az} --region {region}`"
                    )),
                    _ => {}
                }
            }
        }
        Some(Function::UnhealthyTarget) => {
            for a in report.actions.iter().filter(|a| {
                a.kind == ActionKind::SuspendProcesses && a.status == ActionStatus::Done
            }) {
                let asg = a.asg.as_deref().unwrap_or(&a.target);
                steps.push(format!(
                    "Ballast resumes ReplaceUnhealthy on {asg} itself when the target group is back within the guardrail; to resume now: `aws autoscaling resume-processes --auto-scaling-group-name {asg} --scaling-processes ReplaceUnhealthy --region {region}`"
                ));
            }
        }
        Some(Function::RdsFailover) => {
            let record = report.evidence.get(hint::RECORD);
            let field = |k: &str| {
                record
                    .and_then(|r| r.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            if let (true, Some(zone), Some(name), Some(was), Some(ttl)) = (
                done(report, ActionKind::UpsertCname),
                field("zone"),
                field("name"),
                field("pointedAt"),
                record.and_then(|r| r.get("ttl")).and_then(|v| v.as_i64()),
            ) {
                let batch = serde_json::json!({"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {
                    "Name": name, "Type": "CNAME", "TTL": ttl, "ResourceRecords": [{"Value": was}]}}]});
                steps.push(format!(
                    "To point {name} back at {was}: `aws route53 change-resource-record-sets --hosted-zone-id {zone} --change-batch '{batch}'`"
                ));
            }
        }
        None => {}
    }
    steps.push(format!(
        "See every managed group, zone and database: `ballast status --region {region}`"
    ));
    if matches!(report.outcome, Outcome::Declined | Outcome::Failed) {
        steps.push(format!(
            "Check the account against what Ballast needs: `ballast doctor --region {region}`"
        ));
    }
    steps
}

/// At most `max` bytes, cut at a character boundary, with an ellipsis when cut.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Trigger;
    use crate::report::{ActionRecord, Evidence, REPORT_VERSION};
    use proptest::prelude::*;

    fn report(function: &str, outcome: Outcome, actions: Vec<ActionRecord>) -> Report {
        Report {
            version: REPORT_VERSION.into(),
            function: function.into(),
            outcome,
            severity: Severity::Critical,
            summary: "Evacuated 2 groups from us-east-1a.".into(),
            trigger: Trigger::direct("req-1"),
            resources: vec![
                "arn:aws:autoscaling:us-east-1:1:autoScalingGroup:u:autoScalingGroupName/web"
                    .into(),
            ],
            actions,
            reason: None,
            region: "us-east-1".into(),
            time: "2026-12-01T12:00:00Z".into(),
            evidence: Evidence::new(),
        }
    }

    fn action(kind: ActionKind, target: &str, status: ActionStatus) -> ActionRecord {
        ActionRecord {
            kind,
            target: target.into(),
            asg: Some(target.into()),
            status,
            detail: "d".into(),
        }
    }

    /// The documented schema and limits, checked on the JSON a subscriber
    /// receives (typed with unknown fields refused, then the bounds).
    fn assert_valid(json: &serde_json::Value) {
        let n: Notice = serde_json::from_value(json.clone()).expect("the documented schema");
        assert_eq!(n.version, "1.0");
        assert_eq!(n.source, "custom");
        assert_eq!(n.content.text_type, "client-markdown");
        assert!(!n.content.title.is_empty() && n.content.title.len() <= TITLE_MAX);
        assert!(n.content.description.len() <= DESCRIPTION_MAX);
        assert!(n.content.next_steps.len() <= NEXT_STEPS_MAX);
        // Ballast's bound on keywords, like the others: one screen.
        assert!(n.content.keywords.len() <= 5);
        assert!(n.metadata.related_resources.len() <= RELATED_MAX);
        assert!(!n.metadata.thread_id.is_empty() && n.metadata.thread_id.len() <= THREAD_ID_MAX);
        assert!(n.metadata.summary.len() <= crate::report::SUBJECT_MAX);
    }

    #[test]
    fn an_evacuation_says_how_to_restore_and_threads_on_the_zone() {
        let mut r = report(
            "az-impairment",
            Outcome::Remediated,
            vec![action(ActionKind::UpdateAsg, "web", ActionStatus::Done)],
        );
        r.evidence
            .insert("availabilityZone".into(), "us-east-1a".into());
        r.evidence.insert("change".into(), "evacuate".into());
        let n = chat_notice(&r);
        assert_valid(&n);
        assert_eq!(
            n["content"]["nextSteps"][0],
            "When us-east-1a is healthy again, restore it: `ballast restore us-east-1a --region us-east-1`"
        );
        assert_eq!(
            n["metadata"]["threadId"],
            "ballast-az-impairment-us-east-1a"
        );
        assert_eq!(
            n["content"]["title"],
            ":rotating_light: Ballast az-impairment: remediated us-east-1a"
        );
        // The restore of the same zone lands in the same thread.
        let mut back = r.clone();
        back.evidence.insert("change".into(), "restore".into());
        assert_eq!(thread_id(&back), thread_id(&r));
        assert!(next_steps(&back)[0].contains("ballast evacuate us-east-1a"));
    }

    #[test]
    fn a_tripped_breaker_says_how_to_resume_and_a_declined_report_how_to_check() {
        let r = report(
            "unhealthy-target",
            Outcome::Declined,
            vec![action(
                ActionKind::SuspendProcesses,
                "web",
                ActionStatus::Done,
            )],
        );
        let steps = next_steps(&r);
        assert!(steps[0].contains("aws autoscaling resume-processes --auto-scaling-group-name web --scaling-processes ReplaceUnhealthy --region us-east-1"), "{steps:?}");
        assert!(steps
            .iter()
            .any(|s| s.contains("ballast doctor --region us-east-1")));
        // Not done (dry run, failed): no resume command.
        let dry = report(
            "unhealthy-target",
            Outcome::DryRun,
            vec![action(
                ActionKind::SuspendProcesses,
                "web",
                ActionStatus::Skipped,
            )],
        );
        assert!(!next_steps(&dry)[0].contains("resume-processes"));
        assert!(next_steps(&report("x", Outcome::Noop, vec![])).is_empty());
    }

    #[test]
    fn a_moved_record_says_how_to_point_it_back() {
        let mut r = report(
            "rds-failover",
            Outcome::Remediated,
            vec![action(
                ActionKind::UpsertCname,
                "db.example.com",
                ActionStatus::Done,
            )],
        );
        r.evidence.insert(
            "record".into(),
            serde_json::json!({"zone": "Z1", "name": "db.example.com", "pointedAt": "old.rds.amazonaws.com", "ttl": 30}),
        );
        let step = &next_steps(&r)[0];
        assert!(step.starts_with("To point db.example.com back at old.rds.amazonaws.com: `aws route53 change-resource-record-sets --hosted-zone-id Z1 --change-batch '"), "{step}");
        let batch = step.split('\'').nth(1).unwrap();
        let batch: serde_json::Value = serde_json::from_str(batch).unwrap();
        assert_eq!(
            batch["Changes"][0]["ResourceRecordSet"]["ResourceRecords"][0]["Value"],
            "old.rds.amazonaws.com"
        );
    }

    #[test]
    fn the_sns_https_key_carries_the_notice_and_default_stays_the_report() {
        let r = report("az-impairment", Outcome::Failed, vec![]);
        let m: serde_json::Value = serde_json::from_str(&r.sns_message()).unwrap();
        let back: Report = serde_json::from_str(m["default"].as_str().unwrap()).unwrap();
        assert_eq!(back, r);
        assert_valid(&serde_json::from_str(m["https"].as_str().unwrap()).unwrap());
    }

    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,40}", "[a-zé\u{1F6A8}\n `*_]{0,12000}",]
    }

    proptest! {
        /// Every rendering fits the documented schema and limits, whatever
        /// the report holds (long summaries, many resources, multi-byte text).
        #[test]
        fn every_notice_fits_the_schema(
            function in prop_oneof![Just("az-impairment".to_string()), Just("unhealthy-target".to_string()), Just("rds-failover".to_string()), ".{0,300}"],
            summary in any_text(),
            reason in proptest::option::of(any_text()),
            resources in proptest::collection::vec(".{0,300}", 0..30),
            facts in proptest::collection::btree_map("[a-zA-Z]{1,20}", any_text(), 0..20),
            actions in proptest::collection::vec((0..ActionKind::ALL.len(), ".{0,300}", 0..3u8), 0..40),
            outcome in 0..6u8,
        ) {
            let outcome = [Outcome::Remediated, Outcome::Declined, Outcome::DryRun, Outcome::Noop, Outcome::Ignored, Outcome::Failed][outcome as usize];
            let mut r = report(&function, outcome, actions.into_iter().map(|(k, t, s)| ActionRecord {
                kind: ActionKind::ALL[k], target: t.clone(), asg: Some(t),
                status: [ActionStatus::Done, ActionStatus::Skipped, ActionStatus::Failed][s as usize],
                detail: "x".repeat(200),
            }).collect());
            r.summary = summary;
            r.reason = reason;
            r.resources = resources;
            r.evidence = facts.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
            assert_valid(&chat_notice(&r));
        }
    }
}
