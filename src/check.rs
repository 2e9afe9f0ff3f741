//! `onebox check FILE...`: the strict zone check that `serve` runs at startup and on
//! every reload, on its own, for editors and CI.

use std::process::ExitCode;

use crate::cli::CheckArgs;

/// Prints `FILE:LINE: message` for every problem on stdout and exits 1 if there was
/// any; warnings go to stderr and do not fail the check.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let (ok, problems, warnings) = crate::dns::check_files(&args.files);
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        for line in ok {
            println!("{line}: ok");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "onebox: {} problem{} found",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        Ok(ExitCode::FAILURE)
    }
}
