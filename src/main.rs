//! The `nhacviec` binary: parse the command line, run the command, print an error once.

use std::process::ExitCode;

use clap::Parser;
use nhacviec::i18n::{self, Lang};
use nhacviec::tr;

fn main() -> ExitCode {
    // The admin's commands speak the locale's language (`cli::run` sets the daemon's back
    // to English); set before parsing, so a bad `--from` date is explained in it too.
    i18n::set(Lang::from_env());
    let cli = nhacviec::cli::Cli::parse();
    match nhacviec::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", tr!("error: {detail}", detail = format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}
