//! The admin's TOML file, parsed then validated into a typed [`Config`].
//!
//! [`load`] is the one entry point: `check`, `plan`, `run` and a reload all call it, so a
//! config that passes `check` is exactly one that `run` accepts. It never stops at the first
//! problem: it returns every error and warning it found (see [`diag`]), and a `Config` only
//! when there were no errors. References between sections (units, groups, policies) are
//! resolved to indices here, so later stages cannot meet a dangling name.

pub mod diag;
mod net;
mod parse;
mod raw;
pub mod reader;
mod resolve;
mod rules;
mod schedule;
mod sections;
mod zalo;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;

use crate::calendar::Calendar;
pub use diag::{Diagnostic, Severity};
pub use net::IpRange;
pub use rules::{is_chat_id, is_loopback, webhook_shown, webhook_url_problem};
pub use zalo::{ZALO_KINDS, normalise_phone};

/// The default location of the config file.
pub const DEFAULT_PATH: &str = "/etc/nhacviec/nhacviec.toml";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config file it came from.
    pub path: PathBuf,
    /// Who runs the reminders.
    pub organization: Organization,
    /// Where the database lives.
    pub storage: Storage,
    /// The HTTP listener.
    pub server: Server,
    /// How email leaves.
    pub email: Email,
    /// Working days and days off.
    pub calendar: Calendar,
    /// The daily summary.
    pub digest: Digest,
    /// Optional message channels besides email.
    pub channels: Channels,
    /// Where the admin's templates are (`[templates] dir`, or `templates/` beside the
    /// config if it exists); any template not found there is the built-in one.
    pub templates_dir: Option<PathBuf>,
    /// Reminder policies; `policies[0]` is always `default`.
    pub policies: Vec<Policy>,
    /// Units in file order; indices into this are the unit handles used everywhere else.
    pub units: Vec<Unit>,
    /// Named sets of units.
    pub groups: Vec<Group>,
    /// Obligations to remind.
    pub rules: Vec<Rule>,
    /// Unit ids to indices, for [`Config::unit_index`].
    unit_by_id: std::collections::HashMap<String, usize>,
}

/// `[organization]`.
#[derive(Debug, Clone)]
pub struct Organization {
    /// Shown in messages and pages.
    pub name: String,
    /// Every date in the file is local to it.
    pub timezone: Tz,
    /// The base of links in messages, without a trailing slash.
    pub public_url: String,
    /// The unit that receives reports and the digest (index into `units`).
    pub coordinator: Option<usize>,
    /// Email addresses told when the daemon itself has trouble.
    pub admins: Vec<String>,
    /// Units told the same, on every channel they have (indices into `units`).
    pub admin_units: Vec<usize>,
}

/// `[storage]`.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The SQLite file.
    pub path: PathBuf,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The file holding the `/status` password; `None` turns the status page off.
    pub admin_password_file: Option<PathBuf>,
    /// Ack POSTs allowed per client address: that many at once, then one every
    /// `60 / ack_per_minute` seconds (a token bucket: [`crate::web::guard::RateLimit`]).
    pub ack_per_minute: u32,
    /// How long a client may stay silent, in seconds: to send a request's headers, its body,
    /// or the next request on a kept-alive connection. A client that stops half-way would
    /// otherwise hold its connection, and a file descriptor, for ever.
    pub timeout_seconds: u32,
    /// Connections served at once; more wait in the kernel's queue until one closes, so a
    /// crowd of idle sockets cannot use up the process's file descriptors.
    pub max_connections: u32,
    /// The reverse proxies in front of the daemon: only a request whose TCP peer is one of
    /// them has its client address read from `X-Forwarded-For` (or `Forwarded: for=`), so a
    /// client cannot choose the address it is rate-limited and recorded by. Empty: the
    /// headers are ignored and every client is its TCP peer.
    pub trusted_proxies: Vec<IpRange>,
}

/// Where a secret comes from: it never sits in the config file itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    /// A file holding the secret (surrounding whitespace is ignored).
    File(PathBuf),
    /// An environment variable holding it.
    Env(String),
}

/// The key in a webhook secret `whsec_<base64>` (Standard Webhooks); an error says how to
/// make a good one and never shows the secret.
pub fn decode_webhook_secret(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let b64 = secret.trim().strip_prefix("whsec_").ok_or_else(|| {
        crate::tr!(
            "the webhook secret must look like whsec_<base64>; make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\""
        )
    })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        // base64's error names the character and where: a piece of the secret. Not shown.
        .map_err(|_| crate::tr!("the webhook secret after `whsec_` is not base64"))?;
    if key.len() < 16 {
        return Err(crate::tr!(
            "the webhook secret holds {n} bytes; use at least 16 (32 is usual)",
            n = key.len()
        ));
    }
    Ok(key)
}

/// Whether a Telegram bot token looks like one (`123456789:AA…`, as @BotFather gives it);
/// the error never shows it.
pub fn telegram_token_problem(token: &str) -> Result<(), String> {
    let ok = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && secret.len() >= 20
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(crate::tr!(
            "the Telegram bot token is not one: it looks like 123456789:AA… (digits, a colon, then 20 or more letters, digits, `_` and `-`), as @BotFather gave it"
        ))
    }
}

impl Secret {
    /// Where it is, for messages: "file /etc/nhacviec/secrets/x", "variable X".
    pub fn origin(&self) -> String {
        match self {
            Secret::File(p) => crate::tr!("file {path}", path = p.display()),
            Secret::Env(v) => crate::tr!("variable {name}", name = v),
        }
    }

    /// Reads the secret now (surrounding whitespace, such as a final newline, is dropped).
    pub fn read(&self) -> std::io::Result<String> {
        match self {
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display()))),
            Secret::Env(v) => std::env::var(v).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("environment variable {v} is not set"),
                )
            }),
        }
    }
}

/// How email is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Over SMTP, per `[email.smtp]`.
    Smtp,
    /// One `.eml` file per message into `[email.file] dir`.
    File,
}

/// SMTP connection security.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: allowed only to a loopback address.
    None,
}

/// `[email]`.
#[derive(Debug, Clone)]
pub struct Email {
    /// The From mailbox, `Name <address>`.
    pub from: String,
    /// Reply-To; the coordinator's first address by default.
    pub reply_to: Option<String>,
    /// SMTP or file.
    pub transport: Transport,
    /// `[email.smtp]`, present when the transport is SMTP.
    pub smtp: Option<Smtp>,
    /// `[email.file] dir`.
    pub file_dir: PathBuf,
}

/// `[email.smtp]`.
#[derive(Debug, Clone)]
pub struct Smtp {
    /// Server host name.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// starttls, tls or none.
    pub security: Security,
    /// AUTH user name.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<Secret>,
    /// An extra trust root (PEM).
    pub ca_file: Option<PathBuf>,
    /// Send rate limit.
    pub max_per_minute: u32,
    /// How long one SMTP command (connecting, the greeting, each reply) may take before the
    /// attempt counts as a temporary failure.
    pub timeout_seconds: u32,
}

/// `[digest]`.
#[derive(Debug, Clone)]
pub struct Digest {
    /// Local time on each working day.
    pub time: NaiveTime,
    /// Units that receive it (indices into `units`); the admins get it too.
    pub to: Vec<usize>,
}

/// `[channels]`: settings of the non-email channels that units may use.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    /// `[channels.telegram]`.
    pub telegram: Option<Telegram>,
    /// `[channels.webhook]`.
    pub webhook: Option<Webhook>,
    /// `[channels.zalo]`.
    pub zalo: Option<Zalo>,
}

/// `[channels.zalo]`: the Official Account's app and its ZNS templates.
#[derive(Debug, Clone)]
pub struct Zalo {
    /// The app's id (Zalo for Developers).
    pub app_id: String,
    /// The app's secret key.
    pub secret_key: Secret,
    /// The first refresh token, read once: the database then holds the live one.
    pub refresh_token_file: PathBuf,
    /// The ZNS API base.
    pub api_url: String,
    /// The OAuth base.
    pub oauth_url: String,
    /// Send in development mode (only to the OA's own admins).
    pub development: bool,
    /// Send rate limit.
    pub max_per_minute: u32,
    /// The approved template of each kind sent on Zalo.
    pub templates: std::collections::BTreeMap<crate::state::TemplateKind, ZaloTemplate>,
}

/// One approved ZNS template and what fills its parameters.
#[derive(Debug, Clone)]
pub struct ZaloTemplate {
    /// The template's id in Zalo's console.
    pub id: String,
    /// Each parameter's value: a minijinja template over the message's data.
    pub data: Vec<(String, String)>,
    /// The length limits set in the console, in characters.
    pub max_len: std::collections::BTreeMap<String, usize>,
}

/// `[channels.telegram]`.
#[derive(Debug, Clone)]
pub struct Telegram {
    /// The bot token.
    pub bot_token: Secret,
    /// The Bot API base URL.
    pub api_url: String,
    /// Send rate limit over all chats (Telegram allows about 30 a second).
    pub max_per_minute: u32,
}

/// `[channels.webhook]`.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// The signing secrets (Standard Webhooks `whsec_…`): one, or the new and the old one
    /// while a secret is rotated (each message is signed with both).
    pub secrets: Vec<Secret>,
    /// Send rate limit over all endpoints.
    pub max_per_minute: u32,
    /// How long a receiver may take to answer, in seconds (15 unless set).
    pub timeout_seconds: u32,
}

/// A step offset: `14d`, `3wd`, `2h`, `30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offset {
    /// How many.
    pub n: u32,
    /// Of what.
    pub unit: OffsetUnit,
}

/// The unit of an [`Offset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetUnit {
    /// Calendar days, counted from the last day.
    Days,
    /// Working days, counted from the last day.
    WorkingDays,
    /// Hours from the deadline instant.
    Hours,
    /// Minutes from the deadline instant.
    Minutes,
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let u = match self.unit {
            OffsetUnit::Days => "d",
            OffsetUnit::WorkingDays => "wd",
            OffsetUnit::Hours => "h",
            OffsetUnit::Minutes => "m",
        };
        write!(f, "{}{u}", self.n)
    }
}

impl Offset {
    /// Parses `14d`, `3wd`, `2h`, `30m`.
    pub fn parse(s: &str) -> Result<Offset, String> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (num, unit) = s.split_at(digits);
        let unit = match unit {
            "d" => Some(OffsetUnit::Days),
            "wd" => Some(OffsetUnit::WorkingDays),
            "h" => Some(OffsetUnit::Hours),
            "m" => Some(OffsetUnit::Minutes),
            _ => None,
        };
        match (num.parse::<u32>(), unit) {
            (Ok(n), Some(unit)) if n <= 1000 => Ok(Offset { n, unit }),
            (Ok(_), Some(_)) => Err(crate::tr!(
                "offset `{value}` is too large (at most 1000)",
                value = s
            )),
            _ => Err(crate::tr!(
                "bad offset `{value}`: write a number and a unit: d (calendar days), wd (working days), h (hours) or m (minutes), e.g. \"3wd\"",
                value = s
            )),
        }
    }
}

/// What happens when a deadline's last day is not a working day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDayOff {
    /// Remind against the last working day before it; the deadline stays.
    Earlier,
    /// The deadline extends to the end of the next working day (Bộ luật Dân sự 2015, Điều 148.5).
    Later,
    /// Nothing moves.
    Keep,
}

/// A reminder policy, `[policy.NAME]`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its name.
    pub name: String,
    /// Reminders before the last day, in the order given.
    pub before: Vec<Offset>,
    /// A reminder on the last day.
    pub on_due: bool,
    /// Overdue notices after the last day, in the order given.
    pub after: Vec<Offset>,
    /// Index into `after` from which escalation contacts are copied.
    pub escalate_from: Option<usize>,
    /// Local time at which day steps are sent.
    pub send_time: NaiveTime,
    /// See [`OnDayOff`].
    pub on_day_off: OnDayOff,
}

impl Policy {
    /// The built-in `default` policy (docs/config.md).
    pub fn builtin_default() -> Policy {
        let o = |n, unit| Offset { n, unit };
        Policy {
            name: "default".into(),
            before: vec![
                o(14, OffsetUnit::Days),
                o(7, OffsetUnit::Days),
                o(3, OffsetUnit::WorkingDays),
                o(1, OffsetUnit::WorkingDays),
            ],
            on_due: true,
            after: vec![
                o(1, OffsetUnit::WorkingDays),
                o(3, OffsetUnit::WorkingDays),
                o(7, OffsetUnit::WorkingDays),
            ],
            escalate_from: Some(1),
            send_time: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or(NaiveTime::MIN),
            on_day_off: OnDayOff::Earlier,
        }
    }
}

/// `[[unit]]`: a body that must act.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Stable id, `[a-z0-9-]+`: the database keys on it.
    pub id: String,
    /// Full name, shown in messages.
    pub name: String,
    /// Email addresses.
    pub email: Vec<String>,
    /// Units copied on escalated notices (indices into `units`).
    pub escalate_to: Vec<usize>,
    /// A Telegram chat id.
    pub telegram: Option<String>,
    /// Webhook URLs.
    pub webhook: Vec<String>,
    /// Mobile numbers on Zalo, `84…`.
    pub zalo: Vec<String>,
}

impl Config {
    /// Who is told when the daemon itself has trouble, each address once: the admins'
    /// emails, and every address of the admin units on each of their channels.
    pub fn admin_addresses(&self) -> Vec<(crate::state::Channel, &str)> {
        let mut out: Vec<(crate::state::Channel, &str)> = self
            .organization
            .admins
            .iter()
            .map(|a| (crate::state::Channel::Email, a.as_str()))
            .collect();
        for &u in &self.organization.admin_units {
            // The admins' notices have no ZNS template: not on Zalo.
            for a in self.units[u].addresses() {
                if a.0 != crate::state::Channel::Zalo && !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

impl Unit {
    /// Every address of the unit, channel by channel: its emails, its Telegram chat, its
    /// webhooks. A step goes to each.
    pub fn addresses(&self) -> Vec<(crate::state::Channel, &str)> {
        use crate::state::Channel;
        let mut out: Vec<(Channel, &str)> = self
            .email
            .iter()
            .map(|a| (Channel::Email, a.as_str()))
            .collect();
        out.extend(
            self.telegram
                .iter()
                .map(|t| (Channel::Telegram, t.as_str())),
        );
        out.extend(self.webhook.iter().map(|w| (Channel::Webhook, w.as_str())));
        out.extend(self.zalo.iter().map(|z| (Channel::Zalo, z.as_str())));
        out
    }
}

/// `[[group]]`: a named set of units.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// Member units (indices into `units`).
    pub units: Vec<usize>,
}

/// A report or a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// báo cáo.
    Report,
    /// nhiệm vụ.
    Task,
}

impl Kind {
    /// The config and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Report => "report",
            Kind::Task => "task",
        }
    }
}

/// How often a rule recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodKind {
    /// Each month (`which` 1–12).
    Month,
    /// Each quarter (`which` 1–4).
    Quarter,
    /// Each half-year (`which` 1–2).
    HalfYear,
    /// January–September, once a year.
    NineMonths,
    /// The calendar year.
    Year,
    /// A one-off with a date.
    Once,
}

/// The day of the month of a periodic deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DueDay {
    /// Day N, clamped to the month's last day.
    Day(u32),
    /// The month's last day.
    Last,
}

/// When an occurrence is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// For periodic rules.
    Periodic {
        /// Months after the period's last month: 0 = "last", 1 = "next".
        months_after: u32,
        /// Day of that month.
        day: DueDay,
        /// "Before that day": the day itself is late.
        before: bool,
        /// A time on that day instead of its end.
        time: Option<NaiveTime>,
    },
    /// For `period = "once"`.
    Once {
        /// The date.
        date: NaiveDate,
        /// "Before that day".
        before: bool,
        /// A time on that day instead of its end.
        time: Option<NaiveTime>,
    },
}

/// `[[rule]]`: a recurring or one-off obligation.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id.
    pub id: String,
    /// Report or task.
    pub kind: Kind,
    /// Shown in messages.
    pub title: String,
    /// Optional longer text.
    pub description: Option<String>,
    /// The legal basis, e.g. "Chương trình 05/CTr-UBND".
    pub reference: Option<String>,
    /// How it recurs.
    pub period: PeriodKind,
    /// Which periods of the year (1-based); all when not given.
    pub which: Vec<u32>,
    /// The deadline rule.
    pub due: Due,
    /// Units that owe it (indices into `units`, sorted, no duplicates).
    pub units: Vec<usize>,
    /// Where to submit (index into `units`).
    pub submit_to: Option<usize>,
    /// Index into `policies`.
    pub policy: usize,
    /// Occurrences whose deadline falls before this day are not owed.
    pub active_from: Option<NaiveDate>,
    /// Occurrences whose deadline falls after this day are not owed.
    pub active_until: Option<NaiveDate>,
}

/// The outcome of [`load`]: every diagnostic, and the config if there was no error.
#[derive(Debug)]
pub struct Loaded {
    /// The config, when no error was found.
    pub config: Option<Config>,
    /// Errors and warnings, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads, parses and validates the config at `path`. `today` (local date) is used only for
/// the warning about a coming year with no official calendar schedule.
pub fn load(path: &Path, today: NaiveDate) -> Loaded {
    parse::load(path, today)
}

/// Reads, parses and validates a config from text (tests, benchmarks). Relative paths in it
/// are relative to `base`'s folder.
pub fn load_str(base: &Path, text: String, today: NaiveDate) -> Loaded {
    parse::load_text(base, text, today)
}

/// The diagnostics of an official yearly schedule file's text, as `check` reports them for
/// a file the config includes (for the fuzzer, `fuzz/fuzz_targets/schedule.rs`).
pub fn check_schedule(path: &Path, text: String) -> Vec<Diagnostic> {
    let mut diags = diag::Diagnostics::default();
    let _ = schedule::read_schedule(&mut diags, path.to_path_buf(), text);
    diags.into_vec()
}

impl Config {
    /// Finds a unit by id.
    pub fn unit_index(&self, id: &str) -> Option<usize> {
        self.unit_by_id.get(id).copied()
    }

    /// A unit's name by its id; the id itself for a unit no longer in the config (its
    /// obligations stay in the database).
    pub fn unit_name(&self, id: &str) -> String {
        self.unit_index(id)
            .map_or_else(|| id.to_string(), |i| self.units[i].name.clone())
    }

    /// Finds a rule by id.
    pub fn rule_index(&self, id: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.id == id)
    }
}
