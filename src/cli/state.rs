//! `ack`, `status`, `links` and `backup`: acknowledgements, states, the units' links and
//! copies of the database from the command line.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use chrono::{DateTime, Utc};

use super::StatusFormat;
use crate::config::Config;
use crate::deliver::notices;
use crate::deliver::{context, enqueue};
use crate::report;
use crate::state::{AckAction, AckSource, ObligationState};
use crate::store::{NewAck, StepRows, Store};
use crate::token::{self, TokenKey};
use crate::tr;

fn existing_db(cfg: &Config) -> Result<()> {
    if !cfg.storage.path.is_file() {
        bail!(
            "{}",
            tr!(
                "no database at {path} yet: `nhacviec run` creates it (check `storage.path`)",
                path = cfg.storage.path.display()
            )
        );
    }
    Ok(())
}

/// The token key of the database, or an error saying the daemon's first start makes it.
fn token_key(cfg: &Config) -> Result<TokenKey> {
    let key_file = token::key_path(&cfg.storage.path);
    match TokenKey::load(&key_file)? {
        Some(key) => Ok(key),
        None => bail!(
            "{}",
            tr!(
                "{path} does not exist yet: `nhacviec run` creates it; start the daemon first",
                path = key_file.display()
            )
        ),
    }
}

/// A recorded state in the command's language.
fn state_word(s: ObligationState) -> String {
    match s {
        ObligationState::Pending => tr!("pending"),
        ObligationState::Seen => tr!("seen"),
        ObligationState::Done => tr!("done"),
    }
}

/// `nhacviec ack --obligation RULE/PERIOD/UNIT --seen|--done [--note TEXT]`.
pub(super) fn ack(
    cfg: &Config,
    obligation: &str,
    action: AckAction,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    existing_db(cfg)?;
    let store = Store::open(&cfg.storage.path, now)?;
    let ack = NewAck {
        action,
        at: now,
        source: AckSource::Cli,
        ip: None,
        user_agent: None,
        note,
    };
    let mut outcome = notices::record_ack(&store, cfg, obligation, &ack)?;
    let mut ahead = false;
    if outcome.is_none() {
        // Not reminded yet: a unit that submits early says so before its first reminder,
        // and then gets none. The obligation is recorded now, from the plan.
        let (occ, ui) = match super::mail::planned(cfg, obligation) {
            Ok(p) => p,
            Err(e) => {
                let detail = tr!("unknown obligation `{obligation}`: {e}", obligation, e);
                eprintln!("{}", tr!("error: {detail}", detail));
                return Ok(ExitCode::FAILURE);
            }
        };
        let key = token_key(cfg)?;
        let okey = occ.obligation_key(cfg, ui);
        let rows = StepRows {
            occurrence: enqueue::occurrence_record(cfg, &occ),
            obligations: vec![enqueue::obligation_record(cfg, &key, &occ, ui)],
            messages: Vec::new(),
        };
        store.enqueue(now, &[rows], None)?;
        ahead = true;
        outcome = notices::record_ack(&store, cfg, &okey, &ack)?;
    }
    let ahead = if ahead {
        tr!(" (recorded ahead of its first reminder: the reminders it silences are never sent)")
    } else {
        String::new()
    };
    match outcome {
        Some(o) if o.changed() => {
            println!(
                "{}",
                tr!(
                    "{obligation}: {after} (was {before}){ahead}",
                    obligation,
                    after = state_word(o.after),
                    before = state_word(o.before),
                    ahead
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(o) => {
            println!(
                "{}",
                tr!(
                    "{obligation}: already {state}; recorded again, nothing changed",
                    obligation,
                    state = state_word(o.after)
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let detail = tr!(
                "unknown obligation `{obligation}`: write RULE/PERIOD/UNIT as `nhacviec status` lists them (an obligation is recorded when its first reminder is due)",
                obligation
            );
            eprintln!("{}", tr!("error: {detail}", detail));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `nhacviec status [--format table|json|csv]`: reads the database, changes nothing. Before
/// the daemon's first start (no database yet) and while nothing is recorded, it says what
/// will come and when (on stderr for JSON and CSV, whose output stays well formed: `[]`, a
/// header), and exits 0.
pub(super) fn status(cfg: &Config, format: StatusFormat, now: DateTime<Utc>) -> Result<String> {
    let states = if cfg.storage.path.is_file() {
        let store = Store::open_read_only(&cfg.storage.path)?;
        store.obligations(now - report::RECENT)?
    } else {
        Vec::new()
    };
    let lines = report::lines(cfg, &states, now);
    let empty = lines.is_empty().then(|| nothing_yet(cfg, now));
    Ok(match (format, empty) {
        (StatusFormat::Table, Some(note)) => note,
        (StatusFormat::Table, None) => report::table(&lines),
        (StatusFormat::Csv, note) => {
            if let Some(note) = note {
                eprint!("{note}");
            }
            report::csv(&lines)
        }
        (StatusFormat::Json, note) => {
            if let Some(note) = note {
                eprint!("{note}");
            }
            serde_json::to_string_pretty(&lines)? + "\n"
        }
    })
}

/// What `status` says when nothing is recorded: why, and the next step the plan has.
fn nothing_yet(cfg: &Config, now: DateTime<Utc>) -> String {
    let why = if cfg.storage.path.is_file() {
        tr!(
            "nothing recorded yet: the daemon records each obligation whose deadline is within 12 months at its first start, then once a day"
        )
    } else {
        tr!(
            "no database yet at {path}: `nhacviec run` creates it, and records each obligation whose deadline is within 12 months at its first start",
            path = cfg.storage.path.display()
        )
    };
    let next = match crate::plan::due::next(cfg, now) {
        Some(n) => tr!(
            "the next reminder step in the plan: {step} of {occurrence} at {day} {time}",
            step = n.step,
            occurrence = n.occurrence,
            day = super::show::day(n.local.date()),
            time = n.local.format("%H:%M")
        ),
        None => tr!("the plan has no reminder step within a year (see `nhacviec plan`)"),
    };
    format!("{why}.\n{next}.\n")
}

/// `nhacviec links [--unit ID] [--rotate]`: each unit's page and feed URLs; `--rotate`
/// bumps the unit's generation first, so the old links are 404 and the next messages carry
/// the new ones.
pub(super) fn links(
    cfg: &Config,
    unit: Option<&str>,
    rotate: bool,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    existing_db(cfg)?;
    let units: Vec<usize> = match unit {
        Some(id) => match cfg.unit_index(id) {
            Some(u) => vec![u],
            None => {
                let ids: Vec<&str> = cfg.units.iter().map(|u| u.id.as_str()).collect();
                let detail = tr!(
                    "unknown unit `{id}`: the units are {ids}",
                    id,
                    ids = ids.join(", ")
                );
                eprintln!("{}", tr!("error: {detail}", detail));
                return Ok(ExitCode::FAILURE);
            }
        },
        None => (0..cfg.units.len()).collect(),
    };
    let key = token_key(cfg)?;
    // Opened for writing, as `ack` does: a database the daemon has not migrated yet (a new
    // binary installed, the daemon not restarted) is brought up to date first.
    let store = Store::open(&cfg.storage.path, now)?;
    if rotate {
        for &u in &units {
            let g = store.rotate_unit_link(&cfg.units[u].id, now)?;
            eprintln!(
                "{}",
                tr!(
                    "{unit}: new links (generation {g}); the old ones no longer work, and the next messages carry the new ones",
                    unit = cfg.units[u].id,
                    g
                )
            );
        }
    }
    let generations = store.unit_generations()?;
    let mut out = String::new();
    for &u in &units {
        let unit = &cfg.units[u];
        let url = context::unit_url(cfg, &context::unit_token(&key, &generations, &unit.id));
        let coordinator = if cfg.organization.coordinator == Some(u) {
            tr!(" (coordinator: its feed has every unit's deadlines)")
        } else {
            String::new()
        };
        let _ = writeln!(out, "{}  {}{coordinator}", unit.id, unit.name);
        let _ = writeln!(out, "  {}", tr!("page: {url}", url));
        let _ = writeln!(out, "  {}", tr!("feed: {url}.ics", url));
    }
    super::emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `nhacviec backup PATH [--keep N]`: the database copied with SQLite's online backup API
/// (consistent while the daemon runs) and checked, and the token key copied beside it
/// (mode 0600); into a folder, a new `nhacviec-YYYYMMDD-HHMMSS.db`, keeping the newest N.
pub(super) fn backup(
    cfg: &Config,
    path: &std::path::Path,
    keep: Option<u32>,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    existing_db(cfg)?;
    let into_dir = path.is_dir();
    if keep.is_some() && !into_dir {
        bail!(
            "{}",
            tr!(
                "--keep needs a folder to keep the backups in, and {path} is not one",
                path = path.display()
            )
        );
    }
    let dst = if into_dir {
        let stamp = now
            .with_timezone(&cfg.organization.timezone)
            .format("%Y%m%d-%H%M%S");
        path.join(format!("nhacviec-{stamp}.db"))
    } else {
        path.to_path_buf()
    };
    let key_src = token::key_path(&cfg.storage.path);
    let key_dst = token::key_path(&dst);
    if key_dst.exists() {
        bail!(
            "{}",
            tr!(
                "{path} exists; a backup never overwrites a file",
                path = key_dst.display()
            )
        );
    }
    let key = std::fs::read(&key_src).with_context(|| {
        tr!(
            "cannot read the token key {path}: a backup without it would break every link already sent",
            path = key_src.display()
        )
    })?;
    let store = Store::open_read_only(&cfg.storage.path)?;
    let copied = store.backup_to(&dst)?;
    private_file(&dst)?;
    token::write_private(&key_dst, &key)
        .with_context(|| tr!("cannot write {path}", path = key_dst.display()))?;
    println!(
        "{}",
        tr!(
            "backed up {db} to {copy} ({obligations}, {messages}; integrity ok) and its token key to {key}",
            db = cfg.storage.path.display(),
            copy = dst.display(),
            obligations = super::counted(
                usize::try_from(copied.obligations).unwrap_or(usize::MAX),
                tr!("1 obligation"),
                tr!("{n} obligations", n = copied.obligations)
            ),
            messages = super::counted(
                usize::try_from(copied.messages).unwrap_or(usize::MAX),
                tr!("1 message"),
                tr!("{n} messages", n = copied.messages)
            ),
            key = key_dst.display()
        )
    );
    if let Some(n) = keep {
        prune(path, usize::try_from(n).unwrap_or(usize::MAX))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes a file readable by its owner only.
fn private_file(path: &std::path::Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| tr!("cannot make {path} private", path = path.display()))?;
    }
    Ok(())
}

/// Removes the oldest backups in `dir` beyond the newest `keep` (each with its key file).
fn prune(dir: &std::path::Path, keep: usize) -> Result<()> {
    let backups = crate::daemon::backups_in(dir);
    let old = backups.len().saturating_sub(keep);
    for b in &backups[..old] {
        std::fs::remove_file(b).with_context(|| tr!("cannot remove {path}", path = b.display()))?;
        let key = token::key_path(b);
        if key.exists() {
            std::fs::remove_file(&key)
                .with_context(|| tr!("cannot remove {path}", path = key.display()))?;
        }
        println!(
            "{}",
            tr!("removed the old backup {path}", path = b.display())
        );
    }
    Ok(())
}
