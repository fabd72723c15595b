//! The `nhacviec` binary: parse the command line, run the command, print an error once.

use std::process::ExitCode;

use clap::Parser;
use nhacviec::i18n::{self, Lang};
use nhacviec::tr;

fn main() -> ExitCode {
    // Whatever nhacviec creates is its user's alone: the database and its WAL, the `.eml`
    // files and backups hold live ack links, the key file signs them. systemd sets the same
    // (`UMask=0077`); this covers `nhacviec run` started by hand from a shell's 022.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
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
