//! Benchmark: 2 000 reminders through the outbox to a local SMTP server, pooled connections.
//!
//! The target (issue 3): at least 200 messages per second on the project's machine.
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

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NHACVIEC_TEST_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    venv.is_file().then_some(venv)
}

fn config_text(port: u16) -> String {
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
    for i in 1..=MESSAGES {
        s.push_str(&format!(
            "[[unit]]\nid = \"u{i:05}\"\nname = \"Trường Tiểu học Đông Hải số {i}\"\nemail = [\"u{i:05}@example.invalid\"]\n"
        ));
    }
    s
}

fn main() -> ExitCode {
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
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py");
    let mut child = match Command::new(&python)
        .arg(&server)
        .args(["--sink", "--watch-stdin", "--dir"])
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
        eprintln!("the SMTP server did not start (said {line:?})");
        let _ = child.kill();
        return ExitCode::from(2);
    }

    let code = run(&dir, port);
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    code
}

fn run(dir: &Path, port: u16) -> ExitCode {
    let loaded = config::load_str(
        &dir.join("nhacviec.toml"),
        config_text(port),
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
        let applied = Applied::new((*cfg).clone(), templates).map_err(|_| "mailer")?;
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
    println!("outbox: {rate:.0} messages/s (target >= {TARGET_PER_SECOND:.0})");
    if outcome.sent != MESSAGES || rate < TARGET_PER_SECOND {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
