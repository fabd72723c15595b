//! The `nhacviec` binary: parse the command line, run the command, print an error once.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = nhacviec::cli::Cli::parse();
    match nhacviec::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
