//! The one test harness: what every integration test shares.
//!
//! - [`Test`]: one run of a command (`check`, `plan`, `calendar`, `preview`, …) in a fresh
//!   temporary directory, with its stdout, stderr and exit code pinned.
//! - [`daemon`]: a `#[must_use]` builder for a running `nhacviec run` (config, clock, free
//!   port, SMTP sink or file transport), stopped with SIGTERM and its exit code checked on
//!   drop; HTTP requests to it; waits on its database.
//! - [`config`]: the units, rules and policies the tests' configs are made of.
//! - [`smtp`]: the real SMTP server the tests send to (aiosmtpd).
//! - [`http`]: HTTP/1.1 by hand over a socket.
//! - [`db`]: the daemon's SQLite file, read as the tests see it.
//! - [`mime`]: messages parsed by Python's own MIME parser.
//!
//! Every binary a test runs has its clock set (`NHACVIEC_CLOCK`, default [`CLOCK`]), so no
//! test depends on today's date and none waits for a real minute. Absolute paths in output
//! are replaced by placeholders before comparing: the temporary directory by `{tmp}` and the
//! repository by `{repo}`; `{tmp}` in an argument stands for the temporary directory too.

pub mod channels;
pub mod config;
pub mod daemon;
pub mod db;
pub mod http;
pub mod mime;
pub mod process;
mod recorded;
pub mod smtp;
pub mod zalo;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

/// The repository (the crate's folder).
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The shipped config, `config/nhacviec.toml`, by its absolute path.
pub const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/nhacviec.toml");

/// The clock of every command a test runs unless it says otherwise: Mon 15/09/2025 09:00 in
/// Vietnam, inside the years the shipped calendar schedules cover.
pub const CLOCK: &str = "2025-09-15T09:00:00+07:00";

/// The binary under test.
pub fn nhacviec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nhacviec"));
    // The commands speak the locale's language: tests read English unless they set one.
    c.env_remove("NHACVIEC_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env("LANG", "C")
        .env("NHACVIEC_CLOCK", CLOCK);
    c
}

/// The harness's Python (`scripts/test.sh` makes `.venv` with the test servers' packages
/// and names its interpreter in `NHACVIEC_TEST_PYTHON`).
pub fn python() -> PathBuf {
    std::env::var_os("NHACVIEC_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "NHACVIEC_TEST_PYTHON is not set: run the tests with `bash scripts/test.sh`, \
                 which makes .venv with the test servers' packages and sets it"
            )
        })
}

/// What a run of the binary printed and returned, with paths replaced by placeholders.
#[derive(Debug)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    pub status: i32,
}

/// One run of the binary, and what it must print.
#[must_use]
pub struct Test {
    dir: TempDir,
    config: PathBuf,
    files: Vec<(PathBuf, String)>,
    args: Vec<String>,
    clock: String,
    lang: String,
    stdout: Option<String>,
    stderr: Option<String>,
    status: i32,
}

impl Test {
    /// A test in a fresh, empty temporary directory, expecting exit code 0.
    pub fn new() -> Test {
        Test {
            dir: TempDir::new(),
            config: PathBuf::from("nhacviec.toml"),
            files: Vec::new(),
            args: Vec::new(),
            clock: CLOCK.to_string(),
            lang: "C".to_string(),
            stdout: None,
            stderr: None,
            status: 0,
        }
    }

    /// The text of `nhacviec.toml`.
    pub fn config(self, text: &str) -> Test {
        self.file("nhacviec.toml", text)
    }

    /// Uses `tests/fixtures/NAME` as `nhacviec.toml`.
    pub fn fixture(self, name: &str) -> Test {
        let text = read(&Path::new(REPO).join("tests/fixtures").join(name));
        self.config(&text)
    }

    /// Runs against another config file (`--config PATH`) instead of `nhacviec.toml`.
    pub fn config_path(mut self, path: &str) -> Test {
        self.config = PathBuf::from(path.replace("{tmp}", &self.dir.display()));
        self
    }

    /// Runs against the shipped `config/nhacviec.toml`, where it is.
    pub fn shipped(self) -> Test {
        self.config_path(SHIPPED)
    }

    /// Another file in the temporary directory (a secret, a calendar schedule).
    pub fn file(mut self, path: &str, text: &str) -> Test {
        self.files.push((PathBuf::from(path), text.to_string()));
        self
    }

    /// Copies the shipped calendar schedules into `calendar/`.
    pub fn shipped_calendar(self) -> Test {
        self.file(
            "calendar/vn-2025.toml",
            &read(&Path::new(REPO).join("config/calendar/vn-2025.toml")),
        )
        .file(
            "calendar/vn-2026.toml",
            &read(&Path::new(REPO).join("config/calendar/vn-2026.toml")),
        )
    }

    /// The command line after `--config PATH`.
    pub fn args(mut self, args: &[&str]) -> Test {
        self.args
            .extend(args.iter().map(|a| a.replace("{tmp}", &self.dir.display())));
        self
    }

    /// The clock it runs on (`NHACVIEC_CLOCK`) instead of [`CLOCK`].
    pub fn clock(mut self, instant: &str) -> Test {
        self.clock = instant.to_string();
        self
    }

    /// The locale it runs under (`LANG`; `C` unless told).
    pub fn lang(mut self, locale: &str) -> Test {
        self.lang = locale.to_string();
        self
    }

    /// What stdout must be, exactly.
    pub fn stdout(mut self, text: &str) -> Test {
        self.stdout = Some(text.to_string());
        self
    }

    /// What stderr must be, exactly.
    pub fn stderr(mut self, text: &str) -> Test {
        self.stderr = Some(text.to_string());
        self
    }

    /// The exit code it must return (0 unless told).
    pub fn status(mut self, code: i32) -> Test {
        self.status = code;
        self
    }

    /// Writes the files, runs the binary, checks what was set, and returns the output.
    pub fn run(self) -> Output {
        for (path, text) in &self.files {
            write(&self.dir.path.join(path), text);
        }
        let out = nhacviec()
            .current_dir(&self.dir.path)
            .env("NHACVIEC_CLOCK", &self.clock)
            .env("LANG", &self.lang)
            .arg("--config")
            .arg(&self.config)
            .args(&self.args)
            .output()
            .unwrap();
        let clean = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec())
                .unwrap()
                .replace(&self.dir.display(), "{tmp}")
                .replace(REPO, "{repo}")
        };
        let output = Output {
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
            status: out.status.code().unwrap_or(-1),
        };
        let command = format!(
            "NHACVIEC_CLOCK={} nhacviec --config {} {}",
            self.clock,
            self.config.display(),
            self.args.join(" ")
        );
        if let Some(want) = &self.stdout {
            same_text(&command, "stdout", want, &output.stdout);
        }
        if let Some(want) = &self.stderr {
            same_text(&command, "stderr", want, &output.stderr);
        }
        assert_eq!(
            output.status, self.status,
            "`{command}` exited with {} instead of {}\n--- stdout\n{}--- stderr\n{}",
            output.status, self.status, output.stdout, output.stderr
        );
        output
    }
}

/// Panics, showing both texts as they would print, when they differ.
pub fn same_text(command: &str, stream: &str, want: &str, got: &str) {
    if want == got {
        return;
    }
    let line = want
        .lines()
        .zip(got.lines())
        .position(|(w, g)| w != g)
        .unwrap_or_else(|| want.lines().count().min(got.lines().count()))
        + 1;
    panic!(
        "`{command}`: {stream} differs from line {line}\n--- expected\n{want}\n--- actual\n{got}\n---"
    );
}

/// Panics, showing `text`, unless it contains each of `musts`.
pub fn assert_contains<S: AsRef<str>>(text: &str, musts: &[S]) {
    for must in musts {
        let must = must.as_ref();
        assert!(text.contains(must), "{must:?} missing in\n{text}");
    }
}

/// Panics, showing `text`, if it contains `unwanted`; `why` says why it must not.
pub fn assert_lacks(text: &str, unwanted: &str, why: &str) {
    assert!(!text.contains(unwanted), "{why}: {unwanted:?} in\n{text}");
}

/// Waits for `child` to exit, for at most `limit`; kills and reaps it if it outlives it
/// (`None` then).
pub fn wait_at_most(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Taken by the tests that must not overlap: the bursts of hundreds of messages (which load
/// both cores for seconds) and the test whose clock runs 100 000 × real speed (where 36 ms
/// of real time is an hour of its clock). Other tests run beside them as before.
pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file's text; panics with its path.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes a file, making its folder. A file in a `secrets/` folder is made readable by its
/// owner only, as an admin is told to (`check` warns about one every user can read).
pub fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if path.components().any(|c| c.as_os_str() == "secrets") {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// "1 warning", "2 warnings", as the binary counts.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// An instant in Vietnam, `"2025-10-15 09:59:00"`.
pub fn vn(s: &str) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone as _;
    let local = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
        .unwrap_or_else(|e| panic!("{s}: {e}"));
    chrono_tz::Asia::Ho_Chi_Minh
        .from_local_datetime(&local)
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// The same instant as `NHACVIEC_CLOCK` takes it: `2025-10-15T09:59:00+07:00`.
pub fn clock(s: &str) -> String {
    vn(s)
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .to_rfc3339()
}

/// A date from `YYYY-MM-DD`.
pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("`{s}`: {e}"))
}

/// Parses a TOML file of the repository (a config or a calendar schedule).
pub fn repo_toml(path: &str) -> toml::Table {
    read(&Path::new(REPO).join(path))
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Lines of text, each with its newline: `lines(&["a", "b"]) == "a\nb\n"`.
pub fn lines(items: &[&str]) -> String {
    let mut s = String::new();
    for l in items {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// A directory under the system's temporary directory, removed when dropped.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("nhacviec-it-{}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return TempDir { path },
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create {}: {e}", path.display()),
            }
        }
    }

    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
