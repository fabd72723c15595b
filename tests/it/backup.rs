//! `nhacviec backup` against the running daemon, and `run` refusing a damaged database.

use std::os::unix::fs::PermissionsExt as _;

use rusqlite::Connection;

use crate::support::config::{Cfg, tuyen_truyen, units};
use crate::support::daemon::{Daemon, Setup};
use crate::support::{assert_contains, read};

fn count(db: &std::path::Path, table: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// A daemon that has sent `vp` and `kt` their reminder, with an empty `var/backups`.
fn running_with_a_backup_folder() -> Daemon {
    let cfg = Cfg::new()
        .units(units(&["vp", "kt"]))
        .rule(tuyen_truyen(&["vp", "kt"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    std::fs::create_dir_all(d.path("var/backups")).unwrap();
    d
}

/// The backups in `var/backups`, oldest first.
fn backups(d: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(d.path("var/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Three backups into a folder while the daemon runs, keeping two: each a consistent,
/// checked copy with the key file beside it, both readable by their owner only; the oldest
/// removed with its key. A backup never overwrites a file.
#[test]
fn backups_of_the_running_daemon_keep_the_newest() {
    let mut d = running_with_a_backup_folder();
    for at in ["09:00:10", "09:00:20", "09:00:30"] {
        let out = d.cli_at(
            &format!("2025-10-13T{at}+07:00"),
            &["backup", "var/backups", "--keep", "2"],
        );
        assert_eq!(out.status, 0, "{out:?}");
        let stamp = at.replace(':', "");
        assert!(
            out.stdout.starts_with(&format!(
                "backed up var/nhacviec.db to var/backups/nhacviec-20251013-{stamp}.db (2 obligations, 2 messages; integrity ok) and its token key to var/backups/nhacviec-20251013-{stamp}.key\n"
            )),
            "{}",
            out.stdout
        );
    }
    assert_eq!(
        backups(&d),
        [
            "nhacviec-20251013-090020.db",
            "nhacviec-20251013-090020.key",
            "nhacviec-20251013-090030.db",
            "nhacviec-20251013-090030.key",
        ]
    );
    let newest = d.path("var/backups/nhacviec-20251013-090030.db");
    assert_eq!(
        count(&newest, "obligations"),
        count(&d.db_path(), "obligations")
    );
    assert_eq!(count(&newest, "messages"), 2);
    assert_eq!(
        std::fs::read(d.path("var/backups/nhacviec-20251013-090030.key")).unwrap(),
        std::fs::read(d.path("var/nhacviec.key")).unwrap()
    );
    for f in [
        "nhacviec-20251013-090030.db",
        "nhacviec-20251013-090030.key",
    ] {
        let mode = std::fs::metadata(d.path(&format!("var/backups/{f}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let again = d.cli(&["backup", "var/backups/nhacviec-20251013-090030.db"]);
    assert_eq!(again.status, 1);
    assert_contains(&again.stderr, &["exists; a backup never overwrites a file"]);
    assert!(d.running(), "the daemon ran on through the backups");
}

/// A file whose header is destroyed is not a database at all: SQLite says so at open, and
/// the daemon refuses it in the same words as a damaged one, naming the backup.
#[test]
fn a_database_without_its_header_is_refused_as_damaged() {
    let mut d = running_with_a_backup_folder();
    let out = d.cli(&["backup", "var/backups"]);
    assert_eq!(out.status, 0, "{out:?}");
    d.stop();
    let db = d.db_path();
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(d.path(&format!("var/nhacviec.{ext}")));
    }
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[..100] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let log = d.run_refused(Some("2025-10-13T09:10:00+07:00"));
    assert_contains(
        &log,
        &[
            "the database var/nhacviec.db is damaged (",
            "restore the latest backup, var/backups/nhacviec-20251013-",
        ],
    );
}

/// A damaged database is refused at start, naming the latest backup; restored as the docs
/// say (the backup and its key put in place), the daemon starts with the history.
#[test]
fn a_damaged_database_is_refused_naming_the_latest_backup() {
    let mut d = running_with_a_backup_folder();
    let out = d.cli(&["backup", "var/backups"]);
    assert_eq!(out.status, 0, "{out:?}");
    d.stop();
    let backup = backups(&d)
        .into_iter()
        .find(|n| n.ends_with(".db"))
        .unwrap();

    // A disk error scribbles over the pages after the first (of the file itself: what the
    // write-ahead log still held is moved into it first).
    let db = d.db_path();
    Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    assert!(bytes.len() > 3 * 4096, "{} bytes", bytes.len());
    for b in &mut bytes[4096..3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let log = d.run_refused(Some("2025-10-13T09:10:00+07:00"));
    assert_contains(
        &log,
        &[
            "the database var/nhacviec.db is damaged",
            &format!("restore the latest backup, var/backups/{backup}"),
        ],
    );

    // Restored: the copy and its key in place, the daemon starts with the history.
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(d.path(&format!("var/nhacviec.{ext}")));
    }
    std::fs::copy(d.path(&format!("var/backups/{backup}")), &db).unwrap();
    let key = backup.replace(".db", ".key");
    std::fs::copy(
        d.path(&format!("var/backups/{key}")),
        d.path("var/nhacviec.key"),
    )
    .unwrap();
    d.restart_at("2025-10-13T09:10:00+07:00", 1);
    assert_eq!(count(&db, "messages"), 2);
    let refused = read(&d.path("refused.stderr"));
    assert_eq!(
        refused.lines().filter(|l| l.contains("damaged")).count(),
        1,
        "{refused}"
    );
}

/// A backup taken while the daemon sends 500 webhook events is the state of one moment:
/// what it holds as sent had reached the receiver, what it holds as pending or sending
/// had not all, and a daemon restored from it resends exactly what it did not hold as sent
/// (at least once, same `webhook-id`), never one it held as sent.
#[test]
fn a_backup_during_a_burst_of_500_restores_that_moment() {
    use std::collections::{BTreeMap, BTreeSet};

    use crate::support::channels::HookServer;
    use crate::support::config::FIRST_START;

    const N: usize = 500;
    let _alone = crate::support::heavy();
    let wait = std::time::Duration::from_secs(60);
    let hooks = HookServer::start();
    // 6000 a minute: the burst takes five seconds, so the backup lands in it.
    let cfg = Cfg::webhook_burst(&hooks, N, 6000);
    let mut d = Setup::new(&cfg).start();
    hooks.wait_requests(60, wait);
    std::fs::create_dir_all(d.path("var/backups")).unwrap();
    let arrived_before = hooks.hooks().len();
    let out = d.cli(&["backup", "var/backups/mid-burst.db"]);
    let arrived_after: BTreeSet<String> = hooks
        .hooks()
        .iter()
        .map(|r| r.header("webhook-id").unwrap_or_default().to_string())
        .collect();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(arrived_after.len() < N, "the backup landed in the burst");

    // What the backup holds.
    let copy = Connection::open(d.path("var/backups/mid-burst.db")).unwrap();
    let rows: Vec<(String, String)> = copy
        .prepare("SELECT message_id, status FROM messages WHERE channel = 'webhook'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(copy);
    let id = |m: &str| m.trim_start_matches('<').trim_end_matches('>').to_string();
    let of = |status: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|(_, s)| s == status)
            .map(|(m, _)| id(m))
            .collect()
    };
    let (sent, sending, pending) = (of("sent"), of("sending"), of("pending"));
    assert_eq!(rows.len(), N, "every message of the step, none torn");
    assert_eq!(sent.len() + sending.len() + pending.len(), N);
    assert!(
        sending.len() <= 4,
        "at most the four in flight: {sending:?}"
    );
    assert!(
        sent.is_subset(&arrived_after),
        "held as sent, so it had arrived"
    );
    assert!(
        sent.len() + sending.len() >= arrived_before,
        "what had arrived before the backup began is sent or in flight in it"
    );

    // The live daemon finishes; then the backup is restored and the daemon started on it.
    d.wait_rows("all 500 sent", |rows| {
        rows.iter()
            .filter(|r| r.channel == "webhook" && r.status == "sent")
            .count()
            == N
    });
    d.stop();
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(d.path(&format!("var/nhacviec.{ext}")));
    }
    std::fs::copy(d.path("var/backups/mid-burst.db"), d.db_path()).unwrap();
    let before_restore = hooks.hooks().len();
    d.restart_at(FIRST_START, 1);
    d.wait_rows("all 500 sent again from the backup", |rows| {
        rows.iter()
            .filter(|r| r.channel == "webhook" && r.status == "sent")
            .count()
            == N
    });
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for r in hooks.hooks().iter().skip(before_restore) {
        *arrivals
            .entry(r.header("webhook-id").unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let resent: BTreeSet<String> = arrivals.keys().cloned().collect();
    let unsent: BTreeSet<String> = sending.union(&pending).cloned().collect();
    assert_eq!(
        resent, unsent,
        "the restored daemon sends exactly what the backup did not hold as sent"
    );
    assert!(arrivals.values().all(|n| *n == 1), "{arrivals:?}");
}
