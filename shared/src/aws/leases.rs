//! DynamoDB: the lease table (`BALLAST_LEASE_TABLE`). One item per leased
//! resource: `resource` (the partition key, a string such as `asg/web` or
//! `rds/orders-db`), `holder` (the invocation's token), `expires` (epoch
//! seconds; the table's TTL attribute), and, for the operator, `function`
//! and `taken` (epoch seconds).
//!
//! Every write is conditional, so the table is the one place where two
//! invocations are ordered: a lease is taken only where it is absent,
//! expired or already the taker's own; extended and released only where it
//! is still the holder's own. No read precedes a write.

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;

use super::AwsError;

/// The partition key.
pub const KEY: &str = "resource";
/// The expiry, epoch seconds (the table's TTL attribute).
pub const EXPIRES: &str = "expires";
const HOLDER: &str = "holder";
const FUNCTION: &str = "function";
const TAKEN: &str = "taken";

/// A transaction holds at most 100 items (DynamoDB's limit).
const TRANSACTION_MAX: usize = 100;

/// One live or expired lease, as the table holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub resource: String,
    pub holder: String,
    pub function: String,
    pub taken: i64,
    pub expires: i64,
}

/// What a conditional write over several resources found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Every item was written.
    All,
    /// The condition failed on this resource (nothing was written): held by
    /// another holder, or (extend, release) no longer ours.
    Refused { resource: String, holder: String },
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The attribute names an expression uses (DynamoDB refuses unused ones).
fn names(used: &[&str]) -> HashMap<String, String> {
    [("#r", KEY), ("#h", HOLDER), ("#e", EXPIRES)]
        .into_iter()
        .filter(|(a, _)| used.contains(a))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn values(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// Takes `resources` for `holder` until `expires`, atomically (one
/// transaction per 100 resources, in order): each item is written only
/// where it is absent, expired at `now`, or already `holder`'s.
pub async fn take(
    client: &Client,
    table: &str,
    resources: &[String],
    holder: &str,
    function: &str,
    now: i64,
    expires: i64,
) -> Result<Written, AwsError> {
    let items = resources.iter().map(|resource| {
        let item = values(&[
            (KEY, s(resource)),
            (HOLDER, s(holder)),
            (FUNCTION, s(function)),
            (TAKEN, n(now)),
            (EXPIRES, n(expires)),
        ]);
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#r) OR #e <= :now OR #h = :me")
            .set_expression_attribute_names(Some(names(&["#r", "#e", "#h"])))
            .set_expression_attribute_values(Some(values(&[(":now", n(now)), (":me", s(holder))])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map(|put| TransactWriteItem::builder().put(put).build())
    });
    transact(client, table, "TransactWriteItems(take)", resources, items).await
}

/// Moves the expiry of `holder`'s leases on `resources` to `expires`, only
/// where each is still `holder`'s.
pub async fn extend(
    client: &Client,
    table: &str,
    resources: &[String],
    holder: &str,
    expires: i64,
) -> Result<Written, AwsError> {
    let items = resources.iter().map(|resource| {
        Update::builder()
            .table_name(table)
            .key(KEY, s(resource))
            .update_expression("SET #e = :e")
            .condition_expression("#h = :me")
            .set_expression_attribute_names(Some(names(&["#e", "#h"])))
            .set_expression_attribute_values(Some(values(&[
                (":e", n(expires)),
                (":me", s(holder)),
            ])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map(|update| TransactWriteItem::builder().update(update).build())
    });
    transact(
        client,
        table,
        "TransactWriteItems(extend)",
        resources,
        items,
    )
    .await
}

/// Deletes `holder`'s leases on `resources`, only where each is still
/// `holder`'s (one that expired and was taken over is left to its new
/// holder).
pub async fn give_back(
    client: &Client,
    table: &str,
    resources: &[String],
    holder: &str,
) -> Result<Written, AwsError> {
    let items = resources.iter().map(|resource| {
        Delete::builder()
            .table_name(table)
            .key(KEY, s(resource))
            .condition_expression("attribute_not_exists(#r) OR #h = :me")
            .set_expression_attribute_names(Some(names(&["#r", "#h"])))
            .set_expression_attribute_values(Some(values(&[(":me", s(holder))])))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map(|delete| TransactWriteItem::builder().delete(delete).build())
    });
    transact(
        client,
        table,
        "TransactWriteItems(release)",
        resources,
        items,
    )
    .await
}

/// Sends `items` (one per resource, in the order of `resources`) in
/// transactions of at most [`TRANSACTION_MAX`]; stops at the first refused.
async fn transact<I, E>(
    client: &Client,
    table: &str,
    operation: &'static str,
    resources: &[String],
    items: I,
) -> Result<Written, AwsError>
where
    I: Iterator<Item = Result<TransactWriteItem, E>>,
    E: std::fmt::Display,
{
    let items: Vec<TransactWriteItem> = items.collect::<Result<_, E>>().map_err(|e| AwsError {
        operation,
        resource: table.to_string(),
        code: None,
        message: format!("request not built: {e}"),
        retryable: false,
    })?;
    for (chunk, names) in items
        .chunks(TRANSACTION_MAX)
        .zip(resources.chunks(TRANSACTION_MAX))
    {
        let sent = client
            .transact_write_items()
            .set_transact_items(Some(chunk.to_vec()))
            .send()
            .await;
        if let Err(e) = sent {
            if let Some(refused) = refused(e.as_service_error(), names) {
                return Ok(refused);
            }
            return Err(AwsError::from_sdk(operation, names.join(","), e));
        }
    }
    Ok(Written::All)
}

/// The resource whose condition failed, and its holder, when a transaction
/// was cancelled for a condition (not for a conflicting transaction, which
/// is worth a retry and stays an error).
fn refused(error: Option<&TransactWriteItemsError>, names: &[String]) -> Option<Written> {
    let Some(TransactWriteItemsError::TransactionCanceledException(e)) = error else {
        return None;
    };
    let reasons = e.cancellation_reasons();
    let (i, reason) = reasons
        .iter()
        .enumerate()
        .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))?;
    let holder = reason
        .item()
        .and_then(held)
        .map_or_else(|| "(gone)".to_string(), |h| describe(&h));
    Some(Written::Refused {
        resource: names.get(i).cloned().unwrap_or_default(),
        holder,
    })
}

/// How a report names a holder: its token, function and expiry.
pub fn describe(h: &Held) -> String {
    format!("{} of {} until {}", h.holder, h.function, h.expires)
}

fn held(item: &HashMap<String, AttributeValue>) -> Option<Held> {
    let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let number = |k: &str| {
        item.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    Some(Held {
        resource: text(KEY)?,
        holder: text(HOLDER).unwrap_or_default(),
        function: text(FUNCTION).unwrap_or_default(),
        taken: number(TAKEN).unwrap_or(0),
        expires: number(EXPIRES).unwrap_or(0),
    })
}

/// Every lease the table holds, live or expired (expired items wait for
/// DynamoDB's TTL sweep): for `ballast status`. Scanned, paged.
pub async fn list(client: &Client, table: &str) -> Result<Vec<Held>, AwsError> {
    let mut all = vec![];
    let mut pages = client.scan().table_name(table).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::from_sdk("Scan", table, e))?;
        all.extend(page.items().iter().filter_map(held));
    }
    all.sort_by(|a, b| a.resource.cmp(&b.resource));
    Ok(all)
}
