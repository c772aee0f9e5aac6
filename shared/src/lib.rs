//! Ballast's shared library.
//!
//! Every function is a [`reconcile::Reconciler`] run by the same pipeline:
//! `event` (what to look at) → `aws` observe (live state, mapped straight
//! into the domain's [`resources`]) → `decide` (pure:
//! state + policy → [`decide::Plan`]) → `execute` (AWS writes, dry run
//! honoured) → `conclude` (plan + what was applied → the [`Report`]).
//!
//! Cargo features, one per AWS service (`autoscaling`, `elbv2`, `rds`,
//! `route53`, `ec2`, `cloudwatch`, `zonal-shift`; SNS is always in), and
//! one per function naming the services it uses: a function binary
//! compiles and links only its own clients.
//!
//! The modules the functions, the CLI and the tests use are public; the
//! pipeline's inner stages (`execute`, `conclude`, `failure`) are not, and
//! `unreachable_pub` keeps every other `pub` honest.

#![warn(unreachable_pub)]

pub mod aws;
#[cfg(feature = "reconciler")]
mod conclude;
pub mod config;
pub mod context;
pub mod decide;
pub mod event;
#[cfg(feature = "reconciler")]
mod execute;
mod failure;
#[cfg(feature = "reconciler")]
pub mod lambda;
pub mod lease;
pub mod metrics;
#[cfg(feature = "probe")]
pub mod probe;
pub mod proof;
#[cfg(feature = "reconciler")]
pub mod reconcile;
pub mod records;
pub mod report;
pub mod resources;

pub use config::{Config, ConfigError};
pub use context::{Ballast, Invocation};
pub use report::{Outcome, Report, Severity};

/// Tag keys of the public contract (README, "Contract", "Tags").
pub mod tags {
    /// `true` on an Auto Scaling group that Ballast may act on.
    pub const MANAGED: &str = "ballast:managed";
    /// `<HostedZoneId>/<record name>` on a DB cluster or instance.
    pub const DNS_RECORD: &str = "ballast:dns-record";
    /// `<replica DB instance id>` on a primary DB instance.
    pub const STANDBY_REPLICA: &str = "ballast:standby-replica";
    /// Written by Ballast on a standby replica before it is promoted, and
    /// kept: `from=<primary> state=requested|promoted at=<epoch seconds>`.
    pub const PROMOTION: &str = "ballast:promotion";
    /// A report Ballast could not publish, parked on what it changed until
    /// a later delivery publishes it (`reconcile::unreported`).
    pub const UNREPORTED: &str = "ballast:unreported";
    /// Written by Ballast on an evacuated Auto Scaling group.
    pub const EVACUATED: &str = "ballast:evacuated";
    /// Ballast's own replacement marks inside the budget window
    /// (`decide::unhealthy_target::Replaced`).
    pub const REPLACED: &str = "ballast:replaced";
    /// The processes the breaker suspended, when and why.
    pub const SUSPENDED: &str = "ballast:suspended";
    /// Opt-in to the writer proof, on a DB cluster or instance: how the
    /// probe logs in (`secret=master`, or `secret=<secret name or ARN>`,
    /// and optionally `db=<database>`).
    pub const WRITER_PROBE: &str = "ballast:writer-probe";
    /// Written by Ballast on an opted-in DB resource when its writer is not
    /// proven through the application's name, removed once it is:
    /// `since=<epoch seconds>`.
    pub const UNPROVEN: &str = "ballast:unproven";

    /// AWS caps a tag value at 256 characters (Auto Scaling, RDS, ELB).
    pub const VALUE_MAX: usize = 256;

    /// The contract says `ballast:managed` = `true`; a capitalised `True`
    /// typed into the console means the same thing.
    pub fn is_true(value: &str) -> bool {
        value.trim().eq_ignore_ascii_case("true")
    }
}
