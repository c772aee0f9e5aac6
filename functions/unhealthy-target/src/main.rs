//! Lambda `unhealthy-target`: wiring only; the logic is in `ballast`.

use ballast::reconcile::unhealthy_target::{handle, FUNCTION};
use ballast::Invocation;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ballast = ballast::runtime::init(FUNCTION).await;
    let ballast = &ballast;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation::from_context(&event.context);
        handle(ballast, event.payload, invocation).await
    }))
    .await
}
