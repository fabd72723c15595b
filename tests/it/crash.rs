//! Crash safety: `nhacviec run` killed with SIGKILL while sending loses nothing and sends
//! nothing twice except what was in flight at the kill.
//!
//! 500 units each owe a one-off whose reminder is already due at the first start, so the
//! daemon starts sending 500 messages to a real SMTP server at once. It is killed three times
//! at random points (once the server has received a random number more messages); after
//! each kill the rows left `sending` (in flight) are read from the database. A last run sends
//! the rest. Every message must have arrived, and any that arrived twice must have been in
//! flight at one of the kills (at least once; the resend carries the same Message-ID).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::smtp::{SmtpOpts, SmtpServer};
use crate::support::{TempDir, nhacviec};

const UNITS: usize = 500;

/// A tiny deterministic generator, seeded from the clock and printed, so a failure can be
/// replayed by setting NHACVIEC_CRASH_SEED.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Every unit owes a one-off due Thu 18/09/2025 with one reminder five days before, Fri
/// 12/09 08:00: past at the harness's clock (Mon 15/09 09:00), so it is sent at the start.
fn config(port: u16) -> String {
    let units: Vec<String> = (0..UNITS)
        .map(|i| {
            format!("  {{ id = \"u{i:03}\", name = \"Đơn vị {i}\", email = [\"u{i:03}@example.invalid\"] }},")
        })
        .collect();
    format!(
        r#"unit = [
{}
]
rule = [{{ id = "nhiem-vu", kind = "task", title = "Nhiệm vụ thử", period = "once", due = {{ date = "2025-09-18" }}, units = ["all"], policy = "p" }}]

[organization]
name = "Ủy ban nhân dân phường Đông Hải"
[email]
from = "Nhắc việc <nhacviec@example.invalid>"
transport = "smtp"
smtp = {{ host = "127.0.0.1", port = {port}, security = "none", max_per_minute = 1000000 }}
[server]
listen = "127.0.0.1:0"
[calendar]
holidays = "none"
[policy.p]
before = ["5d"]
on_due = false
after = []
"#,
        units.join("\n")
    )
}

fn spawn(dir: &Path) -> Child {
    nhacviec()
        .args(["--config", "nhacviec.toml", "run"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nhacviec run")
}

fn received(server: &SmtpServer) -> usize {
    std::fs::read_dir(&server.dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                .count()
        })
        .unwrap_or(0)
}

/// Waits (bounded) until `cond` holds, polling.
fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        dir.join("var/nhacviec.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the database")
}

fn ids_with_status(dir: &Path, status: &str) -> BTreeSet<String> {
    let conn = db(dir);
    let mut st = conn
        .prepare("SELECT message_id FROM messages WHERE status = ?1")
        .unwrap();
    st.query_map([status], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn sigkill_while_sending_loses_nothing_and_duplicates_only_what_was_in_flight() {
    let _alone = crate::support::heavy();
    let seed = std::env::var("NHACVIEC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("NHACVIEC_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let server = SmtpServer::start(SmtpOpts::default());
    let dir = TempDir::new();
    std::fs::write(dir.path.join("nhacviec.toml"), config(server.port)).unwrap();

    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    let mut kills = 0;
    while kills < 3 {
        let before = received(&server);
        if before >= UNITS {
            break;
        }
        let target = (before + 1 + rng.below(120) as usize).min(UNITS - 1);
        let mut child = spawn(&dir.path);
        wait_until("the kill point", Duration::from_secs(60), || {
            received(&server) >= target || child.try_wait().ok().flatten().is_some()
        });
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        kills += 1;
        let sending = ids_with_status(&dir.path, "sending");
        eprintln!(
            "kill {kills} after {} received: {} in flight",
            received(&server),
            sending.len()
        );
        assert!(
            sending.len() <= 4,
            "at most the 4 parallel sends are in flight: {}",
            sending.len()
        );
        in_flight.extend(sending);
    }
    assert_eq!(kills, 3, "the daemon was killed three times while sending");

    // A last run sends the rest; then stop it.
    let mut child = spawn(&dir.path);
    wait_until("every message sent", Duration::from_secs(60), || {
        ids_with_status(&dir.path, "sent").len() == UNITS
    });
    child.kill().expect("stop");
    let _ = child.wait();

    let sent = ids_with_status(&dir.path, "sent");
    assert_eq!(sent.len(), UNITS);
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for c in server.captured() {
        let id = c.json["message_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *arrivals.entry(id).or_default() += 1;
    }
    let missing: Vec<&String> = sent
        .iter()
        .filter(|id| !arrivals.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    let twice: BTreeSet<&String> = arrivals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    let unexplained: Vec<&&String> = twice
        .iter()
        .filter(|id| !in_flight.contains(**id))
        .collect();
    assert!(
        unexplained.is_empty(),
        "arrived twice without being in flight at a kill: {unexplained:?} (seed {seed})"
    );
    assert!(arrivals.values().all(|n| *n <= 4), "{arrivals:?}");
    let skipped_or_failed: i64 = db(&dir.path)
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE status NOT IN ('sent')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(skipped_or_failed, 0);
}
