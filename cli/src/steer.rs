//! `ballast evacuate|restore <zone>`: a direct invoke of the deployed
//! `az-impairment` function, so the same guardrails, IAM, lease and report
//! path apply as to any other signal; its report is printed readably.

use aws_sdk_lambda::primitives::Blob;
use serde_json::json;

use ballast::report::{Outcome, Report};

use crate::{json_text, Answer, Exit, Target};

/// A Ballast function's name in a stack (`FunctionName` in the template).
pub fn function_name(stack: &str, function: &str) -> String {
    format!("{stack}-{function}")
}

/// The direct-invoke payload the function documents.
pub fn payload(action: &str, zone: &str, dry_run: bool) -> serde_json::Value {
    let mut p = json!({"action": action, "availabilityZone": zone.trim()});
    if dry_run {
        p["dryRun"] = json!(true);
    }
    p
}

/// How an invocation ended.
#[derive(Debug)]
pub enum Invoked {
    Report(Box<Report>),
    /// The function answered with a Lambda error (type, message).
    FunctionError(String, String),
}

/// Invokes `function` synchronously with `payload`.
pub async fn invoke(
    target: &Target,
    function: &str,
    payload: &serde_json::Value,
) -> Result<Invoked, String> {
    let out = target
        .lambda
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.to_string()))
        .send()
        .await
        .map_err(|e| {
            let e = ballast::aws::AwsError::from_sdk("Invoke", function, e);
            e.to_string()
        })?;
    let body = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(kind) = out.function_error() {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let message = v["errorMessage"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let error_type = v["errorType"].as_str().unwrap_or(kind).to_string();
        return Ok(Invoked::FunctionError(error_type, message));
    }
    serde_json::from_slice::<Report>(&body)
        .map(|r| Invoked::Report(Box::new(r)))
        .map_err(|e| {
            format!(
                "{function} answered something that is not a Ballast report ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        })
}

/// The exit code a report calls for.
pub fn exit_of(report: &Report) -> Exit {
    match report.outcome {
        Outcome::Declined | Outcome::Failed => Exit::Attention,
        _ => Exit::Ok,
    }
}

pub async fn run(
    target: &Target,
    function: &str,
    action: &str,
    zone: &str,
    dry_run: bool,
    json: bool,
) -> Answer {
    match invoke(target, function, &payload(action, zone, dry_run)).await {
        Ok(Invoked::Report(report)) if json => Answer::out(exit_of(&report), json_text(&report)),
        Ok(Invoked::Report(report)) => Answer::out(exit_of(&report), report.email_text()),
        Ok(Invoked::FunctionError(kind, message)) => Answer {
            exit: Exit::Attention,
            stdout: if json {
                json_text(&json!({"errorType": kind, "errorMessage": message}))
            } else {
                String::new()
            },
            stderr: format!("ballast: {function} failed ({kind}): {message}\n"),
        },
        Err(e) => Answer::err(Exit::Aws, format!("could not invoke {function}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_the_documented_direct_invoke() {
        assert_eq!(
            payload("evacuate", " us-east-1a ", false),
            json!({"action": "evacuate", "availabilityZone": "us-east-1a"})
        );
        assert_eq!(
            payload("restore", "use1-az1", true),
            json!({"action": "restore", "availabilityZone": "use1-az1", "dryRun": true})
        );
        assert_eq!(
            function_name("ballast", "az-impairment"),
            "ballast-az-impairment"
        );
    }
}
