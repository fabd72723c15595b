//! The admin's commands in the admin's language.
//!
//! What `check`, `plan`, `calendar` and `status` print goes through [`tr!`](crate::tr): the
//! English text, written at the call site, is the message's key (as in gettext), and
//! `vi.toml` beside this file is the Vietnamese catalogue, one entry per message:
//!
//! ```toml
//! "missing `{key}` in {what}" = "thiếu `{key}` trong {what}"
//! ```
//!
//! `{name}` is a named argument of the call; `{{` and `}}` are literal braces. A test reads
//! every `tr!` in the sources and fails when the catalogue lacks one, has one nobody uses,
//! or names other arguments. The language is chosen once per process from the locale
//! ([`Lang::from_env`]); the daemon always logs in English ([`set`] at its start), and
//! machine-read output (JSON, CSV) is never translated.

use std::collections::HashMap;
use std::fmt::{Display, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// The languages the commands speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English: the messages as written in the code.
    En,
    /// Vietnamese: `vi.toml`.
    Vi,
}

impl Lang {
    /// The language of the locale, as POSIX orders its variables: the first of `LC_ALL`,
    /// `LC_MESSAGES` and `LANG` that is set and not empty; Vietnamese when it starts with
    /// `vi` (`vi_VN.UTF-8`, `vi`), English otherwise (`C`, `en_US.UTF-8`, unset).
    pub fn from_env() -> Lang {
        Lang::of_locale(|name| std::env::var(name).ok())
    }

    /// [`Lang::from_env`] over any source of variables.
    pub fn of_locale(var: impl Fn(&str) -> Option<String>) -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .filter_map(&var)
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.starts_with("vi") {
            Lang::Vi
        } else {
            Lang::En
        }
    }
}

static LANG: AtomicU8 = AtomicU8::new(0);

/// Sets the language of every message from now on.
pub fn set(lang: Lang) {
    LANG.store(u8::from(lang == Lang::Vi), Ordering::Relaxed);
}

/// The language messages are in now (English until [`set`]).
pub fn lang() -> Lang {
    if LANG.load(Ordering::Relaxed) == 1 {
        Lang::Vi
    } else {
        Lang::En
    }
}

/// The Vietnamese catalogue's text.
pub const VI_SOURCE: &str = include_str!("vi.toml");

/// The Vietnamese catalogue: English text to Vietnamese text.
fn vi() -> &'static HashMap<String, String> {
    static VI: OnceLock<HashMap<String, String>> = OnceLock::new();
    // The file is part of the binary and a test parses it, so the empty fallback is never
    // reached in a build that passed its tests; it would print English.
    VI.get_or_init(|| toml::from_str(VI_SOURCE).unwrap_or_default())
}

/// The message `msgid` in the current language with its arguments filled in. Called by
/// [`tr!`](crate::tr); an entry missing from the catalogue prints in English.
pub fn render(msgid: &'static str, args: &[(&str, &dyn Display)]) -> String {
    let template = match lang() {
        Lang::En => msgid,
        Lang::Vi => vi().get(msgid).map_or(msgid, String::as_str),
    };
    fill(template, args)
}

/// Replaces each `{name}` of `template` by its argument; `{{` and `}}` are braces. A name
/// without an argument stays as written (the catalogue test reports it).
pub fn fill(template: &str, args: &[(&str, &dyn Display)]) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(end) = tail.find('}').filter(|_| tail.starts_with('{')) {
            let name = &tail[1..end];
            match args.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => {
                    let _ = write!(out, "{v}");
                }
                None => out.push_str(&tail[..=end]),
            }
            rest = &tail[end + 1..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The names a template fills in, in order (for the catalogue test).
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            rest = &tail[2..];
        } else if let Some(end) = tail.find('}').filter(|_| tail.starts_with('{')) {
            names.push(tail[1..end].to_string());
            rest = &tail[end + 1..];
        } else {
            rest = &tail[1..];
        }
    }
    names.sort();
    names.dedup();
    names
}

/// A message in the language of the command: `tr!("unknown unit `{id}`", id)` or
/// `tr!("{n} errors", n = errors.len())`. The first argument must be a string literal (it
/// is the catalogue's key); each further one is `name` (a variable of that name) or
/// `name = expression`, anything that implements `Display`.
#[macro_export]
macro_rules! tr {
    (@val $name:ident = $val:expr) => { $val };
    (@val $name:ident) => { $name };
    ($msg:literal $(,)?) => { $crate::i18n::render($msg, &[]) };
    ($msg:literal, $($name:ident $(= $val:expr)?),+ $(,)?) => {
        $crate::i18n::render(
            $msg,
            &[$((stringify!($name), &$crate::tr!(@val $name $(= $val)?) as &dyn ::std::fmt::Display)),+],
        )
    };
}

#[cfg(test)]
mod tests;
