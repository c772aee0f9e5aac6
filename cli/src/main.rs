//! `ballast`: the operator's command. Wiring only: parse the command line,
//! build the AWS clients, run one command, print, exit with its code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ballast_cli::{doctor, status, steer, Exit, Target};

/// See and steer Ballast: what it manages, readiness before the incident,
/// and evacuating or restoring a zone through the deployed function.
///
/// Exit codes: 0 success; 1 a `doctor` check failed, or an evacuate/restore
/// was declined or failed; 2 bad usage; 3 AWS could not be read or the
/// function could not be invoked.
#[derive(Debug, Parser)]
#[command(name = "ballast", version)]
struct Cli {
    /// AWS Region (default: the SDK's: AWS_REGION, the profile, ...).
    #[arg(long, global = true)]
    region: Option<String>,
    /// Named profile of the shared AWS config and credentials files.
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Managed Auto Scaling groups (zones, evacuations and their signals,
    /// suspended processes, locks) and tagged databases (writer, record,
    /// standby), in one screen.
    Status,
    /// Evacuate a zone (name or ID) through the deployed az-impairment function.
    Evacuate(SteerArgs),
    /// Restore a zone (name or ID) through the deployed az-impairment function:
    /// clears every signal that holds it.
    Restore(SteerArgs),
    /// Read-only readiness audit of the account and Region against what
    /// Ballast needs; exits 1 when a check fails (gate a deploy on it).
    Doctor(StackArgs),
}

#[derive(Debug, clap::Args)]
struct StackArgs {
    /// The Ballast stack's name (its functions are `<stack>-<function>`).
    #[arg(long, default_value = "ballast", env = "BALLAST_STACK")]
    stack: String,
}

#[derive(Debug, clap::Args)]
struct SteerArgs {
    /// The Availability Zone, by name (us-east-1a) or ID (use1-az1).
    zone: String,
    /// Decide and report, change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    stack: StackArgs,
    /// The function to invoke, instead of `<stack>-az-impairment`.
    #[arg(long)]
    function: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = Target::load(cli.region.clone(), cli.profile.clone()).await;
    let exit = match cli.command {
        Command::Status => status::run(&target, cli.json).await,
        Command::Doctor(args) => doctor::run(&target, &args.stack, cli.json).await,
        Command::Evacuate(args) | Command::Restore(args) if args.zone.trim().is_empty() => {
            eprintln!("ballast: the zone must not be empty");
            Exit::Usage
        }
        Command::Evacuate(args) => run_steer(&target, "evacuate", args, cli.json).await,
        Command::Restore(args) => run_steer(&target, "restore", args, cli.json).await,
    };
    ExitCode::from(exit as u8)
}

async fn run_steer(target: &Target, action: &str, args: SteerArgs, json: bool) -> Exit {
    let function = args
        .function
        .unwrap_or_else(|| steer::function_name(&args.stack.stack, "az-impairment"));
    steer::run(target, &function, action, &args.zone, args.dry_run, json).await
}
