//! Lambda `rds-failover`: wiring only; the logic is in `ballast::reconcile::rds_failover`.

use ballast::reconcile::rds_failover::{handle, FUNCTION};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::runtime::serve(FUNCTION, handle).await
}
