//! CloudWatch: the state of the alarms that hold a zone evacuated.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::types::AlarmType;
use aws_sdk_cloudwatch::Client;
use serde_json::{json, Value};

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
                definition: put_input(a),
            });
        }
    }
    Ok(alarms)
}

/// The `PutMetricAlarm` input that re-creates `a` as it is: every member
/// `DescribeAlarms` answers that `PutMetricAlarm` takes, under the API's
/// names (absent members are left out, so the API's defaults apply as they
/// did).
fn put_input(a: &aws_sdk_cloudwatch::types::MetricAlarm) -> Value {
    fn dimensions(list: &[aws_sdk_cloudwatch::types::Dimension]) -> Value {
        list.iter()
            .map(|d| json!({"Name": d.name(), "Value": d.value()}))
            .collect()
    }
    fn strings(list: &[String]) -> Value {
        list.iter().map(|s| json!(s)).collect()
    }
    let queries: Vec<Value> = a
        .metrics()
        .iter()
        .map(|q| {
            let stat = q.metric_stat().map(|s| {
                let metric = s.metric().map(|m| {
                    json!({
                        "Namespace": m.namespace(),
                        "MetricName": m.metric_name(),
                        "Dimensions": dimensions(m.dimensions()),
                    })
                });
                json!({
                    "Metric": metric,
                    "Period": s.period(),
                    "Stat": s.stat(),
                    "Unit": s.unit().map(|u| u.as_str()),
                })
            });
            json!({
                "Id": q.id(),
                "MetricStat": stat,
                "Expression": q.expression(),
                "Label": q.label(),
                "ReturnData": q.return_data(),
                "Period": q.period(),
                "AccountId": q.account_id(),
            })
        })
        .collect();
    let mut input = json!({
        "AlarmName": a.alarm_name(),
        "AlarmDescription": a.alarm_description(),
        "ActionsEnabled": a.actions_enabled(),
        "OKActions": strings(a.ok_actions()),
        "AlarmActions": strings(a.alarm_actions()),
        "InsufficientDataActions": strings(a.insufficient_data_actions()),
        "MetricName": a.metric_name(),
        "Namespace": a.namespace(),
        "Statistic": a.statistic().map(|s| s.as_str()),
        "ExtendedStatistic": a.extended_statistic(),
        "Dimensions": dimensions(a.dimensions()),
        "Period": a.period(),
        "Unit": a.unit().map(|u| u.as_str()),
        "EvaluationPeriods": a.evaluation_periods(),
        "DatapointsToAlarm": a.datapoints_to_alarm(),
        "Threshold": a.threshold(),
        "ComparisonOperator": a.comparison_operator().map(|c| c.as_str()),
        "TreatMissingData": a.treat_missing_data(),
        "EvaluateLowSampleCountPercentile": a.evaluate_low_sample_count_percentile(),
        "Metrics": queries,
        "ThresholdMetricId": a.threshold_metric_id(),
    });
    prune(&mut input);
    input
}

/// Drops nulls and empty lists, at every depth: the members the alarm does
/// not set (a metric-math alarm has no `MetricName`, a single-metric alarm
/// no `Metrics`; `PutMetricAlarm` refuses both at once).
fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune);
            m.retain(|_, v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()));
        }
        Value::Array(list) => list.iter_mut().for_each(prune),
        _ => {}
    }
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

/// The latest `AWS/RDS` `ReplicaLag` of a DB instance over the last ten
/// minutes (`GetMetricData`, one-minute maximum): seconds and when, or
/// `None` without data (RDS publishes it only for a read replica).
pub async fn replica_lag(client: &Client, instance: &str) -> Result<Option<(f64, i64)>, AwsError> {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
    let now = std::time::SystemTime::now();
    let query = MetricDataQuery::builder()
        .id("lag")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/RDS")
                        .metric_name("ReplicaLag")
                        .dimensions(
                            Dimension::builder()
                                .name("DBInstanceIdentifier")
                                .value(instance)
                                .build(),
                        )
                        .build(),
                )
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build();
    let out = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(DateTime::from(now - std::time::Duration::from_secs(600)))
        // A minute ahead: the current minute's datapoint is in.
        .end_time(DateTime::from(now + std::time::Duration::from_secs(60)))
        .scan_by(ScanBy::TimestampDescending)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetMetricData", instance, e))?;
    let Some(result) = out.metric_data_results().first() else {
        return Ok(None);
    };
    let latest = result
        .timestamps()
        .iter()
        .zip(result.values())
        .max_by_key(|(t, _)| t.secs())
        .map(|(t, v)| (*v, t.secs()));
    Ok(latest)
}
