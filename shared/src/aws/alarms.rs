//! CloudWatch: the state of the alarms that hold a zone evacuated.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;

use super::AwsError;
use crate::resources::{MetricAlarm, WatchedMetric};

/// Every metric alarm of the account and Region (`DescribeAlarms`, paged).
pub async fn metric_alarms(client: &Client) -> Result<Vec<MetricAlarm>, AwsError> {
    let dims = |list: &[aws_sdk_cloudwatch::types::Dimension]| -> BTreeMap<String, String> {
        list.iter()
            .filter_map(|d| Some((d.name()?.to_string(), d.value()?.to_string())))
            .collect()
    };
    let mut alarms = vec![];
    let mut pages = client
        .describe_alarms()
        .alarm_types(AlarmType::MetricAlarm)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("DescribeAlarms", "*", e))?;
        for a in page.metric_alarms() {
            let mut metrics = vec![];
            if let (Some(ns), Some(name)) = (a.namespace(), a.metric_name()) {
                metrics.push(WatchedMetric {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    dimensions: dims(a.dimensions()),
                });
            }
            for q in a.metrics() {
                if let Some(m) = q.metric_stat().and_then(|s| s.metric()) {
                    metrics.push(WatchedMetric {
                        namespace: m.namespace().unwrap_or_default().to_string(),
                        name: m.metric_name().unwrap_or_default().to_string(),
                        dimensions: dims(m.dimensions()),
                    });
                }
            }
            alarms.push(MetricAlarm {
                name: a.alarm_name().unwrap_or_default().to_string(),
                state: a
                    .state_value()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
                metrics,
            });
        }
    }
    Ok(alarms)
}

/// `DescribeAlarms` takes at most 100 names a call.
const NAMES_PER_CALL: usize = 100;

/// Alarm name → state value (`OK`, `ALARM`, `INSUFFICIENT_DATA`) for the
/// given metric and composite alarms; an alarm that does not exist (it was
/// deleted) is absent.
pub async fn alarm_states(
    client: &Client,
    names: &[String],
) -> Result<BTreeMap<String, String>, AwsError> {
    let mut states = BTreeMap::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        let mut pages = client
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| AwsError::from_sdk("DescribeAlarms", chunk.join(","), e))?;
            let metric = page
                .metric_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value()));
            let composite = page
                .composite_alarms()
                .iter()
                .map(|a| (a.alarm_name(), a.state_value()));
            for (name, state) in metric.chain(composite) {
                if let (Some(name), Some(state)) = (name, state) {
                    states.insert(name.to_string(), state.as_str().to_string());
                }
            }
        }
    }
    Ok(states)
}
