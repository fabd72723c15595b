//! `nhacviec zalo`: the Official Account's tokens, for the admin.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::deliver::zalo::QUOTA_META;
use crate::present;
use crate::store::Store;

fn store(cfg: &Config, now: DateTime<Utc>) -> Result<Store> {
    if cfg.channels.zalo.is_none() {
        bail!("the config has no `[channels.zalo]`: set it up first (docs/channels.md)");
    }
    if !cfg.storage.path.is_file() {
        bail!(
            "no database at {} yet: `nhacviec run` creates it (check `storage.path`)",
            cfg.storage.path.display()
        );
    }
    Ok(Store::open(&cfg.storage.path, now)?)
}

/// `nhacviec zalo token --import FILE`: a refresh token the admin issued (after a
/// lock-out, or to start over) replaces the stored one and unlocks the channel.
pub(super) fn import(cfg: &Config, file: &Path, now: DateTime<Utc>) -> Result<ExitCode> {
    let token =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let token = token.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        bail!(
            "{} must hold the refresh token alone, on one line",
            file.display()
        );
    }
    let store = store(cfg, now)?;
    store.zalo_import(token, now)?;
    println!(
        "imported a new Zalo refresh token from {}; the Zalo channel is unlocked and the next message renews the access token (delete the file now)",
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `nhacviec zalo status`: how old the tokens are, the last quota Zalo reported, the
/// messages sent on Zalo today. Never the tokens themselves.
pub(super) fn status(cfg: &Config, now: DateTime<Utc>) -> Result<ExitCode> {
    let store = store(cfg, now)?;
    let tz = cfg.organization.timezone;
    let when = |t: DateTime<Utc>| present::moment_words(t.with_timezone(&tz));
    match store.zalo_tokens()? {
        None => println!("tokens: none yet (the first send reads `refresh_token_file`)"),
        Some(t) => {
            println!(
                "refresh token: issued {} ({} days ago)",
                when(t.refresh_issued_at),
                (now - t.refresh_issued_at).num_days()
            );
            match t.access_expires_at {
                Some(e) if e > now => println!("access token: valid until {}", when(e)),
                Some(e) => println!("access token: expired {}", when(e)),
                None => println!("access token: none (the next send renews it)"),
            }
            match &t.locked {
                Some(why) => println!("state: LOCKED: {why}"),
                None => println!("state: sending"),
            }
        }
    }
    match store.meta(QUOTA_META)? {
        Some(q) => {
            let q: serde_json::Value = serde_json::from_str(&q).unwrap_or_default();
            println!(
                "quota: {} of {} left (as Zalo said at {})",
                q["remaining"],
                q["daily"],
                q["at"].as_str().unwrap_or("?")
            );
        }
        None => println!("quota: not reported yet"),
    }
    let today = now.with_timezone(&tz).date_naive();
    let midnight = crate::plan::local(tz, today, chrono::NaiveTime::MIN).with_timezone(&Utc);
    let sent = store.sent_since(crate::state::Channel::Zalo, midnight)?;
    println!("sent on Zalo today: {sent}");
    Ok(ExitCode::SUCCESS)
}
