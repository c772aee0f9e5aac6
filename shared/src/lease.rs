//! Leases: one invocation at a time changes a resource (I5).
//!
//! EventBridge delivers at least once and Lambda runs duplicates side by
//! side, so two invocations can observe the same state and decide the same
//! promotion, or two evacuations that together break the evacuated-AZ limit.
//! Before it changes anything, an invocation takes a lease on every
//! resource its plan touches, in the stack's DynamoDB lease table
//! (`BALLAST_LEASE_TABLE`, [`crate::aws::leases`]):
//!
//! - **take:** one conditional transaction writes every item where it is
//!   absent, expired, or already this invocation's. DynamoDB orders the
//!   writes: of two contenders exactly one wins, at once — no settle, no
//!   read-back. The loser writes nothing (a transaction is all or none), so
//!   a stand-down never leaves a lease of its own behind;
//! - **live for the plan, not the function:** a lease lasts [`LIFETIME`]
//!   (20 s) and is extended by a conditional update before a step that
//!   would outlive it ([`Lease::cover`]); each step is cut at the lease's
//!   end, so no step of a holder runs after another may have taken over;
//! - **released** by a conditional delete (only where still ours). A lease
//!   left by a crashed or killed attempt expires by itself: it blocks the
//!   next one for at most [`LIFETIME`] (longer only when the holder died in
//!   a step that waits, which extends it to cover the wait).
//!
//! The winner then observes and decides again under the lease (a contender
//! that finished before it is seen), acts, and releases.
//!
//! Time: the expiry is epoch seconds, compared by the next taker with its
//! own clock. Lambda's clocks are NTP-disciplined (well under a second
//! apart); a holder counts its lease as ending [`SKEW`] before the expiry it
//! wrote, so a skew up to that is harmless.

use std::time::{Duration, Instant};

use crate::aws::leases::{self, Written};
use crate::aws::{Aws, AwsError};
use crate::failure::Failure;
use crate::report::now_epoch;

/// How long a lease lives once taken or extended. A plan's steps are each
/// one AWS call that answers in well under a second when AWS is healthy
/// and in a few seconds under throttling (the SDK's back-off); 20 s covers
/// the re-observation and a step's retries with room, and is short against
/// Lambda's first retry of an async event (about a minute): a lease left by
/// a dead attempt has expired before that retry comes.
pub const LIFETIME: Duration = Duration::from_secs(20);
/// A step is not started on less lease than this (the lease is extended
/// first): one call attempt's time-out (`aws::timeouts`).
pub const STEP: Duration = Duration::from_secs(10);
/// The holder's own margin against clock skew between invocations.
pub const SKEW: Duration = Duration::from_secs(1);

/// What a lease covers: the lease table's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Auto Scaling groups, by name: for evacuations, every managed group
    /// (the evacuated-AZ limit is fleet-wide).
    Groups(Vec<String>),
    /// A DB instance, by identifier: the failed primary whose standby
    /// replica is promoted.
    Db(String),
}

impl Scope {
    /// The table's keys, sorted and without repeats: `asg/<name>`,
    /// `rds/<id>`.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self {
            Scope::Groups(names) => names.iter().map(|n| format!("asg/{n}")).collect(),
            Scope::Db(id) => vec![format!("rds/{id}")],
        };
        keys.sort();
        keys.dedup();
        keys
    }
}

#[derive(Debug)]
pub enum Leased {
    Won(Lease),
    /// Another invocation holds `resource` (`holder` names it).
    Lost {
        resource: String,
        holder: String,
    },
}

/// A lease this invocation holds.
#[derive(Debug)]
pub struct Lease {
    table: String,
    keys: Vec<String>,
    token: String,
    /// When this holder stops counting on the lease: the expiry it wrote,
    /// less [`SKEW`], on the monotonic clock.
    ends: Instant,
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

/// The expiry (epoch seconds) and the holder's own end for a lease of
/// `life` written now.
fn expiry(life: Duration) -> (i64, i64, Instant) {
    let start = Instant::now();
    let now = now_epoch();
    let expires = now + life.as_secs() as i64;
    (now, expires, start + life.saturating_sub(SKEW))
}

/// Takes the lease on every resource of `scope` for `function`: one
/// conditional write. On an error (the answer lost, say), whatever the
/// write may have left is given back before the error is returned.
pub async fn acquire(
    aws: &Aws,
    table: &str,
    function: &str,
    scope: &Scope,
    token: String,
) -> Result<Leased, AwsError> {
    let keys = scope.keys();
    let (now, expires, ends) = expiry(LIFETIME);
    let taken = leases::take(&aws.dynamodb, table, &keys, &token, function, now, expires).await;
    let lease = Lease {
        table: table.to_string(),
        keys,
        token,
        ends,
    };
    match taken {
        Ok(Written::All) => Ok(Leased::Won(lease)),
        Ok(Written::Refused { resource, holder }) => Ok(Leased::Lost { resource, holder }),
        Err(e) => {
            lease.release(aws).await;
            Err(e)
        }
    }
}

impl Lease {
    /// How long this holder may still count on the lease.
    pub fn left(&self) -> Duration {
        self.ends.saturating_duration_since(Instant::now())
    }

    /// Makes sure the lease lasts at least `need` more: extends it (a
    /// conditional update, only where it is still ours) when it would end
    /// sooner. `Err` when it is no longer ours or cannot be extended: the
    /// holder must not start the step.
    pub async fn cover(&mut self, aws: &Aws, need: Duration) -> Result<(), Failure> {
        if self.left() >= need {
            return Ok(());
        }
        let life = (need + SKEW).max(LIFETIME);
        let (_, expires, ends) = expiry(life);
        let resource = self.keys.join(",");
        match leases::extend(&aws.dynamodb, &self.table, &self.keys, &self.token, expires).await {
            Ok(Written::All) => {
                self.ends = ends;
                Ok(())
            }
            Ok(Written::Refused { resource, holder }) => {
                Err(Failure::LockHeld { resource, holder })
            }
            Err(e) => {
                tracing::warn!(error = %e, resource, "lease not extended");
                Err(e.into())
            }
        }
    }

    /// Gives the lease back (a conditional delete, only where it is still
    /// ours). One that cannot be deleted is logged and expires by itself.
    pub async fn release(self, aws: &Aws) {
        if let Err(e) = leases::give_back(&aws.dynamodb, &self.table, &self.keys, &self.token).await
        {
            tracing::warn!(error = %e, resource = self.keys.join(","), "lease not released; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_sorted_and_unique() {
        let scope = Scope::Groups(vec!["web".into(), "api".into(), "web".into()]);
        assert_eq!(scope.keys(), vec!["asg/api", "asg/web"]);
        assert_eq!(Scope::Db("orders".into()).keys(), vec!["rds/orders"]);
    }

    #[test]
    fn a_lease_ends_for_its_holder_before_the_expiry_it_wrote() {
        let (now, expires, ends) = expiry(LIFETIME);
        assert_eq!(expires - now, LIFETIME.as_secs() as i64);
        let left = ends.saturating_duration_since(Instant::now());
        assert!(left <= LIFETIME - SKEW && left > LIFETIME - SKEW - Duration::from_secs(1));
        const { assert!(LIFETIME.as_secs() > STEP.as_secs() + SKEW.as_secs()) };
    }
}
