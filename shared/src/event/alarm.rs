//! CloudWatch alarm state changes, as EventBridge delivers them
//! (`detail-type: CloudWatch Alarm State Change`) and as an alarm's Lambda
//! action delivers them (`alarmData`).
//!
//! Own types rather than `aws_lambda_events::cloudwatch_alarms`: real alarms
//! carry metric-math entries without `metricStat`, periods above `u16::MAX`
//! (86400 s), `reasonData` as a JSON *string*, and timestamps like
//! `2019-10-02T17:04:40.989+0000` — each of which that crate's types reject.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Arn, Envelope};

/// One alarm's transition, reduced to what Ballast needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    pub alarm_name: String,
    pub alarm_arn: Option<String>,
    /// `ALARM`, `OK` or `INSUFFICIENT_DATA`.
    pub state: String,
    pub previous_state: Option<String>,
    pub reason: String,
    /// Region and account the alarm lives in (from the event or the alarm ARN).
    pub region: Option<String>,
    pub account: Option<String>,
    /// Every metric the alarm watches (metric-math expressions are skipped).
    pub metrics: Vec<MetricRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// The `detail-type` of an alarm's state change on EventBridge.
const STATE_CHANGE: &str = "CloudWatch Alarm State Change";

impl AlarmChange {
    pub fn is_alarm(&self) -> bool {
        self.state == "ALARM"
    }

    /// The first watched metric in `namespace` whose name is one of `names`.
    pub fn metric(&self, namespace: &str, names: &[&str]) -> Option<&MetricRef> {
        self.metrics
            .iter()
            .find(|m| m.namespace == namespace && names.contains(&m.name.as_str()))
    }

    /// The first value of dimension `key` on any watched metric.
    pub fn dimension(&self, key: &str) -> Option<&str> {
        self.metrics
            .iter()
            .find_map(|m| m.dimensions.get(key))
            .map(String::as_str)
    }

    /// An EventBridge `CloudWatch Alarm State Change` event's alarm: `None`
    /// for any other event, the reason for a malformed one.
    pub fn of_event(envelope: &Envelope) -> Option<Result<Self, String>> {
        (envelope.source == "aws.cloudwatch" && envelope.detail_type == STATE_CHANGE).then(|| {
            Self::from_eventbridge(envelope)
                .map_err(|e| format!("malformed CloudWatch alarm detail: {e}"))
        })
    }

    /// From an EventBridge `CloudWatch Alarm State Change` event.
    pub fn from_eventbridge(envelope: &Envelope) -> Result<Self, serde_json::Error> {
        let data: RawAlarmData = serde_json::from_value(envelope.detail.clone())?;
        let alarm_arn = envelope
            .resources
            .as_ref()
            .and_then(|r| r.iter().find(|a| a.contains(":alarm:")).cloned());
        Ok(Self::build(
            data,
            alarm_arn,
            envelope.region.clone(),
            envelope.account.clone(),
        ))
    }

    /// From the payload of an alarm's Lambda action.
    pub fn from_alarm_action(payload: &Value) -> Result<Self, serde_json::Error> {
        let action: RawAlarmAction = serde_json::from_value(payload.clone())?;
        Ok(Self::build(
            action.alarm_data,
            action.alarm_arn,
            action.region,
            action.account_id,
        ))
    }

    fn build(
        data: RawAlarmData,
        alarm_arn: Option<String>,
        region: Option<String>,
        account: Option<String>,
    ) -> Self {
        let from_arn = alarm_arn.as_deref().and_then(Arn::parse);
        let region = region
            .filter(|r| !r.is_empty())
            .or_else(|| from_arn.as_ref().map(|a| a.region.to_string()));
        let account = account
            .filter(|a| !a.is_empty())
            .or_else(|| from_arn.as_ref().map(|a| a.account.to_string()));
        let metrics = data
            .configuration
            .metrics
            .into_iter()
            .filter_map(|m| m.metric_stat)
            .map(|s| MetricRef {
                namespace: s.metric.namespace,
                name: s.metric.name,
                dimensions: s
                    .metric
                    .dimensions
                    .into_iter()
                    .map(|(k, v)| (k, value_text(v)))
                    .collect(),
            })
            .collect();
        AlarmChange {
            alarm_name: data.alarm_name,
            alarm_arn,
            state: data.state.value,
            previous_state: data.previous_state.map(|s| s.value),
            reason: data.state.reason,
            region,
            account,
            metrics,
        }
    }
}

fn value_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawAlarmAction {
    alarm_arn: Option<String>,
    account_id: Option<String>,
    region: Option<String>,
    alarm_data: RawAlarmData,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawAlarmData {
    alarm_name: String,
    state: RawState,
    previous_state: Option<RawState>,
    configuration: RawConfiguration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawState {
    value: String,
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawConfiguration {
    metrics: Vec<RawMetric>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawMetric {
    metric_stat: Option<RawMetricStat>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetricStat {
    metric: RawMetricDefinition,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMetricDefinition {
    namespace: String,
    name: String,
    dimensions: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Inbound;
    use serde_json::json;

    fn eventbridge(detail: Value) -> Envelope {
        let e = json!({"version":"0","id":"1","detail-type":"CloudWatch Alarm State Change",
            "source":"aws.cloudwatch","account":"123456789012","time":"2026-11-21T10:00:00Z",
            "region":"eu-west-1","resources":["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-unhealthy"],
            "detail": detail});
        match Inbound::classify(&e) {
            Inbound::EventBridge(env) => *env,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metric_math_periods_and_string_reason_data_are_tolerated() {
        let env = eventbridge(json!({
            "alarmName": "web-unhealthy",
            "state": {"value": "ALARM", "reason": "Threshold Crossed", "reasonData": "{\"version\":\"1.0\"}",
                      "timestamp": "2026-11-21T10:00:00.989+0000"},
            "previousState": {"value": "OK", "reason": "", "timestamp": "2026-11-21T09:00:00.000+0000"},
            "configuration": {"metrics": [
                {"id": "e1", "expression": "m1 > 0", "returnData": true},
                {"id": "m1", "returnData": false, "metricStat": {"period": 86400, "stat": "Maximum",
                  "metric": {"namespace": "AWS/ApplicationELB", "name": "UnHealthyHostCount",
                             "dimensions": {"TargetGroup": "targetgroup/web/abc", "LoadBalancer": "app/web/def"}}}}
            ]}
        }));
        let a = AlarmChange::from_eventbridge(&env).unwrap();
        assert!(a.is_alarm());
        assert_eq!(a.previous_state.as_deref(), Some("OK"));
        assert_eq!(a.metrics.len(), 1);
        assert_eq!(a.dimension("TargetGroup"), Some("targetgroup/web/abc"));
        assert_eq!(a.region.as_deref(), Some("eu-west-1"));
        assert!(a
            .metric("AWS/ApplicationELB", &["UnHealthyHostCount"])
            .is_some());
    }

    #[test]
    fn empty_detail_gives_an_empty_change_not_an_error() {
        let a = AlarmChange::from_eventbridge(&eventbridge(json!({}))).unwrap();
        assert!(!a.is_alarm());
        assert!(a.metrics.is_empty());
        assert_eq!(a.account.as_deref(), Some("123456789012"));
    }

    #[test]
    fn alarm_action_payload_takes_region_from_the_arn_when_absent() {
        let p = json!({"source": "aws.cloudwatch",
            "alarmArn": "arn:aws:cloudwatch:us-west-2:111122223333:alarm:tg",
            "time": "2026-11-21T10:00:00.000+0000",
            "alarmData": {"alarmName": "tg", "state": {"value": "ALARM", "reason": "x"},
              "configuration": {"metrics": [{"id": "m", "metricStat": {"metric": {"namespace": "AWS/ApplicationELB",
                 "name": "UnHealthyHostCount", "dimensions": {"TargetGroup": "targetgroup/a/b"}}, "period": 60}}]}}});
        let Inbound::AlarmAction(a) = Inbound::classify(&p) else {
            panic!()
        };
        assert_eq!(a.region.as_deref(), Some("us-west-2"));
        assert_eq!(a.account.as_deref(), Some("111122223333"));
        assert_eq!(a.dimension("TargetGroup"), Some("targetgroup/a/b"));
    }
}
