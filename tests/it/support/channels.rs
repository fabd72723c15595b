//! A stand-in for the Telegram Bot API and for a webhook receiver:
//! `tests/channels/server.py` (Python's standard library only), one per test.
//!
//! [`HookServer::start`] runs it with the interpreter named in `NHACVIEC_TEST_PYTHON` (or
//! `python3` when that is unset: the server needs no package), on 127.0.0.1 and a free
//! port, with a fresh random bot token, in a fresh temporary directory, and returns once
//! the server has printed `READY <port>`. [`HookServer::base`] is the daemon's Telegram
//! `api_url` and [`HookServer::hook_url`] a webhook URL. The Bot API checks `sendMessage`
//! as Telegram does (token, chat_id, text, HTML parse mode, length in UTF-16, inline
//! keyboard URLs), the webhook receiver answers 200 `ok`, and [`HookServer::script`] makes
//! a path or a chat answer otherwise for a while (an HTTP status, a Telegram error, a
//! hang-up, a stall). Every request but the control ones (`/_…`) is recorded in
//! `requests.jsonl`, read back as [`Req`]. Dropping the server stops it (it exits when its
//! stdin closes) and removes the directory; a server that does not exit cleanly fails the
//! test. `tests/channels/server.py`'s docstring is the reference for what it answers.
//!
//! What it shares with [`super::zalo`] is [`super::recorded`].
//!
//! `tests/it/stand_in.rs` holds the harness's own tests of it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::TempDir;
use super::recorded::RecordingServer;

/// A running `tests/channels/server.py`; stopped, and its directory removed, when dropped.
pub struct HookServer {
    token: String,
    server: RecordingServer,
    /// Declared last, so removed after the server has stopped.
    _tmp: TempDir,
}

impl HookServer {
    /// Starts a server accepting the token `123456:TEST-token-<16 random hex digits>`, and
    /// waits until it accepts connections.
    pub fn start() -> HookServer {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).unwrap();
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("123456:TEST-token-{hex}");

        let tmp = TempDir::new();
        let server = RecordingServer::start(
            "the channels stand-in",
            "tests/channels/server.py",
            &tmp,
            ["--token", &token],
        );
        HookServer {
            token,
            server,
            _tmp: tmp,
        }
    }

    /// The bot token its Bot API accepts (others get 401).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT`: the Telegram `api_url` (requests go to
    /// `{base}/bot{token}/sendMessage`).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// `http://127.0.0.1:PORT/hook/NAME`: a webhook URL, answered 200 `ok` unless scripted.
    pub fn hook_url(&self, name: &str) -> String {
        format!("{}/hook/{name}", self.base())
    }

    /// The path of the Bot API's `sendMessage` with the right token.
    pub fn send_message_path(&self) -> String {
        format!("/bot{}/sendMessage", self.token)
    }

    /// Where it writes `requests.jsonl`.
    pub fn dir(&self) -> &Path {
        &self.server.dir
    }

    /// Scripts the answers to the requests matching `key`: a path without its query
    /// string (`"/hook/a"`), or `"chat:<chat_id>"` (a valid `sendMessage` to that chat).
    /// Each matching request takes the next of `responses` (a JSON array); once they are
    /// used up, `then` answers every later one, or, if `None`, the route's own answer.
    /// A response is `{"status": 429, "headers": {"Retry-After": "2"}, "body": "text" or
    /// any JSON}`, `{"telegram": {"error_code": 429, "description": "..", "parameters":
    /// {"retry_after": 3}}}`, `{"action": "hangup"}` or `{"action": "stall", "seconds":
    /// 1.5}`. Replaces any script of the same key; panics if the server refuses it.
    pub fn script(&self, key: &str, responses: Value, then: Option<Value>) {
        self.server.script(key, responses, then);
    }

    /// Forgets every script.
    pub fn reset(&self) {
        self.server.reset();
    }

    /// The requests recorded so far (every one but `/_…`), in the order they came.
    pub fn requests(&self) -> Vec<Req> {
        self.server.requests()
    }

    /// Waits until at least `n` requests have been recorded, and returns all there are;
    /// panics, showing those, after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<Req> {
        self.server.wait_requests(n, timeout, Req::summary)
    }

    /// The `sendMessage` requests recorded so far (whatever their token or answer).
    pub fn telegram_sends(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path_only().ends_with("/sendMessage"))
            .collect()
    }

    /// The webhook requests recorded so far (paths under `/hook/`).
    pub fn hooks(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/hook/"))
            .collect()
    }

    /// What the server wrote to stderr so far (a Python traceback, with the token hidden).
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// One recorded request: a line of `requests.jsonl` (see `tests/channels/server.py`).
#[derive(Debug, Clone, Deserialize)]
pub struct Req {
    /// Its number, from 1, in the order recorded.
    pub n: usize,
    /// When it was read, in seconds since the Unix epoch.
    pub at: f64,
    pub method: String,
    /// As received: query string and bot token included.
    pub path: String,
    /// Names in lower case; repeated headers joined by ", ".
    pub headers: BTreeMap<String, String>,
    /// The body as UTF-8 text (invalid bytes replaced).
    pub body: String,
    /// The body parsed as JSON, or `Value::Null`.
    pub json: Value,
    /// How it was answered: `{"status": 200}`, `{"action": "hangup"}` or
    /// `{"action": "stall"}`.
    pub answer: Value,
}

impl Req {
    /// A header's value, the name in any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The HTTP status it was answered with; `None` if it was hung up on or stalled.
    pub fn status(&self) -> Option<u16> {
        self.answer["status"].as_u64().map(|s| s as u16)
    }

    /// The path without its query string.
    pub fn path_only(&self) -> &str {
        self.path.split('?').next().unwrap()
    }

    /// One line about it, for messages: `#3 POST /hook/a -> {"status":200}` (the path of
    /// a Bot API request with its token hidden).
    pub fn summary(&self) -> String {
        let path = match self.path.strip_prefix("/bot") {
            Some(rest) => format!("/bot<TOKEN>/{}", rest.split_once('/').map_or("", |r| r.1)),
            None => self.path.clone(),
        };
        format!("#{} {} {path} -> {}", self.n, self.method, self.answer)
    }
}
