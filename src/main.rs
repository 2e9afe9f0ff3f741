//! The `onebox` command: parse flags, set up logging, dispatch, and turn errors into
//! an exit code.

use std::process::ExitCode;

use clap::Parser;
use onebox::cli::{Cli, Command, DbCommand};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Held to the end of main: dropping it flushes the queued log lines.
    let logging = onebox::cli::init_logging(cli.log_format);
    let result = match cli.command.unwrap_or_default() {
        Command::Serve(args) => onebox::serve::run(*args),
        Command::Check(args) => onebox::check::run(args),
        Command::Ca(args) => onebox::ca::command::run(args),
        Command::Maintenance(args) => onebox::control::run(args),
        Command::Visit(args) => onebox::visit::run(args),
        Command::Resolver(args) => onebox::visit::resolver::run(args),
        Command::Doctor(args) => onebox::doctor::run(args),
        Command::Db(DbCommand::Migrate(args)) => onebox::migrate::run(args),
        Command::Top(args) => onebox::metrics::top::run(args),
        Command::Key(args) => onebox::key::run(args),
        Command::Zone(args) => onebox::key::zone(args),
        Command::Cluster(args) => onebox::cluster::run(args),
    };
    // Flush the log first, so the error is the last line on stderr.
    drop(logging);
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("onebox: {err:#}");
            ExitCode::FAILURE
        }
    }
}
