//! Leases: one invocation at a time changes a resource (I5).
//!
//! EventBridge delivers at least once and Lambda runs duplicates side by
//! side, so two invocations can observe the same state and decide the same
//! promotion, or two evacuations that together break the evacuated-AZ limit.
//! The lease is a tag, `ballast:lock = holder=<token> until=<epoch seconds>`,
//! on every resource an invocation is about to change:
//!
//! 1. read the lock on each resource: one that is live (`until` in the
//!    future) and not ours is never overwritten — stand down, Lambda retries;
//! 2. write ours, valid until the invocation's own deadline plus a margin,
//!    so a lock left by a crashed or timed-out invocation expires by itself;
//! 3. wait `settle`, read back, and go on only if ours is still there
//!    everywhere. Contenders that both found the lock free are resolved here:
//!    the last writer reads its token back, the others stand down.
//!
//! AWS tags have no conditional write. What closes the remaining gap — a
//! contender that read "free" before our write landed but writes after our
//! read-back — is a bound on step 1→2: a contender whose read-to-written span
//! exceeds `settle` stands down instead of going on, so its write always
//! lands before any earlier writer's read-back, where it is seen.
//!
//! The winner then observes and decides again under the lease (a contender
//! that finished before it is seen), acts, and removes the lock.

use std::time::{Duration, Instant};

#[cfg(feature = "rds")]
use crate::aws::database;
#[cfg(feature = "autoscaling")]
use crate::aws::fleet;
use crate::aws::{Aws, AwsError};
use crate::report::now_epoch;
use crate::tags;

/// A lock outlives its holder's deadline by this much, then expires.
const EXPIRY_MARGIN_SECS: i64 = 5;
/// Without a known deadline (direct calls in tests), a lock lasts this long:
/// Ballast's longest function timeout (300 s) and the margin.
const DEFAULT_TTL_SECS: i64 = 310;

/// What a lease covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Auto Scaling groups, by name: for evacuations, every managed group
    /// (the evacuated-AZ limit is fleet-wide).
    #[cfg(feature = "autoscaling")]
    Groups(Vec<String>),
    /// A DB instance (`id`, and `arn` for its tags): the failed primary
    /// whose standby replica is promoted.
    #[cfg(feature = "rds")]
    Db { id: String, arn: String },
}

#[derive(Debug)]
pub enum Leased {
    Won(Lease),
    /// Another invocation holds `resource`, or this one could not take it
    /// safely (`holder` says why).
    Lost {
        resource: String,
        holder: String,
    },
}

#[derive(Debug)]
pub struct Lease {
    scope: Scope,
    token: String,
}

/// The lock's value: who holds it, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub holder: String,
    pub until: i64,
}

impl Lock {
    pub fn encode(&self) -> String {
        format!("holder={} until={}", self.holder, self.until)
    }

    /// `None` for a value Ballast did not write this way (taken over).
    pub fn parse(value: &str) -> Option<Lock> {
        let mut holder = None;
        let mut until = None;
        for kv in value.split_whitespace() {
            match kv.split_once('=') {
                Some(("holder", h)) if !h.is_empty() => holder = Some(h.to_string()),
                Some(("until", u)) => until = u.parse().ok(),
                _ => {}
            }
        }
        Some(Lock {
            holder: holder?,
            until: until?,
        })
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.until > now
    }
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

/// When a lock taken now by an invocation with `deadline` expires.
pub fn expiry(deadline: Option<Instant>) -> i64 {
    let now = now_epoch();
    match deadline {
        Some(d) => {
            now + d.saturating_duration_since(Instant::now()).as_secs() as i64
                + 1
                + EXPIRY_MARGIN_SECS
        }
        None => now + DEFAULT_TTL_SECS,
    }
}

/// Takes the lease on every resource of `scope` (see the module's steps).
pub async fn acquire(
    aws: &Aws,
    scope: Scope,
    token: String,
    until: i64,
    settle: Duration,
) -> Result<Leased, AwsError> {
    let started = Instant::now();
    let now = now_epoch();
    for (resource, lock) in holders(aws, &scope).await? {
        if let Some(lock) = lock.filter(|l| l.is_live(now) && l.holder != token) {
            return Ok(Leased::Lost {
                resource,
                holder: format!("{} until {}", lock.holder, lock.until),
            });
        }
    }
    let value = Lock {
        holder: token.clone(),
        until,
    }
    .encode();
    let lease = Lease { scope, token };
    // Once the write is sent, every way out that does not win releases:
    // a lock must not outlive a contender that gave up.
    match lease.settle(aws, &value, started, settle).await {
        Ok(None) => Ok(Leased::Won(lease)),
        Ok(Some((resource, holder))) => {
            lease.remove(aws, false).await;
            Ok(Leased::Lost { resource, holder })
        }
        Err(e) => {
            lease.remove(aws, false).await;
            Err(e)
        }
    }
}

/// The lock on each resource of `scope`.
async fn holders(aws: &Aws, scope: &Scope) -> Result<Vec<(String, Option<Lock>)>, AwsError> {
    Ok(match scope {
        #[cfg(feature = "autoscaling")]
        Scope::Groups(names) => {
            let groups = fleet::describe_groups(&aws.autoscaling, names).await?;
            names
                .iter()
                .map(|n| {
                    let lock = groups
                        .iter()
                        .find(|g| &g.name == n)
                        .and_then(|g| g.tags.get(tags::LOCK))
                        .and_then(|v| Lock::parse(v));
                    (n.clone(), lock)
                })
                .collect()
        }
        #[cfg(feature = "rds")]
        Scope::Db { id, .. } => {
            let lock = database::describe_instance(&aws.rds, id)
                .await?
                .and_then(|i| i.tags.get(tags::LOCK).and_then(|v| Lock::parse(v)));
            vec![(id.clone(), lock)]
        }
    })
}

impl Lease {
    fn resources(&self) -> Vec<String> {
        match &self.scope {
            #[cfg(feature = "autoscaling")]
            Scope::Groups(names) => names.clone(),
            #[cfg(feature = "rds")]
            Scope::Db { id, .. } => vec![id.clone()],
        }
    }

    /// Steps 2 and 3: writes the lock, waits, reads it back. `Some` names
    /// the resource and holder that make this contender give way.
    async fn settle(
        &self,
        aws: &Aws,
        value: &str,
        started: Instant,
        settle: Duration,
    ) -> Result<Option<(String, String)>, AwsError> {
        match &self.scope {
            #[cfg(feature = "autoscaling")]
            Scope::Groups(names) => {
                fleet::tag_groups(&aws.autoscaling, names, tags::LOCK, value).await?
            }
            #[cfg(feature = "rds")]
            Scope::Db { arn, .. } => database::add_tag(&aws.rds, arn, tags::LOCK, value).await?,
        }
        if started.elapsed() >= settle {
            // Too slow to be sure no earlier writer already read back.
            return Ok(Some((
                self.resources().join(","),
                "(this invocation's lock write was slower than the settle; it gives way)".into(),
            )));
        }
        tokio::time::sleep(settle).await;
        for (resource, lock) in holders(aws, &self.scope).await? {
            if lock.as_ref().map(|l| l.holder.as_str()) != Some(self.token.as_str()) {
                let holder = lock.map_or_else(|| "(removed)".into(), |l| l.holder);
                return Ok(Some((resource, holder)));
            }
        }
        Ok(None)
    }

    /// Removes the lock of the lease won, where it is still this
    /// invocation's. A lock that cannot be removed is logged and expires by
    /// itself.
    pub async fn release(self, aws: &Aws) {
        self.remove(aws, true).await
    }

    /// Removes this invocation's lock, each removal tried [`RELEASE_TRIES`]
    /// times. When reading the locks fails, a winner removes them all (while
    /// its lease is live nobody else writes them); a contender giving way
    /// removes none, since one may be another's live lock.
    async fn remove(&self, aws: &Aws, won: bool) {
        let mine: Vec<String> = match holders(aws, &self.scope).await {
            Ok(h) => h
                .into_iter()
                .filter(|(_, lock)| lock.as_ref().is_some_and(|l| l.holder == self.token))
                .map(|(resource, _)| resource)
                .collect(),
            Err(_) if won => self.resources(),
            Err(e) => {
                tracing::warn!(error = %e, "lock not read back; any of ours expires by itself");
                vec![]
            }
        };
        for resource in mine {
            for attempt in 1..=RELEASE_TRIES {
                let result = match &self.scope {
                    #[cfg(feature = "autoscaling")]
                    Scope::Groups(_) => {
                        fleet::untag_group(&aws.autoscaling, &resource, tags::LOCK).await
                    }
                    #[cfg(feature = "rds")]
                    Scope::Db { arn, .. } => database::remove_tag(&aws.rds, arn, tags::LOCK).await,
                };
                match result {
                    Ok(()) => break,
                    Err(e) if attempt == RELEASE_TRIES => {
                        tracing::warn!(error = %e, resource, "lock not released; it expires by itself")
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
    }
}

/// How many times removing a lock is tried.
const RELEASE_TRIES: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_round_trips_and_expires() {
        let lock = Lock {
            holder: "req-1.0000abcd".into(),
            until: 100,
        };
        assert_eq!(lock.encode(), "holder=req-1.0000abcd until=100");
        assert_eq!(Lock::parse(&lock.encode()), Some(lock.clone()));
        assert!(lock.is_live(99));
        assert!(!lock.is_live(100));
        // A value Ballast did not write this way is taken over.
        assert_eq!(Lock::parse("req-1.0000abcd"), None);
        assert_eq!(Lock::parse("holder= until=5"), None);
    }

    #[test]
    fn a_lock_outlives_its_holder_deadline_by_the_margin_only() {
        let now = now_epoch();
        let until = expiry(Some(Instant::now() + Duration::from_secs(60)));
        assert!((now + 60 + EXPIRY_MARGIN_SECS..=now + 62 + EXPIRY_MARGIN_SECS).contains(&until));
        assert!(expiry(None) >= now + DEFAULT_TTL_SECS);
    }
}
