//! Lambda `az-impairment`: wiring only; the logic is in `ballast::reconcile::az_impairment`.

use ballast::reconcile::az_impairment::{handle, FUNCTION};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::runtime::serve(FUNCTION, handle).await
}
