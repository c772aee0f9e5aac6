//! The executor's chain rules, in one place: `execute` runs plans by them
//! and the property tests' prefix model ([`super::prefixes`]) enumerates
//! what they can leave behind, so the two cannot drift apart.

use std::collections::BTreeMap;

use super::{Plan, Step};

/// Which steps of a plan may still start. A chain is a resource's steps
/// ([`Step::chain`]), or the whole plan when it is sequential; a chain
/// stops at its first failure, and a step also waits on the chain it is
/// [`Step::after`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chains<'a> {
    sequential: bool,
    /// Chains stopped, with why their remaining steps are not started.
    stopped: BTreeMap<&'a str, &'static str>,
}

impl<'a> Chains<'a> {
    pub fn of(plan: &Plan) -> Self {
        Chains {
            sequential: plan.sequential,
            stopped: BTreeMap::new(),
        }
    }

    fn chain(&self, step: &'a Step) -> &'a str {
        if self.sequential {
            ""
        } else {
            step.chain()
        }
    }

    /// Why `step` may not start, if it may not: its chain, or the chain it
    /// waits on, has stopped.
    pub fn blocked(&self, step: &'a Step) -> Option<&'static str> {
        let waited_on = step.after().and_then(|a| self.stopped.get(a));
        self.stopped.get(self.chain(step)).or(waited_on).copied()
    }

    /// `step`'s chain stops here: what follows it in the chain (and what
    /// waits on it) is not started, for `why`.
    pub fn stop(&mut self, step: &'a Step, why: &'static str) {
        let chain = self.chain(step);
        self.stopped.entry(chain).or_insert(why);
    }
}
