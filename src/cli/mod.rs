//! The command line: one function per subcommand (docs/config.md).
//!
//! Commands print results to stdout and problems to stderr, once, with what to do about
//! them. Exit codes: 0 success, 1 a problem the user must fix (a config error).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand, ValueEnum};

use crate::checked;
use crate::clock;
use crate::config::{self, Config, Severity};
use crate::i18n::{self, Lang};
use crate::plan::{self, Filter};
use crate::state::Channel;
use crate::tr;

mod daemon;
mod mail;
mod show;
mod state;
mod zalo;

use show::{calendar_table, plan_json, plan_table};

/// nhacviec: reminders for the reporting deadlines of a Vietnamese local government.
#[derive(Debug, Parser)]
#[command(name = "nhacviec", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(long, global = true, env = "NHACVIEC_CONFIG", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `plan`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A readable table.
    Table,
    /// JSON (docs/config.md).
    Json,
}

/// Output formats of `preview`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum PreviewFormat {
    /// Readable: headers, the text part, the HTML part.
    Text,
    /// The RFC 5322 message exactly as it would be sent.
    Eml,
}

/// Output formats of `status`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum StatusFormat {
    /// A readable table.
    Table,
    /// JSON.
    Json,
    /// CSV (RFC 4180).
    Csv,
}

/// Log formats of `run`.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: send reminders as their steps fall due, until SIGTERM or SIGINT.
    Run {
        /// Log format on stderr (filter with RUST_LOG, e.g. RUST_LOG=debug).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate the config, its calendar files and templates; report every problem at once.
    Check,
    /// Show every occurrence and reminder step in a window of days (touches no database).
    Plan {
        /// First day of the window (YYYY-MM-DD or DD/MM/YYYY); today by default.
        #[arg(long, value_parser = date_arg)]
        from: Option<NaiveDate>,
        /// Last day of the window (YYYY-MM-DD or DD/MM/YYYY).
        #[arg(long, conflicts_with = "days", value_parser = date_arg)]
        to: Option<NaiveDate>,
        /// Length of the window in days (default 365).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        days: Option<u32>,
        /// Only this unit's obligations.
        #[arg(long)]
        unit: Option<String>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show the days of a year that differ from the plain weekday rule, and why.
    Calendar {
        /// The year.
        #[arg(long)]
        year: i32,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Record an acknowledgement for an obligation, as its unit would from its link.
    Ack {
        /// The obligation, RULE/PERIOD/UNIT.
        #[arg(long)]
        obligation: String,
        /// The unit has seen it (stops the reminders before the last day).
        #[arg(long, conflicts_with = "done", required_unless_present = "done")]
        seen: bool,
        /// The unit has done it (stops every reminder).
        #[arg(long)]
        done: bool,
        /// A note kept with the acknowledgement.
        #[arg(long)]
        note: Option<String>,
    },
    /// Show the obligations of the current and recent occurrences with their state.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
    /// Send one test message on a channel (email by default).
    SendTest {
        /// The channel: email, telegram or webhook.
        #[arg(long, default_value = "email", value_parser = channel_arg)]
        channel: Channel,
        /// The address, chat id or URL to send to (a group's chat id starts with `-`).
        #[arg(long, allow_hyphen_values = true)]
        to: String,
    },
    /// Each unit's page and calendar-feed links, to hand out; `--rotate` replaces a leaked one.
    Links {
        /// Only this unit.
        #[arg(long)]
        unit: Option<String>,
        /// Replace the unit's links (needs `--unit`): the old ones stop working at once.
        #[arg(long, requires = "unit")]
        rotate: bool,
    },
    /// A consistent copy of the live database and its token key (the daemon may run).
    Backup {
        /// The file to write (`.db`; the key goes beside it as `.key`), or a folder to
        /// write `nhacviec-YYYYMMDD-HHMMSS.db` into.
        path: std::path::PathBuf,
        /// With a folder: keep only the newest N backups in it.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        keep: Option<u32>,
    },
    /// Print the shell completions for bash, zsh or fish (the Debian package installs them).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, roff (the Debian package installs it as nhacviec(1)).
    #[command(hide = true)]
    Manpage,
    /// The Zalo Official Account's tokens.
    Zalo {
        #[command(subcommand)]
        command: ZaloCommand,
    },
    /// Render a reminder to stdout as it would be sent.
    Preview {
        /// The obligation, RULE/PERIOD/UNIT (e.g. bao-cao-9-thang/2025-9M/vp).
        #[arg(long)]
        obligation: String,
        /// The step (e.g. before-7d, due, after-3wd).
        #[arg(long)]
        step: String,
        /// Show the copy sent to the escalation units (for an escalated step).
        #[arg(long)]
        escalated: bool,
        /// The channel: email (the message), telegram (the sendMessage request with its
        /// HTML), webhook (the JSON event).
        #[arg(long, default_value = "email", value_parser = channel_arg)]
        channel: Channel,
        /// `text`: headers, text and HTML parts; `eml`: the message as sent, encoded.
        #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
        format: PreviewFormat,
    },
}

/// `nhacviec zalo …`.
#[derive(Debug, Subcommand)]
pub enum ZaloCommand {
    /// Replace the stored refresh token with a new one (after a lock-out).
    Token {
        /// A file holding the new refresh token alone.
        #[arg(long)]
        import: std::path::PathBuf,
    },
    /// How old the tokens are, the last quota, the messages sent today.
    Status,
}

/// A `--channel` value.
/// A date from the command line: ISO `2026-12-01`, or `01/12/2026` as Vietnamese admins
/// write it (day first; `1/12/2026` too).
pub fn date_arg(s: &str) -> std::result::Result<NaiveDate, String> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d/%m/%Y"))
        .map_err(|_| {
            tr!(
                "`{s}` is not a date: write it as 2026-12-01 or 01/12/2026 (day/month/year)",
                s
            )
        })
}

fn channel_arg(s: &str) -> std::result::Result<Channel, String> {
    s.parse().map_err(|_| {
        let all: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        tr!(
            "`{s}` is not a channel; use one of {all}",
            s,
            all = all.join(", ")
        )
    })
}

/// Runs a parsed command line, on the clock `NHACVIEC_CLOCK` sets (the wall clock when it
/// is not set).
pub fn run(cli: Cli) -> Result<ExitCode> {
    if matches!(cli.command, Command::Run { .. }) {
        // The daemon logs in English whatever the admin's terminal speaks.
        i18n::set(Lang::En);
    }
    let clock = clock::from_env()?;
    let now = clock.now();
    match cli.command {
        Command::Run { log_format } => daemon::run(&cli.config, log_format, clock),
        Command::Check => check(&cli.config, now),
        Command::Plan {
            from,
            to,
            days,
            unit,
            rule,
            format,
        } => {
            let cfg = load_or_explain(&cli.config, now)?;
            let from = from.unwrap_or_else(|| today(now, cfg.organization.timezone));
            let to = match (to, days) {
                (Some(t), _) => t,
                (None, d) => from + chrono::Duration::days(i64::from(d.unwrap_or(365)) - 1),
            };
            if to < from {
                bail!(
                    "{}",
                    tr!(
                        "--to {to} is before --from {from}",
                        to = date_iso(to),
                        from = date_iso(from)
                    )
                );
            }
            check_years(&[from, to])?;
            let units = || cfg.units.iter().map(|x| x.id.as_str());
            let rules = || cfg.rules.iter().map(|x| x.id.as_str());
            let filter = Filter {
                unit: unit
                    .map(|u| find(&u, units, |id, h| tr!("unknown unit `{id}`{h}", id, h)))
                    .transpose()?,
                rule: rule
                    .map(|r| find(&r, rules, |id, h| tr!("unknown rule `{id}`{h}", id, h)))
                    .transpose()?,
            };
            let p = plan::plan(&cfg, from, to, filter);
            let text = match format {
                Format::Json => plan_json(&cfg, &p)?,
                Format::Table => plan_table(&cfg, &p, from, to),
            };
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ack {
            obligation,
            seen,
            done: _,
            note,
        } => {
            let (cfg, _) = load_checked_or_explain(&cli.config, now)?;
            let action = if seen {
                crate::state::AckAction::Seen
            } else {
                crate::state::AckAction::Done
            };
            state::ack(&cfg, &obligation, action, note.as_deref(), now)
        }
        Command::Status { format } => {
            let cfg = load_or_explain(&cli.config, now)?;
            let text = state::status(&cfg, format, now)?;
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "nhacviec", &mut out);
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpage => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::io::Write::write_all(&mut std::io::stdout(), &out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { path, keep } => {
            let cfg = load_or_explain(&cli.config, now)?;
            state::backup(&cfg, &path, keep, now)
        }
        Command::Links { unit, rotate } => {
            let cfg = load_or_explain(&cli.config, now)?;
            state::links(&cfg, unit.as_deref(), rotate, now)
        }
        Command::Zalo { command } => {
            let cfg = load_or_explain(&cli.config, now)?;
            match command {
                ZaloCommand::Token { import } => zalo::import(&cfg, &import, now),
                ZaloCommand::Status => zalo::status(&cfg, now),
            }
        }
        Command::SendTest { channel, to } => {
            let (cfg, templates) = load_checked_or_explain(&cli.config, now)?;
            mail::send_test(&cfg, &templates, channel, &to, now)
        }
        Command::Preview {
            obligation,
            step,
            escalated,
            channel,
            format,
        } => {
            let (cfg, templates) = load_checked_or_explain(&cli.config, now)?;
            let p = mail::Preview {
                obligation: &obligation,
                step: &step,
                escalated,
                channel,
                format,
            };
            let text = mail::preview(&cfg, &templates, &p, now)?;
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Calendar { year, format } => {
            let cfg = load_or_explain(&cli.config, now)?;
            let Some(first) = NaiveDate::from_ymd_opt(year, 1, 1) else {
                bail!(
                    "{}",
                    tr!("{year} is not a year the calendar can show", year)
                );
            };
            check_years(&[first])?;
            let text = match format {
                Format::Json => {
                    serde_json::to_string_pretty(&cfg.calendar.deviations(year))? + "\n"
                }
                Format::Table => calendar_table(&cfg, year),
            };
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.with_context(|| tr!("while writing to stdout")),
    }
}

/// The index of `id` among the ids `known` lists, or an error naming it, with the closest
/// known id as a hint.
fn find<'a, I: Iterator<Item = &'a str>>(
    id: &str,
    known: impl Fn() -> I,
    unknown: impl Fn(&str, &str) -> String,
) -> Result<usize> {
    known()
        .position(|x| x == id)
        .with_context(|| unknown(id, &config::diag::hint(id, known())))
}

/// A date as ISO 8601 (`2026-12-01`), the form the tables' messages quote.
fn date_iso(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn check_years(dates: &[NaiveDate]) -> Result<()> {
    use chrono::Datelike;
    for d in dates {
        if !crate::calendar::YEARS.contains(&d.year()) {
            bail!(
                "{}",
                tr!(
                    "{year} is outside the years the calendar knows ({first}-{last})",
                    year = d.year(),
                    first = crate::calendar::YEARS.start(),
                    last = crate::calendar::YEARS.end()
                )
            );
        }
    }
    Ok(())
}

/// Today in the organization's time zone.
fn today(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// `nhacviec check`.
fn check(path: &std::path::Path, now: DateTime<Utc>) -> Result<ExitCode> {
    let checked = checked::load(path, checked::today(now));
    let mut err = String::new();
    for d in &checked.diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let errors = checked.errors();
    let warnings = checked.diagnostics.len() - errors;
    eprint!("{err}");
    match checked.ready {
        Some((cfg, _)) => {
            let (units, groups, rules, policies) = (
                cfg.units.len(),
                cfg.groups.len(),
                cfg.rules.len(),
                cfg.policies.len(),
            );
            let summary = tr!(
                "ok: {units}, {groups}, {rules}, {policies}",
                units = counted(units, tr!("1 unit"), tr!("{n} units", n = units)),
                groups = counted(groups, tr!("1 group"), tr!("{n} groups", n = groups)),
                rules = counted(rules, tr!("1 rule"), tr!("{n} rules", n = rules)),
                policies = counted(policies, tr!("1 policy"), tr!("{n} policies", n = policies)),
            );
            emit(&format!(
                "{}: {summary}{}\n",
                path.display(),
                warning_suffix(warnings)
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "{}: {}",
                path.display(),
                tr!(
                    "{errors}{warnings}; the config was not applied",
                    errors = error_count(errors),
                    warnings = warning_suffix(warnings)
                )
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `one` when `n` is 1, else `many`: both are whole messages (`tr!("1 unit")`,
/// `tr!("{n} units", n)`), so each language words its own plural.
pub(crate) fn counted(n: usize, one: String, many: String) -> String {
    if n == 1 { one } else { many }
}

/// "3 errors" / "1 error".
fn error_count(n: usize) -> String {
    counted(n, tr!("1 error"), tr!("{n} errors", n))
}

/// ", 2 warnings" / ", 1 warning", or nothing for none.
fn warning_suffix(n: usize) -> String {
    match n {
        0 => String::new(),
        1 => tr!(", 1 warning"),
        n => tr!(", {n} warnings", n),
    }
}

/// Like [`load_or_explain`], with the templates.
fn load_checked_or_explain(
    path: &std::path::Path,
    now: DateTime<Utc>,
) -> Result<(Config, crate::deliver::templates::Templates)> {
    let checked = checked::load(path, checked::today(now));
    let errors = checked.errors();
    match checked.ready {
        Some(ready) => Ok(ready),
        None => {
            for d in checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
            {
                eprintln!("{d}");
            }
            bail!(
                "{}",
                tr!(
                    "the config has {errors}; fix them and try again (`nhacviec check` also shows warnings)",
                    errors = error_count(errors)
                )
            )
        }
    }
}

/// Loads the config for a command that needs a valid one; on errors prints them and fails.
fn load_or_explain(path: &std::path::Path, now: DateTime<Utc>) -> Result<Config> {
    let loaded = config::load(path, checked::today(now));
    match loaded.config {
        Some(c) => Ok(c),
        None => {
            let errors: Vec<_> = loaded
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .collect();
            for d in &errors {
                eprintln!("{d}");
            }
            bail!(
                "{}",
                tr!(
                    "the config has {errors}; fix them and try again (`nhacviec check` also shows warnings)",
                    errors = error_count(errors.len())
                )
            )
        }
    }
}
