//! Acknowledgements end to end: the real `nhacviec run` (the file transport, so a message is
//! an `.eml` file to read the link from), its HTTP server spoken to by hand, its SQLite file
//! read with rusqlite, and the `ack` and `status` commands.
//!
//! - `links`: done, seen and escalation in one daemon, step by step on its clock.
//! - `tokens`: no token in the logs or the database files.
//! - `status_page`: the grid, its form and its CSV against the database.
//! - `cli`: `nhacviec ack` and `nhacviec status`.
//! - `retry`: done while a reminder waits for its retry.
//!
//! The checks that need no process of their own (the rate limit, the CSRF token, one 404
//! page for every bad link, the body limit) run in-process against the router:
//! `src/web/tests.rs`.

mod cli;
mod links;
mod retry;
mod status_page;
mod tokens;

use std::collections::BTreeMap;

use crate::support::config::{Cfg, tuyen_truyen, unit, units};
use crate::support::daemon::{Daemon, Setup};
use crate::support::http::Http;
use crate::support::mime::{emls, message_token};
use crate::support::smtp::Captured;

/// The user agent the tests' "browser" sends.
pub const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) nhacviec-ack-test/1.0";

/// The leadership's two addresses.
pub const LANH_DAO: [&str; 2] = ["chutich@thu.example.vn", "phochutich@thu.example.vn"];

/// The units that owe rules (`vp`, `kt` and `yt` escalate to the leadership, `th` does
/// not) and the leadership with two addresses.
pub fn ack_units() -> Vec<crate::support::config::Unit> {
    let mut u: Vec<_> = units(&["vp", "kt", "yt"])
        .into_iter()
        .map(|u| u.escalates_to(&["lanh-dao"]))
        .collect();
    u.push(unit("th"));
    u.push(unit("lanh-dao").emails(&LANH_DAO));
    u
}

pub use crate::support::config::tuyen_truyen_key as key;

/// The messages the daemon wrote (file transport), parsed.
pub fn mails(d: &Daemon) -> Vec<Captured> {
    emls(&d.path("var/mail"))
}

/// The messages to `addr`.
pub fn to_address<'a>(mails: &'a [Captured], addr: &str) -> Vec<&'a Captured> {
    mails
        .iter()
        .filter(|m| {
            m.get("to")
                .is_some_and(|t| t.ends_with(&format!("<{addr}>")) || t == addr)
        })
        .collect()
}

/// Starts a daemon on the usual one-off task owed by `owing`, with `cfg`'s other settings,
/// and waits until each unit's reminder is sent; returns it and each unit's token.
pub fn site(owing: &[&str], cfg: Cfg) -> (Daemon, BTreeMap<String, String>) {
    site_with(owing, cfg, &[])
}

/// [`site`] with arguments after `run`.
pub fn site_with(owing: &[&str], cfg: Cfg, args: &[&str]) -> (Daemon, BTreeMap<String, String>) {
    let cfg = cfg.units(ack_units()).rule(tuyen_truyen(owing));
    let mut d = Setup::new(&cfg).args(args).start();
    d.wait_sent(owing.len());
    let mails = mails(&d);
    let mut tokens = BTreeMap::new();
    for u in owing {
        let to = to_address(&mails, &crate::support::config::address(u));
        assert_eq!(to.len(), 1, "{u}");
        tokens.insert(u.to_string(), message_token(to[0], &cfg.public_url));
    }
    (d, tokens)
}

/// A unit's `POST /a/{token}` with `action`, from [`UA`], as a browser sends it: an ack
/// recorded answers with a redirect (303, not cached) to the link with its result
/// (`?kq=done|seen|same`), which is followed; the page it leads to is returned. A refusal
/// (404, 400, 429, 503) is returned as it is; any other answer fails the test.
pub fn ack(d: &Daemon, token: &str, action: &str) -> Http {
    let link = format!("/a/{token}");
    let r = d.post(&link, &[("User-Agent", UA)], &[("action", action)]);
    if r.status != 303 {
        assert!(
            r.status >= 400,
            "an ack taken must redirect to its result: {r:#?}"
        );
        return r;
    }
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:#?}");
    let to = r.header("location").unwrap_or_else(|| panic!("{r:#?}"));
    // Behind a proxy under a path, the address carries it; the daemon serves from `/a/`.
    let to = &to[to.find("/a/").unwrap_or_else(|| panic!("{to}"))..];
    let kq = to
        .strip_prefix(&format!("{link}?kq="))
        .unwrap_or_else(|| panic!("redirected elsewhere: {to}"));
    assert!(["done", "seen", "same"].contains(&kq), "{to}");
    d.get(to, &[("User-Agent", UA)])
}

/// What the status views must show for each obligation of the database whose deadline is
/// at most 60 days before the daemon's clock: its state as shown (`overdue` for one not done
/// past its deadline).
pub fn shown_states(d: &Daemon) -> BTreeMap<String, String> {
    let now = d.now().timestamp_millis();
    let conn = d.db();
    let mut st = conn
        .prepare(
            "SELECT b.key, b.state, o.deadline FROM obligations b
               JOIN occurrences o ON o.id = b.occurrence_id WHERE o.deadline >= ?1",
        )
        .unwrap();
    st.query_map([now - 60 * 86_400_000], |r| {
        let (key, state, deadline): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let shown = match state.as_str() {
            "done" => "done".to_string(),
            _ if now >= deadline => "overdue".to_string(),
            s => s.to_string(),
        };
        Ok((key, shown))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// RFC 4180 CSV: records of fields.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            ',' => record.push(std::mem::take(&mut field)),
            '\r' => assert_eq!(chars.next(), Some('\n'), "CR without LF"),
            '\n' => panic!("a bare LF ends a CSV line; RFC 4180 says CRLF"),
            _ => field.push(c),
        }
        if c == '\r' {
            record.push(std::mem::take(&mut field));
            records.push(std::mem::take(&mut record));
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last line has no CRLF"
    );
    records
}

pub const CSV_HEADER: [&str; 12] = [
    "obligation",
    "rule",
    "period",
    "title",
    "period_label",
    "deadline",
    "last_day",
    "unit",
    "unit_name",
    "state",
    "seen_at",
    "done_at",
];
