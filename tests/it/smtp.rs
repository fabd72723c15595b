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
//! The tests below are the harness's own: they drive the server with lettre directly.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lettre::message::MultiPart;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use serde_json::Value;

use super::{REPO, TempDir};

/// How long the server may take to print `READY <port>`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the server may take to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// A running `tests/smtp/server.py`; stopped, and its directory removed, when dropped.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Where it writes `<n>.eml`, `<n>.json` and `log.jsonl`.
    pub dir: PathBuf,
    /// The CA that signed its certificate (for localhost and 127.0.0.1), in TLS modes.
    pub ca_pem: Option<PathBuf>,
    child: Child,
    /// The server's stdin: closing it stops the server.
    stdin: Option<ChildStdin>,
    stderr: PathBuf,
    /// Declared last, so removed after the server has stopped.
    _tmp: TempDir,
}

impl SmtpServer {
    /// Starts a server and waits until it accepts connections.
    pub fn start(opts: SmtpOpts) -> SmtpServer {
        let python = std::env::var_os("NHACVIEC_TEST_PYTHON").unwrap_or_else(|| {
            panic!(
                "NHACVIEC_TEST_PYTHON is not set: run the tests with `bash scripts/test.sh`, \
                 which makes .venv with the SMTP test server's packages and sets it"
            )
        });
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
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (NHACVIEC_TEST_PYTHON): {e}; run `bash scripts/test.sh`",
                    python.display()
                )
            });

        // The first line of stdout, read by a thread so that waiting for it has a limit.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            lines.for_each(drop); // nothing more is printed; read to the end all the same
        });
        let first = rx.recv_timeout(READY_TIMEOUT);
        let port = match &first {
            Ok(Some(Ok(line))) => line.strip_prefix("READY ").and_then(|p| p.parse().ok()),
            _ => None,
        };
        let mut server = SmtpServer {
            port: port.unwrap_or(0),
            dir,
            ca_pem: (opts.mode != Mode::Plain).then(|| certs.join("ca.pem")),
            stdin: child.stdin.take(),
            child,
            stderr,
            _tmp: tmp,
        };
        if port.is_none() {
            let _ = server.child.kill();
            let _ = server.child.wait();
            let first = match first {
                Ok(Some(Ok(line))) => format!("it printed {line:?}"),
                Ok(Some(Err(e))) => format!("reading its stdout failed: {e}"),
                Ok(None) => "it exited without a word".to_string(),
                Err(_) => format!("no line after {READY_TIMEOUT:?}"),
            };
            // Dropped while panicking: removes the directory, and panics no second time.
            panic!(
                "the SMTP test server did not start ({opts:?}): {first}\n--- its stderr\n{}",
                server.stderr()
            );
        }
        server
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
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Closes the server's stdin, which stops it, and waits for it to exit (or kills it).
    fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return None;
                }
            }
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let status = self.stop();
        if !std::thread::panicking() && !status.is_some_and(|s| s.success()) {
            let stderr = self.stderr();
            panic!(
                "the SMTP test server did not stop cleanly ({})\n--- its stderr\n{stderr}",
                status.map_or(format!("killed after {STOP_TIMEOUT:?}"), |s| s.to_string())
            );
        }
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
    pub transfer_encoding: Option<String>,
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
                transfer_encoding: opt(&p["transfer_encoding"]),
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

// ---------------------------------------------------------------------------------------
// The harness's own tests, with lettre as the client.

const SUBJECT: &str = "Nhắc việc: báo cáo 9 tháng năm 2025";
const PLAIN: &str =
    "Kính gửi Phòng Tài chính – Kế hoạch,\nHạn nộp: trước ngày 05/10/2025 (Chủ nhật).\n";
const HTML: &str =
    "<p>Kính gửi Phòng Tài chính – Kế hoạch,</p><p>Hạn nộp: <b>05/10/2025</b>.</p>\n";
const MESSAGE_ID: &str = "<q3-2025.tckh@nhacviec.stc.example.vn>";
const WAIT: Duration = Duration::from_secs(10);

fn message(subject: &str) -> Message {
    Message::builder()
        .from(
            "Nhắc việc Sở Tài chính <nhacviec@stc.example.vn>"
                .parse()
                .unwrap(),
        )
        .reply_to("Điều phối <dieuphoi@stc.example.vn>".parse().unwrap())
        .to("Phòng Tài chính – Kế hoạch <tckh@ubnd.example.vn>"
            .parse()
            .unwrap())
        .subject(subject)
        .message_id(Some(MESSAGE_ID.to_string()))
        .multipart(MultiPart::alternative_plain_html(
            PLAIN.to_string(),
            HTML.to_string(),
        ))
        .unwrap()
}

/// A transport to the server on 127.0.0.1, with this TLS.
fn transport(server: &SmtpServer, tls: Tls, credentials: Option<(&str, &str)>) -> SmtpTransport {
    let mut builder = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port)
        .tls(tls)
        .timeout(Some(WAIT));
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.into(), password.into()));
    }
    builder.build()
}

/// TLS trusting the server's CA, checking the certificate against `name`.
fn tls_params(server: &SmtpServer, name: &str) -> TlsParameters {
    let pem = std::fs::read(server.ca_pem.as_ref().unwrap()).unwrap();
    TlsParameters::builder(name.to_string())
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn auth(user: &str, password: &str) -> Option<(String, String)> {
    Some((user.to_string(), password.to_string()))
}

/// The events of the log, by name only: `["connect", "starttls", "auth", ...]`.
fn event_names(server: &SmtpServer) -> Vec<String> {
    server
        .log()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plain_multipart_with_vietnamese_subject() {
    let server = SmtpServer::start(SmtpOpts::default());
    transport(&server, Tls::None, None)
        .send(&message(SUBJECT))
        .unwrap();
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.n, 1);
    assert_eq!(m.subject(), SUBJECT);
    // Encoded on the wire, as RFC 2047 wants: the raw header is ASCII.
    let raw = m.header("Subject");
    assert_eq!(raw.len(), 1);
    assert!(raw[0].is_ascii() && raw[0].contains("=?utf-8?"), "{raw:?}");
    assert_eq!(
        m.get("from"),
        Some("Nhắc việc Sở Tài chính <nhacviec@stc.example.vn>")
    );
    assert_eq!(
        m.get("reply_to"),
        Some("Điều phối <dieuphoi@stc.example.vn>")
    );
    assert_eq!(m.get("mail_from"), Some("nhacviec@stc.example.vn"));
    assert_eq!(m.rcpt_tos(), ["tckh@ubnd.example.vn"]);
    assert_eq!(m.get("message_id"), Some(MESSAGE_ID));
    assert!(m.get("date").is_some()); // lettre adds it
    assert_eq!(m.json["content_type"], "multipart/alternative");
    let types: Vec<_> = m.parts().into_iter().map(|p| p.content_type).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(m.text("text/plain"), PLAIN);
    assert_eq!(m.text("text/html"), HTML);
    assert!(
        m.parts()
            .iter()
            .all(|p| p.charset.as_deref() == Some("utf-8"))
    );
    assert_eq!(m.defects(), Vec::<String>::new());
    assert!(String::from_utf8_lossy(&m.eml).contains("Content-Type: multipart/alternative"));
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": false})
    );
    assert_eq!(server.events("data")[0]["subject"], SUBJECT);
}

#[test]
fn several_messages_are_numbered_in_order() {
    let server = SmtpServer::start(SmtpOpts::default());
    let mailer = transport(&server, Tls::None, None);
    for i in 1..=3 {
        mailer.send(&message(&format!("Thư {i}"))).unwrap();
    }
    let got = server.wait_for(3, WAIT);
    let subjects: Vec<_> = got.iter().map(|m| (m.n, m.subject())).collect();
    assert_eq!(subjects, [(1, "Thư 1"), (2, "Thư 2"), (3, "Thư 3")]);
}

#[test]
#[should_panic(expected = "waited")]
fn waiting_for_a_message_that_never_comes_fails() {
    let server = SmtpServer::start(SmtpOpts::default());
    server.wait_for(1, Duration::from_millis(200));
}

#[test]
fn starttls_then_auth() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::StartTls,
        auth: auth("nhacviec", "mật khẩu"),
        require_tls: true,
        ..SmtpOpts::default()
    });
    let tls = Tls::Required(tls_params(&server, "localhost"));
    transport(&server, tls, Some(("nhacviec", "mật khẩu")))
        .send(&message(SUBJECT))
        .unwrap();
    assert_eq!(server.wait_for(1, WAIT)[0].subject(), SUBJECT);
    let names = event_names(&server);
    assert_eq!(names[..5], ["connect", "starttls", "auth", "mail", "rcpt"]);
    assert_eq!(server.log()[0]["tls"], false);
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], true);
    assert_eq!(auth["user"], "nhacviec");
    assert!(
        server.events("starttls")[0]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1.")
    );
}

#[test]
fn starttls_wrong_password_is_535() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::StartTls,
        auth: auth("nhacviec", "đúng"),
        ..SmtpOpts::default()
    });
    let tls = Tls::Required(tls_params(&server, "localhost"));
    let err = transport(&server, tls, Some(("nhacviec", "sai")))
        .send(&message(SUBJECT))
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(535), "{err}");
    assert!(
        err.to_string()
            .contains("5.7.8 Authentication credentials invalid"),
        "{err}"
    );
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], false);
    assert!(server.events("mail").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn starttls_with_an_unknown_ca_fails() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::StartTls,
        ..SmtpOpts::default()
    });
    // The system's roots only: the test CA is not among them.
    let tls = Tls::Required(TlsParameters::new("localhost".to_string()).unwrap());
    let err = transport(&server, tls, None)
        .send(&message(SUBJECT))
        .unwrap_err();
    // Not a TLS error to lettre, but a network one: rustls fails on the first read.
    assert!(
        !err.is_tls() && !err.is_permanent() && !err.is_transient(),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    assert!(server.events("starttls").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn require_tls_refuses_mail_in_clear() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::StartTls,
        require_tls: true,
        ..SmtpOpts::default()
    });
    let err = transport(&server, Tls::None, None)
        .send(&message(SUBJECT))
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(530), "{err}");
    assert!(server.captured().is_empty());
}

#[test]
fn implicit_tls_with_auth() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::Tls,
        auth: auth("nhacviec", "bí mật"),
        ..SmtpOpts::default()
    });
    // The certificate names 127.0.0.1 too.
    let tls = Tls::Wrapper(tls_params(&server, "127.0.0.1"));
    transport(&server, tls, Some(("nhacviec", "bí mật")))
        .send(&message(SUBJECT))
        .unwrap();
    assert_eq!(server.wait_for(1, WAIT)[0].subject(), SUBJECT);
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": true})
    );
    assert!(server.events("starttls").is_empty());
    assert_eq!(server.events("auth")[0]["ok"], true);
}

/// Sends one message through a fresh transport and returns the error it must give.
fn send_err(server: &SmtpServer, tls: Tls) -> SmtpError {
    transport(server, tls, None)
        .send(&message(SUBJECT))
        .unwrap_err()
}

#[test]
fn data_451_is_transient() {
    let server = SmtpServer::start(SmtpOpts {
        reply: Some(451),
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::None);
    assert!(err.is_transient() && !err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(451));
    assert!(err.to_string().contains("4.3.0 Try again later"), "{err}");
    assert_eq!(server.events("data")[0]["reply"], 451);
    assert!(server.captured().is_empty());
}

#[test]
fn data_550_is_permanent() {
    let server = SmtpServer::start(SmtpOpts {
        reply: Some(550),
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::None);
    assert!(err.is_permanent() && !err.is_transient(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(550));
    assert!(
        err.to_string().contains("5.1.1 Mailbox unavailable"),
        "{err}"
    );
    assert!(server.captured().is_empty());
}

#[test]
fn rcpt_550_is_permanent() {
    let server = SmtpServer::start(SmtpOpts {
        reject_rcpt: Some(550),
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::None);
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(550));
    assert_eq!(server.events("rcpt")[0]["reply"], 550);
    assert!(server.events("data").is_empty());
}

#[test]
fn fail_first_then_accept() {
    let server = SmtpServer::start(SmtpOpts {
        fail_first: 2,
        ..SmtpOpts::default()
    });
    let mailer = transport(&server, Tls::None, None);
    for _ in 0..2 {
        let err = mailer.send(&message(SUBJECT)).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
    mailer.send(&message(SUBJECT)).unwrap();
    assert_eq!(server.wait_for(1, WAIT).len(), 1);
    let replies: Vec<_> = server
        .events("data")
        .iter()
        .map(|e| e["reply"].clone())
        .collect();
    assert_eq!(replies, [451, 451, 250]);
}

/// A connection dropped at the end of DATA: neither a success nor an SMTP reply, so
/// neither permanent nor transient. lettre reports EOF where a reply should be as a
/// response error ("incomplete response").
fn assert_dropped(err: &SmtpError, server: &SmtpServer) {
    assert!(!err.is_permanent() && !err.is_transient(), "{err:?}");
    assert_eq!(err.status(), None, "{err:?}");
    assert!(err.is_response(), "{err:?}");
    assert_eq!(server.events("dropped").len(), 1);
    assert_eq!(server.events("dropped")[0]["subject"], SUBJECT);
    assert!(server.captured().is_empty());
}

#[test]
fn dropped_after_data_is_neither_permanent_nor_transient() {
    let server = SmtpServer::start(SmtpOpts {
        drop_data: true,
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::None);
    assert_dropped(&err, &server);
}

#[test]
fn dropped_after_data_over_tls() {
    let server = SmtpServer::start(SmtpOpts {
        mode: Mode::Tls,
        drop_data: true,
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::Wrapper(tls_params(&server, "localhost")));
    assert_dropped(&err, &server);
}

/// The product sends with the async transport: the same faults, the same kinds of error.
#[test]
fn async_transport_sees_the_same_errors() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    // Built, used and dropped inside the runtime: its pool spawns tasks, even on drop.
    let send = |server: &SmtpServer| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(server.port)
                .tls(Tls::Required(tls_params(server, "localhost")))
                .timeout(Some(WAIT))
                .build();
            mailer.send(message(SUBJECT)).await
        })
    };
    let starttls = |opts: SmtpOpts| SmtpOpts {
        mode: Mode::StartTls,
        require_tls: true,
        ..opts
    };

    let ok = SmtpServer::start(starttls(SmtpOpts::default()));
    send(&ok).unwrap();
    assert_eq!(ok.wait_for(1, WAIT)[0].subject(), SUBJECT);

    let busy = SmtpServer::start(starttls(SmtpOpts {
        reply: Some(451),
        ..SmtpOpts::default()
    }));
    assert!(send(&busy).unwrap_err().is_transient());

    let dropping = SmtpServer::start(starttls(SmtpOpts {
        drop_data: true,
        ..SmtpOpts::default()
    }));
    assert_dropped(&send(&dropping).unwrap_err(), &dropping);
}
