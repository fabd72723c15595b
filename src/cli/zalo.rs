//! `nhacviec zalo`: the Official Account's tokens, for the admin.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::deliver::zalo::QUOTA_META;
use crate::present;
use crate::store::Store;
use crate::tr;

fn store(cfg: &Config, now: DateTime<Utc>) -> Result<Store> {
    if cfg.channels.zalo.is_none() {
        bail!(
            "{}",
            tr!("the config has no `[channels.zalo]`: set it up first (docs/channels.md)")
        );
    }
    if !cfg.storage.path.is_file() {
        bail!(
            "{}",
            tr!(
                "no database at {path} yet: `nhacviec run` creates it (check `storage.path`)",
                path = cfg.storage.path.display()
            )
        );
    }
    Ok(Store::open(&cfg.storage.path, now)?)
}

/// `nhacviec zalo token --import FILE`: a refresh token the admin issued (after a
/// lock-out, or to start over) replaces the stored one and unlocks the channel.
pub(super) fn import(cfg: &Config, file: &Path, now: DateTime<Utc>) -> Result<ExitCode> {
    let token = std::fs::read_to_string(file)
        .with_context(|| tr!("cannot read {path}", path = file.display()))?;
    let token = token.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        bail!(
            "{}",
            tr!(
                "{path} must hold the refresh token alone, on one line",
                path = file.display()
            )
        );
    }
    let store = store(cfg, now)?;
    store.zalo_import(token, now)?;
    println!(
        "{}",
        tr!(
            "imported a new Zalo refresh token from {path}; the Zalo channel is unlocked and the next message renews the access token (delete the file now)",
            path = file.display()
        )
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
        None => println!(
            "{}",
            tr!("tokens: none yet (the first send reads `refresh_token_file`)")
        ),
        Some(t) => {
            // Calendar days in the organisation's zone: issued yesterday evening is
            // "1 day ago" this morning.
            let day = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
            let ago = match (day(now) - day(t.refresh_issued_at)).num_days() {
                ..=0 => tr!("today"),
                1 => tr!("1 day ago"),
                n => tr!("{n} days ago", n),
            };
            println!(
                "{}",
                tr!(
                    "refresh token: issued {when} ({ago})",
                    when = when(t.refresh_issued_at),
                    ago
                )
            );
            let access = match t.access_expires_at {
                Some(e) if e > now => tr!("access token: valid until {when}", when = when(e)),
                Some(e) => tr!("access token: expired {when}", when = when(e)),
                None => tr!("access token: none (the next send renews it)"),
            };
            println!("{access}");
            let state = match &t.locked {
                Some(why) => tr!("state: LOCKED: {why}", why),
                None => tr!("state: sending"),
            };
            println!("{state}");
        }
    }
    let quota = match store.meta(QUOTA_META)? {
        Some(q) => {
            let q: serde_json::Value = serde_json::from_str(&q).unwrap_or_default();
            tr!(
                "quota: {remaining} of {daily} left (as Zalo said at {at})",
                remaining = q["remaining"],
                daily = q["daily"],
                at = q["at"].as_str().unwrap_or("?")
            )
        }
        None => tr!("quota: not reported yet"),
    };
    println!("{quota}");
    let today = now.with_timezone(&tz).date_naive();
    let midnight = crate::plan::local(tz, today, chrono::NaiveTime::MIN).with_timezone(&Utc);
    let sent = store.sent_since(crate::state::Channel::Zalo, midnight)?;
    println!("{}", tr!("sent on Zalo today: {sent}", sent));
    Ok(ExitCode::SUCCESS)
}
