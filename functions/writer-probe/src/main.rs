//! Lambda `writer-probe`: wiring only; the logic is in `ballast::probe`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    ballast::probe::handler::serve().await
}
