//! A running `nhacviec run`: [`Setup`] writes its config and files into a fresh directory
//! and starts it with its clock set (`NHACVIEC_CLOCK`), on a port of its own; [`Daemon`]
//! waits on it (rows in its database, lines in its log), speaks HTTP to it, signals it, and
//! restarts it, on the same clock or a later one (a downtime is a restart at a later
//! instant). Dropped while it runs, it is stopped with SIGTERM and must exit 0 within 10 s
//! (killed instead if the test is already failing).
//!
//! Waiting is always for a condition with a limit ([`WAIT`] of real time), never a fixed
//! sleep; a wait that fails shows the outbox rows and every log of the daemon.

use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::config::Cfg;
use super::http::{self, Http};
use super::{Output, TempDir, nhacviec, read, write};

/// How long a condition may take to come true.
pub const WAIT: Duration = Duration::from_secs(20);

/// How long the daemon may take to exit after SIGTERM.
pub const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The daemon's clock as the test knows it: set to `start` when the process started, running
/// `speed` times real time.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: DateTime<Utc>,
    speed: u32,
    origin: Instant,
}

impl Clock {
    fn parse(instant: &str, speed: u32) -> Clock {
        Clock {
            start: DateTime::parse_from_rfc3339(instant)
                .unwrap_or_else(|e| panic!("{instant}: {e}"))
                .with_timezone(&Utc),
            speed,
            origin: Instant::now(),
        }
    }

    fn env(&self) -> String {
        let at = self.start.to_rfc3339();
        if self.speed == 1 {
            at
        } else {
            format!("{at}@x{}", self.speed)
        }
    }

    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.elapsed() * self.speed;
        self.start + chrono::Duration::from_std(elapsed).unwrap()
    }
}

/// A daemon to start.
#[must_use]
pub struct Setup {
    text: String,
    port: u16,
    files: Vec<(String, String)>,
    clock: String,
    speed: u32,
    real_clock: bool,
    args: Vec<String>,
}

impl Setup {
    /// A daemon on `cfg`, its clock set to [`super::config::FIRST_START`].
    pub fn new(cfg: &Cfg) -> Setup {
        Setup::text(cfg.toml(), cfg.port, cfg.files.clone())
    }

    /// A daemon on a config written out in full (`text`, listening on `port`), with
    /// `files` beside it, its clock set to [`super::config::FIRST_START`].
    pub fn text(text: String, port: u16, files: Vec<(String, String)>) -> Setup {
        Setup {
            text,
            port,
            files,
            clock: super::config::FIRST_START.into(),
            speed: 1,
            real_clock: false,
            args: Vec::new(),
        }
    }

    /// The shipped config (`config/nhacviec.toml` with its calendar schedules), listening
    /// on a free port, its clock set to [`super::config::FIRST_START`].
    pub fn shipped() -> Setup {
        let port = super::config::free_port();
        let repo = std::path::Path::new(super::REPO);
        let text = read(&repo.join("config/nhacviec.toml"));
        let listen = "listen = \"127.0.0.1:8080\"";
        assert!(text.contains(listen), "the shipped config listens on 8080");
        let mut files = Vec::new();
        for year in ["2025", "2026"] {
            let name = format!("calendar/vn-{year}.toml");
            files.push((name.clone(), read(&repo.join("config").join(&name))));
        }
        Setup::text(
            text.replace(listen, &format!("listen = \"127.0.0.1:{port}\"")),
            port,
            files,
        )
    }

    /// Its clock at start (RFC 3339 with the offset).
    pub fn clock(mut self, instant: &str) -> Setup {
        self.clock = instant.to_string();
        self
    }

    /// The system clock: no `NHACVIEC_CLOCK`, as in production (until a
    /// [`Daemon::restart_at`]).
    pub fn real_clock(mut self) -> Setup {
        self.real_clock = true;
        self
    }

    /// How many times faster than real time its clock runs.
    pub fn speed(mut self, n: u32) -> Setup {
        self.speed = n;
        self
    }

    /// Arguments after `run`.
    pub fn args(mut self, args: &[&str]) -> Setup {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Writes its files into a fresh directory without starting it (to run commands there
    /// first).
    pub fn prepare(self) -> Daemon {
        let dir = TempDir::new();
        write(&dir.path.join("nhacviec.toml"), &self.text);
        for (path, text) in &self.files {
            write(&dir.path.join(path), text);
        }
        Daemon {
            dir,
            port: self.port,
            child: None,
            clock: Clock::parse(&self.clock, self.speed),
            real_clock: self.real_clock,
            args: self.args,
            runs: 0,
        }
    }

    /// Starts it and waits until `/healthz` answers.
    pub fn start(self) -> Daemon {
        let mut d = self.prepare();
        d.spawn();
        d.wait_ready();
        d
    }

    /// Starts it without waiting for anything.
    pub fn spawn(self) -> Daemon {
        let mut d = self.prepare();
        d.spawn();
        d
    }
}

/// A running (or stopped) `nhacviec --config nhacviec.toml run` in its directory.
pub struct Daemon {
    pub dir: TempDir,
    /// Its HTTP port.
    pub port: u16,
    child: Option<Child>,
    clock: Clock,
    /// Whether it runs on the system clock instead of `clock`.
    real_clock: bool,
    args: Vec<String>,
    /// How many times it was started.
    runs: usize,
}

impl Daemon {
    /// A path inside its directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path.join(name)
    }

    /// Its clock now (as the test computes it: within a few milliseconds of the daemon's).
    pub fn now(&self) -> DateTime<Utc> {
        if self.real_clock {
            Utc::now()
        } else {
            self.clock.now()
        }
    }

    /// Its process id; panics if it is not running (a `kill` of pid 0 would signal the
    /// whole process group, the test runner included).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("the daemon is not running")
    }

    /// (Re)starts the process with the current clock settings, without waiting for it
    /// (after [`Setup::prepare`], once the test has set up its folder: a file system
    /// mounted on `var/`); its log is `run.N.stderr`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "the daemon already runs");
        self.runs += 1;
        self.clock.origin = Instant::now();
        let mut command = nhacviec();
        if self.real_clock {
            command.env_remove("NHACVIEC_CLOCK");
        } else {
            command.env("NHACVIEC_CLOCK", self.clock.env());
        }
        let child = command
            .current_dir(&self.dir.path)
            .args(["--config", "nhacviec.toml", "run"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(self.path(&format!("run.{}.stdout", self.runs))).unwrap())
            .stderr(std::fs::File::create(self.path(&format!("run.{}.stderr", self.runs))).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until `/healthz` answers 200.
    pub fn wait_ready(&mut self) {
        self.wait("/healthz to answer", |d| {
            http::request(d.port, "GET", "/healthz", &[], b"")
                .ok()
                .filter(|r| r.status == 200)
        });
    }

    /// Starts it again, after a stop or a kill, with its clock set to `instant` (a downtime
    /// until then) at `speed`, and waits until it answers.
    pub fn restart_at(&mut self, instant: &str, speed: u32) {
        self.clock = Clock::parse(instant, speed);
        self.real_clock = false;
        self.spawn();
        self.wait_ready();
    }

    /// The log of the current (or last) run.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path(&format!("run.{}.stderr", self.runs))).unwrap_or_default()
    }

    /// Every log so far, earlier runs first, for failure messages.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                let text = std::fs::read_to_string(self.path(&format!("run.{n}.stderr")))
                    .unwrap_or_default();
                format!("--- run {n}\n{text}")
            })
            .collect()
    }

    /// How it exited, if it did (and then it is no longer running).
    fn exited(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let status = child.try_wait().unwrap()?;
        self.child = None;
        Some(status)
    }

    /// Polls `probe` until it gives a value; panics, with the rows and the logs, after
    /// [`WAIT`] or if the daemon exits.
    pub fn wait<T>(&mut self, what: &str, mut probe: impl FnMut(&Daemon) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = probe(self) {
                return v;
            }
            let exited = if self.child.is_some() {
                self.exited().map(|s| format!("exited: {s}"))
            } else {
                Some("is not running".into())
            };
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "waited {WAIT:?} for {what}; the daemon {} (its clock at {})\n--- rows\n{:#?}\n{}",
                    exited.as_deref().unwrap_or("still runs"),
                    self.now(),
                    self.rows(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the outbox holds exactly `n` rows, all sent; returns them.
    pub fn wait_sent(&mut self, n: usize) -> Vec<super::db::Row> {
        self.wait_rows(&format!("{n} rows sent"), |rows| {
            rows.len() == n && rows.iter().all(|r| r.status == "sent")
        })
    }

    /// Waits until `done` holds for the outbox rows (there may be none: `done` must say how
    /// many it wants); returns them.
    pub fn wait_rows(
        &mut self,
        what: &str,
        done: impl Fn(&[super::db::Row]) -> bool,
    ) -> Vec<super::db::Row> {
        self.wait(what, |d| Some(d.rows()).filter(|r| done(r)))
    }

    /// Waits until its log says `text`, `n` times in all.
    pub fn wait_log(&mut self, text: &str, n: usize) {
        self.wait(&format!("{n} × {text:?} in the log"), |d| {
            (d.log().matches(text).count() >= n).then_some(())
        });
    }

    /// One HTTP request; if the daemon does not answer, the panic shows its log.
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Http {
        http::request(self.port, method, path, headers, body).unwrap_or_else(|e| {
            panic!(
                "{method} {path} on 127.0.0.1:{}: {e}\n{}",
                self.port,
                self.logs()
            )
        })
    }

    /// `GET path` with these headers.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Http {
        self.http("GET", path, headers, b"")
    }

    /// `POST path` with a form.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> Http {
        let mut h = headers.to_vec();
        h.push(("Content-Type", "application/x-www-form-urlencoded"));
        self.http("POST", path, &h, http::form_body(form).as_bytes())
    }

    /// `/healthz`, parsed.
    pub fn health(&self) -> Value {
        self.get("/healthz", &[]).json()
    }

    /// `nhacviec --config nhacviec.toml ARGS…` in its directory, on its clock as it is now.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_at(&self.now().to_rfc3339(), args)
    }

    /// The same on a clock set to `instant`.
    pub fn cli_at(&self, instant: &str, args: &[&str]) -> Output {
        let out = nhacviec()
            .current_dir(&self.dir.path)
            .env("NHACVIEC_CLOCK", instant)
            .args(["--config", "nhacviec.toml"])
            .args(args)
            .output()
            .unwrap();
        Output {
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
            status: out.status.code().unwrap_or(-1),
        }
    }

    /// Replaces its config file.
    pub fn write_config(&self, text: &str) {
        write(&self.path("nhacviec.toml"), text);
    }

    /// Sends a signal with `kill` (procps), as an admin would.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill` (procps): {e}"));
        assert!(sent.success(), "kill -{name} {pid}: {sent}");
    }

    /// Waits until it catches signal number `signo` (the SigCgt mask of /proc/PID/status):
    /// it handles signals from its first instructions on, but one sent before the process got
    /// that far would still kill it.
    pub fn wait_catching(&mut self, signo: u32) {
        let status = format!("/proc/{}/status", self.pid());
        self.wait("the signal handler", |_| {
            let text = std::fs::read_to_string(&status).ok()?;
            let line = text.lines().find(|l| l.starts_with("SigCgt:"))?;
            let mask = u64::from_str_radix(line["SigCgt:".len()..].trim(), 16).ok()?;
            (mask & (1 << (signo - 1)) != 0).then_some(())
        });
    }

    /// SIGTERM; how it exited and how long it took (at most [`STOP_WITHIN`], else it is
    /// killed and the test fails).
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.signal("TERM");
        let start = Instant::now();
        let child = self.child.as_mut().expect("the daemon is not running");
        let exited = super::wait_at_most(child, STOP_WITHIN);
        self.child = None;
        let Some(status) = exited else {
            panic!(
                "the daemon did not exit within {STOP_WITHIN:?} of SIGTERM\n{}",
                self.logs()
            );
        };
        (status, start.elapsed())
    }

    /// SIGTERM; it must exit 0 within 10 s, having said so, with nothing on stdout.
    pub fn stop(&mut self) {
        let (status, took) = self.terminate();
        assert_eq!(
            status.code(),
            Some(0),
            "the daemon exited with {status} after SIGTERM\n{}",
            self.logs()
        );
        assert!(took < STOP_WITHIN, "{took:?}");
        let log = self.log();
        assert!(log.contains("shutting down"), "{log}");
        assert_eq!(
            read(&self.path(&format!("run.{}.stdout", self.runs))),
            "",
            "the log goes to stderr"
        );
    }

    /// Runs `nhacviec run` in its directory (on the system clock when `clock` is `None`),
    /// which must refuse to start: exit 1 within [`WAIT`] (else it is killed and the test
    /// fails). Its log.
    pub fn run_refused(&self, clock: Option<&str>) -> String {
        let mut run = nhacviec();
        match clock {
            Some(c) => run.env("NHACVIEC_CLOCK", c),
            None => run.env_remove("NHACVIEC_CLOCK"),
        };
        let log = self.path("refused.stderr");
        let mut child = run
            .current_dir(&self.dir.path)
            .args(["--config", "nhacviec.toml", "run"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let Some(status) = super::wait_at_most(&mut child, WAIT) else {
            panic!("`run` started instead of refusing\n{}", read(&log));
        };
        let log = read(&log);
        assert_eq!(status.code(), Some(1), "{log}");
        log
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it runs.
    pub fn running(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if !self.running() {
            return;
        }
        if std::thread::panicking() {
            self.kill();
        } else {
            self.stop();
        }
    }
}
