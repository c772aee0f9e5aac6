//! The `ballast` command's library: each command observes (AWS reads),
//! decides or renders (pure, unit-tested), and prints. `main.rs` is wiring.

pub mod doctor;
pub mod history;
pub mod status;
pub mod steer;

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use clap::{Parser, Subcommand};

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
    /// CloudWatch Logs, for `ballast history` (Logs Insights).
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

/// An invocation of `az-impairment` runs up to its timeout (120 s in the
/// template), so the Lambda client waits longer than Ballast's own calls.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(180);

impl Target {
    /// The SDK's standard configuration (environment, profile, SSO, ...),
    /// with `--region` and `--profile` on top. `Err` says what is missing:
    /// no Region anywhere (naming `--region`, and the profile when one was
    /// given: a mistyped profile gives none).
    pub async fn load(region: Option<String>, profile: Option<String>) -> Result<Target, String> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(ballast::aws::http_client());
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(profile) = &profile {
            loader = loader.profile_name(profile);
        }
        let conf = loader.load().await;
        if conf.region().is_none() {
            return Err(no_region(profile.as_deref()));
        }
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
        Ok(Target {
            aws: Aws::new(&conf),
            lambda: aws_sdk_lambda::Client::new(&lambda_conf),
            logs: aws_sdk_cloudwatchlogs::Client::new(&conf),
        })
    }
}

/// Why no Region was found, and how to give one.
pub fn no_region(profile: Option<&str>) -> String {
    let base = "no AWS Region: pass --region (or set AWS_REGION, or a region in the profile)";
    match profile {
        Some(p) => format!(
            "{base}; profile {p:?} gives none — is it spelled as in `aws configure list-profiles`?"
        ),
        None => base.to_string(),
    }
}

/// The zones of a group's current subnets.
pub fn zones_of(
    g: &ballast::resources::Group,
    subnet_zone: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeSet<String> {
    g.subnets()
        .filter_map(|s| subnet_zone.get(s).cloned())
        .collect()
}

/// Subnet → AZ for every subnet the groups use (one `DescribeSubnets`).
pub async fn subnet_zones_of(
    aws: &Aws,
    groups: &[ballast::resources::Group],
) -> Result<std::collections::BTreeMap<String, String>, ballast::aws::AwsError> {
    let subnets: std::collections::BTreeSet<String> = groups
        .iter()
        .flat_map(ballast::resources::Group::subnets)
        .map(str::to_string)
        .collect();
    let subnets: Vec<String> = subnets.into_iter().collect();
    ballast::aws::network::subnet_zones(&aws.ec2, &subnets).await
}

/// What a command answers: its exit code and what it prints on stdout and
/// stderr (`main` prints them; tests and the demo read them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    pub fn out(exit: Exit, stdout: String) -> Answer {
        Answer {
            exit,
            stdout,
            stderr: String::new(),
        }
    }

    pub fn err(exit: Exit, stderr: String) -> Answer {
        Answer {
            exit,
            stdout: String::new(),
            stderr: format!("ballast: {stderr}\n"),
        }
    }

    /// For `--json`: an error that printed nothing on stdout also prints
    /// `{"error": ..., "exit": ...}` there, so a script reads stdout alone.
    pub fn as_json(self) -> Answer {
        if !self.stdout.is_empty() || self.exit == Exit::Ok {
            return self;
        }
        let error = self
            .stderr
            .trim()
            .trim_start_matches("ballast: ")
            .to_string();
        Answer {
            stdout: json_text(&serde_json::json!({"error": error, "exit": self.exit as u8})),
            ..self
        }
    }
}

/// `text` whole when it has at most `max` characters, else cut at the last
/// space before them, with `…`.
pub fn cut_at_word(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max).collect();
    let cut = head.rfind(' ').filter(|&i| i > 0).unwrap_or(head.len());
    format!("{}…", head[..cut].trim_end())
}

/// `value` as pretty JSON, one line break at the end.
pub fn json_text(value: &impl serde::Serialize) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": \"not serialisable: {e}\"}}"))
    )
}

/// See and steer Ballast: what it manages, readiness before the incident,
/// and evacuating or restoring a zone through the deployed function.
///
/// Exit codes: 0 success; 1 a `doctor` check failed, or an evacuate/restore
/// was declined or failed; 2 bad usage; 3 AWS could not be read or the
/// function could not be invoked.
#[derive(Debug, Parser)]
#[command(name = "ballast", version)]
pub struct Cli {
    /// AWS Region (default: the SDK's: AWS_REGION, the profile, ...).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named profile of the shared AWS config and credentials files.
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Managed Auto Scaling groups (zones, evacuations and their signals,
    /// suspended processes), tagged databases (writer, record, standby) and
    /// the live leases of the stack's lease table, in one screen.
    Status(StackArgs),
    /// Evacuate a zone (name or ID) through the deployed az-impairment function.
    Evacuate(SteerArgs),
    /// Restore a zone (name or ID) through the deployed az-impairment function:
    /// clears every signal that holds it.
    Restore(SteerArgs),
    /// Read-only readiness audit of the account and Region against what
    /// Ballast needs; exits 1 when a check fails (gate a deploy on it).
    Doctor(StackArgs),
    /// What Ballast decided, oldest first, from the functions' logs (one
    /// CloudWatch Logs Insights query, at most 60 s).
    History(HistoryArgs),
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// How far back: a number and a unit (s, m, h, d, w), e.g. 6h or 7d.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Only this function's decisions.
    #[arg(long, value_parser = ["unhealthy-target", "rds-failover", "az-impairment"])]
    pub function: Option<String>,
    /// Only decisions with this outcome.
    #[arg(long, value_parser = ["remediated", "dry-run", "declined", "failed", "noop", "ignored"])]
    pub outcome: Option<String>,
    /// Only decisions about a resource whose ARN or name contains this.
    #[arg(long)]
    pub resource: Option<String>,
    /// Print each report whole (actions, resources, evidence) below its line.
    #[arg(long)]
    pub details: bool,
    /// At most this many decisions (the newest), up to 10000.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
    #[command(flatten)]
    pub stack: StackArgs,
}

#[derive(Debug, clap::Args)]
pub struct StackArgs {
    /// The Ballast stack's name (its functions are `<stack>-<function>`).
    #[arg(long, default_value = "ballast", env = "BALLAST_STACK")]
    pub stack: String,
}

#[derive(Debug, clap::Args)]
pub struct SteerArgs {
    /// The Availability Zone, by name (us-east-1a) or ID (use1-az1).
    pub zone: String,
    /// Decide and report, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub stack: StackArgs,
    /// The function to invoke, instead of `<stack>-az-impairment`.
    #[arg(long)]
    pub function: Option<String>,
}

/// Runs one parsed command against `target`. With `--json`, an answer that
/// printed nothing on stdout prints its error as a JSON object there.
pub async fn execute(cli: Cli, target: &Target) -> Answer {
    let json = cli.json;
    let answer = match cli.command {
        Command::Status(args) => status::run(target, &args, json).await,
        Command::Doctor(args) => doctor::run(target, &args.stack, json).await,
        Command::Evacuate(args) => steer_zone(target, "evacuate", args, json).await,
        Command::Restore(args) => steer_zone(target, "restore", args, json).await,
        Command::History(args) => history(target, args, json).await,
    };
    if json {
        answer.as_json()
    } else {
        answer
    }
}

async fn history(target: &Target, args: HistoryArgs, json: bool) -> Answer {
    let since = match history::parse_since(&args.since) {
        Ok(since) => since,
        Err(e) => return Answer::err(Exit::Usage, e),
    };
    let query = history::Query {
        since,
        functions: match args.function.as_deref() {
            Some(name) => ballast::report::Function::named(name).into_iter().collect(),
            None => ballast::report::Function::ALL.to_vec(),
        },
        outcome: args.outcome.as_deref().and_then(|o| {
            ballast::report::Outcome::ALL
                .into_iter()
                .find(|x| x.as_str() == o)
        }),
        resource: args.resource,
        limit: args.limit,
    };
    history::run(target, &args.stack.stack, &query, args.details, json).await
}

async fn steer_zone(target: &Target, action: &str, args: SteerArgs, json: bool) -> Answer {
    if args.zone.trim().is_empty() {
        return Answer::err(Exit::Usage, "the zone must not be empty".into());
    }
    let function = args
        .function
        .unwrap_or_else(|| steer::function_name(&args.stack.stack, "az-impairment"));
    steer::run(target, &function, action, &args.zone, args.dry_run, json).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_json_an_error_is_a_json_object_on_stdout() {
        let answer = Answer::err(
            Exit::Aws,
            "could not read the live state: Throttling".into(),
        );
        let json = answer.clone().as_json();
        assert_eq!(json.stderr, answer.stderr);
        let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(v["error"], "could not read the live state: Throttling");
        assert_eq!(v["exit"], 3);
        // What printed already, or succeeded, is left as it is.
        let ok = Answer::out(Exit::Ok, "{}\n".into());
        assert_eq!(ok.clone().as_json(), ok);
        let declined = Answer::out(Exit::Attention, "{\"outcome\": \"declined\"}\n".into());
        assert_eq!(declined.clone().as_json(), declined);
    }

    #[test]
    fn no_region_says_how_to_give_one_and_names_the_profile() {
        assert!(no_region(None).contains("--region"));
        let typo = no_region(Some("prodd"));
        assert!(
            typo.contains("--region") && typo.contains("\"prodd\""),
            "{typo}"
        );
    }
}
