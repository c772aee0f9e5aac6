//! Lambda `unhealthy-target`: wiring only; the logic is in `ballast::reconcile::unhealthy_target`.

use ballast::reconcile::unhealthy_target::{handle, FUNCTION};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::runtime::serve(FUNCTION, handle).await
}
