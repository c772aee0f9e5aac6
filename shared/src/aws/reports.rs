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
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .expect("data type is always set");
        request = request.message_attributes(name, attribute);
    }
    let out = request
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("Publish", topic_arn, e))?;
    Ok(out.message_id().unwrap_or_default().to_string())
}
