//! A real SMTP server for the tests: `tests/smtp/server.py` (aiosmtpd), one per test.
//!
//! [`SmtpServer::start`] runs it with the interpreter that `scripts/test.sh` names in
//! `NHACVIEC_TEST_PYTHON` (its `.venv`, with the pinned `tests/smtp/requirements.txt`),
//! on 127.0.0.1 and a free port, in a fresh temporary directory, and returns once the
//! server has printed `READY <port>`. Whatever it accepts lands in [`SmtpServer::dir`] as
//! the raw message and a JSON summary made by Python's own MIME parser, read back as
//! [`Captured`]; [`SmtpServer::log`] lists the session events (connect, starttls, auth,
//! mail, rcpt, data, dropped), so a test can check that TLS and AUTH really happened.
//! [`SmtpOpts`] picks the mode (plain, STARTTLS, implicit TLS), AUTH, and the faults (a
//! reply code for DATA or RCPT, a connection dropped at the end of DATA, the first N DATA
//! answered 451). Dropping the server stops it (it exits when its stdin closes) and
//! removes the directory; a server that does not exit cleanly fails the test.
//!
//! `tests/it/smtp.rs` holds the harness's own tests: they drive the server with lettre.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::ServerProcess;
use super::{REPO, TempDir, python};

/// How the server speaks TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// No TLS at all.
    #[default]
    Plain,
    /// Offers STARTTLS; AUTH only after it (and MAIL too, with [`SmtpOpts::require_tls`]).
    StartTls,
    /// Implicit TLS from the first byte (SMTPS).
    Tls,
}

/// What server to start: [`SmtpOpts::default()`] is a plain server accepting everything.
#[derive(Clone, Debug, Default)]
pub struct SmtpOpts {
    pub mode: Mode,
    /// Require AUTH (PLAIN or LOGIN) with this user and password; others get 535.
    pub auth: Option<(String, String)>,
    /// With [`Mode::StartTls`]: refuse everything but EHLO, NOOP, STARTTLS and QUIT (530)
    /// until STARTTLS is done.
    pub require_tls: bool,
    /// Answer every end of DATA with this code (451: "4.3.0 Try again later", 550: "5.1.1
    /// Mailbox unavailable", ...) instead of 250; nothing is then captured.
    pub reply: Option<u16>,
    /// Answer every RCPT TO with this code instead of 250.
    pub reject_rcpt: Option<u16>,
    /// Close the connection at the end of DATA without replying; nothing is captured.
    pub drop_data: bool,
    /// Answer the first this many DATA (over the server's life) with 451, then accept.
    pub fail_first: usize,
    /// Random faults as this JSON file says (read again at each decision): see
    /// `tests/smtp/server.py`, "Chaos".
    pub chaos: Option<PathBuf>,
}

impl SmtpOpts {
    /// A server in `mode` accepting everything.
    pub fn speaking(mode: Mode) -> SmtpOpts {
        SmtpOpts {
            mode,
            ..SmtpOpts::default()
        }
    }

    /// A server in `mode` that requires AUTH with `user` and `password`.
    pub fn auth(mode: Mode, user: &str, password: &str) -> SmtpOpts {
        SmtpOpts {
            auth: Some((user.to_string(), password.to_string())),
            ..SmtpOpts::speaking(mode)
        }
    }
}

/// A running `tests/smtp/server.py`; stopped, and its directory removed, when dropped.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Where it writes `<n>.eml`, `<n>.json` and `log.jsonl`.
    pub dir: PathBuf,
    /// The CA that signed its certificate (for localhost and 127.0.0.1), in TLS modes.
    pub ca_pem: Option<PathBuf>,
    process: ServerProcess,
    /// Declared last, so removed after the server has stopped.
    _tmp: TempDir,
}

impl SmtpServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start(opts: SmtpOpts) -> SmtpServer {
        let python = python();
        let tmp = TempDir::new();
        let dir = tmp.path.join("out");
        let certs = tmp.path.join("certs");
        let stderr = tmp.path.join("server.stderr");
        let mut cmd = Command::new(&python);
        cmd.arg(Path::new(REPO).join("tests/smtp/server.py"))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0", "--watch-stdin"]);
        match opts.mode {
            Mode::Plain => cmd.args(["--mode", "plain"]),
            Mode::StartTls => cmd.args(["--mode", "starttls"]).arg("--certs").arg(&certs),
            Mode::Tls => cmd.args(["--mode", "tls"]).arg("--certs").arg(&certs),
        };
        if let Some((user, password)) = &opts.auth {
            cmd.arg("--auth").arg(format!("{user}:{password}"));
        }
        if opts.require_tls {
            cmd.arg("--require-tls");
        }
        if let Some(code) = opts.reply {
            cmd.arg("--reply").arg(code.to_string());
        }
        if let Some(code) = opts.reject_rcpt {
            cmd.arg("--reject-rcpt").arg(code.to_string());
        }
        if opts.drop_data {
            cmd.arg("--drop-data");
        }
        if opts.fail_first > 0 {
            cmd.arg("--fail-first").arg(opts.fail_first.to_string());
        }
        if let Some(file) = &opts.chaos {
            cmd.arg("--chaos").arg(file);
        }
        let process =
            ServerProcess::start(&format!("the SMTP test server ({opts:?})"), cmd, stderr);
        SmtpServer {
            port: process.port,
            dir,
            ca_pem: (opts.mode != Mode::Plain).then(|| certs.join("ca.pem")),
            process,
            _tmp: tmp,
        }
    }

    /// Waits until at least `n` messages have been accepted, and returns all there are,
    /// by number; panics, showing what did arrive and the server's log, after `timeout`.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.captured();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                let subjects: Vec<_> = got.iter().map(|c| c.json["subject"].clone()).collect();
                panic!(
                    "waited {timeout:?} for {n} message(s) at the SMTP test server, {} arrived \
                     (subjects {subjects:?})\n--- its log\n{}--- its stderr\n{}",
                    got.len(),
                    std::fs::read_to_string(self.dir.join("log.jsonl")).unwrap_or_default(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages accepted so far, by number.
    pub fn captured(&self) -> Vec<Captured> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new(); // nothing was written yet
        };
        let mut got: Vec<Captured> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|json| {
                let n = json.file_stem().unwrap().to_str().unwrap().parse().unwrap();
                Captured {
                    n,
                    eml: std::fs::read(json.with_extension("eml")).unwrap(),
                    json: serde_json::from_str(&super::read(&json)).unwrap(),
                }
            })
            .collect();
        got.sort_by_key(|c| c.n);
        got
    }

    /// The session events so far, in order: `{"event": "connect", "tls": false}`,
    /// `{"event": "starttls", "version": "TLSv1.3"}`, `{"event": "auth", "ok": true,
    /// "mechanism": "PLAIN", "user": ".."}`, `{"event": "mail", "address": ..}`,
    /// `{"event": "rcpt", "address": .., "reply": 250}`, `{"event": "data", "reply": 451,
    /// "subject": .., "message_id": ..}` (with `"n"` when saved), `{"event": "dropped", ..}`.
    pub fn log(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.dir.join("log.jsonl")) {
            Ok(text) => text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The events of one kind, in order (`events("auth")`).
    pub fn events(&self, event: &str) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|e| e["event"] == event)
            .collect()
    }

    /// What the server wrote to stderr so far (aiosmtpd's errors, a Python traceback).
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// One accepted message: `<n>.eml` and `<n>.json` (see `tests/smtp/server.py`).
#[derive(Debug)]
pub struct Captured {
    /// Its number, from 1, in the order accepted.
    pub n: usize,
    /// The raw bytes received.
    pub eml: Vec<u8>,
    /// The summary by Python's MIME parser: `mail_from`, `rcpt_tos`, `subject`, `from`,
    /// `to`, `reply_to`, `message_id`, `date`, `headers`, `is_multipart`, `content_type`,
    /// `parts`, `defects`.
    pub json: Value,
}

/// One leaf MIME part of a [`Captured`] message.
#[derive(Debug, PartialEq, Eq)]
pub struct Part {
    pub content_type: String,
    pub charset: Option<String>,
    /// A text part's decoded text, with its CRLFs as `\n`.
    pub text: Option<String>,
}

impl Captured {
    /// A decoded field of the summary (`"from"`, `"to"`, `"reply_to"`, `"message_id"`,
    /// `"date"`, `"subject"`, `"mail_from"`), or `None` where the message has none.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.json[key].as_str()
    }

    /// The decoded subject; panics if there is none.
    pub fn subject(&self) -> &str {
        self.get("subject")
            .unwrap_or_else(|| panic!("message {} has no Subject: {:#}", self.n, self.json))
    }

    /// The envelope's recipients (RCPT TO).
    pub fn rcpt_tos(&self) -> Vec<String> {
        strings(&self.json["rcpt_tos"])
    }

    /// Every value of a header, raw (encoded words stay encoded) but unfolded; the name
    /// in any case.
    pub fn header(&self, name: &str) -> Vec<String> {
        strings(&self.json["headers"][name.to_ascii_lowercase()])
    }

    /// The leaf parts, in order.
    pub fn parts(&self) -> Vec<Part> {
        let opt = |v: &Value| v.as_str().map(str::to_string);
        let parts = self.json["parts"].as_array().unwrap();
        parts
            .iter()
            .map(|p| Part {
                content_type: p["content_type"].as_str().unwrap().to_string(),
                charset: opt(&p["charset"]),
                text: opt(&p["text"]),
            })
            .collect()
    }

    /// The text of the one part of this content type (`"text/plain"`); panics unless
    /// there is exactly one.
    pub fn text(&self, content_type: &str) -> String {
        let mut texts: Vec<_> = self
            .parts()
            .into_iter()
            .filter(|p| p.content_type == content_type)
            .collect();
        assert_eq!(
            texts.len(),
            1,
            "message {} has {} {content_type} parts: {:#}",
            self.n,
            texts.len(),
            self.json
        );
        texts.pop().unwrap().text.unwrap()
    }

    /// What Python's parser found wrong with the message, its parts or their headers.
    pub fn defects(&self) -> Vec<String> {
        strings(&self.json["defects"])
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}
