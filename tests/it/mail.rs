//! Email end to end: the real `nhacviec` against the real SMTP test server
//! (`tests/smtp/server.py`, see [`crate::smtp`]), and the file transport.
//!
//! - `send-test` over plain SMTP, STARTTLS + AUTH with a private CA, and implicit TLS + AUTH:
//!   the message as Python's MIME parser reads it (subject, parts, headers, no defects); a
//!   wrong password and a refused connection fail with exit 1 and say why.
//! - `run`, the daemon, spawned in a temporary directory ([`Daemon`]) and stopped with
//!   SIGTERM: reminders due at its first start arrive with the right recipients, subjects,
//!   bodies and ack links, and the outbox rows (`messages`, read from the SQLite file,
//!   read-only) say `sent`; a 451, a 550, a connection cut at the end of DATA and a wrong
//!   password leave the rows in the states and with the retry times of DESIGN §5.
//! - `preview`: the text output pinned, the escalated copy, an unknown step, `--format eml`.
//! - The file transport: one `.eml` per message, named after its Message-ID.
//!
//! Times are relative to now, because the daemon reads the real clock: [`reminder_rule`] is
//! a one-off rule due three days from today whose only step, five days before, is already
//! past, so the daemon's first start sends it at once. [`plan_premise`] checks that with
//! `nhacviec plan` before a daemon starts, whatever the weekday or holidays around today.
//!
//! Waiting is always for a condition (a row's state in the database, a message at the
//! server, the daemon handling SIGTERM) with a deadline, never a fixed sleep.
//!
//! Display names: lettre splits a long UTF-8 name into several RFC 2047 encoded words, even
//! inside a word; RFC 2047 §6.2 says the white space between encoded words is dropped, but
//! Python's `email.policy.default` keeps it in address headers ("Thử nghiệ m"), so names
//! are decoded here with [`decode_words`] (Python's `email.header`, which follows the RFC).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc, Weekday};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

use crate::smtp::{Captured, Mode, SmtpOpts, SmtpServer};
use crate::{REPO, TempDir, Test, lines, read, today_in_vietnam};

/// How long a message may take to arrive, or a row to reach a state.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// How long the daemon may take to exit after SIGTERM (DESIGN §5).
pub(crate) const STOP_WITHIN: Duration = Duration::from_secs(10);

const ORG: &str = "Ủy ban nhân dân phường Thử nghiệm";
const FROM_NAME: &str = "Nhắc việc UBND phường Thử nghiệm";
const FROM_ADDR: &str = "nhacviec@thu.example.vn";
const DOMAIN: &str = "thu.example.vn";
const PUBLIC_URL: &str = "https://nhacviec.thu.example.vn";
const COORDINATOR_ADDR: &str = "vhxh@thu.example.vn";

/// The SMTP user and password of the servers with AUTH.
const USER: &str = "nhacviec";
const PASSWORD: &str = "mật khẩu đúng";

/// `[organization]`: Phòng Văn hóa – Xã hội coordinates (so it is the Reply-To).
pub(crate) fn organization() -> String {
    format!(
        "[organization]\nname = \"{ORG}\"\npublic_url = \"{PUBLIC_URL}\"\ncoordinator = \"vhxh\"\n\n# No daily digest: these tests count reminders.\n[digest]\nto = []\n\n# Any free port: tests run daemons side by side.\n[server]\nlisten = \"127.0.0.1:0\"\n\n"
    )
}

/// The units: `vp` (one address), `kt` (two addresses, escalates to `lanh-dao`), the
/// coordinator `vhxh` and the leadership `lanh-dao`.
pub(crate) const UNITS: &str = r#"
[[unit]]
id = "vhxh"
name = "Phòng Văn hóa – Xã hội"
email = ["vhxh@thu.example.vn"]

[[unit]]
id = "vp"
name = "Văn phòng HĐND và UBND phường"
email = ["vp@thu.example.vn"]

[[unit]]
id = "kt"
name = "Phòng Kinh tế – Hạ tầng – Đô thị"
email = ["kt@thu.example.vn", "kt.pho@thu.example.vn"]
escalate_to = ["lanh-dao"]

[[unit]]
id = "lanh-dao"
name = "Lãnh đạo UBND phường"
email = ["lanhdao@thu.example.vn"]
"#;

/// How the config reaches the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    /// `security = "none"` to 127.0.0.1, no AUTH.
    None,
    /// `security = "starttls"` to `localhost`, AUTH, the server's CA in `ca_file`.
    StartTls,
    /// `security = "tls"` to 127.0.0.1, AUTH, the server's CA in `ca_file`.
    Tls,
}

impl Security {
    /// The host the config names: the test certificate is for both.
    fn host(self) -> &'static str {
        match self {
            Security::StartTls => "localhost",
            _ => "127.0.0.1",
        }
    }

    /// What `send-test` and the log call the transport.
    fn describe(self, port: u16) -> String {
        let how = match self {
            Security::None => "no encryption",
            Security::StartTls => "STARTTLS",
            Security::Tls => "TLS",
        };
        format!("SMTP {}:{port} ({how})", self.host())
    }
}

/// `[email]` with `[email.smtp]` to a port; with TLS, `ca_file` and AUTH from
/// `password_file` (the files are [`smtp_files`]).
pub(crate) fn smtp_email(port: u16, security: Security) -> String {
    let mut s = format!(
        "[email]\nfrom = \"{FROM_NAME} <{FROM_ADDR}>\"\ntransport = \"smtp\"\n\n[email.smtp]\n\
         host = \"{}\"\nport = {port}\n",
        security.host()
    );
    s.push_str(match security {
        Security::None => "security = \"none\"\n",
        Security::StartTls => "security = \"starttls\"\n",
        Security::Tls => "security = \"tls\"\n",
    });
    if security != Security::None {
        s.push_str(&format!(
            "username = \"{USER}\"\npassword_file = \"secrets/smtp-password\"\nca_file = \"certs/ca.pem\"\n"
        ));
    }
    s + "\n"
}

/// The files [`smtp_email`] names: the server's CA and the password (with the newline an
/// editor leaves, which must not count).
fn smtp_files(server: &SmtpServer, password: &str) -> Vec<(&'static str, String)> {
    let mut files = vec![("secrets/smtp-password", format!("{password}\n"))];
    if let Some(ca) = &server.ca_pem {
        files.push(("certs/ca.pem", read(ca)));
    }
    files
}

/// A server of this kind; with TLS it requires AUTH with [`USER`] and [`PASSWORD`].
fn server_for(security: Security, faults: SmtpOpts) -> SmtpServer {
    let mode = match security {
        Security::None => Mode::Plain,
        Security::StartTls => Mode::StartTls,
        Security::Tls => Mode::Tls,
    };
    SmtpServer::start(SmtpOpts {
        mode,
        auth: (mode != Mode::Plain).then(|| (USER.to_string(), PASSWORD.to_string())),
        require_tls: mode == Mode::StartTls,
        ..faults
    })
}

const TITLE: &str = "Tuyên truyền kỷ niệm Ngày thành lập phường";
const REFERENCE: &str = "Chương trình 05/CTr-UBND, mục III";

/// A one-off rule owed by `units`, due on `due`, with one reminder five days before the
/// last day (08:00, moved to the working day before if that is a day off).
pub(crate) fn reminder_rule(due: NaiveDate, units: &str) -> String {
    format!(
        r#"
[policy.nhac-truoc]
before = ["5d"]
on_due = false
after = []

[[rule]]
id = "tuyen-truyen"
kind = "task"
title = "{TITLE}"
reference = "{REFERENCE}"
period = "once"
due = {{ date = "{due}" }}
units = [{units}]
submit_to = "vhxh"
policy = "nhac-truoc"
"#
    )
}

/// The due day of [`reminder_rule`]: three days from today in Vietnam, so its deadline
/// (the end of that day) is ahead and its before-5d step is behind.
pub(crate) fn due_day() -> NaiveDate {
    today_in_vietnam() + chrono::Duration::days(3)
}

/// "thứ Hai" … "Chủ nhật", written here independently of `src/vi.rs`.
fn weekday_vi(d: NaiveDate) -> &'static str {
    match d.weekday() {
        Weekday::Mon => "thứ Hai",
        Weekday::Tue => "thứ Ba",
        Weekday::Wed => "thứ Tư",
        Weekday::Thu => "thứ Năm",
        Weekday::Fri => "thứ Sáu",
        Weekday::Sat => "thứ Bảy",
        Weekday::Sun => "Chủ nhật",
    }
}

/// `03/10/2025`.
fn dmy(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// What the reminder of [`reminder_rule`] must say, from `nhacviec plan`.
#[derive(Debug)]
pub(crate) struct Premise {
    /// The period id (the due day): obligations are `tuyen-truyen/<period>/<unit>`.
    pub(crate) period: String,
    /// "hạn ngày dd/mm/yyyy".
    period_label: String,
    /// The last working day on or before the due day.
    last_day: NaiveDate,
}

/// Runs `nhacviec plan --format json` on the config in `dir` and checks what the daemon
/// tests rely on: one occurrence of `tuyen-truyen`, its deadline at the end of `due`
/// (still ahead), and one step, `before-5d`, already past, for every unit.
pub(crate) fn plan_premise(dir: &Path, due: NaiveDate) -> Premise {
    let from = today_in_vietnam() - chrono::Duration::days(30);
    let out = Command::new(env!("CARGO_BIN_EXE_nhacviec"))
        .current_dir(dir)
        .env_remove("NHACVIEC_CONFIG")
        .args(["--config", "nhacviec.toml", "plan", "--format", "json"])
        .args(["--from", &from.to_string(), "--days", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let [occ] = &plan[..] else {
        panic!("expected one occurrence, the plan is {plan:#?}");
    };
    let deadline = instant(&occ["deadline"]);
    let end_of_due = due.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
    assert_eq!(deadline.naive_local(), end_of_due, "{occ:#}");
    assert!(deadline > Utc::now(), "the deadline must be ahead: {occ:#}");
    for ob in occ["obligations"].as_array().unwrap() {
        let steps = ob["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1, "{occ:#}");
        assert_eq!(steps[0]["step"], "before-5d", "{occ:#}");
        let at = instant(&steps[0]["at"]);
        assert!(
            at < Utc::now(),
            "the premise of these tests is a step already past at the first start: {occ:#}"
        );
    }
    Premise {
        period: occ["period"].as_str().unwrap().to_string(),
        period_label: occ["period_label"].as_str().unwrap().to_string(),
        last_day: NaiveDate::parse_from_str(occ["last_day"].as_str().unwrap(), "%Y-%m-%d").unwrap(),
    }
}

fn instant(v: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Helpers: the daemon, its database, Python's MIME parser.

/// One outbox row, as the `messages` table holds it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) obligation: String,
    pub(crate) step: String,
    pub(crate) channel: String,
    pub(crate) recipient: String,
    pub(crate) template: String,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) created_at: i64,
    pub(crate) next_attempt_at: Option<i64>,
    pub(crate) first_attempt_at: Option<i64>,
    pub(crate) last_attempt_at: Option<i64>,
    pub(crate) sent_at: Option<i64>,
    pub(crate) subject: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) message_id: String,
}

/// `nhacviec run` in a temporary directory holding `nhacviec.toml` and its files; killed
/// (SIGKILL) when dropped still running, so a failing test leaves no process behind.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) dir: TempDir,
}

impl Daemon {
    /// Writes the files into a fresh directory (`nhacviec.toml` among them).
    pub(crate) fn prepare(files: &[(&str, String)]) -> TempDir {
        let dir = TempDir::new();
        for (name, text) in files {
            let path = dir.path.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        dir
    }

    /// Starts `nhacviec --config nhacviec.toml run` in `dir`, stderr (its log) to a file.
    pub(crate) fn start(dir: TempDir) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_nhacviec"))
            .current_dir(&dir.path)
            .env_remove("NHACVIEC_CONFIG")
            .env_remove("RUST_LOG")
            .args(["--config", "nhacviec.toml", "run"])
            .stdin(Stdio::null())
            .stdout(File::create(dir.path.join("run.stdout")).unwrap())
            .stderr(File::create(dir.path.join("run.stderr")).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// The daemon's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.path("run.stderr")).unwrap_or_default()
    }

    /// The outbox rows, or `None` while the database or its tables do not exist yet.
    pub(crate) fn rows(&self) -> Option<Vec<Row>> {
        let db = self.path("var/nhacviec.db");
        if !db.exists() {
            return None;
        }
        let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        let mut st = conn
            .prepare(
                "SELECT obligation, step, channel, recipient, template, status, attempts,
                        created_at, next_attempt_at, first_attempt_at, last_attempt_at,
                        sent_at, subject, last_error, message_id
                   FROM messages ORDER BY id",
            )
            .ok()?;
        let rows = st
            .query_map([], |r| {
                Ok(Row {
                    obligation: r.get(0)?,
                    step: r.get(1)?,
                    channel: r.get(2)?,
                    recipient: r.get(3)?,
                    template: r.get(4)?,
                    status: r.get(5)?,
                    attempts: r.get(6)?,
                    created_at: r.get(7)?,
                    next_attempt_at: r.get(8)?,
                    first_attempt_at: r.get(9)?,
                    last_attempt_at: r.get(10)?,
                    sent_at: r.get(11)?,
                    subject: r.get(12)?,
                    last_error: r.get(13)?,
                    message_id: r.get(14)?,
                })
            })
            .ok()?;
        rows.collect::<Result<Vec<_>, _>>().ok()
    }

    /// Waits until the outbox has rows and `done` holds for them; returns them. Panics,
    /// showing the rows and the log, after [`WAIT`] or if the daemon exits.
    pub(crate) fn wait_rows(&mut self, what: &str, done: impl Fn(&[Row]) -> bool) -> Vec<Row> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rows = self.rows();
            if let Some(rows) = &rows
                && !rows.is_empty()
                && done(rows)
            {
                return rows.clone();
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "waited {WAIT:?} for {what} (the daemon {})\n--- rows\n{rows:#?}\n--- its log\n{}",
                    exited.map_or("still runs".to_string(), |s| format!("exited: {s}")),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the daemon handles SIGTERM (Linux: the SigCgt mask of
    /// `/proc/PID/status`): it registers its handler first thing, but a signal sent before
    /// the process got that far would still kill it.
    fn wait_handling_sigterm(&mut self) {
        let status = format!("/proc/{}/status", self.child.id());
        let deadline = Instant::now() + WAIT;
        loop {
            let caught = std::fs::read_to_string(&status)
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("SigCgt:"))?.to_string();
                    u64::from_str_radix(line["SigCgt:".len()..].trim(), 16).ok()
                })
                .unwrap_or(0);
            const SIGTERM: u32 = 15;
            if caught & (1 << (SIGTERM - 1)) != 0 {
                return;
            }
            if self.child.try_wait().unwrap().is_some() || Instant::now() >= deadline {
                panic!(
                    "the daemon does not handle SIGTERM after {WAIT:?}\n--- its log\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM; returns how the daemon exited and how long it took (at most
    /// [`STOP_WITHIN`], else it is killed and the test fails).
    pub(crate) fn terminate(&mut self) -> (ExitStatus, Duration) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill` (procps) to send SIGTERM: {e}"));
        assert!(sent.success(), "kill -TERM {pid}: {sent}");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > STOP_WITHIN {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the daemon did not exit within {STOP_WITHIN:?} of SIGTERM\n--- its log\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until it handles SIGTERM, sends it, and checks it exits 0 within 10 s.
    pub(crate) fn stop(&mut self) {
        self.wait_handling_sigterm();
        let (status, took) = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "the daemon exited with {status} after SIGTERM\n--- its log\n{}",
            self.log()
        );
        assert!(took < STOP_WITHIN, "{took:?}");
        let log = self.log();
        assert!(log.contains("shutting down"), "{log}");
        assert_eq!(read(&self.path("run.stdout")), "", "the log goes to stderr");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The harness's Python, which has `tests/smtp/server.py`'s packages.
fn python() -> std::ffi::OsString {
    std::env::var_os("NHACVIEC_TEST_PYTHON")
        .expect("NHACVIEC_TEST_PYTHON is not set: run the tests with `bash scripts/test.sh`")
}

/// Runs a Python snippet with arguments; returns its stdout.
fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parses a whole message (a file-transport `.eml`, `preview --format eml`) with the SMTP
/// test server's own summary, so it reads as a [`Captured`] message.
fn parse_eml(eml: &[u8]) -> Captured {
    let tmp = TempDir::new();
    let path = tmp.path.join("m.eml");
    std::fs::write(&path, eml).unwrap();
    let code = "import json, sys, types\n\
                sys.path.insert(0, sys.argv[1])\n\
                import server\n\
                env = types.SimpleNamespace(original_content=open(sys.argv[2], 'rb').read(),\n\
                                            mail_from=None, rcpt_tos=[])\n\
                print(json.dumps(server.summary(env), ensure_ascii=False))\n";
    let smtp_dir = Path::new(REPO).join("tests/smtp");
    let json = run_python(code, &[smtp_dir.to_str().unwrap(), path.to_str().unwrap()]);
    Captured {
        n: 0,
        eml: eml.to_vec(),
        json: serde_json::from_str(&json).unwrap(),
    }
}

/// Decodes RFC 2047 words in a raw header value, as the RFC says (white space between
/// adjacent encoded words dropped): `=?utf-8?b?...?= <a@b>` → `Tên <a@b>`.
fn decode_words(raw: &str) -> String {
    let code = "import sys, email.header\n\
                print(str(email.header.make_header(email.header.decode_header(sys.argv[1]))), end='')\n";
    run_python(code, &[raw])
}

/// The one raw value of a header; panics unless there is exactly one.
fn one_header(m: &Captured, name: &str) -> String {
    let values = m.header(name);
    assert_eq!(values.len(), 1, "{name}: {values:?} in {:#}", m.json);
    values[0].clone()
}

/// The ack link in a text: `{PUBLIC_URL}/a/<32 lowercase hex>`; panics unless there is
/// exactly one distinct link.
fn ack_link(text: &str) -> String {
    let prefix = format!("{PUBLIC_URL}/a/");
    let mut links: Vec<String> = text
        .match_indices(&prefix)
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<')
                .collect()
        })
        .collect();
    links.sort();
    links.dedup();
    assert_eq!(links.len(), 1, "one ack link expected in\n{text}");
    let token = &links[0][prefix.len()..];
    assert!(
        token.len() == 32
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a 128-bit token: {}",
        links[0]
    );
    links.pop().unwrap()
}

/// The headers every message carries (DESIGN §6), checked on one parsed message.
fn assert_common_headers(m: &Captured) {
    assert_eq!(one_header(m, "MIME-Version"), "1.0");
    assert_eq!(one_header(m, "Auto-Submitted"), "auto-generated");
    assert_eq!(
        one_header(m, "List-Id"),
        format!("nhacviec <nhacviec.{DOMAIN}>")
    );
    assert_eq!(m.get("reply_to"), Some(COORDINATOR_ADDR));
    let from = one_header(m, "From");
    assert!(from.is_ascii(), "the From header is encoded: {from}");
    assert_eq!(decode_words(&from), format!("{FROM_NAME} <{FROM_ADDR}>"));
    let id = m.get("message_id").unwrap();
    assert!(
        id.starts_with('<') && id.ends_with(&format!("@{DOMAIN}>")),
        "Message-ID on our own domain: {id}"
    );
    assert!(m.get("date").is_some());
    let subject = one_header(m, "Subject");
    assert!(
        subject.is_ascii(),
        "the Subject header is encoded: {subject}"
    );
    assert_eq!(m.json["content_type"], "multipart/alternative");
    let parts = m.parts();
    let types: Vec<_> = parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert!(
        parts.iter().all(|p| p.charset.as_deref() == Some("utf-8")),
        "{parts:#?}"
    );
    assert_eq!(m.defects(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// send-test

/// `send-test` through a server of this kind: the exit, the stdout line, the message.
fn send_test_through(security: Security) -> (SmtpServer, Captured) {
    let server = server_for(security, SmtpOpts::default());
    let mut test = Test::new().config(&format!(
        "{}{}{UNITS}{}",
        organization(),
        smtp_email(server.port, security),
        reminder_rule(due_day(), "\"vp\"")
    ));
    for (name, text) in smtp_files(&server, PASSWORD) {
        test = test.file(name, &text);
    }
    let to = "thu.nghiem@thu.example.vn";
    let out = test.args(&["send-test", "--to", to]).stderr("").run();
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let m = got.into_iter().next().unwrap();
    let id = m.get("message_id").unwrap().to_string();
    assert_eq!(
        out.stdout,
        format!(
            "sent a test email to {to} via {}; Message-ID {id}\n",
            security.describe(server.port)
        )
    );
    assert!(id.starts_with("<test."), "{id}");

    assert_eq!(m.subject(), format!("[Nhắc việc] Thư thử nghiệm từ {ORG}"));
    assert_common_headers(&m);
    assert_eq!(m.rcpt_tos(), [to]);
    assert_eq!(m.get("to"), Some(to));
    assert_eq!(m.get("mail_from"), Some(FROM_ADDR));
    let text = m.text("text/plain");
    assert!(
        text.starts_with(&format!(
            "Đây là thư thử nghiệm của hệ thống nhắc việc {ORG}, gửi lúc "
        )),
        "{text}"
    );
    let transport = format!(
        "cấu hình gửi thư ({}) đã hoạt động",
        security.describe(server.port)
    );
    assert!(text.contains(&transport), "{text}");
    let html = m.text("text/html");
    assert!(html.contains(&format!("<strong>{ORG}</strong>")), "{html}");
    assert!(html.contains(&transport), "{html}");
    (server, m)
}

#[test]
fn send_test_plain_smtp() {
    let (server, _) = send_test_through(Security::None);
    assert_eq!(server.log()[0]["tls"], false);
    assert!(server.events("auth").is_empty());
}

#[test]
fn send_test_starttls_with_auth_and_a_private_ca() {
    let (server, _) = send_test_through(Security::StartTls);
    let names: Vec<_> = server
        .log()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["connect", "starttls", "auth", "mail", "rcpt", "data"]
    );
    assert_eq!(server.log()[0]["tls"], false);
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], true);
    assert_eq!(auth["user"], USER);
}

#[test]
fn send_test_implicit_tls_with_auth() {
    let (server, _) = send_test_through(Security::Tls);
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": true})
    );
    assert!(server.events("starttls").is_empty());
    assert_eq!(server.events("auth")[0]["ok"], true);
}

#[test]
fn send_test_with_a_wrong_password_names_the_failure_and_the_keys() {
    let server = server_for(Security::StartTls, SmtpOpts::default());
    let mut test = Test::new().config(&format!(
        "{}{}{UNITS}{}",
        organization(),
        smtp_email(server.port, Security::StartTls),
        reminder_rule(due_day(), "\"vp\"")
    ));
    for (name, text) in smtp_files(&server, "mật khẩu sai") {
        test = test.file(name, &text);
    }
    let to = "thu.nghiem@thu.example.vn";
    let out = test
        .args(&["send-test", "--to", to])
        .stdout("")
        .status(1)
        .run();
    let want = format!(
        "error: the test email to {to} was not sent via {}",
        Security::StartTls.describe(server.port)
    );
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
    for must in [
        "SMTP authentication failed",
        "535",
        "Authentication credentials invalid",
        "check `email.smtp.username` and the password in `email.smtp.password_file` (or `password_env`)",
    ] {
        assert!(out.stderr.contains(must), "{must:?} in {}", out.stderr);
    }
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("mật khẩu"), "no password in errors");
    assert_eq!(server.events("auth")[0]["ok"], false);
    assert!(server.events("mail").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn send_test_without_a_server_says_the_connection_was_refused() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = "thu.nghiem@thu.example.vn";
    let out = Test::new()
        .config(&format!(
            "{}{}{UNITS}{}",
            organization(),
            smtp_email(port, Security::None),
            reminder_rule(due_day(), "\"vp\"")
        ))
        .args(&["send-test", "--to", to])
        .stdout("")
        .status(1)
        .run();
    let want = format!(
        "error: the test email to {to} was not sent via {}",
        Security::None.describe(port)
    );
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// The daemon against a real server

#[test]
fn run_sends_the_reminders_due_at_first_start() {
    let server = server_for(Security::None, SmtpOpts::default());
    let due = due_day();
    let mut files = vec![(
        "nhacviec.toml",
        format!(
            "{}{}{UNITS}{}",
            organization(),
            smtp_email(server.port, Security::None),
            reminder_rule(due, "\"vp\", \"kt\"")
        ),
    )];
    files.extend(smtp_files(&server, PASSWORD));
    let dir = Daemon::prepare(&files);
    let premise = plan_premise(&dir.path, due);
    assert_eq!(premise.period, due.to_string());
    assert_eq!(premise.period_label, format!("hạn ngày {}", dmy(due)));
    let mut daemon = Daemon::start(dir);

    // vp's one address and kt's two; not the leadership (a before step is not escalated),
    // not the coordinator (it owes nothing).
    let got = server.wait_for(3, WAIT);
    let rows = daemon.wait_rows("three rows sent", |rows| {
        rows.iter().all(|r| r.status == "sent")
    });
    daemon.stop();
    assert_eq!(server.captured().len(), 3);
    assert_eq!(server.events("data").len(), 3);

    let ob = |unit: &str| format!("tuyen-truyen/{}/{unit}", premise.period);
    let mut want = vec![
        (ob("vp"), "vp@thu.example.vn"),
        (ob("kt"), "kt@thu.example.vn"),
        (ob("kt"), "kt.pho@thu.example.vn"),
    ];
    let mut have: Vec<_> = rows
        .iter()
        .map(|r| (r.obligation.clone(), r.recipient.as_str()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
    for r in &rows {
        assert_eq!(
            (r.step.as_str(), r.channel.as_str(), r.template.as_str()),
            ("before-5d", "email", "before"),
            "{r:#?}"
        );
        assert_eq!(r.attempts, 1, "{r:#?}");
        assert_eq!(r.last_error, None, "{r:#?}");
        assert_eq!(r.next_attempt_at, None, "{r:#?}");
        let (first, last, sent) = (
            r.first_attempt_at.unwrap(),
            r.last_attempt_at.unwrap(),
            r.sent_at.unwrap(),
        );
        assert!(
            r.created_at <= first && first == last && last <= sent,
            "{r:#?}"
        );
    }

    // A one-off's period label ("hạn ngày …") is left out of the subject, which has the date.
    let subject = format!(
        "[Nhắc việc] {TITLE} – hạn {} {}",
        weekday_vi(premise.last_day),
        dmy(premise.last_day)
    );
    let deadline_words = format!(
        "hết ngày {} ({}); hạn làm việc cuối: {} {}",
        dmy(due),
        weekday_vi(due),
        weekday_vi(premise.last_day),
        dmy(premise.last_day)
    );
    let unit_name = |id: &str| match id {
        "vp" => "Văn phòng HĐND và UBND phường",
        _ => "Phòng Kinh tế – Hạ tầng – Đô thị",
    };
    let mut links = std::collections::BTreeMap::new();
    for m in &got {
        let rcpt = m.rcpt_tos();
        let [addr] = &rcpt[..] else {
            panic!("one recipient per message: {rcpt:?}");
        };
        let row = rows.iter().find(|r| &r.recipient == addr).unwrap();
        let unit = row.obligation.rsplit('/').next().unwrap();
        assert_common_headers(m);
        assert_eq!(m.subject(), subject);
        assert_eq!(row.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(m.get("message_id"), Some(row.message_id.as_str()));
        assert!(
            row.message_id.starts_with(&format!(
                "<tuyen-truyen.{}.{unit}.before-5d.r",
                premise.period
            )),
            "the Message-ID names the message: {}",
            row.message_id
        );
        assert_eq!(
            decode_words(&one_header(m, "To")),
            format!("{} <{addr}>", unit_name(unit))
        );
        let text = m.text("text/plain");
        let html = m.text("text/html");
        for body in [&text, &html] {
            for must in [
                format!("Kính gửi: {}", unit_name(unit)),
                format!("{TITLE}\" {}", premise.period_label),
                deadline_words.clone(),
                REFERENCE.to_string(),
                "Phòng Văn hóa – Xã hội".to_string(),
            ] {
                assert!(body.contains(&must), "{must:?} missing in\n{body}");
            }
        }
        assert!(
            text.contains(&format!("Đơn vị thực hiện: {}\n", unit_name(unit))),
            "{text}"
        );
        assert!(
            text.contains(&format!("Thời hạn: {deadline_words}\n")),
            "{text}"
        );
        let link = ack_link(&text);
        assert_eq!(ack_link(&html), link, "the same link in both parts");
        let known = links.entry(row.obligation.clone()).or_insert(link.clone());
        assert_eq!(*known, link, "one link per obligation");
    }
    assert_eq!(links.len(), 2);
    assert_ne!(
        links[&ob("vp")],
        links[&ob("kt")],
        "each obligation has its own link"
    );

    // The token key: beside the database, private; the database holds each token's
    // SHA-256 only, never the token.
    let key = daemon.path("var/nhacviec.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let conn = Connection::open_with_flags(
        daemon.path("var/nhacviec.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    for (obligation, link) in &links {
        let token = link.rsplit('/').next().unwrap();
        let stored: Vec<u8> = conn
            .query_row(
                "SELECT token_hash FROM obligations WHERE key = ?1",
                [obligation],
                |r| r.get(0),
            )
            .optional()
            .unwrap()
            .unwrap_or_else(|| panic!("no obligation {obligation}"));
        use sha2::Digest as _;
        assert_eq!(stored, sha2::Sha256::digest(token.as_bytes()).to_vec());
        for file in [
            "var/nhacviec.db",
            "var/nhacviec.db-wal",
            "var/nhacviec.db-shm",
        ] {
            let Ok(bytes) = std::fs::read(daemon.path(file)) else {
                continue;
            };
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{file} holds the token {token}"
            );
        }
        assert!(!daemon.log().contains(token), "the log holds the token");
    }
}

/// The daemon with one unit and one address against a server with these faults (and,
/// with TLS, AUTH with `password`): waits until the one message has been tried once,
/// stops the daemon (exit 0 within 10 s of SIGTERM), returns the row and the server.
fn one_failed_attempt(security: Security, faults: SmtpOpts, password: &str) -> (Row, SmtpServer) {
    let server = server_for(security, faults);
    let due = due_day();
    let mut files = vec![(
        "nhacviec.toml",
        format!(
            "{}{}{UNITS}{}",
            organization(),
            smtp_email(server.port, security),
            reminder_rule(due, "\"vp\"")
        ),
    )];
    files.extend(smtp_files(&server, password));
    let dir = Daemon::prepare(&files);
    plan_premise(&dir.path, due);
    let mut daemon = Daemon::start(dir);
    let rows = daemon.wait_rows("one attempt", |rows| {
        rows.iter()
            .all(|r| r.attempts >= 1 && r.status != "sending" && r.last_error.is_some())
    });
    daemon.stop();
    let [row] = &rows[..] else {
        panic!("one row expected: {rows:#?}");
    };
    assert_eq!(row.attempts, 1, "{row:#?}");
    assert_eq!(row.recipient, "vp@thu.example.vn");
    assert_eq!(row.sent_at, None, "{row:#?}");
    assert!(server.captured().is_empty());
    // The row as it is after the stop: the stop changed nothing.
    let after = daemon.rows().unwrap();
    assert_eq!(
        (after[0].status.as_str(), after[0].attempts),
        (row.status.as_str(), 1)
    );
    (row.clone(), server)
}

/// A transient failure: `pending`, retried one minute after the attempt.
fn assert_retry_in_a_minute(row: &Row) {
    assert_eq!(row.status, "pending", "{row:#?}");
    let gap = row.next_attempt_at.unwrap() - row.last_attempt_at.unwrap();
    assert!(
        (59_000..=61_000).contains(&gap),
        "next attempt {gap} ms after the first, not a minute: {row:#?}"
    );
}

#[test]
fn run_451_is_retried_in_a_minute() {
    let (row, server) = one_failed_attempt(
        Security::None,
        SmtpOpts {
            reply: Some(451),
            ..SmtpOpts::default()
        },
        PASSWORD,
    );
    assert_retry_in_a_minute(&row);
    let error = row.last_error.as_deref().unwrap();
    assert!(error.contains("451"), "{error}");
    assert!(error.contains("4.3.0 Try again later"), "{error}");
    assert_eq!(server.events("data").len(), 1);
}

#[test]
fn run_550_fails_at_once() {
    let (row, server) = one_failed_attempt(
        Security::None,
        SmtpOpts {
            reply: Some(550),
            ..SmtpOpts::default()
        },
        PASSWORD,
    );
    assert_eq!(row.status, "failed", "{row:#?}");
    assert_eq!(row.next_attempt_at, None, "{row:#?}");
    let error = row.last_error.as_deref().unwrap();
    assert!(error.contains("550"), "{error}");
    assert!(error.contains("5.1.1 Mailbox unavailable"), "{error}");
    assert_eq!(server.events("data").len(), 1);
}

#[test]
fn run_connection_cut_after_data_is_retried_in_a_minute() {
    let (row, server) = one_failed_attempt(
        Security::None,
        SmtpOpts {
            drop_data: true,
            ..SmtpOpts::default()
        },
        PASSWORD,
    );
    assert_retry_in_a_minute(&row);
    let error = row.last_error.as_deref().unwrap();
    assert!(
        error.starts_with("the server closed the connection without answering"),
        "{error}"
    );
    assert!(error.contains("same Message-ID"), "{error}");
    assert_eq!(server.events("dropped").len(), 1);
}

#[test]
fn run_wrong_password_is_retried_and_says_so() {
    let (row, server) = one_failed_attempt(Security::StartTls, SmtpOpts::default(), "mật khẩu sai");
    assert_retry_in_a_minute(&row);
    let error = row.last_error.as_deref().unwrap();
    assert!(error.starts_with("SMTP authentication failed"), "{error}");
    assert!(error.contains("535"), "{error}");
    assert!(error.contains("`email.smtp.username`"), "{error}");
    assert!(
        !error.contains("mật khẩu"),
        "no password in errors: {error}"
    );
    assert_eq!(server.events("auth")[0]["ok"], false);
    assert!(server.events("mail").is_empty());
}

/// DESIGN §5: SIGTERM stops the daemon with exit 0 within 10 s, whenever it comes ("finish
/// or release in-flight sends"), even during the first wake's sends (a first start with many
/// messages, sent at `max_per_minute`): the daemon registers its signal handlers before
/// anything else, and a shutdown during a wake stops new sends and releases what is in
/// flight after a grace period. (Once, the handler was installed only after the first wake,
/// and this test found it.)
#[test]
fn sigterm_during_the_first_wake_is_a_clean_stop() {
    let server = server_for(Security::None, SmtpOpts::default());
    let due = due_day();
    // vp with 30 addresses: 30 messages, sent 0.5 s apart (120 a minute).
    let addresses: Vec<String> = (1..=30)
        .map(|i| format!("\"vp{i}@thu.example.vn\""))
        .collect();
    let units = UNITS.replace(
        "email = [\"vp@thu.example.vn\"]",
        &format!("email = [{}]", addresses.join(", ")),
    );
    let dir = Daemon::prepare(&[(
        "nhacviec.toml",
        format!(
            "{}{}{units}{}",
            organization(),
            smtp_email(server.port, Security::None),
            reminder_rule(due, "\"vp\"")
        ),
    )]);
    plan_premise(&dir.path, due);
    let mut daemon = Daemon::start(dir);
    server.wait_for(1, WAIT);
    let (status, _) = daemon.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM during the first sends: {status}\n--- its log\n{}",
        daemon.log()
    );
    let rows = daemon.rows().unwrap();
    assert!(
        rows.iter().all(|r| r.status != "sending"),
        "rows left `sending`: {rows:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// preview

/// A periodic report with fixed dates: the 9-month report of 2025, due before 05/10/2025
/// (a Sunday, so the last day is Friday 03/10), steps before-7d, due, after-1wd and
/// after-3wd, escalated from after-3wd. `kt` owes it and escalates to `lanh-dao`.
fn preview_config() -> String {
    format!(
        "{}[email]\nfrom = \"{FROM_NAME} <{FROM_ADDR}>\"\n{UNITS}{}",
        organization(),
        r#"
[policy.bao-cao]
before = ["7d"]
after = ["1wd", "3wd"]
escalate_from = "3wd"

[[rule]]
id = "bao-cao-9-thang"
kind = "report"
title = "Báo cáo kết quả công tác dân vận chính quyền"
reference = "Chương trình 05/CTr-UBND"
period = "nine-months"
due = { month = "next", day = 5, before = true }
units = ["kt"]
submit_to = "vhxh"
policy = "bao-cao"
"#
    )
}

/// What `preview` says on stderr while `run` has not made the token key yet.
const NO_KEY_YET: &str = "note: var/nhacviec.key does not exist yet (`nhacviec run` creates it), so the link below is a placeholder\n";

/// The part of a text preview before its HTML part, and the HTML part.
fn split_preview(stdout: &str) -> (&str, &str) {
    stdout
        .split_once("\n----- text/html -----\n")
        .unwrap_or_else(|| panic!("no HTML part in\n{stdout}"))
}

#[test]
fn preview_shows_a_reminder_as_it_would_be_sent() {
    let out = Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "before-7d",
        ])
        .stderr(NO_KEY_YET)
        .run();
    let (text, html) = split_preview(&out.stdout);
    let want = lines(&[
        "From: Nhắc việc UBND phường Thử nghiệm <nhacviec@thu.example.vn>",
        "To: Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>",
        "Reply-To: vhxh@thu.example.vn",
        "Subject: [Nhắc việc] Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025 – hạn thứ Sáu 03/10/2025",
        "Message-ID: <bao-cao-9-thang.2025-9M.kt.before-7d.rf02adc3c@thu.example.vn>",
        "Sent: 2025-09-26 08:00 +07:00",
        "",
        "Kính gửi: Phòng Kinh tế – Hạ tầng – Đô thị",
        "",
        "Ủy ban nhân dân phường Thử nghiệm nhắc đơn vị thực hiện: \"Báo cáo kết quả công tác dân vận chính quyền\" 9 tháng năm 2025. Hạn làm việc cuối là thứ Sáu 03/10/2025, còn 5 ngày làm việc.",
        "",
        "Đơn vị thực hiện: Phòng Kinh tế – Hạ tầng – Đô thị",
        "Nội dung: Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025",
        "Thời hạn: trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
        "Nơi gửi: Phòng Văn hóa – Xã hội",
        "Căn cứ: Chương trình 05/CTr-UBND",
        "",
        "Xác nhận \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" tại:",
        "https://nhacviec.thu.example.vn/a/<ma-xac-nhan>",
        "--",
        "Thư gửi tự động từ hệ thống nhắc việc của Ủy ban nhân dân phường Thử nghiệm.",
        "Nếu đơn vị đã hoàn thành, vui lòng bấm \"Đã hoàn thành / đã nộp\" ở đường dẫn trên để không nhận thêm nhắc nhở.",
    ]);
    crate::same_text("preview", "stdout", &want, text);
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.ends_with("</html>\n"), "{html}");
    for must in [
        "<title>Nhắc việc</title>",
        "<p>Kính gửi: Phòng Kinh tế – Hạ tầng – Đô thị</p>",
        "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
        // The placeholder is text, so HTML-escaped.
        "https://nhacviec.thu.example.vn/a/&lt;ma-xac-nhan&gt;",
    ] {
        assert!(html.contains(must), "{must:?} missing in\n{html}");
    }
}

#[test]
fn preview_escalated_goes_to_the_leadership() {
    let out = Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "after-3wd",
            "--escalated",
        ])
        .stderr(NO_KEY_YET)
        .run();
    let (text, html) = split_preview(&out.stdout);
    let head: Vec<&str> = text.lines().take(6).collect();
    assert_eq!(
        head,
        [
            "From: Nhắc việc UBND phường Thử nghiệm <nhacviec@thu.example.vn>",
            "To: Lãnh đạo UBND phường <lanhdao@thu.example.vn>",
            "Reply-To: vhxh@thu.example.vn",
            "Subject: [Quá hạn – báo cáo lãnh đạo] Phòng Kinh tế – Hạ tầng – Đô thị chưa hoàn thành Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025",
            "Message-ID: <bao-cao-9-thang.2025-9M.kt.after-3wd.r351b1b50@thu.example.vn>",
            "Sent: 2025-10-08 08:00 +07:00",
        ]
    );
    for body in [text, html] {
        for must in [
            "Kính gửi: Lãnh đạo UBND phường",
            "quá hạn 3 ngày làm việc",
            "hạn làm việc cuối: thứ Sáu 03/10/2025",
            "Thư này được gửi đến lãnh đạo để theo dõi, đôn đốc.",
        ] {
            assert!(body.contains(must), "{must:?} missing in\n{body}");
        }
    }
    assert!(
        text.contains(
            "\nĐơn vị Phòng Kinh tế – Hạ tầng – Đô thị chưa hoàn thành \"Báo cáo kết quả công tác dân vận chính quyền\" 9 tháng năm 2025, đã quá hạn 3 ngày làm việc"
        ),
        "{text}"
    );

    // Without --escalated the same step goes to the unit, as an overdue notice.
    let out = Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "after-3wd",
        ])
        .stderr(NO_KEY_YET)
        .run();
    assert!(
        out.stdout
            .contains("\nTo: Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("[Quá hạn – báo cáo lãnh đạo]"));

    // A step before escalate_from has no escalated copy.
    Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "after-1wd",
            "--escalated",
        ])
        .stdout("")
        .stderr("error: step `after-1wd` is not escalated (the policy's `escalate_from` is later or unset)\n")
        .status(1)
        .run();
}

#[test]
fn preview_of_an_unknown_step_lists_the_steps() {
    Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "before-3d",
        ])
        .stdout("")
        .stderr("error: `before-3d` is not a step of bao-cao-9-thang/2025-9M; its steps are before-7d, due, after-1wd, after-3wd\n")
        .status(1)
        .run();
}

#[test]
fn preview_as_eml_is_the_encoded_message() {
    let out = Test::new()
        .config(&preview_config())
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/kt",
            "--step",
            "due",
            "--format",
            "eml",
        ])
        .stderr(NO_KEY_YET)
        .run();
    assert!(out.stdout.is_ascii(), "every header and part is encoded");
    assert!(
        out.stdout
            .contains("\r\nContent-Type: multipart/alternative;")
    );
    assert!(
        out.stdout.contains("\r\nSubject: =?utf-8?"),
        "{}",
        out.stdout
    );
    let m = parse_eml(out.stdout.as_bytes());
    assert_common_headers(&m);
    assert_eq!(
        m.subject(),
        "[Hạn cuối hôm nay] Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025"
    );
    assert_eq!(
        m.get("message_id"),
        Some("<bao-cao-9-thang.2025-9M.kt.due.rf02adc3c@thu.example.vn>")
    );
    assert_eq!(
        decode_words(&one_header(&m, "To")),
        "Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>"
    );
    assert!(
        m.text("text/plain").contains(
            "Thời hạn: trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025"
        ),
        "{}",
        m.text("text/plain")
    );
}

// ---------------------------------------------------------------------------------------
// The file transport

#[test]
fn file_transport_writes_one_eml_per_message_named_by_its_message_id() {
    let due = due_day();
    let dir = Daemon::prepare(&[(
        "nhacviec.toml",
        format!(
            "{}[email]\nfrom = \"{FROM_NAME} <{FROM_ADDR}>\"\ntransport = \"file\"\n\n\
             [email.file]\ndir = \"out/mail\"\n{UNITS}{}",
            organization(),
            reminder_rule(due, "\"vp\", \"kt\"")
        ),
    )]);
    plan_premise(&dir.path, due);
    let mut daemon = Daemon::start(dir);
    let rows = daemon.wait_rows("three rows sent", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.status == "sent")
    });
    daemon.stop();

    let mail = daemon.path("out/mail");
    let mut names: Vec<String> = std::fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = rows
        .iter()
        .map(|r| format!("{}.eml", r.message_id.trim_matches(['<', '>'])))
        .collect();
    want.sort();
    assert_eq!(names, want, "one .eml per message and nothing else");

    for r in &rows {
        let name = format!("{}.eml", r.message_id.trim_matches(['<', '>']));
        let eml = std::fs::read(mail.join(&name)).unwrap();
        let m = parse_eml(&eml);
        assert_common_headers(&m);
        assert_eq!(m.get("message_id"), Some(r.message_id.as_str()));
        assert_eq!(m.subject(), r.subject.as_deref().unwrap());
        assert!(
            decode_words(&one_header(&m, "To")).ends_with(&format!("<{}>", r.recipient)),
            "{:#}",
            m.json
        );
        let link = ack_link(&m.text("text/plain"));

        // Now that `run` made the key, preview shows the very link that was sent.
        let out = Command::new(env!("CARGO_BIN_EXE_nhacviec"))
            .current_dir(&daemon.dir.path)
            .env_remove("NHACVIEC_CONFIG")
            .args(["--config", "nhacviec.toml", "preview", "--obligation"])
            .args([&r.obligation, "--step", "before-5d"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stderr), "");
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ack_link(&stdout), link, "{stdout}");
    }
}
