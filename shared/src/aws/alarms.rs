//! CloudWatch: the state of the alarms that hold a zone evacuated.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;

use super::AwsError;

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
