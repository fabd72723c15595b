//! A test server in Python, as the harness runs each of them (`tests/smtp/server.py`,
//! `tests/channels/server.py`, `tests/zalo/server.py`): started with its stdin held, so it never outlives the test
//! process; ready once it prints `READY <port>`; stopped by closing that stdin, and a
//! server that does not exit cleanly fails the test.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to print `READY <port>`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a server may take to exit once its stdin is closed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server; stopped, its exit checked, when dropped.
pub struct ServerProcess {
    /// What it is, for messages: "the SMTP test server".
    what: String,
    /// The port it printed.
    pub port: u16,
    child: Child,
    /// Closing it stops the server.
    stdin: Option<ChildStdin>,
    stderr: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with its stderr into `stderr` and waits for `READY <port>`; panics,
    /// showing its stderr, if it does not come.
    pub fn start(what: &str, mut cmd: Command, stderr: PathBuf) -> ServerProcess {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {what} ({:?}): {e}; run `bash scripts/test.sh`",
                    cmd.get_program()
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
        let stdin = child.stdin.take();
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let first = match first {
                Ok(Some(Ok(line))) => format!("it printed {line:?}"),
                Ok(Some(Err(e))) => format!("reading its stdout failed: {e}"),
                Ok(None) => "it exited without a word".to_string(),
                Err(_) => format!("no line after {READY_TIMEOUT:?}"),
            };
            panic!(
                "{what} did not start: {first}\n--- its stderr\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        ServerProcess {
            what: what.to_string(),
            port,
            child,
            stdin,
            stderr,
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Closes its stdin, which stops it, and waits for it to exit (or kills it).
    fn stop(&mut self) -> Option<ExitStatus> {
        drop(self.stdin.take());
        super::wait_at_most(&mut self.child, STOP_TIMEOUT)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let status = self.stop();
        if !std::thread::panicking() && !status.is_some_and(|s| s.success()) {
            panic!(
                "{} did not stop cleanly ({})\n--- its stderr\n{}",
                self.what,
                status.map_or(format!("killed after {STOP_TIMEOUT:?}"), |s| s.to_string()),
                self.stderr()
            );
        }
    }
}
