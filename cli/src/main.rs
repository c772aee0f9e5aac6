//! `ballast`: the operator's command. Wiring only: parse the command line,
//! build the AWS clients, run one command, print, exit with its code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use ballast_cli::{execute, Cli, Target};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let target = Target::load(cli.region.clone(), cli.profile.clone()).await;
    let answer = execute(cli, &target).await;
    let _ = std::io::stdout().write_all(answer.stdout.as_bytes());
    let _ = std::io::stderr().write_all(answer.stderr.as_bytes());
    ExitCode::from(answer.exit as u8)
}
