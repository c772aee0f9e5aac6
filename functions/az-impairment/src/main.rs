//! Lambda `az-impairment`: wiring only; the logic is in `ballast::reconcile::az_impairment`.

// The handler future nests the SDK's deep async state machines; computing its
// layout in release builds needs more than the default 128 query depth.
#![recursion_limit = "256"]

use ballast::reconcile::az_impairment::AzImpairment;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::lambda::serve::<AzImpairment>().await
}
