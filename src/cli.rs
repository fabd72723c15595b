//! The command line: one function per subcommand (DESIGN §9).
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
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, Severity};
use crate::plan::{self, Filter, Plan};

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
    /// JSON (DESIGN §9).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config, its calendar files and templates; report every problem at once.
    Check,
    /// Show every occurrence and reminder step in a window of days (touches no database).
    Plan {
        /// First day of the window (YYYY-MM-DD); today by default.
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day of the window (YYYY-MM-DD).
        #[arg(long, conflicts_with = "days")]
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let clock = SystemClock;
    let now = clock.now();
    match cli.command {
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
                bail!("--to {to} is before --from {from}");
            }
            check_years(&[from, to])?;
            let filter = Filter {
                unit: match &unit {
                    Some(u) => Some(cfg.unit_index(u).with_context(|| {
                        format!(
                            "unknown unit `{u}`{}",
                            suggest(u, cfg.units.iter().map(|x| x.id.as_str()))
                        )
                    })?),
                    None => None,
                },
                rule: match &rule {
                    Some(r) => Some(cfg.rule_index(r).with_context(|| {
                        format!(
                            "unknown rule `{r}`{}",
                            suggest(r, cfg.rules.iter().map(|x| x.id.as_str()))
                        )
                    })?),
                    None => None,
                },
            };
            let p = plan::plan(&cfg, from, to, filter);
            let text = match format {
                Format::Json => plan_json(&cfg, &p)?,
                Format::Table => plan_table(&cfg, &p, from, to),
            };
            emit(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Calendar { year, format } => {
            let cfg = load_or_explain(&cli.config, now)?;
            let Some(first) = NaiveDate::from_ymd_opt(year, 1, 1) else {
                bail!("{year} is not a year the calendar can show");
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
        r => r.context("while writing to stdout"),
    }
}

fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    config::diag::hint(word, known)
}

fn check_years(dates: &[NaiveDate]) -> Result<()> {
    use chrono::Datelike;
    for d in dates {
        if !crate::calendar::YEARS.contains(&d.year()) {
            bail!(
                "{} is outside the years the calendar knows ({}-{})",
                d.year(),
                crate::calendar::YEARS.start(),
                crate::calendar::YEARS.end()
            );
        }
    }
    Ok(())
}

/// Today in the organization's time zone.
fn today(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

/// The date used for the config's time-relative warnings: today in Vietnam.
fn load_today(now: DateTime<Utc>) -> NaiveDate {
    today(now, chrono_tz::Asia::Ho_Chi_Minh)
}

/// `nhacviec check`.
fn check(path: &std::path::Path, now: DateTime<Utc>) -> Result<ExitCode> {
    let loaded = config::load(path, load_today(now));
    let mut err = String::new();
    for d in &loaded.diagnostics {
        let _ = writeln!(err, "{d}");
    }
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded.diagnostics.len() - errors;
    eprint!("{err}");
    match loaded.config {
        Some(cfg) => {
            emit(&format!(
                "{}: ok: {}, {}, {}, {}{}\n",
                path.display(),
                plural(cfg.units.len(), "unit"),
                plural(cfg.groups.len(), "group"),
                plural(cfg.rules.len(), "rule"),
                plural_n(cfg.policies.len(), "policy", "policies"),
                plural_suffix(warnings, "warning")
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "{}: {}{}; the config was not applied",
                path.display(),
                plural(errors, "error"),
                plural_suffix(warnings, "warning")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    plural_n(n, word, &format!("{word}s"))
}

fn plural_n(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

fn plural_suffix(n: usize, word: &str) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(", {}", plural(n, word))
    }
}

/// Loads the config for a command that needs a valid one; on errors prints them and fails.
fn load_or_explain(path: &std::path::Path, now: DateTime<Utc>) -> Result<Config> {
    let loaded = config::load(path, load_today(now));
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
                "the config has {}; fix them and try again (`nhacviec check` also shows warnings)",
                plural(errors.len(), "error")
            )
        }
    }
}

/// `Fri 03/10/2025`: English weekday (CLI text is English), Vietnamese date order.
fn day(d: NaiveDate) -> String {
    d.format("%a %d/%m/%Y").to_string()
}

/// "before Sun 05/10/2025" for a deadline at midnight, "end of Tue 30/09/2025" for one at
/// 24:00, or the date and time.
fn deadline_words(occ: &plan::Occurrence) -> String {
    let local = occ.deadline.naive_local();
    if local.time() != chrono::NaiveTime::MIN {
        format!("{} {}", day(local.date()), local.format("%H:%M"))
    } else if local.date() == occ.due_day {
        format!("before {} (00:00)", day(occ.due_day))
    } else {
        let end = local.date().pred_opt().unwrap_or(local.date());
        format!("end of {} (24:00)", day(end))
    }
}

fn calendar_table(cfg: &Config, year: i32) -> String {
    let devs = cfg.calendar.deviations(year);
    let mut s = String::new();
    let _ = writeln!(s, "{:<16} {:<8} {:<10} REASON", "DATE", "STATE", "LAYER");
    for d in &devs {
        let state = if d.working { "working" } else { "off" };
        let _ = write!(
            s,
            "{:<16} {:<8} {:<10} {}",
            day(d.date),
            state,
            d.layer.as_str(),
            d.reason
        );
        if let Some(src) = &d.source {
            let _ = write!(s, " [{src}]");
        }
        s.push('\n');
    }
    let off = devs.iter().filter(|d| !d.working).count();
    let working = devs.len() - off;
    let basis = if cfg.calendar.has_schedule(year) {
        format!("official schedule for {year}")
    } else {
        format!(
            "no official schedule for {year}: statutory estimate, check it against the government's announcement"
        )
    };
    let _ = writeln!(
        s,
        "{year}: {} off, {} working on a weekend day; {basis}",
        plural(off, "weekday"),
        plural(working, "day")
    );
    s
}

fn plan_table(cfg: &Config, p: &Plan, from: NaiveDate, to: NaiveDate) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}, {} from {} to {}",
        plural(p.occurrences.len(), "occurrence"),
        plural(p.obligations.len(), "obligation"),
        day(from),
        day(to)
    );
    for (oi, occ) in p.occurrences.iter().enumerate() {
        let rule = &cfg.rules[occ.rule];
        let _ = writeln!(
            s,
            "\n{}  {}  {}",
            occ.key(cfg),
            rule.kind.as_str(),
            occ.period.label()
        );
        let _ = writeln!(s, "  {}", rule.title);
        let _ = writeln!(s, "  deadline  {}", deadline_words(occ));
        let natural = (occ.deadline - chrono::Duration::seconds(1)).date_naive();
        let moved = if occ.last_day == natural {
            String::new()
        } else {
            let why = cfg.calendar.reason(natural).unwrap_or("weekend");
            format!("  (moved: {} is off: {why})", day(natural))
        };
        let _ = writeln!(s, "  last day  {}{moved}", day(occ.last_day));
        let units: Vec<&str> = p
            .obligations
            .iter()
            .filter(|o| o.occurrence as usize == oi)
            .map(|o| cfg.units[o.unit as usize].id.as_str())
            .collect();
        let _ = writeln!(
            s,
            "  owed by   {} ({})",
            units.join(", "),
            plural(units.len(), "unit")
        );
        for (i, st) in occ.steps.iter().enumerate() {
            let head = if i == 0 { "  steps" } else { "" };
            let _ = writeln!(
                s,
                "{head:<12}{:<12} {} {}{}",
                st.name.to_string(),
                day(st.at.date_naive()),
                st.at.format("%H:%M"),
                if st.escalate { "  + escalation" } else { "" }
            );
        }
    }
    s
}

#[derive(Serialize)]
struct JsonStep {
    step: String,
    at: String,
}

#[derive(Serialize)]
struct JsonObligation<'a> {
    unit: &'a str,
    steps: &'a [JsonStep],
}

#[derive(Serialize)]
struct JsonOccurrence<'a> {
    rule: &'a str,
    kind: &'a str,
    title: &'a str,
    period: String,
    period_label: String,
    deadline: String,
    last_day: String,
    obligations: Vec<JsonObligation<'a>>,
}

fn plan_json(cfg: &Config, p: &Plan) -> Result<String> {
    let steps: Vec<Vec<JsonStep>> = p
        .occurrences
        .iter()
        .map(|o| {
            o.steps
                .iter()
                .map(|s| JsonStep {
                    step: s.name.to_string(),
                    at: s.at.to_rfc3339(),
                })
                .collect()
        })
        .collect();
    let mut out: Vec<JsonOccurrence> = p
        .occurrences
        .iter()
        .map(|o| {
            let rule = &cfg.rules[o.rule];
            JsonOccurrence {
                rule: &rule.id,
                kind: rule.kind.as_str(),
                title: &rule.title,
                period: o.period.to_string(),
                period_label: o.period.label(),
                deadline: o.deadline.to_rfc3339(),
                last_day: o.last_day.to_string(),
                obligations: Vec::new(),
            }
        })
        .collect();
    for ob in &p.obligations {
        let oi = ob.occurrence as usize;
        out[oi].obligations.push(JsonObligation {
            unit: &cfg.units[ob.unit as usize].id,
            steps: &steps[oi],
        });
    }
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}
