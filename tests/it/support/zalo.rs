//! A stand-in for the Zalo Notification Service (ZNS) and Zalo's OAuth token endpoint:
//! `tests/zalo/server.py` (Python's standard library only), one per test.
//!
//! [`ZaloServer::start`] runs it with the interpreter named in `NHACVIEC_TEST_PYTHON` (or
//! `python3` when that is unset: the server needs no package), on 127.0.0.1 and a free
//! port, with a fresh random app id, secret key and first refresh token, in a fresh
//! temporary directory, and returns once the server has printed `READY <port>`.
//! [`ZaloServer::base`] is both the daemon's Zalo `api_url` (`POST /message/template`) and
//! its `oauth_url` (`POST /v4/oa/access_token`). Zalo's answers are HTTP 200 with a JSON
//! body whose `error` is 0 on success: the token endpoint checks the `secret_key` header,
//! the app id and the refresh token (single use: each refresh hands out a new pair), ZNS
//! checks the `access_token` header (it expires), the phone, the template and its
//! parameters' lengths, and the daily quota. [`ZaloServer::control`] changes that state
//! (tokens expired or revoked, quota, numbers without an account, templates, a slow token
//! endpoint), [`ZaloServer::state`] reads it, and [`ZaloServer::script`] makes a path
//! answer otherwise for a while (an HTTP status, a hang-up, a stall). Every request but the
//! control ones (`/_…`) is recorded in `requests.jsonl`, read back as [`ZReq`]. Dropping
//! the server stops it (it exits when its stdin closes) and removes the directory; a
//! server that does not exit cleanly fails the test. `tests/zalo/server.py`'s docstring is
//! the reference for what it answers.
//!
//! What it shares with [`super::channels`] is [`super::recorded`].
//!
//! `tests/it/zalo_stand_in.rs` holds the harness's own tests of it.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::channels::Req;
use super::recorded::RecordingServer;
use super::{TempDir, http};

/// The token endpoint's path (Zalo OAuth v4 for Official Accounts).
pub const TOKEN_PATH: &str = "/v4/oa/access_token";

/// ZNS's path for a template message.
pub const SEND_PATH: &str = "/message/template";

/// What a server starts with besides its random credentials.
#[derive(Debug, Clone, Default)]
pub struct ZaloOpts {
    /// An access token's life in seconds (`--access-ttl`; the server's default 90000).
    pub access_ttl: Option<u64>,
    /// The daily quota of ZNS messages (`--quota`; the server's default 1000).
    pub quota: Option<u64>,
}

/// A running `tests/zalo/server.py`; stopped, and its directory removed, when dropped.
pub struct ZaloServer {
    app_id: String,
    secret_key: String,
    refresh_token: String,
    server: RecordingServer,
    /// Declared last, so removed after the server has stopped.
    _tmp: TempDir,
}

/// `n` random bytes as hex digits.
fn random_hex(n: usize) -> String {
    let mut random = vec![0u8; n];
    getrandom::fill(&mut random).unwrap();
    random.iter().map(|b| format!("{b:02x}")).collect()
}

impl ZaloServer {
    /// Starts a server with a random app id (19 digits, as Zalo's), secret key
    /// (`TEST-secret-<hex>`) and first refresh token (`TEST-refresh-<hex>`), and waits
    /// until it accepts connections.
    pub fn start(opts: ZaloOpts) -> ZaloServer {
        let mut digits = [0u8; 18];
        getrandom::fill(&mut digits).unwrap();
        let app_id: String = std::iter::once('4')
            .chain(digits.iter().map(|b| char::from(b'0' + b % 10)))
            .collect();
        let secret_key = format!("TEST-secret-{}", random_hex(10));
        let refresh_token = format!("TEST-refresh-{}", random_hex(16));

        let mut args = vec![
            "--app-id".to_string(),
            app_id.clone(),
            "--secret-key".to_string(),
            secret_key.clone(),
            "--refresh-token".to_string(),
            refresh_token.clone(),
        ];
        if let Some(ttl) = opts.access_ttl {
            args.extend(["--access-ttl".to_string(), ttl.to_string()]);
        }
        if let Some(quota) = opts.quota {
            args.extend(["--quota".to_string(), quota.to_string()]);
        }
        let tmp = TempDir::new();
        let server =
            RecordingServer::start("the Zalo stand-in", "tests/zalo/server.py", &tmp, args);
        ZaloServer {
            app_id,
            secret_key,
            refresh_token,
            server,
            _tmp: tmp,
        }
    }

    /// The `app_id` its token endpoint takes.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The `secret_key` header its token endpoint takes.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The refresh token it was started with (valid until used once).
    pub fn initial_refresh_token(&self) -> &str {
        &self.refresh_token
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `http://127.0.0.1:PORT`: both the Zalo `api_url` and its `oauth_url`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Where it writes `requests.jsonl`.
    pub fn dir(&self) -> &Path {
        &self.server.dir
    }

    /// Changes its state: `body` is a JSON object of any of `{"expire_access": true}`,
    /// `{"expire_refresh": true}`, `{"revoke_refresh": true}`, `{"refresh_token": "T"}`,
    /// `{"quota": N}`, `{"reset_day": true}`, `{"no_account": ["84…"]}`,
    /// `{"templates": {"ID": {"max_len": {"param": N}}}}`, `{"delay_refresh": seconds}`
    /// (see `tests/zalo/server.py`). Panics if the server refuses it.
    pub fn control(&self, body: Value) {
        self.server.post_control("/_zalo", &body.to_string());
    }

    /// Scripts the answers to the requests to a path (without its query string:
    /// [`SEND_PATH`], [`TOKEN_PATH`]). Each matching request takes the next of `responses`
    /// (a JSON array); once they are used up, `then` answers every later one, or, if
    /// `None`, the route's own answer. A response is `{"status": 502, "headers":
    /// {"Retry-After": "2"}, "body": "text" or any JSON}` (a Zalo error: `{"status": 200,
    /// "body": {"error": -124, "message": ".."}}`), `{"action": "hangup"}` or `{"action":
    /// "stall", "seconds": 1.5}`. Replaces any script of the same key; panics if the server
    /// refuses it.
    pub fn script(&self, key: &str, responses: Value, then: Option<Value>) {
        self.server.script(key, responses, then);
    }

    /// Forgets every script.
    pub fn reset(&self) {
        self.server.reset();
    }

    /// Its state: `{"refresh_token": the valid one or null, "used_refresh_tokens": [..],
    /// "sent_today": n, "quota": n}`.
    pub fn state(&self) -> Value {
        let got = http::request(self.server.port, "GET", "/_state", &[], b"")
            .unwrap_or_else(|e| panic!("GET /_state from the Zalo stand-in: {e}"));
        assert_eq!(got.status, 200, "GET /_state: {}", got.raw);
        got.json()
    }

    /// The requests recorded so far (every one but `/_…`), in the order they came.
    pub fn requests(&self) -> Vec<ZReq> {
        self.server.requests()
    }

    /// Waits until at least `n` requests have been recorded, and returns all there are;
    /// panics, showing those, after `timeout`.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> Vec<ZReq> {
        self.server.wait_requests(n, timeout, ZReq::summary)
    }

    /// The ZNS sends recorded so far (`POST /message/template`, whatever their answer).
    pub fn sends(&self) -> Vec<ZReq> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_only() == SEND_PATH)
            .collect()
    }

    /// The refreshes recorded so far (`POST /v4/oa/access_token`, whatever their answer).
    pub fn refreshes(&self) -> Vec<ZReq> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path_only() == TOKEN_PATH)
            .collect()
    }

    /// What the server wrote to stderr so far (a Python traceback, secrets hidden).
    pub fn stderr(&self) -> String {
        self.server.stderr()
    }
}

/// One recorded request: a line of `requests.jsonl` (see `tests/zalo/server.py`): the
/// fields of [`Req`] (through `Deref`), and the body parsed as a form.
#[derive(Debug, Clone, Deserialize)]
pub struct ZReq {
    #[serde(flatten)]
    pub req: Req,
    /// The body parsed as a form when its Content-Type is
    /// `application/x-www-form-urlencoded` (the last of repeated names), else `None`.
    pub form: Option<BTreeMap<String, String>>,
}

impl Deref for ZReq {
    type Target = Req;

    fn deref(&self) -> &Req {
        &self.req
    }
}

impl ZReq {
    /// A form field's value.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.as_ref()?.get(name).map(String::as_str)
    }

    /// The Zalo `error` it was answered with (0 for success); `None` if the answer was
    /// scripted, hung up or stalled.
    pub fn error(&self) -> Option<i64> {
        self.answer["error"].as_i64()
    }

    /// One line about it, for messages: `#3 POST /message/template -> {"error":0,...}`.
    pub fn summary(&self) -> String {
        format!(
            "#{} {} {} -> {}",
            self.n, self.method, self.path, self.answer
        )
    }
}
