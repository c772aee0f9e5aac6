//! `ballast`: the operator's command. Wiring only: parse the command line,
//! build the AWS clients, run one command, print, exit with its code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

use ballast_cli::{execute, Answer, Cli, Exit, Target};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let answer = match Target::load(cli.region.clone(), cli.profile.clone()).await {
        Ok(target) => execute(cli, &target).await,
        Err(why) if cli.json => Answer::err(Exit::Usage, why).as_json(),
        Err(why) => Answer::err(Exit::Usage, why),
    };
    let _ = std::io::stdout().write_all(answer.stdout.as_bytes());
    let _ = std::io::stderr().write_all(answer.stderr.as_bytes());
    ExitCode::from(answer.exit as u8)
}
