//! Test harness for Ballast: a real AWS emulator (moto in server mode), the
//! seeded multi-AZ stack, and a minimal Lambda Runtime API host that runs the
//! real release binaries. Used by the integration tests, the end-to-end test
//! and the demo.

pub mod databases;
pub mod host;
pub mod moto;
pub mod stack;

use std::path::PathBuf;

/// The workspace root (this crate lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A sample event from `events/`.
pub fn sample_event(name: &str) -> serde_json::Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The release binary of a function, built by `make test` / `make demo`.
pub fn release_binary(function: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let path = target.join("release").join(function);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --release -p {function}` (make test and make demo do)",
        path.display()
    );
    path
}

/// A `Ballast` (configuration + clients) pointed at the emulator and the
/// stack's report topic.
pub fn ballast_for(moto: &moto::Moto, stack: &stack::Stack, dry_run: bool) -> ballast::Ballast {
    ballast::Ballast {
        config: ballast::Config {
            topic_arn: stack.topic_arn.clone(),
            dry_run,
            max_unhealthy_percent: 50,
            max_evacuated_azs: 1,
            dns_ttl: ballast::config::DEFAULT_DNS_TTL,
        },
        aws: ballast::aws::Aws::new(&moto.sdk_config()),
    }
}
