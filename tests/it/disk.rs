//! Disk and database faults, against the real `nhacviec run` with its state folder `var/`
//! on a file system of the test's own: a small tmpfs, or an ext4 image on a loop device.
//!
//! - A full disk while the daemon runs, two ways, because which write fails first depends
//!   on SQLite's write-ahead log: a WAL that must grow for the next transaction (a young
//!   database) makes the database fail first (the engine's wakes, the acks); a WAL with
//!   room left to reuse (a daemon that has run a while: SQLite reuses its WAL after each
//!   checkpoint) keeps the database working and the `.eml` file of the next reminder fails
//!   first. Either way the daemon keeps running, says what fails in its log and in
//!   `/healthz`, answers an ack it cannot record with 503 (and one it answered 2xx is in
//!   the database), and once space returns sends the step that fell due meanwhile, once,
//!   and `/healthz` is ok again, without a restart.
//! - A file system the kernel turns read-only under the running daemon (ext4's
//!   `errors=remount-ro` after a disk error): the same, until the admin repairs it and
//!   restarts the daemon, which then catches up. (An admin's `mount -o remount,ro` is
//!   refused, "mount point is busy", while the daemon holds its database open for writing;
//!   and the kernel's read-only state lasts until the file system is unmounted.)
//! - A read-only database at start (a read-only mount; a file another user owns) and a key
//!   file the daemon's user cannot read: refused, naming the file and what to do, with
//!   nothing written.
//!
//! Each test needs root (to mount, and to run the daemon as the unprivileged user 65534
//! with `setpriv` from util-linux, since root ignores file modes): without it, it fails and
//! says so, unless `NHACVIEC_SKIP_ROOT_TESTS` is set (a developer's run as an ordinary user),
//! when it prints one line and checks nothing. CI runs as root. Every mount is undone by a
//! guard, even when the test panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ack::{ack, mails};
use crate::support::config::{Cfg, once, policy, tuyen_truyen, units};
use crate::support::daemon::{Daemon, Setup, WAIT};
use crate::support::mime::message_token;
use crate::support::{clock, nhacviec, read, vn};

/// The unprivileged user (and group) the daemon runs as where file modes must count.
const NOBODY: &str = "65534";

/// True when the test can run: as root. Not as root, a failure that says why, unless
/// `NHACVIEC_SKIP_ROOT_TESTS` asks to skip (then false, and one line saying so): a test that
/// silently checks nothing would pass for one that holds.
fn root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("NHACVIEC_SKIP_ROOT_TESTS").is_some(),
        "{test} needs root (mount, setpriv): run the suite as root, or set \
         NHACVIEC_SKIP_ROOT_TESTS=1 to skip the disk fault tests"
    );
    println!("{test}: needs root (mount, setpriv); skipped (NHACVIEC_SKIP_ROOT_TESTS)");
    false
}

/// Runs a command that must succeed; its output in the panic otherwise.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A file system mounted by the test on a folder, unmounted when dropped (lazily, so even
/// a daemon still holding files there, in a test that panicked, cannot keep it mounted).
struct Mount(PathBuf);

impl Mount {
    /// A tmpfs of `size` (`"6m"`) on `at`, made if needed.
    fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        let dir = at.display().to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                &dir,
            ],
        );
        Mount(at.to_path_buf())
    }

    /// An ext4 image of `mb` MiB, made in `image` (no journal, so it is quick to make),
    /// mounted on `at` through a loop device with `errors=remount-ro`, as distributions
    /// mount their disks.
    fn ext4(image: &Path, mb: u64, at: &Path) -> Mount {
        std::fs::File::create(image)
            .unwrap()
            .set_len(mb << 20)
            .unwrap();
        let img = image.display().to_string();
        run("mkfs.ext4", &["-q", "-F", "-O", "^has_journal", &img]);
        std::fs::create_dir_all(at).unwrap();
        let m = Mount(at.to_path_buf());
        m.mount_image(image);
        m
    }

    /// Mounts `image` (ext4) on its folder again.
    fn mount_image(&self, image: &Path) {
        let (img, dir) = (image.display().to_string(), self.0.display().to_string());
        run("mount", &["-o", "loop,errors=remount-ro", &img, &dir]);
    }

    /// `mount -o remount,OPTS`.
    fn remount(&self, opts: &str) {
        run(
            "mount",
            &[
                "-o",
                &format!("remount,{opts}"),
                &self.0.display().to_string(),
            ],
        );
    }

    /// Unmounts it now (nothing may hold it).
    fn unmount(&self) {
        run("umount", &[&self.0.display().to_string()]);
    }

    /// Writes back what the kernel holds for it (`syncfs`), as it does by itself within
    /// half a minute.
    fn sync(&self) {
        run("sync", &["-f", &self.0.display().to_string()]);
    }

    /// Makes the kernel treat it as after a disk error: ext4 with `errors=remount-ro`
    /// turns read-only under whoever has files open (its debugging switch in sysfs).
    fn disk_error(&self) {
        let source = run(
            "findmnt",
            &["-n", "-o", "SOURCE", &self.0.display().to_string()],
        );
        let device = Path::new(source.trim()).file_name().unwrap().to_owned();
        let switch = Path::new("/sys/fs/ext4")
            .join(device)
            .join("trigger_fs_error");
        std::fs::write(&switch, "nhacviec test: a disk error")
            .unwrap_or_else(|e| panic!("{}: {e}", switch.display()));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// Fills the file system holding `dir` with a file there until it has no space left;
/// its path (removing it gives the space back).
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        match f.write_all(&block) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => return path,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
}

/// Every file under `dir` with its bytes, to show that nothing was written.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                files.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

/// The names in a snapshot, for a failure message.
fn names(s: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<&Path> {
    s.keys().map(PathBuf::as_path).collect()
}

/// `nhacviec run` in the daemon's folder as the unprivileged user [`NOBODY`], which must
/// refuse to start (exit 1); its log. The folder must be that user's.
fn run_refused_as_nobody(d: &Daemon) -> String {
    let base = nhacviec();
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOBODY}"),
        "--clear-groups",
        "--",
    ])
    .arg(base.get_program());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c
        .current_dir(&d.dir.path)
        .env("NHACVIEC_CLOCK", d.now().to_rfc3339())
        .args(["--config", "nhacviec.toml", "run"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run setpriv (util-linux): {e}"));
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{log}");
    log
}

/// Gives the daemon's whole folder (config, state) to [`NOBODY`].
fn give_to_nobody(d: &Daemon) {
    run(
        "chown",
        &["-R", &format!("{NOBODY}:{NOBODY}"), &d.dir.display()],
    );
}

/// `vp`, `kt` and `yt` owe a meeting at 10:00 on Wed 15/10/2025, reminded 10 and 7
/// minutes before; the file transport into `var/mail`.
fn meeting() -> Cfg {
    Cfg::new().units(units(&["vp", "kt", "yt"])).rule(
        once("giao-ban", "Họp giao ban", "2025-10-15 10:00")
            .units(&["vp", "kt", "yt"])
            .policy(policy(&["10m", "7m"], &[]).keep()),
    )
}

/// The obligation of `unit` in [`meeting`].
fn key(unit: &str) -> String {
    format!("giao-ban/2025-10-15/{unit}")
}

/// [`meeting`]'s daemon with `var/` on a file system of the test's making (`mount`, given
/// the folder), two seconds before the first reminder at 60 × real speed (a minute a
/// second), once that reminder is sent to the three units; each unit's ack token.
fn meeting_on(mount: impl FnOnce(&Daemon) -> Mount) -> (Daemon, Mount, BTreeMap<String, String>) {
    let cfg = meeting();
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:49:58"))
        .speed(60)
        .prepare();
    let m = mount(&d);
    d.spawn();
    d.wait_ready();
    d.wait_sent(3);
    let mut tokens = BTreeMap::new();
    for m in mails(&d) {
        let to = m.get("to").unwrap_or_default().to_string();
        let unit = ["vp", "kt", "yt"]
            .into_iter()
            .find(|u| to.contains(&format!("<{u}@")))
            .unwrap_or_else(|| panic!("to {to}"));
        tokens.insert(unit.to_string(), message_token(&m, &cfg.public_url));
    }
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    (d, m, tokens)
}

/// The acks the test sent, (unit, action, recorded), and how to check them.
#[derive(Default)]
struct Acks(Vec<(String, String, bool)>);

impl Acks {
    /// A unit's ack from its link: true when it was answered as recorded (a 2xx page, or
    /// the 303 to the page with the result), false for the 503 page "try again"; any
    /// other answer fails the test.
    fn post(
        &mut self,
        d: &Daemon,
        tokens: &BTreeMap<String, String>,
        unit: &str,
        action: &str,
    ) -> bool {
        let r = ack(d, &tokens[unit], action);
        let recorded = match r.status {
            200..=299 => true,
            303 => {
                let to = r.header("location").unwrap_or_default();
                assert!(to.contains("kq="), "{unit} {action}: {r:#?}");
                true
            }
            503 => {
                assert!(r.text.contains("Chưa ghi nhận được"), "{}", r.text);
                false
            }
            _ => panic!("{unit} {action}: {r:#?}"),
        };
        self.0.push((unit.into(), action.into(), recorded));
        recorded
    }

    /// The acks answered as recorded are those in the database, in order, and no other.
    fn all_recorded(&self, d: &Daemon) {
        let answered: Vec<(String, String)> = self
            .0
            .iter()
            .filter(|(_, _, recorded)| *recorded)
            .map(|(u, a, _)| (key(u), a.clone()))
            .collect();
        let recorded: Vec<(String, String)> = d
            .all_acks()
            .into_iter()
            .map(|(k, a)| (k, a.action))
            .collect();
        assert_eq!(recorded, answered, "answered: {:?}", self.0);
    }
}

/// Waits until `/healthz` is degraded with a problem that starts with `problem`; that
/// problem.
fn degraded(d: &mut Daemon, problem: &str) -> String {
    d.wait(&format!("/healthz degraded: {problem}"), |d| {
        let h = d.health();
        let found = h["problems"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str())
            .find(|p| p.starts_with(problem))?
            .to_string();
        (h["status"] == "degraded").then_some(found)
    })
}

/// Waits until `/healthz` says ok.
fn healthy(d: &mut Daemon) {
    d.wait("/healthz ok", |d| {
        let h = d.health();
        (h["status"] == "ok" && h["problems"] == serde_json::json!([])).then_some(())
    });
}

/// Waits until the daemon's clock is past `instant` (Vietnam time).
fn wait_past(d: &mut Daemon, instant: &str) {
    let t = vn(instant);
    d.wait(&format!("the clock past {instant}"), |d| {
        (d.now() > t).then_some(())
    });
}

/// The `.eml` files and their Message-IDs against the sent rows: one file per sent
/// message, no other, and no temporary file left.
fn one_file_per_sent_message(d: &Daemon) {
    let mut files: Vec<String> = std::fs::read_dir(d.path("var/mail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(
        files.iter().all(|f| f.ends_with(".eml")),
        "only messages: {files:?}"
    );
    let mut sent: Vec<String> = d
        .rows()
        .iter()
        .filter(|r| r.status == "sent")
        .map(|r| format!("{}.eml", r.message_id.trim_matches(['<', '>'])))
        .collect();
    sent.sort();
    assert_eq!(files, sent);
}

/// How many messages of `step` reached each unit (`sent`).
fn sent_of(d: &Daemon, step: &str) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for r in d
        .rows()
        .iter()
        .filter(|r| r.step == step && r.status == "sent")
    {
        *n.entry(r.unit().to_string()).or_insert(0) += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------
// A full disk

/// A young database, whose write-ahead log must grow for any new transaction, on a tmpfs
/// that fills up: the database fails first. The daemon keeps running; its engine's wakes
/// fail and say why, in the log and in `/healthz` (degraded); an ack answered 2xx before
/// the fault is kept, one during it is answered 503 and not recorded. The 7-minute
/// reminder falls due meanwhile; once the filler is removed it is sent, once, to the two
/// units that did not answer, `/healthz` is ok again, and the unit that was refused can
/// answer now. (Needs root.)
#[test]
fn a_full_disk_fails_the_database_first_and_nothing_answered_is_lost() {
    if !root("a_full_disk_fails_the_database_first_and_nothing_answered_is_lost") {
        return;
    }
    let (mut d, _mount, tokens) = meeting_on(|d| Mount::tmpfs(&d.path("var"), "4m"));
    let mut acks = Acks::default();
    assert!(acks.post(&d, &tokens, "kt", "done"));

    let filler = fill(&d.path("var"));
    let problem = degraded(&mut d, "the engine cannot write to the database since ");
    assert!(
        problem.contains("database or disk is full (the file system holding var is full, ")
            && problem.contains("KiB free); free space on it"),
        "{problem}"
    );
    assert!(!acks.post(&d, &tokens, "yt", "seen"), "not recorded");
    wait_past(&mut d, "2025-10-15 09:53:05");
    assert!(d.health()["status"] == "degraded");
    assert_eq!(sent_of(&d, "before-7m"), BTreeMap::new(), "not sent yet");
    let log = d.log();
    assert!(
        log.contains("engine wake failed; retrying every minute until it succeeds")
            && log.contains("error=database error: database or disk is full (the file system holding var is full"),
        "{log}"
    );
    // The refused ack's line says why too.
    let refused = log
        .lines()
        .find(|l| l.contains("acknowledgement not recorded"))
        .unwrap_or_else(|| panic!("no line for the refused ack:\n{log}"));
    assert!(
        refused.contains("database or disk is full (the file system holding var is full, "),
        "{refused}"
    );

    std::fs::remove_file(&filler).unwrap();
    d.wait("the 7-minute reminder sent", |d| {
        let n = sent_of(d, "before-7m");
        (n.len() == 2).then_some(n)
    });
    healthy(&mut d);
    assert!(d.log().contains("the engine's wakes succeed again"));
    after_the_fault(&mut d, &mut acks, &tokens);
}

/// A database that has run a while reuses its write-ahead log after each checkpoint: the
/// test grows the log as that would and checkpoints it, then fills the tmpfs. Now the
/// database works on and the `.eml` file of the 7-minute reminder is what fails: the
/// message waits for its retry, `/healthz` is degraded saying the mail folder is full
/// (and nothing about the engine), an ack during the fault is answered 200 and recorded.
/// Once the filler is removed the reminder is written, once, no temporary file is left,
/// and `/healthz` is ok again. (Needs root.)
#[test]
fn a_full_disk_fails_the_mail_folder_first_when_the_database_has_room() {
    if !root("a_full_disk_fails_the_mail_folder_first_when_the_database_has_room") {
        return;
    }
    let (mut d, _mount, tokens) = meeting_on(|d| Mount::tmpfs(&d.path("var"), "6m"));
    let mut acks = Acks::default();
    assert!(acks.post(&d, &tokens, "kt", "done"));

    // A write-ahead log of about 2 MiB, all checkpointed: the next transactions reuse it.
    let conn = rusqlite::Connection::open(d.db_path()).unwrap();
    conn.busy_timeout(WAIT).unwrap();
    conn.execute_batch(
        "CREATE TABLE scratch (x BLOB); INSERT INTO scratch VALUES (zeroblob(1000000)); DROP TABLE scratch;",
    )
    .unwrap();
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(busy, 0, "the checkpoint finished");
    drop(conn);

    let filler = fill(&d.path("var"));
    let mark = d.mark();
    let problem = degraded(&mut d, "email cannot be written to files since ");
    assert!(
        problem.contains("cannot write the message in var/mail: No space left on device"),
        "{problem}"
    );
    let rows = d.rows();
    let waiting = rows
        .iter()
        .find(|r| r.step == "before-7m" && r.unit() == "vp")
        .unwrap();
    assert_eq!(waiting.status, "pending", "{waiting:?}");
    assert!(
        acks.post(&d, &tokens, "yt", "seen"),
        "the database has room"
    );
    let h = d.health();
    assert!(
        !h["problems"]
            .to_string()
            .contains("the engine cannot write"),
        "the database works: {h:#}"
    );
    d.wait("the engine's mark moving on", |d| {
        (d.mark() > mark).then_some(())
    });
    let log = d.log();
    assert!(
        log.contains("message not sent; will retry obligation=giao-ban/2025-10-15/vp step=before-7m channel=email attempts=1 error=cannot write the message in var/mail: No space left on device"),
        "{log}"
    );

    std::fs::remove_file(&filler).unwrap();
    d.wait("the 7-minute reminder sent to vp", |d| {
        (sent_of(d, "before-7m").get("vp") == Some(&1)).then_some(())
    });
    healthy(&mut d);
    assert!(d.log().contains("the mail folder takes messages again"));
    acks.all_recorded(&d);
    // yt answered "seen" before its 7-minute reminder could leave: it never does.
    assert_eq!(
        sent_of(&d, "before-7m"),
        BTreeMap::from([("vp".to_string(), 1)])
    );
    one_file_per_sent_message(&d);
    d.stop();
}

// ---------------------------------------------------------------------------------------
// A read-only database

/// The kernel turns the file system read-only under the running daemon (ext4 with
/// `errors=remount-ro` after a disk error), just after a unit's ack was answered 200: the
/// daemon keeps running, its wakes fail and `/healthz` says the file system is read-only,
/// an ack is answered 503 and not recorded; SIGTERM still stops it cleanly. The admin
/// repairs the disk (here: unmounts and mounts the image again; what the kernel had not
/// written back is gone, as after a real disk error) and starts the daemon: the ack
/// answered 200 is there (it was synced before the answer), the 7-minute reminder that
/// fell due meanwhile is sent, once, and `/healthz` is ok. (Needs root, a loop device and
/// mkfs.ext4.)
#[test]
fn a_file_system_turned_read_only_under_the_daemon_delays_and_loses_nothing() {
    if !root("a_file_system_turned_read_only_under_the_daemon_delays_and_loses_nothing") {
        return;
    }
    let (mut d, mount, tokens) =
        meeting_on(|d| Mount::ext4(&d.path("disk.img"), 8, &d.path("var")));
    // What was written a while ago is on the disk; what the ack writes now is only there
    // because the ack syncs it.
    mount.sync();
    let mut acks = Acks::default();
    assert!(acks.post(&d, &tokens, "kt", "done"));

    mount.disk_error();
    let problem = degraded(&mut d, "the engine cannot write to the database since ");
    assert!(
        problem
            .contains("(the file system holding var is mounted read-only); remount it read-write"),
        "{problem}"
    );
    assert!(!acks.post(&d, &tokens, "yt", "seen"));
    wait_past(&mut d, "2025-10-15 09:53:05");
    assert_eq!(sent_of(&d, "before-7m"), BTreeMap::new());
    d.stop();

    mount.unmount();
    mount.mount_image(&d.path("disk.img"));
    let now = d.now().to_rfc3339();
    d.restart_at(&now, 60);
    assert_eq!(
        d.state(&key("kt")).0,
        "done",
        "the ack answered 200 just before the disk error is kept"
    );
    d.wait("the 7-minute reminder sent", |d| {
        let n = sent_of(d, "before-7m");
        (n.len() == 2).then_some(())
    });
    healthy(&mut d);
    after_the_fault(&mut d, &mut acks, &tokens);
}

/// Once the fault is over: `yt`, refused during it, answers "done" now; every ack answered
/// 2xx is recorded; the 7-minute reminder reached `vp` and `yt` once each (`kt` had
/// answered before it), one `.eml` file each; then the daemon stops.
fn after_the_fault(d: &mut Daemon, acks: &mut Acks, tokens: &BTreeMap<String, String>) {
    assert!(acks.post(d, tokens, "yt", "done"), "answered now");
    acks.all_recorded(d);
    assert_eq!(
        sent_of(d, "before-7m"),
        BTreeMap::from([("vp".to_string(), 1), ("yt".to_string(), 1)])
    );
    one_file_per_sent_message(d);
    d.stop();
}

/// A stopped daemon's database on a tmpfs: remounted read-only, `run` refuses to start,
/// naming the database and what to do, and writes nothing; read-write again, but the
/// database file another user's (mode 0400, the daemon run as user 65534: root would
/// ignore the mode), it refuses again, naming the file, the user and the `chown` to run.
/// (Needs root.)
#[test]
fn a_read_only_database_is_refused_at_start_with_what_to_do() {
    if !root("a_read_only_database_is_refused_at_start_with_what_to_do") {
        return;
    }
    let cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).prepare();
    let mount = Mount::tmpfs(&d.path("var"), "4m");
    d.spawn();
    d.wait_ready();
    d.wait_sent(1);
    d.stop();
    let before = snapshot(&d.path("var"));

    mount.remount("ro");
    let log = d.run_refused(Some(&d.now().to_rfc3339()));
    assert!(
        log.contains("error: the database var/nhacviec.db cannot be written: the file system holding var is mounted read-only; remount it read-write"),
        "{log}"
    );
    assert_eq!(snapshot(&d.path("var")), before, "nothing written");

    mount.remount("rw");
    give_to_nobody(&d);
    let db = d.db_path();
    run("chmod", &["0400", &db.display().to_string()]);
    let log = run_refused_as_nobody(&d);
    assert!(
        log.contains(&format!("error: the database var/nhacviec.db cannot be written: var/nhacviec.db is not writable by the user this process runs as (uid {NOBODY}); give the database, its -wal and -shm files, its key file and the folder var to the user the daemon runs as (`sudo chown -R nhacviec: var`")),
        "{log}"
    );
    let after = snapshot(&d.path("var"));
    assert_eq!(names(&after), names(&before), "no file made");
    assert_eq!(after, before, "nothing written");
}

/// The token key file unreadable for the daemon's user (mode 000, the daemon run as user
/// 65534): `run` refuses to start with a message naming the key file, the user and what
/// to do (not an I/O error, and not a new key: that would break every link sent), and
/// writes nothing, not even SQLite's -wal and -shm files. (Needs root.)
#[test]
fn an_unreadable_key_file_is_refused_at_start_and_nothing_is_written() {
    if !root("an_unreadable_key_file_is_refused_at_start_and_nothing_is_written") {
        return;
    }
    let cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(1);
    d.stop();
    give_to_nobody(&d);
    let key = d.path("var/nhacviec.key");
    let key_text = read(&key);
    run("chmod", &["000", &key.display().to_string()]);
    let before = snapshot(&d.path("var"));

    let log = run_refused_as_nobody(&d);
    assert!(
        log.contains(&format!("error: the token key var/nhacviec.key cannot be read by the user this process runs as (uid {NOBODY}): permission denied; not started: give the key file to the user the daemon runs as, mode 0600 (`sudo chown nhacviec: var/nhacviec.key && sudo chmod 0600 var/nhacviec.key`); do not make a new key")),
        "{log}"
    );
    assert!(!log.contains("os error"), "not an I/O error: {log}");
    let after = snapshot(&d.path("var"));
    assert_eq!(names(&after), names(&before), "no file made");
    assert_eq!(after, before, "nothing written");
    assert_eq!(read(&key), key_text, "the same key");
}
