//! ARC zonal shift: the autoshifts AWS has under way.
//!
//! moto does not serve this API: the adapter is tested by replaying
//! responses shaped by the service's API model through the real SDK client
//! (`aws-smithy-http-client`'s `StaticReplayClient`).

use std::collections::BTreeSet;

use aws_sdk_arczonalshift::types::AutoshiftExecutionStatus;
use aws_sdk_arczonalshift::Client;

use super::AwsError;

/// The AZ IDs that an active autoshift is moving traffic away from
/// (`ListAutoshifts`, status `ACTIVE`).
pub async fn active_autoshifts(client: &Client) -> Result<BTreeSet<String>, AwsError> {
    let mut away = BTreeSet::new();
    let mut pages = client
        .list_autoshifts()
        .status(AutoshiftExecutionStatus::Active)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("ListAutoshifts", "autoshifts", e))?;
        for shift in page.items() {
            if shift.status() == &AutoshiftExecutionStatus::Active {
                away.insert(shift.away_from().to_ascii_lowercase());
            }
        }
    }
    Ok(away)
}

/// Whether ARC sends autoshift notifications to EventBridge in this account
/// and Region (`GetAutoshiftObserverNotificationStatus`: ENABLED | DISABLED).
pub async fn observer_notification(client: &Client) -> Result<String, AwsError> {
    let out = client
        .get_autoshift_observer_notification_status()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("GetAutoshiftObserverNotificationStatus", "account", e))?;
    Ok(out.status().as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
    use aws_smithy_types::body::SdkBody;

    fn replaying(events: Vec<ReplayEvent>) -> (Client, StaticReplayClient) {
        let http = StaticReplayClient::new(events);
        let conf = aws_sdk_arczonalshift::Config::builder()
            .behavior_version(aws_sdk_arczonalshift::config::BehaviorVersion::latest())
            .region(aws_sdk_arczonalshift::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_arczonalshift::config::Credentials::for_tests())
            .http_client(http.clone())
            .build();
        (Client::from_conf(conf), http)
    }

    fn page(query: &str, status: u16, body: &str) -> ReplayEvent {
        ReplayEvent::new(
            http::Request::builder()
                .uri(format!(
                    "https://arc-zonal-shift.us-east-1.amazonaws.com/autoshifts?{query}"
                ))
                .body(SdkBody::empty())
                .unwrap(),
            http::Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(SdkBody::from(body))
                .unwrap(),
        )
    }

    /// `ListAutoshifts` responses as the API model shapes them: `items` of
    /// `AutoshiftSummary` (`awayFrom`, `startTime`/`endTime` as epoch
    /// seconds, `status` ACTIVE | COMPLETED) and `nextToken`.
    #[tokio::test]
    async fn active_autoshifts_are_read_across_pages() {
        let (client, http) = replaying(vec![
            page(
                "status=ACTIVE",
                200,
                r#"{"items":[{"awayFrom":"use1-az6","startTime":1.7637e9,"status":"ACTIVE"}],"nextToken":"t1"}"#,
            ),
            page(
                "nextToken=t1&status=ACTIVE",
                200,
                r#"{"items":[{"awayFrom":"USE1-AZ2","startTime":1.7637e9,"status":"ACTIVE"},
                   {"awayFrom":"use1-az4","startTime":1.7630e9,"endTime":1.7631e9,"status":"COMPLETED"}]}"#,
            ),
        ]);
        let away = active_autoshifts(&client).await.unwrap();
        assert_eq!(
            away,
            BTreeSet::from(["use1-az2".to_string(), "use1-az6".to_string()])
        );
        let queries: Vec<String> = http
            .actual_requests()
            .map(|r| {
                r.uri()
                    .split_once('?')
                    .map(|(_, q)| q.to_string())
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(queries, ["status=ACTIVE", "nextToken=t1&status=ACTIVE"]);
    }

    #[tokio::test]
    async fn no_autoshift_is_an_empty_set_and_a_refusal_is_an_error() {
        let (client, _) = replaying(vec![page("status=ACTIVE", 200, r#"{"items":[]}"#)]);
        assert!(active_autoshifts(&client).await.unwrap().is_empty());
        let (client, _) = replaying(vec![page(
            "status=ACTIVE",
            403,
            r#"{"message":"User is not authorized to perform: arc-zonal-shift:ListAutoshifts"}"#,
        )]);
        let err = active_autoshifts(&client).await.unwrap_err();
        assert_eq!(err.operation, "ListAutoshifts");
        assert!(!err.retryable, "{err:?}");
    }
}
