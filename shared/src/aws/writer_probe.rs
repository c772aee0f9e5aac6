//! Lambda: `rds-failover` invokes the writer probe, synchronously, and
//! reads its proof.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use super::AwsError;
use crate::proof::{Proof, Request};

/// What an invoke of the writer probe came to.
#[derive(Debug)]
pub enum Answer {
    Proof(Box<Proof>),
    /// The function answered with an error, or with something that is
    /// not a proof: what it said.
    Refused(String),
}

/// Invokes `function` with `request` and waits for its proof (the probe
/// bounds itself at 7 s; the client's attempt time-out is 10 s).
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    request: &Request,
) -> Result<Answer, AwsError> {
    let payload = serde_json::to_vec(request).unwrap_or_default();
    let out = client
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(payload))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("Invoke", function, e))?;
    let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
    if let Some(kind) = out.function_error() {
        let said: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let message = said
            .get("errorMessage")
            .and_then(|m| m.as_str())
            .unwrap_or("no message");
        return Ok(Answer::Refused(format!(
            "{function} answered an error ({kind}): {message}"
        )));
    }
    Ok(match serde_json::from_slice::<Proof>(body) {
        Ok(proof) => Answer::Proof(Box::new(proof)),
        Err(e) => Answer::Refused(format!("{function} answered no proof: {e}")),
    })
}
