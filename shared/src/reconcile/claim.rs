//! Claims: one invocation at a time changes a resource.
//!
//! EventBridge delivers at least once and Lambda runs duplicates side by
//! side, so two invocations can observe the same state and decide the same
//! promotion, or two evacuations that together break the evacuated-AZ limit.
//! AWS has no conditional write on tags, so a claim is last-writer-wins with
//! a settle: each contender writes `ballast:claim=<token>` on every resource
//! it is about to change, waits, reads the tags back, and goes on only if all
//! of them still carry its own token. Of contenders whose claims overlap in
//! time, only the last writer reads its token back everywhere; the others
//! stand down (and Lambda retries them). The winner then observes and decides
//! again under the claim — a contender that finished before it is seen — acts,
//! and removes its claim. A claim left by a crashed invocation is simply
//! overwritten by the next contender.

use std::time::Duration;

use crate::aws::{database, fleet, Aws, AwsError};
use crate::tags;

/// What a claim covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Auto Scaling groups, by name: for evacuations, every managed group
    /// (the evacuated-AZ limit is fleet-wide).
    Groups(Vec<String>),
    /// A DB instance (`id`, and `arn` for its tags): the failed primary
    /// whose standby replica is about to be promoted.
    Db { id: String, arn: String },
}

#[derive(Debug)]
pub enum Claimed {
    Won(Claim),
    /// Another invocation's token was read back on `resource`.
    Lost {
        resource: String,
        holder: String,
    },
}

#[derive(Debug)]
pub struct Claim {
    scope: Scope,
    token: String,
}

/// A token unique to this invocation: the request ID (Lambda's, unique per
/// invocation) and a random suffix (duplicates in tests share request IDs).
pub fn token(request_id: &str) -> String {
    let id: String = request_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    format!("{id}.{:08x}", fastrand::u32(..))
}

/// Writes the claim on every resource of `scope`, waits `settle`, and reads
/// it back.
pub async fn acquire(
    aws: &Aws,
    scope: Scope,
    token: String,
    settle: Duration,
) -> Result<Claimed, AwsError> {
    match &scope {
        Scope::Groups(names) => {
            for name in names {
                fleet::tag_group(&aws.autoscaling, name, tags::CLAIM, &token).await?;
            }
        }
        Scope::Db { arn, .. } => database::add_tag(&aws.rds, arn, tags::CLAIM, &token).await?,
    }
    tokio::time::sleep(settle).await;
    for (resource, holder) in holders(aws, &scope).await? {
        if holder.as_deref() != Some(token.as_str()) {
            return Ok(Claimed::Lost {
                resource,
                holder: holder.unwrap_or_else(|| "(removed)".into()),
            });
        }
    }
    Ok(Claimed::Won(Claim { scope, token }))
}

/// The claim tag's value on each resource of `scope`.
async fn holders(aws: &Aws, scope: &Scope) -> Result<Vec<(String, Option<String>)>, AwsError> {
    Ok(match scope {
        Scope::Groups(names) => {
            let groups = fleet::describe_groups(&aws.autoscaling, names).await?;
            names
                .iter()
                .map(|n| {
                    let holder = groups
                        .iter()
                        .find(|g| &g.name == n)
                        .and_then(|g| g.tags.get(tags::CLAIM).cloned());
                    (n.clone(), holder)
                })
                .collect()
        }
        Scope::Db { id, .. } => {
            let holder = database::describe_instance(&aws.rds, id)
                .await?
                .and_then(|i| i.tags.get(tags::CLAIM).cloned());
            vec![(id.clone(), holder)]
        }
    })
}

impl Claim {
    /// Removes the claim where it is still this invocation's. A failure is
    /// logged, not raised: the next contender overwrites a stale claim.
    pub async fn release(self, aws: &Aws) {
        let mine = match holders(aws, &self.scope).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "claim not released");
                return;
            }
        };
        for (resource, holder) in mine {
            if holder.as_deref() != Some(self.token.as_str()) {
                continue;
            }
            let result = match &self.scope {
                Scope::Groups(_) => {
                    fleet::untag_group(&aws.autoscaling, &resource, tags::CLAIM).await
                }
                Scope::Db { arn, .. } => database::remove_tag(&aws.rds, arn, tags::CLAIM).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, resource, "claim not released");
            }
        }
    }
}

/// The error that makes Lambda retry an invocation that lost a claim: by
/// then the winner has acted, and the retry finds the state converged (or,
/// for another AZ, decides under the limit).
pub fn lost_error(resource: &str, holder: &str) -> AwsError {
    AwsError {
        operation: "claim",
        resource: resource.to_string(),
        code: Some("ClaimHeld".into()),
        message: format!(
            "another invocation ({holder}) is changing {resource}; this one stands down and is retried"
        ),
        retryable: true,
    }
}
