//! The daemon end to end (DESIGN §5 and §8): the real `nhacviec run` against the real SMTP
//! test server, on the real clock.
//!
//! - Steps in minutes (`before = ["1m"]`, `after = ["1m"]` around a deadline with a time of
//!   day) arrive at their instant: not before it, and within a bound on the wait after it.
//! - A SIGKILL and a restart send nothing twice; a restart after a downtime sends only the
//!   latest missed step and records the earlier ones `skipped`.
//! - Reload: SIGHUP with a broken config keeps the old one running and tells the admin once
//!   per broken version; SIGHUP with a good config, and a config replaced by a rename (as
//!   editors save) with no signal at all, apply the new one to the steps still ahead.
//! - SIGTERM while idle: exit 0 within 10 s; `--log-format json` logs one JSON object a line.
//! - `GET /healthz` and `GET /metrics` over real HTTP, against the database.
//!
//! The daemon reads the real clock (`Asia/Ho_Chi_Minh`), so every instant here is relative
//! to now: a deadline is a whole minute a little ahead, and its steps are minutes around
//! it. Every config makes each day a working day (`weekend = []`, `holidays = "none"`), so
//! no step moves whatever the day the tests run, and [`plan_steps`] checks with
//! `nhacviec plan` that the steps are where a test expects them before its daemon starts.
//! Waiting is for a condition (a message at the server, a row in the database, a line in
//! the log, the clock passing an instant), polled with a deadline; no assertion rests on a
//! fixed sleep. The daemon, its rows and its log are [`crate::mail`]'s [`Daemon`].

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use serde_json::Value;

use crate::TempDir;
use crate::mail::{
    Daemon, Row, STOP_WITHIN, Security, UNITS, WAIT, due_day, organization, plan_premise,
    reminder_rule, smtp_email,
};
use crate::smtp::{Captured, SmtpOpts, SmtpServer};

/// How long after its instant a step may take to arrive: a bound on a wait (the engine
/// wakes at the instant), not a benchmark.
const LATE: chrono::Duration = chrono::Duration::seconds(20);

/// How far ahead of now the first minute step of a test is, at least: time to write the
/// config, check it with `plan`, start the daemon and (where a test reloads) reload it.
const LEAD: chrono::Duration = chrono::Duration::seconds(15);

/// Every day a working day: minute steps never move, whatever today is.
const CALENDAR: &str = "[calendar]\nweekend = []\nholidays = \"none\"\n\n";

/// The coordinator and one unit; [`KT`] and [`HCC`] are the units reloads add.
const VHXH_VP: &str = r#"
[[unit]]
id = "vhxh"
name = "Phòng Văn hóa – Xã hội"
email = ["vhxh@thu.example.vn"]

[[unit]]
id = "vp"
name = "Văn phòng HĐND và UBND phường"
email = ["vp@thu.example.vn"]
"#;

const KT: &str = r#"
[[unit]]
id = "kt"
name = "Phòng Kinh tế – Hạ tầng – Đô thị"
email = ["kt@thu.example.vn"]
"#;

const HCC: &str = r#"
[[unit]]
id = "hcc"
name = "Trung tâm Phục vụ hành chính công"
email = ["hcc@thu.example.vn"]
"#;

const ADMIN: &str = "quantri@thu.example.vn";

const CONFIG_ERROR_SUBJECT: &str =
    "[Nhắc việc] Cấu hình mới có lỗi, hệ thống vẫn chạy theo cấu hình cũ";

// ---------------------------------------------------------------------------------------
// Time

/// The first whole minute at or after `t` (minutes in Vietnam, UTC+7, are UTC's).
fn whole_minute_from(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp();
    let up = if s % 60 == 0 && t.timestamp_subsec_nanos() == 0 {
        s
    } else {
        (s.div_euclid(60) + 1) * 60
    };
    Utc.timestamp_opt(up, 0).unwrap()
}

fn minutes(n: i64) -> chrono::Duration {
    chrono::Duration::minutes(n)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).unwrap()
}

/// "2026-11-27 10:05:00 +07" for messages.
fn vn(t: DateTime<Utc>) -> String {
    t.with_timezone(&Ho_Chi_Minh)
        .format("%Y-%m-%d %H:%M:%S%.3f %Z")
        .to_string()
}

/// Sleeps until the clock has passed `t` (a wait for a condition: the downtime of a test).
fn wait_for_clock(t: DateTime<Utc>) {
    while Utc::now() <= t {
        let left = (t - Utc::now()).to_std().unwrap_or_default();
        std::thread::sleep(left.min(Duration::from_millis(250)) + Duration::from_millis(1));
    }
}

// ---------------------------------------------------------------------------------------
// Configs

/// A one-off rule `id` owed by `units`, due at `deadline` (a whole minute: `due = { date,
/// time }` in Vietnam), with its own policy of minute steps and no `due` step.
fn minute_rule(
    id: &str,
    deadline: DateTime<Utc>,
    before: &[&str],
    after: &[&str],
    units: &str,
) -> String {
    let local = deadline.with_timezone(&Ho_Chi_Minh);
    let list = |steps: &[&str]| {
        steps
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[policy.{id}]
before = [{}]
on_due = false
after = [{}]
on_day_off = "keep"

[[rule]]
id = "{id}"
kind = "task"
title = "Họp giao ban {id}"
period = "once"
due = {{ date = "{}", time = "{}" }}
units = [{units}]
submit_to = "vhxh"
policy = "{id}"
"#,
        list(before),
        list(after),
        local.format("%Y-%m-%d"),
        local.format("%H:%M"),
    )
}

/// A config sending through `server`: mail.rs's `[organization]` (no digest recipients,
/// any free port), plain SMTP, every day a working day, then `rest` (units, rules).
fn config(server: &SmtpServer, rest: &str) -> String {
    format!(
        "{}{}{CALENDAR}{rest}",
        organization(),
        smtp_email(server.port, Security::None)
    )
}

/// `text` listening on `port` instead of any free one.
fn on_port(text: &str, port: u16) -> String {
    let any = "listen = \"127.0.0.1:0\"";
    assert!(text.contains(any), "{text}");
    text.replace(any, &format!("listen = \"127.0.0.1:{port}\""))
}

/// A port free a moment ago, for a daemon whose HTTP server a test talks to.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The hex SHA-256 of a text, as `config_versions` records a config.
fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// (rule, unit, step, instant) of every step `nhacviec plan` shows in the days around
/// `around`, sorted by instant then unit.
fn plan_steps(dir: &Path, around: DateTime<Utc>) -> Vec<(String, String, String, DateTime<Utc>)> {
    let from: NaiveDate =
        around.with_timezone(&Ho_Chi_Minh).date_naive() - chrono::Duration::days(2);
    let out = Command::new(env!("CARGO_BIN_EXE_nhacviec"))
        .current_dir(dir)
        .env_remove("NHACVIEC_CONFIG")
        .args(["--config", "nhacviec.toml", "plan", "--format", "json"])
        .args(["--from", &from.to_string(), "--days", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut steps = Vec::new();
    for occ in &plan {
        for ob in occ["obligations"].as_array().unwrap() {
            for s in ob["steps"].as_array().unwrap() {
                let at = DateTime::parse_from_rfc3339(s["at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc);
                steps.push((
                    occ["rule"].as_str().unwrap().to_string(),
                    ob["unit"].as_str().unwrap().to_string(),
                    s["step"].as_str().unwrap().to_string(),
                    at,
                ));
            }
        }
    }
    steps.sort_by(|a, b| (a.3, &a.1).cmp(&(b.3, &b.1)));
    steps
}

/// Checks with `plan` that the minute rule `id` has exactly these steps for these units.
fn assert_plan(dir: &Path, id: &str, want: &[(&str, &str, DateTime<Utc>)]) {
    let around = want[0].2;
    let got: Vec<(String, String, DateTime<Utc>)> = plan_steps(dir, around)
        .into_iter()
        .filter(|s| s.0 == id)
        .map(|(_, unit, step, at)| (unit, step, at))
        .collect();
    let mut want: Vec<(String, String, DateTime<Utc>)> = want
        .iter()
        .map(|(u, s, t)| (u.to_string(), s.to_string(), *t))
        .collect();
    want.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    assert_eq!(got, want, "the premise of the test: the steps `plan` shows");
}

// ---------------------------------------------------------------------------------------
// The daemon: more than mail.rs's `Daemon` offers

fn spawn(dir: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nhacviec"))
        .current_dir(dir)
        .env_remove("NHACVIEC_CONFIG")
        .env_remove("RUST_LOG")
        .args(["--config", "nhacviec.toml", "run"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("run.stdout")).unwrap())
        .stderr(std::fs::File::create(dir.join("run.stderr")).unwrap())
        .spawn()
        .unwrap()
}

impl Daemon {
    /// `nhacviec --config nhacviec.toml run EXTRA…` in `dir`.
    fn start_with(dir: TempDir, extra: &[&str]) -> Daemon {
        let child = spawn(&dir.path, extra);
        Daemon { child, dir }
    }

    /// Starts it again in the same directory once it has exited (the previous log is kept
    /// as `run.N.stderr`).
    fn restart(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_some(),
            "restart: the daemon still runs"
        );
        let n = (1..)
            .find(|n| !self.path(&format!("run.{n}.stderr")).exists())
            .unwrap();
        std::fs::rename(
            self.path("run.stderr"),
            self.path(&format!("run.{n}.stderr")),
        )
        .unwrap();
        self.child = spawn(&self.dir.path, &[]);
    }

    /// Every log so far, earlier runs first, for failure messages.
    fn logs(&self) -> String {
        let mut all = String::new();
        for n in 1.. {
            match std::fs::read_to_string(self.path(&format!("run.{n}.stderr"))) {
                Ok(text) => all += &format!("--- run {n}\n{text}"),
                Err(_) => break,
            }
        }
        all + "--- this run\n" + &self.log()
    }

    /// Sends a signal with `kill` (procps), as an admin would.
    fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill` (procps): {e}"));
        assert!(sent.success(), "kill -{name} {pid}: {sent}");
    }

    /// Waits until it catches signal number `signo` (the SigCgt mask of /proc/PID/status).
    fn wait_catching(&mut self, signo: u32) {
        let status = format!("/proc/{}/status", self.child.id());
        self.wait_until("the signal handler", Utc::now() + WAIT, |_| {
            let text = std::fs::read_to_string(&status).ok()?;
            let line = text.lines().find(|l| l.starts_with("SigCgt:"))?;
            let mask = u64::from_str_radix(line["SigCgt:".len()..].trim(), 16).ok()?;
            (mask & (1 << (signo - 1)) != 0).then_some(())
        });
    }

    /// Polls `probe` until it gives a value; panics, with the rows and the logs, once the
    /// clock passes `until` or if the daemon exits.
    fn wait_until<T>(
        &mut self,
        what: &str,
        until: DateTime<Utc>,
        mut probe: impl FnMut(&Daemon) -> Option<T>,
    ) -> T {
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Utc::now() > until {
                panic!(
                    "waited until {} for {what}; it is {} and the daemon {}\n--- rows\n{:#?}\n{}",
                    vn(until),
                    vn(Utc::now()),
                    exited.map_or("still runs".to_string(), |s| format!("exited: {s}")),
                    self.rows(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `done` holds for the outbox rows (there may be none); returns them.
    fn rows_when(
        &mut self,
        what: &str,
        until: DateTime<Utc>,
        done: impl Fn(&[Row]) -> bool,
    ) -> Vec<Row> {
        self.wait_until(what, until, |d| d.rows().filter(|r| done(r)))
    }

    /// The database, read-only.
    fn db(&self) -> Connection {
        let conn = Connection::open_with_flags(
            self.path("var/nhacviec.db"),
            OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn
    }

    /// A value of the `meta` table, if the database and the value exist.
    fn meta(&self, key: &str) -> Option<String> {
        if !self.path("var/nhacviec.db").exists() {
            return None;
        }
        self.db()
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    /// The engine's mark: every step up to it has been enqueued.
    fn mark(&self) -> Option<DateTime<Utc>> {
        self.meta("engine_until").map(|v| at_ms(v.parse().unwrap()))
    }

    /// The hashes in `config_versions`, oldest first.
    fn config_hashes(&self) -> Vec<String> {
        let conn = self.db();
        let mut st = conn
            .prepare("SELECT hash FROM config_versions ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// How many times the log says `text`.
    fn log_count(&self, text: &str) -> usize {
        self.log().matches(text).count()
    }

    /// Waits (at most [`WAIT`]) until `/healthz` on `port` answers 200 with a `last_wake` at
    /// or after `since`: a wake has completed (enqueue and sends) since then. Returns the
    /// health document.
    fn woke_since(&mut self, port: u16, since: DateTime<Utc>) -> Value {
        let since_ms = ms(since);
        self.wait_until("a wake reported by /healthz", Utc::now() + WAIT, |_| {
            let r = get(port, "/healthz").ok()?;
            let v: Value = serde_json::from_str(&r.body).ok()?;
            let wake = DateTime::parse_from_rfc3339(v["last_wake"].as_str()?).ok()?;
            (r.status == 200 && wake.timestamp_millis() >= since_ms).then_some(v)
        })
    }
}

// ---------------------------------------------------------------------------------------
// The SMTP server and HTTP

/// Waits until the server has `n` messages, at the latest when the clock passes `until`;
/// returns them and when the test saw them arrive. Panics with the messages that did
/// arrive, the rows and the daemon's log.
fn arrivals(
    daemon: &mut Daemon,
    server: &SmtpServer,
    n: usize,
    until: DateTime<Utc>,
) -> (Vec<Captured>, DateTime<Utc>) {
    let what = format!("{n} message(s) at the SMTP server");
    let got = daemon.wait_until(&what, until, |_| {
        let got = server.captured();
        (got.len() >= n).then_some(got)
    });
    (got, Utc::now())
}

/// The step named in a Message-ID `<rule.period.unit.step.rXXXXXXXX@domain>`.
fn id_step(c: &Captured) -> String {
    let id = c.get("message_id").unwrap();
    let parts: Vec<&str> = id.trim_matches(['<', '>']).split('.').collect();
    assert!(parts.len() >= 5, "{id}");
    parts[3].to_string()
}

/// How many times each Message-ID arrived.
fn arrival_counts(server: &SmtpServer) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for c in server.captured() {
        *counts
            .entry(c.get("message_id").unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// An HTTP response, as read by [`get`].
#[derive(Debug)]
struct Http {
    status: u16,
    content_type: Option<String>,
    body: String,
}

/// `GET path` on 127.0.0.1:port, HTTP/1.1 by hand.
fn get(port: u16, path: &str) -> std::io::Result<Http> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no end of headers in {text:?}")))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok(Http {
        status,
        content_type: header("content-type"),
        body,
    })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").expect("chunk size");
        let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
}

/// The value of one sample of a Prometheus text, `name{labels}` exactly as written.
fn sample(metrics: &str, series: &str) -> f64 {
    let values: Vec<f64> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(s, _)| *s == series)
        .map(|(_, v)| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 1, "one sample {series} in\n{metrics}");
    values[0]
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

// ---------------------------------------------------------------------------------------
// 1. On time

/// A deadline T a few minutes ahead with `before = ["1m"]` and `after = ["1m"]`: the
/// reminder is enqueued and sent not before T-1m, the overdue notice not before T+1m, each
/// within [`LATE`] of its instant, and nothing else is sent. (The name sorts first, so the
/// longest test starts first when the harness runs two at a time.)
#[test]
fn a_step_in_minutes_arrives_at_its_instant() {
    let server = SmtpServer::start(SmtpOpts::default());
    let first = whole_minute_from(Utc::now() + LEAD);
    let deadline = first + minutes(1);
    let second = deadline + minutes(1);
    let text = config(
        &server,
        &format!(
            "{UNITS}{}",
            minute_rule("giao-ban", deadline, &["1m"], &["1m"], "\"vp\"")
        ),
    );
    let dir = Daemon::prepare(&[("nhacviec.toml", text)]);
    assert_plan(
        &dir.path,
        "giao-ban",
        &[("vp", "before-1m", first), ("vp", "after-1m", second)],
    );
    let mut daemon = Daemon::start(dir);

    for (n, step, instant) in [(1, "before-1m", first), (2, "after-1m", second)] {
        let (got, seen) = arrivals(&mut daemon, &server, n, instant + LATE);
        assert_eq!(
            got.len(),
            n,
            "one message at a time: {:#?}",
            got.last().map(|c| &c.json)
        );
        let m = got.last().unwrap();
        assert_eq!(id_step(m), step, "{:#}", m.json);
        assert_eq!(m.rcpt_tos(), ["vp@thu.example.vn"]);
        assert!(seen <= instant + LATE, "{step} seen at {}", vn(seen));
        let rows = daemon.rows_when(&format!("{step} sent"), instant + LATE, |rows| {
            rows.iter().any(|r| r.step == step && r.status == "sent")
        });
        let row = rows.iter().find(|r| r.step == step).unwrap();
        for (what, t) in [
            ("enqueued", Some(row.created_at)),
            ("first attempted", row.first_attempt_at),
            ("sent", row.sent_at),
        ] {
            let t = at_ms(t.unwrap_or_else(|| panic!("{row:#?}")));
            assert!(
                t >= instant,
                "{step} {what} at {}, before its instant {}: {row:#?}",
                vn(t),
                vn(instant)
            );
            assert!(t <= instant + LATE, "{step} {what} at {}: {row:#?}", vn(t));
        }
    }

    daemon.stop();
    let rows = daemon.rows().unwrap();
    let steps: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.step.as_str(), r.recipient.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("before-1m", "vp@thu.example.vn", "sent"),
            ("after-1m", "vp@thu.example.vn", "sent")
        ]
    );
    assert_eq!(server.captured().len(), 2, "nothing else arrives");
}

// ---------------------------------------------------------------------------------------
// 2. SIGKILL

/// Once the first start's reminders are `sent`, SIGKILL, start again, let it wake (its
/// `/healthz` reports a wake after the restart), SIGTERM: every message arrived once.
#[test]
fn sigkill_then_restart_sends_nothing_twice() {
    let server = SmtpServer::start(SmtpOpts::default());
    let port = free_port();
    let due = due_day();
    let text = on_port(
        &config(
            &server,
            &format!("{UNITS}{}", reminder_rule(due, "\"vp\", \"kt\"")),
        ),
        port,
    );
    let dir = Daemon::prepare(&[("nhacviec.toml", text)]);
    plan_premise(&dir.path, due);
    let mut daemon = Daemon::start(dir);
    let sent = daemon.wait_rows("three rows sent", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == "sent")
    });
    assert_eq!(server.captured().len(), 3);

    daemon.child.kill().unwrap(); // SIGKILL
    let status = daemon.child.wait().unwrap();
    assert_eq!(status.code(), None, "killed by a signal: {status}");
    let restarted = Utc::now();
    daemon.restart();
    let health = daemon.woke_since(port, restarted);
    assert_eq!(health["outbox"]["pending"], 0, "{health:#}");
    assert_eq!(health["outbox"]["sending"], 0, "{health:#}");
    daemon.stop();

    let counts = arrival_counts(&server);
    let mut want: Vec<String> = sent.iter().map(|r| r.message_id.clone()).collect();
    want.sort();
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), want);
    assert!(counts.values().all(|n| *n == 1), "{counts:#?}");
    let rows = daemon.rows().unwrap();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert!(
        rows.iter().all(|r| r.status == "sent" && r.attempts == 1),
        "{rows:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// 3. Catch-up after a downtime

/// The engine enqueues the steps that fell due in (mark, now], and persists the new mark
/// with them. A downtime is therefore a mark left behind: the first run wakes (its mark is
/// persisted, earlier than both steps), stops, and the clock passes both steps before the
/// next start, exactly as if the server had been down over them. The restart then sends
/// only the latest missed step and records the earlier one `skipped`.
///
/// It has to wait for the real clock: editing the rule before the restart so that its steps
/// are in the past (moving the due date earlier) would put them *before* the persisted mark,
/// and the engine never looks behind its mark, so nothing at all would be sent; and steps
/// are whole minutes, so two steps between the mark and the restart take a minute or two.
#[test]
fn restart_after_a_downtime_sends_only_the_latest_missed_step() {
    let server = SmtpServer::start(SmtpOpts::default());
    let first = whole_minute_from(Utc::now() + LEAD);
    let second = first + minutes(1);
    let deadline = first + minutes(2);
    let text = config(
        &server,
        &format!(
            "{UNITS}{}",
            minute_rule("giao-ban", deadline, &["2m", "1m"], &[], "\"vp\"")
        ),
    );
    let dir = Daemon::prepare(&[("nhacviec.toml", text)]);
    assert_plan(
        &dir.path,
        "giao-ban",
        &[("vp", "before-2m", first), ("vp", "before-1m", second)],
    );
    let mut daemon = Daemon::start(dir);
    let mark = daemon.wait_until("the first wake's mark", Utc::now() + WAIT, Daemon::mark);
    daemon.stop();
    let mark_after_stop = daemon.mark().unwrap();
    assert!(
        mark_after_stop < first,
        "the premise: the mark ({}) is before both steps ({})",
        vn(mark_after_stop),
        vn(first)
    );
    assert!(mark <= mark_after_stop);
    assert_eq!(
        daemon.rows().unwrap_or_default().len(),
        0,
        "nothing due in the first run"
    );

    // The downtime: both steps pass while the daemon is stopped.
    wait_for_clock(second);
    assert!(server.captured().is_empty());
    daemon.restart();
    let rows = daemon.rows_when(
        "both steps recorded, the latest sent",
        second + LATE,
        |rows| {
            rows.len() == 2
                && rows
                    .iter()
                    .all(|r| r.status == "sent" || r.status == "skipped")
        },
    );
    let got = server.wait_for(1, WAIT);
    daemon.stop();

    let steps: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.step.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(
        steps,
        [("before-2m", "skipped"), ("before-1m", "sent")],
        "{rows:#?}"
    );
    let skipped = &rows[0];
    assert_eq!(skipped.attempts, 0, "{skipped:#?}");
    assert_eq!(skipped.sent_at, None, "{skipped:#?}");
    assert_eq!(got.len(), 1);
    assert_eq!(id_step(&got[0]), "before-1m");
    assert_eq!(server.captured().len(), 1, "the skipped step was not sent");
}

// ---------------------------------------------------------------------------------------
// 4. Reload with a broken config

/// SIGHUP with a config that fails `check` (a rule owed by an unknown unit): the error is
/// logged as FILE:LINE:COL, the old config keeps running (its next step, due after the
/// reload, arrives), the admin gets one email about it, and a second SIGHUP with the same
/// broken file logs the errors again but sends no second email.
#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_tells_the_admin_once() {
    let server = SmtpServer::start(SmtpOpts::default());
    let step = whole_minute_from(Utc::now() + LEAD);
    let deadline = step + minutes(1);
    // The digest goes to the admins too: put it half a day away from the test.
    let digest_at = (Utc::now() + chrono::Duration::hours(12)).with_timezone(&Ho_Chi_Minh);
    let good = config(
        &server,
        &format!(
            "{VHXH_VP}{}",
            minute_rule("giao-ban", deadline, &["1m"], &[], "\"vp\"")
        ),
    )
    .replace(
        "coordinator = \"vhxh\"\n",
        &format!("coordinator = \"vhxh\"\nadmins = [\"{ADMIN}\"]\n"),
    )
    .replace(
        "[digest]\nto = []\n",
        &format!(
            "[digest]\nto = []\ntime = \"{}\"\n",
            digest_at.format("%H:%M")
        ),
    );
    assert!(good.contains(ADMIN) && good.contains("time = \""));
    let broken = good.replace("units = [\"vp\"]", "units = [\"vpp\"]");
    let (line, col) = broken
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("\"vpp\"").map(|c| (i + 1, c + 1)))
        .unwrap();
    let dir = Daemon::prepare(&[("nhacviec.toml", good.clone())]);
    assert_plan(&dir.path, "giao-ban", &[("vp", "before-1m", step)]);
    let mut daemon = Daemon::start(dir);
    daemon.wait_catching(1); // SIGHUP
    daemon.wait_until("the first wake", Utc::now() + WAIT, Daemon::mark);

    const NOT_APPLIED: &str = "the new config was not applied; still running the previous one";
    std::fs::write(daemon.path("nhacviec.toml"), &broken).unwrap();
    daemon.signal("HUP");
    let (got, _) = arrivals(&mut daemon, &server, 1, Utc::now() + WAIT);
    let once = daemon.log_count(NOT_APPLIED);
    assert!(once >= 1, "{}", daemon.log());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject(), CONFIG_ERROR_SUBJECT);
    assert_eq!(got[0].rcpt_tos(), [ADMIN]);
    let text = got[0].text("text/plain");
    assert!(text.contains("`vpp`"), "the email lists the error:\n{text}");

    daemon.signal("HUP");
    daemon.wait_until("the second reload", Utc::now() + WAIT, |d| {
        (d.log_count(NOT_APPLIED) > once).then_some(())
    });
    let reloaded = Utc::now();
    assert!(
        reloaded < step,
        "the premise: both reloads ({}) before the step ({})",
        vn(reloaded),
        vn(step)
    );

    // The old config still runs: its step, due after the reloads, arrives.
    let (got, seen) = arrivals(&mut daemon, &server, 2, step + LATE);
    daemon.rows_when("the reminder sent", step + LATE, |rows| {
        rows.iter()
            .any(|r| r.step == "before-1m" && r.status == "sent")
    });
    daemon.stop();
    assert_eq!(got.len(), 2);
    assert_eq!(id_step(&got[1]), "before-1m");
    assert_eq!(got[1].rcpt_tos(), ["vp@thu.example.vn"]);
    assert!(seen <= step + LATE);

    let log = daemon.log();
    let located = format!("nhacviec.toml:{line}:{col}: error: ");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&located) && l.contains("`vpp`"))
        .collect();
    assert_eq!(
        errors.len(),
        daemon.log_count(NOT_APPLIED),
        "the error, located, at each reload:\n{log}"
    );
    assert!(errors.len() >= 2, "{log}");
    assert!(errors.iter().all(|l| l.contains("ERROR")), "{errors:#?}");

    let rows = daemon.rows().unwrap();
    let notices: Vec<&Row> = rows
        .iter()
        .filter(|r| r.template == "config_error")
        .collect();
    assert_eq!(notices.len(), 1, "one email per broken version: {rows:#?}");
    assert_eq!(notices[0].recipient, ADMIN);
    assert_eq!(notices[0].status, "sent");
    assert_eq!(
        server
            .captured()
            .iter()
            .filter(|c| c.subject() == CONFIG_ERROR_SUBJECT)
            .count(),
        1
    );
    assert_eq!(server.captured().len(), 2, "nothing else arrives");
    assert_eq!(
        daemon.config_hashes(),
        [sha256(&good)],
        "the broken config was never applied"
    );
}

// ---------------------------------------------------------------------------------------
// 5 and 8. Reload with a good config: by SIGHUP, then by a rename with no signal

/// SIGHUP with a good config that adds the unit `kt` to a rule; then, with no signal, a
/// config that also adds `hcc`, written beside the file and renamed over it as editors
/// save: the engine notices at its next wake (at most a minute away). The meeting's
/// before-1m step, due after both reloads, reaches `vp`, `kt` and `hcc`; the first start's
/// reminder to `vp` is not sent again; `config_versions` holds the three configs.
///
/// (One test for both ways of reloading, so that the module's minute waits add up to less:
/// the harness runs two tests at a time on a two-core machine.)
#[test]
fn sighup_then_a_rename_apply_good_configs_that_add_units() {
    let server = SmtpServer::start(SmtpOpts::default());
    let step = whole_minute_from(Utc::now() + LEAD);
    let deadline = step + minutes(1);
    let version = |units: &[&str], owing: &str| {
        let rules = format!(
            "{}{}",
            reminder_rule(due_day(), "\"vp\""),
            minute_rule("giao-ban", deadline, &["1m"], &[], owing)
        );
        config(&server, &format!("{}{rules}", units.concat()))
    };
    let first = version(&[VHXH_VP], "\"vp\"");
    let second = version(&[VHXH_VP, KT], "\"vp\", \"kt\"");
    let third = version(&[VHXH_VP, KT, HCC], "\"vp\", \"kt\", \"hcc\"");
    let dir = Daemon::prepare(&[("nhacviec.toml", first.clone())]);
    assert_plan(&dir.path, "giao-ban", &[("vp", "before-1m", step)]);
    let mut daemon = Daemon::start(dir);
    daemon.wait_catching(1); // SIGHUP
    let (got, _) = arrivals(&mut daemon, &server, 1, Utc::now() + WAIT);
    assert!(got[0].get("message_id").unwrap().contains(".vp.before-5d."));
    daemon.wait_rows("the first reminder sent", |rows| {
        rows.len() == 1 && rows[0].status == "sent"
    });

    // SIGHUP.
    std::fs::write(daemon.path("nhacviec.toml"), &second).unwrap();
    let before = daemon.log_count(RELOADED);
    daemon.signal("HUP");
    daemon.wait_until("the reload on SIGHUP", Utc::now() + WAIT, |d| {
        (d.log_count(RELOADED) > before).then_some(())
    });
    assert!(
        daemon.log().contains(&sha256(&second)),
        "the log names the hash"
    );

    // A rename, no signal.
    let tmp = daemon.path(".nhacviec.toml.new");
    std::fs::write(&tmp, &third).unwrap();
    let before = daemon.log_count(RELOADED);
    let renamed = Utc::now();
    assert!(
        renamed < step,
        "the premise: both new configs are in place before the step ({})",
        vn(step)
    );
    std::fs::rename(&tmp, daemon.path("nhacviec.toml")).unwrap();
    assert_plan(
        &daemon.dir.path,
        "giao-ban",
        &[
            ("hcc", "before-1m", step),
            ("kt", "before-1m", step),
            ("vp", "before-1m", step),
        ],
    );
    // The engine checks the file at each wake, and wakes at least once a minute.
    daemon.wait_until(
        "the reload after the rename",
        renamed + chrono::Duration::seconds(70),
        |d| (d.log_count(RELOADED) > before).then_some(()),
    );
    assert!(
        daemon.log().contains(&sha256(&third)),
        "the log names the hash"
    );
    assert_eq!(daemon.log_count("SIGHUP"), 1, "{}", daemon.log());

    let (got, seen) = arrivals(&mut daemon, &server, 4, step + LATE);
    let rows = daemon.rows_when("the meeting sent to three units", step + LATE, |rows| {
        rows.iter()
            .filter(|r| r.step == "before-1m" && r.status == "sent")
            .count()
            == 3
    });
    daemon.stop();
    assert!(seen <= step + LATE);
    let mut to: Vec<String> = got[1..].iter().flat_map(Captured::rcpt_tos).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "hcc@thu.example.vn",
            "kt@thu.example.vn",
            "vp@thu.example.vn"
        ]
    );
    assert!(got[1..].iter().all(|c| id_step(c) == "before-1m"));
    for r in rows.iter().filter(|r| r.step == "before-1m") {
        assert!(at_ms(r.created_at) >= step, "{r:#?}");
    }
    let counts = arrival_counts(&server);
    assert_eq!(counts.len(), 4, "{counts:#?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "nothing twice: {counts:#?}"
    );
    assert_eq!(server.captured().len(), 4, "nothing else arrives");
    let rows = daemon.rows().unwrap();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:#?}");
    assert_eq!(
        daemon.config_hashes(),
        [sha256(&first), sha256(&second), sha256(&third)]
    );
}

const RELOADED: &str = "config reloaded";

// ---------------------------------------------------------------------------------------
// 6. SIGTERM, JSON logs

/// Idle (its first wake reported by `/healthz`), the daemon exits 0 within 10 s of SIGTERM,
/// and with `--log-format json` every line it logged is a JSON object with a level and a
/// message.
#[test]
fn sigterm_while_idle_exits_0_and_json_logs_parse() {
    let server = SmtpServer::start(SmtpOpts::default());
    let port = free_port();
    let later = whole_minute_from(Utc::now() + chrono::Duration::days(2));
    let text = on_port(
        &config(
            &server,
            &format!(
                "{UNITS}{}",
                minute_rule("giao-ban", later, &["1m"], &[], "\"vp\"")
            ),
        ),
        port,
    );
    let dir = Daemon::prepare(&[("nhacviec.toml", text)]);
    let started = Utc::now();
    let mut daemon = Daemon::start_with(dir, &["--log-format", "json"]);
    let health = daemon.woke_since(port, started);
    assert_eq!(health["status"], "ok", "{health:#}");
    daemon.wait_catching(15);

    let (status, took) = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{status}\n{}", daemon.log());
    assert!(took < STOP_WITHIN, "{took:?}");
    assert_eq!(
        std::fs::read_to_string(daemon.path("run.stdout")).unwrap(),
        ""
    );
    assert!(server.captured().is_empty());

    let log = daemon.log();
    let mut messages = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- the log\n{log}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        let message = v["fields"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no fields.message: {line}"));
        messages.push(message.to_string());
    }
    for must in ["nhacviec started", "shutting down", "stopped"] {
        assert!(
            messages.iter().any(|m| m == must),
            "{must:?} in {messages:#?}"
        );
    }
    let started_line: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["fields"]["message"] == "nhacviec started")
        .unwrap();
    assert_eq!(
        started_line["fields"]["listen"],
        format!("127.0.0.1:{port}"),
        "{started_line:#}"
    );
}

// ---------------------------------------------------------------------------------------
// 7. /healthz and /metrics

/// Over real HTTP: `/healthz` is 200 JSON with the database, the last wake, the next step
/// and the outbox; `/metrics` is Prometheus text whose counters match the database after
/// the first start's sends.
#[test]
fn healthz_and_metrics_match_the_database() {
    let server = SmtpServer::start(SmtpOpts::default());
    let port = free_port();
    let due = due_day();
    let later = whole_minute_from(Utc::now() + chrono::Duration::days(2));
    let text = on_port(
        &config(
            &server,
            &format!(
                "{UNITS}{}{}",
                reminder_rule(due, "\"vp\", \"kt\""),
                minute_rule("giao-ban", later, &["1m"], &[], "\"vp\"")
            ),
        ),
        port,
    );
    let dir = Daemon::prepare(&[("nhacviec.toml", text)]);
    let started = Utc::now();
    let mut daemon = Daemon::start(dir);
    daemon.wait_rows("three rows sent", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == "sent")
    });
    server.wait_for(3, WAIT);
    let health = daemon.woke_since(port, started);

    let r = get(port, "/healthz").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type.as_deref(), Some("application/json"), "{r:?}");
    let h: Value = serde_json::from_str(&r.body).unwrap();
    let fields: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
    for f in ["status", "database", "last_wake", "next", "outbox"] {
        assert!(fields.contains(&f), "{f} in {h:#}");
    }
    assert_eq!(h["status"], "ok");
    assert_eq!(h["database"], "ok");
    let last_wake = DateTime::parse_from_rfc3339(h["last_wake"].as_str().unwrap()).unwrap();
    assert!(last_wake >= started && last_wake <= Utc::now(), "{h:#}");
    let next = h["next"].as_str().unwrap_or_else(|| panic!("{h:#}"));
    let step = (later - minutes(1)).with_timezone(&Ho_Chi_Minh);
    assert_eq!(
        next,
        format!(
            "before-1m of giao-ban/{} at {}",
            later.with_timezone(&Ho_Chi_Minh).format("%Y-%m-%d"),
            step.format("%a %d/%m/%Y %H:%M")
        ),
        "{h:#}"
    );
    assert_eq!(
        h["outbox"],
        serde_json::json!({"pending": 0, "sending": 0, "failed": 0})
    );
    assert!(health["last_wake"].is_string());

    let r = get(port, "/metrics").unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{r:?}"
    );
    let m = &r.body;
    let conn = daemon.db();
    let db = |sql: &str| count(&conn, sql) as f64;
    assert_eq!(
        sample(m, "nhacviec_messages_sent_total{channel=\"email\"}"),
        db("SELECT COUNT(*) FROM messages WHERE channel = 'email' AND status = 'sent'")
    );
    assert_eq!(
        sample(m, "nhacviec_messages_sent_total{channel=\"email\"}"),
        3.0
    );
    assert_eq!(
        sample(m, "nhacviec_messages_failed_total{channel=\"email\"}"),
        db("SELECT COUNT(*) FROM messages WHERE channel = 'email' AND status = 'failed'")
    );
    assert_eq!(
        sample(m, "nhacviec_outbox_depth"),
        db("SELECT COUNT(*) FROM messages WHERE status IN ('pending', 'sending')")
    );
    for action in ["seen", "done"] {
        assert_eq!(
            sample(m, &format!("nhacviec_acks_total{{action=\"{action}\"}}")),
            db(&format!(
                "SELECT COUNT(*) FROM acks WHERE action = '{action}'"
            ))
        );
    }
    // It may have woken again since /healthz answered.
    let wake_seconds = sample(m, "nhacviec_last_wake_seconds") as i64;
    assert!(
        wake_seconds >= last_wake.timestamp() && wake_seconds <= Utc::now().timestamp(),
        "{m}"
    );
    for line in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let kind = line.rsplit(' ').next().unwrap();
        assert!(["counter", "gauge"].contains(&kind), "{line}");
    }
    drop(conn);

    let r = get(port, "/nothing-here").unwrap();
    assert_eq!(r.status, 404, "{r:?}");
    daemon.stop();
}
