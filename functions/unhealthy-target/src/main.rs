//! Lambda `unhealthy-target`: wiring only; the logic is in `ballast::reconcile::unhealthy_target`.

// The handler future nests the SDK's deep async state machines; computing its
// layout in release builds needs more than the default 128 query depth.
#![recursion_limit = "256"]

use ballast::reconcile::unhealthy_target::UnhealthyTarget;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::lambda::serve::<UnhealthyTarget>().await
}
