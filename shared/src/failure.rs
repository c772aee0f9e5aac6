//! Why a step or an invocation did not complete, and whether Lambda should
//! deliver the event again: an AWS call that failed (retryable or not), the
//! invocation deadline, or another invocation holding the lease.

use thiserror::Error;

use crate::aws::AwsError;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum Failure {
    /// An AWS call failed after the SDK's own retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// A step not started, or cut short, because the Lambda deadline is
    /// near: the next delivery finishes it.
    #[error("deadline on {resource} failed: {message}")]
    DeadlineNear { resource: String, message: String },
    /// Another invocation holds the lease on `resource`: this one stands
    /// down; by the time Lambda retries it, the holder has acted.
    #[error("lease on {resource} failed: {}", stand_down(resource, holder))]
    LockHeld { resource: String, holder: String },
    /// The decision waits on AWS (a promotion RDS does not show yet): the
    /// invocation asks Lambda to deliver the event again rather than end it.
    #[error("waiting on {resource}: {message}")]
    Waiting { resource: String, message: String },
    /// A step of an AWS service this function binary is not built with
    /// (its Cargo features): its decisions never plan one.
    #[error("{kind} on {resource} failed: this function is not built with the client for it")]
    NotBuilt {
        kind: &'static str,
        resource: String,
    },
}

/// Why an invocation that found the lease held changes nothing.
pub(crate) fn stand_down(resource: &str, holder: &str) -> String {
    format!(
        "another invocation ({holder}) is changing {resource}; this one stands down and is retried"
    )
}

impl Failure {
    /// Throttling, 5xx, time-outs, broken connections, the deadline and a
    /// held lease are worth a retry; validation and access errors are not.
    pub fn retryable(&self) -> bool {
        match self {
            Failure::Aws(e) => e.retryable,
            Failure::DeadlineNear { .. } | Failure::LockHeld { .. } | Failure::Waiting { .. } => {
                true
            }
            Failure::NotBuilt { .. } => false,
        }
    }

    /// What failed: the AWS operation, `deadline` or `lease`.
    pub fn operation(&self) -> &str {
        match self {
            Failure::Aws(e) => e.operation,
            Failure::DeadlineNear { .. } => "deadline",
            Failure::LockHeld { .. } => "lease",
            Failure::Waiting { .. } => "wait",
            Failure::NotBuilt { kind, .. } => kind,
        }
    }

    /// The invocation stood down for another one, or waits on AWS, and
    /// asks to be retried: by design, not a failure.
    pub fn is_lock_held(&self) -> bool {
        matches!(self, Failure::LockHeld { .. } | Failure::Waiting { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_and_a_held_lease_are_retried_and_read_as_before() {
        let deadline = Failure::DeadlineNear {
            resource: "web".into(),
            message: "invocation deadline reached before this step".into(),
        };
        assert!(deadline.retryable());
        assert_eq!(
            deadline.to_string(),
            "deadline on web failed: invocation deadline reached before this step"
        );
        let held = Failure::LockHeld {
            resource: "web".into(),
            holder: "abc".into(),
        };
        assert!(held.retryable() && held.is_lock_held());
        assert_eq!(held.operation(), "lease");
        let denied = Failure::Aws(AwsError {
            operation: "SetInstanceHealth",
            resource: "i-1".into(),
            code: Some("AccessDenied".into()),
            message: "AccessDenied: no".into(),
            retryable: false,
        });
        assert!(!denied.retryable() && !denied.is_lock_held());
        assert_eq!(
            denied.to_string(),
            "SetInstanceHealth on i-1 failed: AccessDenied: no"
        );
    }
}
