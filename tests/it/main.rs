//! Integration tests: they run the real `nhacviec` binary.
//!
//! Each test builds a [`Test`]: a fresh temporary directory, a config written into it as
//! `nhacviec.toml` (plus any other files), the arguments, and what stdout, stderr and the exit
//! code must be. The binary runs with the temporary directory as its working directory and
//! `--config nhacviec.toml`, so the paths it prints are short and stable. Absolute paths in
//! its output are replaced by placeholders before comparing: the temporary directory by
//! `{tmp}` and the repository by `{repo}`; `{tmp}` in an argument stands for the temporary
//! directory too.

mod ack;
mod browser;
mod calendar;
mod check;
mod crash;
mod daemon;
mod mail;
mod plan;
mod smtp;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

/// The repository (the crate's folder).
const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The shipped config, `config/nhacviec.toml`, by its absolute path.
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/nhacviec.toml");

/// What a run of the binary printed and returned, with paths replaced by placeholders.
#[derive(Debug)]
struct Output {
    stdout: String,
    stderr: String,
    status: i32,
}

/// One run of the binary, and what it must print.
#[must_use]
struct Test {
    dir: TempDir,
    config: PathBuf,
    files: Vec<(PathBuf, String)>,
    args: Vec<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    status: i32,
}

impl Test {
    /// A test in a fresh, empty temporary directory, expecting exit code 0.
    fn new() -> Test {
        Test {
            dir: TempDir::new(),
            config: PathBuf::from("nhacviec.toml"),
            files: Vec::new(),
            args: Vec::new(),
            stdout: None,
            stderr: None,
            status: 0,
        }
    }

    /// The text of `nhacviec.toml`.
    fn config(self, text: &str) -> Test {
        self.file("nhacviec.toml", text)
    }

    /// Uses `tests/fixtures/NAME` as `nhacviec.toml`.
    fn fixture(self, name: &str) -> Test {
        let text = read(&Path::new(REPO).join("tests/fixtures").join(name));
        self.config(&text)
    }

    /// Runs against another config file (`--config PATH`) instead of `nhacviec.toml`.
    fn config_path(mut self, path: &str) -> Test {
        self.config = PathBuf::from(path.replace("{tmp}", &self.dir.display()));
        self
    }

    /// Runs against the shipped `config/nhacviec.toml`, where it is.
    fn shipped(self) -> Test {
        self.config_path(SHIPPED)
    }

    /// Another file in the temporary directory (a secret, a calendar schedule).
    fn file(mut self, path: &str, text: &str) -> Test {
        self.files.push((PathBuf::from(path), text.to_string()));
        self
    }

    /// Copies the shipped calendar schedules into `calendar/`.
    fn shipped_calendar(self) -> Test {
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
    fn args(mut self, args: &[&str]) -> Test {
        self.args
            .extend(args.iter().map(|a| a.replace("{tmp}", &self.dir.display())));
        self
    }

    /// What stdout must be, exactly.
    fn stdout(mut self, text: &str) -> Test {
        self.stdout = Some(text.to_string());
        self
    }

    /// What stderr must be, exactly.
    fn stderr(mut self, text: &str) -> Test {
        self.stderr = Some(text.to_string());
        self
    }

    /// The exit code it must return (0 unless told).
    fn status(mut self, code: i32) -> Test {
        self.status = code;
        self
    }

    /// Writes the files, runs the binary, checks what was set, and returns the output.
    fn run(self) -> Output {
        for (path, text) in &self.files {
            let path = self.dir.path.join(path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&path, text).unwrap();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_nhacviec"))
            .current_dir(&self.dir.path)
            .env_remove("NHACVIEC_CONFIG")
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
            "nhacviec --config {} {}",
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
fn same_text(command: &str, stream: &str, want: &str, got: &str) {
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

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// "1 warning", "2 warnings", as the binary counts.
fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A date from `YYYY-MM-DD`.
fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("`{s}`: {e}"))
}

/// Today in Vietnam, the date the binary's time-relative warnings use.
fn today_in_vietnam() -> NaiveDate {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive()
}

/// Parses a TOML file of the repository (a config or a calendar schedule).
fn repo_toml(path: &str) -> toml::Table {
    read(&Path::new(REPO).join(path))
        .parse()
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Lines of text, each with its newline: `lines(&["a", "b"]) == "a\nb\n"`.
fn lines(items: &[&str]) -> String {
    let mut s = String::new();
    for l in items {
        let _ = writeln!(s, "{l}");
    }
    s
}

/// A directory under the system's temporary directory, removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new() -> TempDir {
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

    fn display(&self) -> String {
        self.path.display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
