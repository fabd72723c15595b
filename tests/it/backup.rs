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
    let cfg = Cfg::new()
        .units(units(&["vp", "kt"]))
        .rule(tuyen_truyen(&["vp", "kt"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    std::fs::create_dir_all(d.path("var/backups")).unwrap();
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

/// A damaged database is refused at start, naming the latest backup; restored as the docs
/// say (the backup and its key put in place), the daemon starts with the history.
#[test]
fn a_damaged_database_is_refused_naming_the_latest_backup() {
    let cfg = Cfg::new()
        .units(units(&["vp", "kt"]))
        .rule(tuyen_truyen(&["vp", "kt"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    std::fs::create_dir_all(d.path("var/backups")).unwrap();
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
