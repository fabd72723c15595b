//! What the HTTP stand-ins' wrappers share ([`super::channels`] runs
//! `tests/channels/server.py`, [`super::zalo`] runs `tests/zalo/server.py`; what the two
//! servers share is `tests/standin.py`): the start with `--dir`, `--port 0` and
//! `--watch-stdin`, the control routes (`POST /_script`, `POST /_reset`), and the requests
//! recorded in `requests.jsonl`, read back and waited for.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::process::ServerProcess;
use super::{REPO, TempDir, http};

/// The interpreter: `NHACVIEC_TEST_PYTHON` if set, else `python3` (the stand-ins use the
/// standard library only).
pub(super) fn python() -> PathBuf {
    std::env::var_os("NHACVIEC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// A running stand-in; stopped when dropped (its owner removes the directory after).
pub(super) struct RecordingServer {
    /// What it is, for messages: "the channels stand-in".
    what: &'static str,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Where it writes `requests.jsonl`.
    pub dir: PathBuf,
    process: ServerProcess,
}

impl RecordingServer {
    /// Runs `script` (under the repository) with `--dir <tmp>/out --port 0 --watch-stdin`
    /// and then `args`, its stderr into `<tmp>/server.stderr`, and waits until it accepts
    /// connections.
    pub fn start<I, S>(what: &'static str, script: &str, tmp: &TempDir, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let dir = tmp.path.join("out");
        let stderr = tmp.path.join("server.stderr");
        let mut cmd = Command::new(python());
        cmd.arg(Path::new(REPO).join(script))
            .arg("--dir")
            .arg(&dir)
            .args(["--port", "0", "--watch-stdin"])
            .args(args);
        let process = ServerProcess::start(what, cmd, stderr);
        RecordingServer {
            what,
            port: process.port,
            dir,
            process,
        }
    }

    /// POSTs `body` to the control route `path`; panics unless it answers 200 `{}`.
    pub fn post_control(&self, path: &str, body: &str) {
        let got = http::request(
            self.port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST {path} to {}: {e}", self.what));
        assert_eq!(
            (got.status, got.raw.as_str()),
            (200, "{}"),
            "POST {path} {body}"
        );
    }

    /// `POST /_script` `{"key": key, "responses": responses, "then": then}`.
    pub fn script(&self, key: &str, responses: Value, then: Option<Value>) {
        let body = json!({"key": key, "responses": responses, "then": then});
        self.post_control("/_script", &body.to_string());
    }

    /// `POST /_reset`: forgets every script.
    pub fn reset(&self) {
        self.post_control("/_reset", "");
    }

    /// The requests recorded so far (every one but `/_…`), in the order they came.
    pub fn requests<R: DeserializeOwned>(&self) -> Vec<R> {
        let Ok(text) = std::fs::read_to_string(self.dir.join("requests.jsonl")) else {
            return Vec::new();
        };
        // Only whole lines: the last may be being written.
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Waits until at least `n` requests have been recorded, and returns all there are;
    /// panics, showing those (each as `summary` says) and its stderr, after `timeout`.
    pub fn wait_requests<R: DeserializeOwned>(
        &self,
        n: usize,
        timeout: Duration,
        summary: impl Fn(&R) -> String,
    ) -> Vec<R> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = got.iter().map(&summary).collect();
                panic!(
                    "waited {timeout:?} for {n} request(s) at {}, {} came:\n{}\
                     \n--- its stderr\n{}",
                    self.what,
                    got.len(),
                    seen.join("\n"),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}
