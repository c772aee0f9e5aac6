//! SNS: publishing reports.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use super::AwsError;
use crate::report::Report;

/// Publishes `report` as the contract says: subject, JSON message structure
/// (`default` JSON, `email` text) and filterable attributes. Returns the
/// message ID.
pub async fn publish(
    client: &Client,
    topic_arn: &str,
    report: &Report,
) -> Result<String, AwsError> {
    let mut request = client
        .publish()
        .topic_arn(topic_arn)
        .subject(report.subject())
        .message_structure("json")
        .message(report.sns_message());
    for (name, value) in report.sns_attributes() {
        // `build` refuses only a missing data type, which is set here.
        if let Ok(attribute) = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
        {
            request = request.message_attributes(name, attribute);
        }
    }
    let out = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("Publish", topic_arn, e))?;
    Ok(out.message_id().unwrap_or_default().to_string())
}

/// A subscription of the report topic: (protocol, endpoint, confirmed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub protocol: String,
    pub endpoint: String,
    pub confirmed: bool,
}

/// The topic's subscriptions (`ListSubscriptionsByTopic`, paged); one
/// awaiting confirmation has the ARN `PendingConfirmation`.
pub async fn subscriptions(
    client: &Client,
    topic_arn: &str,
) -> Result<Vec<Subscription>, AwsError> {
    let mut all = vec![];
    let mut pages = client
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|e| AwsError::from_sdk("ListSubscriptionsByTopic", topic_arn, e))?;
        for s in page.subscriptions() {
            all.push(Subscription {
                protocol: s.protocol().unwrap_or_default().to_string(),
                endpoint: s.endpoint().unwrap_or_default().to_string(),
                confirmed: s.subscription_arn().is_some_and(|a| a.starts_with("arn:")),
            });
        }
    }
    Ok(all)
}
