//! Benchmark: 2 000 reminders through the outbox to a local SMTP server, pooled connections;
//! or, with `-- webhook`, 2 000 signed webhook events to the local receiver.
//!
//! The targets: at least 200 emails a second (issue 3), 500 webhook events a second with
//! four senders (issue 9), on the project's machine.
//!
//! With `webhook`, the receiver is `tests/channels/server.py` (Python's threaded HTTP
//! server, keep-alive, recording every request to a file as the tests' stand-in does), and
//! the units have a webhook and no email; the rest is as below.
//!
//! It starts the test SMTP server (`tests/smtp/server.py --sink`: aiosmtpd on 127.0.0.1 that
//! accepts every message and keeps nothing, so the server's own bookkeeping is not what is
//! measured), builds a config of 2 000 units owing one report, enqueues one step's messages
//! for all of them into a fresh SQLite file (as the engine does), then times
//! `Outbox::drain`: claim, render both templates, build the MIME message, send over SMTP,
//! record the outcome, for every message. The rate limit is raised for the run.
//!
//! Run `bash scripts/test.sh` once (it makes `.venv` with aiosmtpd), then
//! `cargo bench --bench outbox`. ARCHITECTURE.md quotes its figures with the machine.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use nhacviec::clock::{Clock, ManualClock};
use nhacviec::config;
use nhacviec::deliver::enqueue;
use nhacviec::deliver::outbox::Outbox;
use nhacviec::deliver::templates::Templates;
use nhacviec::deliver::{Applied, Current};
use nhacviec::plan::{self, Period};
use nhacviec::store::Store;
use nhacviec::token::TokenKey;

const MESSAGES: usize = 2_000;
const TARGET_PER_SECOND: f64 = 200.0;
const WEBHOOK_TARGET_PER_SECOND: f64 = 500.0;

/// 32 bytes of 0x2a.
const WEBHOOK_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// What the benchmark sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Email,
    Webhook,
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NHACVIEC_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.is_file().then_some(venv)
}

fn config_text(mode: Mode, port: u16) -> String {
    let mut s = format!(
        r#"
[organization]
name = "Ủy ban nhân dân phường Đông Hải"
[email]
from = "Nhắc việc UBND phường Đông Hải <nhacviec@example.invalid>"
transport = "smtp"
[email.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
max_per_minute = 10000000
[[rule]]
id = "bao-cao-9-thang"
kind = "report"
title = "Báo cáo tình hình, kết quả thực hiện công tác dân vận chính quyền"
period = "nine-months"
due = {{ month = "next", day = 5, before = true }}
units = ["all"]
reference = "Chương trình 05/CTr-UBND"
"#
    );
    if mode == Mode::Webhook {
        s.push_str(
            "[channels.webhook]\nsecret_file = \"webhook-secret\"\nmax_per_minute = 10000000\n",
        );
    }
    for i in 1..=MESSAGES {
        let address = match mode {
            Mode::Email => format!("email = [\"u{i:05}@example.invalid\"]"),
            Mode::Webhook => {
                format!("email = []\nwebhook = \"http://127.0.0.1:{port}/hook/u{i:05}\"")
            }
        };
        s.push_str(&format!(
            "[[unit]]\nid = \"u{i:05}\"\nname = \"Trường Tiểu học Đông Hải số {i}\"\n{address}\n"
        ));
    }
    s
}

fn main() -> ExitCode {
    let mode = if std::env::args().any(|a| a == "webhook") {
        Mode::Webhook
    } else {
        Mode::Email
    };
    let Some(python) = python() else {
        eprintln!(
            "no Python with aiosmtpd: run `bash scripts/test.sh` once (it makes .venv), or set NHACVIEC_TEST_PYTHON"
        );
        return ExitCode::from(2);
    };
    let dir = std::env::temp_dir().join(format!("nhacviec-bench-outbox-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sink = dir.join("sink");
    if let Err(e) = std::fs::create_dir_all(&sink) {
        eprintln!("cannot create {}: {e}", sink.display());
        return ExitCode::from(2);
    }
    let (server, args) = match mode {
        Mode::Email => ("tests/smtp/server.py", ["--sink", "--watch-stdin", "--dir"]),
        Mode::Webhook => (
            "tests/channels/server.py",
            ["--token", "x", "--watch-stdin"],
        ),
    };
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join(server);
    if mode == Mode::Webhook && std::fs::write(dir.join("webhook-secret"), WEBHOOK_SECRET).is_err()
    {
        return ExitCode::from(2);
    }
    let mut child = match Command::new(&python)
        .arg(&server)
        .args(args)
        .args(if mode == Mode::Webhook {
            vec!["--dir"]
        } else {
            vec![]
        })
        .arg(&sink)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {}: {e}", server.display());
            return ExitCode::from(2);
        }
    };
    let mut line = String::new();
    let port: u16 = child
        .stdout
        .take()
        .and_then(|out| BufReader::new(out).read_line(&mut line).ok())
        .and_then(|_| line.trim().strip_prefix("READY ")?.parse().ok())
        .unwrap_or(0);
    if port == 0 {
        eprintln!("the server did not start (said {line:?})");
        let _ = child.kill();
        return ExitCode::from(2);
    }

    let code = run(mode, &dir, port);
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    code
}

fn run(mode: Mode, dir: &Path, port: u16) -> ExitCode {
    let loaded = config::load_str(
        &dir.join("nhacviec.toml"),
        config_text(mode, port),
        chrono::NaiveDate::from_ymd_opt(2025, 9, 1).unwrap_or_default(),
    );
    let Some(cfg) = loaded.config else {
        for d in &loaded.diagnostics {
            eprintln!("{d}");
        }
        return ExitCode::from(2);
    };
    let cfg = Arc::new(cfg);
    let occ = match plan::occurrence(&cfg, 0, Period::NineMonths(2025)) {
        Some(o) => o,
        None => return ExitCode::from(2),
    };
    let step = &occ.steps[0];
    let t = step.at.with_timezone(&Utc);
    let clock = Arc::new(ManualClock::new(t));
    let store = match Store::open(&dir.join("nhacviec.db"), Utc.timestamp_opt(0, 0).unwrap()) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let key = TokenKey::from_bytes([9; 32]);
    let units: Vec<usize> = (0..cfg.units.len()).collect();
    let rows = enqueue::step_rows(&cfg, &key, &occ, step, &units, false);
    let started = Instant::now();
    if let Err(e) = store.enqueue(clock.now(), &[rows], None) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    let enqueue_time = started.elapsed();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        let templates = Templates::load(None).0.ok_or("templates")?;
        let applied = Applied::new((*cfg).clone(), templates, None).map_err(|_| "mailer")?;
        let current = Arc::new(Current::new(applied));
        let outbox = Outbox::new(store.clone(), clock.clone(), current, key);
        let started = Instant::now();
        let outcome = outbox.drain().await.map_err(|_| "drain")?;
        Ok::<_, &str>((outcome, started.elapsed()))
    });
    let (outcome, took) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("setup failed: {e}");
            return ExitCode::from(2);
        }
    };
    let rate = outcome.sent as f64 / took.as_secs_f64();
    println!(
        "enqueue: {MESSAGES} messages in one transaction, {:.1} ms",
        enqueue_time.as_secs_f64() * 1e3
    );
    println!(
        "outbox:  sent {}, retried {}, failed {} in {:.2} s",
        outcome.sent,
        outcome.retried,
        outcome.failed,
        took.as_secs_f64()
    );
    let (what, target) = match mode {
        Mode::Email => ("emails over SMTP", TARGET_PER_SECOND),
        Mode::Webhook => ("webhook events", WEBHOOK_TARGET_PER_SECOND),
    };
    println!(
        "outbox: {rate:.0} {what}/s, {} senders (target >= {target:.0})",
        nhacviec::deliver::outbox::PARALLEL
    );
    if outcome.sent != MESSAGES || rate < target {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
