//! The one prefix model of the property tests: every state the executor
//! can leave a plan in, by its own chain rules ([`Chains`]).

use super::{Chains, Plan, Step};

/// Every state `plan` can leave `start` in, by the executor's rules: each
/// started step either succeeds, is refused for good (no effect, its chain
/// stops), or succeeds with its answer lost (the effect, and its chain
/// stops); a step whose chain has stopped is not started. A process killed
/// mid-plan is every chain stopped there, which these cover.
///
/// `apply` applies one step as AWS would: `None` when the step is deferred
/// (it waits for AWS, and its chain stops without an effect).
pub(crate) fn prefixes<'p, S: Clone + PartialEq>(
    start: &S,
    plan: &'p Plan,
    apply: impl Fn(&S, &Step) -> Option<S>,
) -> Vec<S> {
    let mut runs: Vec<(S, Chains<'p>)> = vec![(start.clone(), Chains::of(plan))];
    for step in &plan.steps {
        let mut next: Vec<(S, Chains<'p>)> = Vec::with_capacity(runs.len() * 3);
        let mut push = |run: (S, Chains<'p>)| {
            if !next.contains(&run) {
                next.push(run);
            }
        };
        for (state, chains) in runs {
            if chains.blocked(step).is_some() {
                push((state, chains));
                continue;
            }
            let mut stopped = chains.clone();
            stopped.stop(step, "stopped");
            match apply(&state, step) {
                Some(after) => {
                    push((after.clone(), chains));
                    push((after, stopped.clone()));
                }
                None => push((state.clone(), stopped.clone())),
            }
            push((state, stopped));
        }
        runs = next;
    }
    let mut states: Vec<S> = vec![];
    for (state, _) in runs {
        if !states.contains(&state) {
            states.push(state);
        }
    }
    states
}
