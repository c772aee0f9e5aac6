//! The `ballast` command's library: each command observes (AWS reads),
//! decides or renders (pure, unit-tested), and prints. `main.rs` is wiring.

pub mod doctor;
pub mod status;
pub mod steer;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;

use ballast::aws::Aws;

/// The process's exit code (documented in `ballast --help` and the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    /// A `doctor` check failed, or an evacuate/restore was declined or failed.
    Attention = 1,
    Usage = 2,
    /// AWS could not be read, or the function could not be invoked.
    Aws = 3,
}

/// The account and Region a command works on, with its clients.
#[derive(Debug, Clone)]
pub struct Target {
    pub aws: Aws,
    pub lambda: aws_sdk_lambda::Client,
}

/// An invocation of `az-impairment` runs up to its timeout (120 s in the
/// template), so the Lambda client waits longer than Ballast's own calls.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(180);

impl Target {
    /// The SDK's standard configuration (environment, profile, SSO, ...),
    /// with `--region` and `--profile` on top.
    pub async fn load(region: Option<String>, profile: Option<String>) -> Target {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(profile) = profile {
            loader = loader.profile_name(profile);
        }
        let conf = loader.load().await;
        let lambda_conf = conf
            .to_builder()
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(INVOKE_TIMEOUT)
                    .operation_timeout(INVOKE_TIMEOUT)
                    .build(),
            )
            .build();
        Target {
            aws: Aws::new(&conf),
            lambda: aws_sdk_lambda::Client::new(&lambda_conf),
        }
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}
