//! The daemon end to end: the real `nhacviec run` against the real SMTP test server, its
//! clock set with `NHACVIEC_CLOCK` to the instant each test needs.
//!
//! - Time: a start two seconds before a step receives it within seconds, not before its
//!   instant; a week of reminders and digests at 100 000 × real speed lands each on its
//!   working day and time; a first start in the middle of a reminder sequence words the
//!   caught-up reminder for the day it leaves.
//! - Restarts: a SIGKILL and a restart send nothing twice; a restart after a downtime (a
//!   restart at a later instant) sends only the latest missed step and records the earlier
//!   one `skipped`; a start without the token key of a database that has sent links is
//!   refused.
//! - Reload: SIGHUP with a broken config keeps the old one running and tells the admin once
//!   per broken version; SIGHUP with a good config, and a config replaced by a rename (as
//!   editors save) with no signal at all, apply the new one to the steps still ahead.
//! - Signals and health: SIGTERM while idle exits 0 within 10 s and `--log-format json`
//!   logs one JSON object a line; `/healthz` and `/metrics` match the database; `/healthz`
//!   answers while another process holds the database's write lock, and turns degraded while
//!   a message is stuck `sending` or after one failed for good.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Asia::Ho_Chi_Minh;
use serde_json::Value;

use crate::support::config::{
    ADMIN, Cfg, FIRST_START, Security, once, policy, tuyen_truyen, units,
};
use crate::support::daemon::{Setup, WAIT};
use crate::support::db::{Row, at_ms};
use crate::support::http::sample;
use crate::support::mime::emls;
use crate::support::smtp::{Captured, SmtpOpts, SmtpServer};
use crate::support::{clock, vn};

/// How long after its instant a step may take to arrive: a bound on a wait (the engine
/// wakes at the instant), not a benchmark.
const LATE: chrono::Duration = chrono::Duration::seconds(20);

const CONFIG_ERROR_SUBJECT: &str =
    "[Nhắc việc] Cấu hình mới có lỗi, hệ thống vẫn chạy theo cấu hình cũ";

const RELOADED: &str = "config reloaded";
const NOT_APPLIED: &str = "the new config was not applied; still running the previous one";

/// A meeting `giao-ban` at 10:00 on Wed 15/10/2025, owed by `owing`, with minute steps.
fn meeting(owing: &[&str], before: &[&str], after: &[&str]) -> crate::support::config::Rule {
    once("giao-ban", "Họp giao ban", "2025-10-15 10:00")
        .units(owing)
        .policy(policy(before, after).keep())
}

/// `vp` and `kt` owe the usual one-off task, sent through `server`.
fn vp_and_kt(server: &SmtpServer) -> Cfg {
    Cfg::new()
        .units(units(&["vp", "kt"]))
        .rule(tuyen_truyen(&["vp", "kt"]))
        .smtp(server, Security::None)
}

/// The step named in a Message-ID `<rule.period.unit.step.rXXXXXXXX@domain>`.
fn id_step(c: &Captured) -> String {
    let id = c.get("message_id").unwrap();
    let parts: Vec<&str> = id.trim_matches(['<', '>']).split('.').collect();
    assert!(parts.len() >= 5, "{id}");
    parts[3].to_string()
}

/// How many times each Message-ID arrived.
fn arrival_counts(server: &SmtpServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for c in server.captured() {
        *counts
            .entry(c.get("message_id").unwrap_or_default().to_string())
            .or_insert(0) += 1;
    }
    counts
}

/// The hex SHA-256 of a text, as `config_versions` records a config.
fn sha256(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sent(rows: &[Row], step: &str) -> usize {
    rows.iter()
        .filter(|r| r.step == step && r.status == "sent")
        .count()
}

// ---------------------------------------------------------------------------------------
// Time

/// Started two seconds before `before-1m`, the daemon sends it within seconds, not before
/// its instant; restarted two seconds before `after-1m` (down in between, when nothing was
/// due), it sends that one; nothing else is sent.
#[test]
fn a_start_just_before_a_step_receives_it_within_seconds() {
    let server = SmtpServer::start(SmtpOpts::default());
    let cfg = Cfg::new()
        .units(units(&["vp"]))
        .rule(meeting(&["vp"], &["1m"], &["1m"]))
        .smtp(&server, Security::None);
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:58:58"))
        .start();
    for (n, step, instant, restart) in [
        (1, "before-1m", vn("2025-10-15 09:59:00"), None),
        (
            2,
            "after-1m",
            vn("2025-10-15 10:01:00"),
            Some("2025-10-15 10:00:58"),
        ),
    ] {
        if let Some(at) = restart {
            d.stop();
            d.restart_at(&clock(at), 1);
        }
        let started = Instant::now();
        let rows = d.wait_rows(&format!("{step} sent"), |rows| sent(rows, step) == 1);
        let got = server.wait_for(n, WAIT);
        assert!(started.elapsed() < WAIT);
        assert_eq!(got.len(), n, "one message at a time");
        assert_eq!(id_step(&got[n - 1]), step);
        assert_eq!(got[n - 1].rcpt_tos(), ["vp@thu.example.vn"]);
        let row = rows.iter().find(|r| r.step == step).unwrap();
        for (what, t) in [
            ("enqueued", Some(row.created_at)),
            ("first attempted", row.first_attempt_at),
            ("sent", row.sent_at),
        ] {
            let t = at_ms(t.unwrap_or_else(|| panic!("{row:#?}")));
            assert!(
                t >= instant,
                "{step} {what} at {t}, before {instant}: {row:#?}"
            );
            assert!(t <= instant + LATE, "{step} {what} at {t}: {row:#?}");
        }
    }
    d.stop();
    let steps: Vec<(String, String, String)> = d
        .rows()
        .into_iter()
        .map(|r| (r.step, r.recipient, r.status))
        .collect();
    let want = [("before-1m", "sent"), ("after-1m", "sent")].map(|(s, st)| {
        (
            s.to_string(),
            "vp@thu.example.vn".to_string(),
            st.to_string(),
        )
    });
    assert_eq!(steps, want);
    assert_eq!(server.captured().len(), 2, "nothing else arrives");
}

/// A weekly report due Fri 10/10/2025 with a reminder each day from Monday, one on the last
/// day and one overdue notice, and the daily digest to the coordinator: the daemon starts
/// on Sunday evening at 100 000 × real speed and runs the week in six seconds. Each
/// reminder leaves on its day at 08:00 (the overdue notice, a day after Friday, on Monday:
/// the weekend is off), each digest at 07:30 on the working days the report is open,
/// nothing on the weekend, nothing twice, nothing skipped. Each may leave up to four hours
/// of the clock late, still on its morning: 144 ms of real time, for a busy machine
/// (tokio's timers alone have a resolution of 1 ms, 100 s of this clock; an allowance of one
/// hour, 36 ms, was once exceeded by 10 ms on a machine with a load of 8).
#[test]
fn a_week_of_reminders_and_digests_at_speed() {
    const SPEED: u32 = 100_000;
    let _alone = crate::support::heavy();
    let rule = once("bao-cao-tuan", "Báo cáo tuần", "2025-10-10")
        .units(&["vp"])
        .policy(policy(&["4d", "3d", "2d", "1d"], &["1d"]).on_due());
    let cfg = Cfg::new()
        .units(units(&["vp"]))
        .rule(rule)
        .digest("to = [\"vhxh\"]\ntime = \"07:30\"");
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-05 20:00:00"))
        .speed(SPEED)
        .prepare();

    // The premise, from `plan` on the same config.
    let out = d.cli(&[
        "plan",
        "--from",
        "2025-10-05",
        "--days",
        "10",
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let steps: Vec<(String, DateTime<Utc>)> = plan[0]["obligations"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let at = DateTime::parse_from_rfc3339(s["at"].as_str().unwrap()).unwrap();
            (
                s["step"].as_str().unwrap().to_string(),
                at.with_timezone(&Utc),
            )
        })
        .collect();
    let want: Vec<(String, DateTime<Utc>)> = [
        ("before-4d", "2025-10-06"),
        ("before-3d", "2025-10-07"),
        ("before-2d", "2025-10-08"),
        ("before-1d", "2025-10-09"),
        ("due", "2025-10-10"),
        ("after-1d", "2025-10-13"),
    ]
    .iter()
    .map(|(s, day)| (s.to_string(), vn(&format!("{day} 08:00:00"))))
    .collect();
    assert_eq!(steps, want, "the premise: the steps `plan` shows");

    d.restart_at(&clock("2025-10-05 20:00:00"), SPEED);
    d.wait_rows("the overdue notice sent", |rows| {
        sent(rows, "after-1d") == 1
    });
    d.stop();
    let rows: Vec<Row> = d
        .rows()
        .into_iter()
        .filter(|r| r.sent_at.is_some())
        .collect();
    assert!(d.rows().iter().all(|r| r.status == "sent"), "{rows:#?}");
    for (step, at) in &want {
        let row: Vec<&Row> = rows.iter().filter(|r| &r.step == step).collect();
        assert_eq!(row.len(), 1, "{step} once: {rows:#?}");
        let t = at_ms(row[0].sent_at.unwrap());
        assert!(
            t >= *at && t < *at + chrono::Duration::hours(4),
            "{step} at {}",
            t.with_timezone(&Ho_Chi_Minh)
        );
    }
    let digests: Vec<String> = rows
        .iter()
        .filter(|r| r.step == "digest")
        .map(|r| {
            assert_eq!(r.recipient, "vhxh@thu.example.vn");
            let t = at_ms(r.sent_at.unwrap()).with_timezone(&Ho_Chi_Minh);
            let hm = t.format("%H:%M").to_string();
            assert!(("07:30".."11:30").contains(&hm.as_str()), "digest at {t}");
            t.format("%a %d/%m").to_string()
        })
        .collect();
    // Monday's comes before the first reminder opens the report.
    assert_eq!(
        digests,
        [
            "Tue 07/10",
            "Wed 08/10",
            "Thu 09/10",
            "Fri 10/10",
            "Mon 13/10"
        ]
    );
    // The reminders themselves, as the unit reads them.
    let mails = emls(&d.path("var/mail"));
    let subjects: Vec<&str> = mails
        .iter()
        .filter(|m| m.get("to").is_some_and(|t| t.contains("vp@")))
        .map(|m| m.subject())
        .collect();
    assert_eq!(subjects.len(), 6, "{subjects:#?}");
}

/// The issue's own finding: a first start on Thu 02/10/2025 07:29 with the shipped config
/// catches up the 9-month report's `before-3wd` reminder (scheduled Tue 30/09). It is sent
/// with the words of the day it leaves: one working day left, not three.
#[test]
fn a_caught_up_reminder_counts_the_days_from_the_day_it_leaves() {
    let mut d = Setup::shipped()
        .clock(&clock("2025-10-02 07:29:00"))
        .start();
    let rows = d.wait_rows("the catch-up sent", |rows| {
        rows.iter()
            .any(|r| r.step == "before-3wd" && r.status == "sent")
    });
    d.stop();
    let vp = rows
        .iter()
        .find(|r| r.step == "before-3wd" && r.obligation == "bao-cao-9-thang/2025-9M/vp")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let mails = emls(&d.path("var/mail"));
    let m = mails
        .iter()
        .find(|m| m.get("message_id") == Some(vp.message_id.as_str()))
        .unwrap();
    let text = m.text("text/plain");
    assert!(
        text.contains("Hạn làm việc cuối là thứ Sáu 03/10/2025, còn 1 ngày làm việc."),
        "{text}"
    );
    assert!(!text.contains("còn 3 ngày làm việc"), "{text}");
}

// ---------------------------------------------------------------------------------------
// Restarts

/// Once the first start's reminders are `sent`, SIGKILL, start again, let it wake, SIGTERM:
/// every message arrived once.
#[test]
fn sigkill_then_restart_sends_nothing_twice() {
    let server = SmtpServer::start(SmtpOpts::default());
    let cfg = vp_and_kt(&server);
    let mut d = Setup::new(&cfg).start();
    let sent = d.wait_sent(2);
    assert_eq!(server.captured().len(), 2);

    d.kill();
    let restarted = d.now();
    d.restart_at(&restarted.to_rfc3339(), 1);
    let health = d.wait("a wake after the restart", |d| {
        let h = d.health();
        let wake = DateTime::parse_from_rfc3339(h["last_wake"].as_str()?).ok()?;
        (wake >= restarted).then_some(h)
    });
    assert_eq!(health["outbox"]["pending"], 0, "{health:#}");
    assert_eq!(health["outbox"]["sending"], 0, "{health:#}");
    d.stop();

    let counts = arrival_counts(&server);
    let mut want: Vec<String> = sent.iter().map(|r| r.message_id.clone()).collect();
    want.sort();
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), want);
    assert!(counts.values().all(|n| *n == 1), "{counts:#?}");
    let rows = d.rows();
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        rows.iter().all(|r| r.status == "sent" && r.attempts == 1),
        "{rows:#?}"
    );
}

/// The engine enqueues the steps that fell due in (mark, now] and stores the new mark with
/// them. A downtime is a mark left behind: the first run wakes before both steps and
/// stops; the restart, at a later instant, finds both steps past. It sends only the latest
/// and records the earlier one `skipped`.
#[test]
fn restart_after_a_downtime_sends_only_the_latest_missed_step() {
    let server = SmtpServer::start(SmtpOpts::default());
    let cfg = Cfg::new()
        .units(units(&["vp"]))
        .rule(meeting(&["vp"], &["2m", "1m"], &[]))
        .smtp(&server, Security::None);
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:57:00"))
        .start();
    let mark = d.wait("the first wake's mark", |d| d.mark());
    d.stop();
    assert!(mark < vn("2025-10-15 09:58:00"), "the premise: {mark}");
    assert!(d.rows().is_empty(), "nothing due in the first run");

    // Down until 09:59:30: before-2m (09:58) and before-1m (09:59) passed meanwhile.
    d.restart_at(&clock("2025-10-15 09:59:30"), 1);
    let rows = d.wait_rows("both steps recorded, the latest sent", |rows| {
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r.status == "sent" || r.status == "skipped")
    });
    let got = server.wait_for(1, WAIT);
    d.stop();
    let steps: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.step.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(steps, [("before-2m", "skipped"), ("before-1m", "sent")]);
    assert_eq!((rows[0].attempts, rows[0].sent_at), (0, None), "{rows:#?}");
    assert_eq!(id_step(&got[0]), "before-1m");
    assert_eq!(server.captured().len(), 1, "the skipped step was not sent");
}

/// One unit owing one report, its reminder sent by a daemon now stopped.
fn sent_one_reminder() -> (Cfg, crate::support::daemon::Daemon) {
    let cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(1);
    d.stop();
    (cfg, d)
}

/// A database that has sent links and no token key beside it (moved away, or a backup of
/// the database alone restored): the daemon refuses to start, naming the file and what to
/// do, and makes no new key; with the key put back it starts; with another database's key
/// it refuses again.
#[test]
fn a_missing_or_foreign_token_key_is_refused() {
    let (cfg, mut d) = sent_one_reminder();
    let key = d.path("var/nhacviec.key");
    let kept = d.path("nhacviec.key.bak");
    std::fs::rename(&key, &kept).unwrap();

    let refused = |d: &crate::support::daemon::Daemon| d.run_refused(Some(&d.now().to_rfc3339()));
    let log = refused(&d);
    assert!(
        log.contains("error: the token key var/nhacviec.key is missing, but the database var/nhacviec.db has sent reminders whose links were made with it: restore the key file from the backup of this database"),
        "{log}"
    );
    assert!(!key.exists(), "no new key was made");

    // Another key: refused too.
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let log = refused(&d);
    assert!(
        log.contains("error: the token key var/nhacviec.key is not the one the database var/nhacviec.db was made with"),
        "{log}"
    );

    // The right key back: it starts, and the link sent before still works.
    std::fs::rename(&kept, &key).unwrap();
    let now = d.now();
    d.restart_at(&now.to_rfc3339(), 1);
    let mails = emls(&d.path("var/mail"));
    let token = crate::support::mime::message_token(&mails[0], &cfg.public_url);
    assert_eq!(d.get(&format!("/a/{token}"), &[]).status, 200);
}

/// A database keeps to one kind of clock. A rehearsal (`NHACVIEC_CLOCK`) on the real
/// database would send the coming days' reminders now, for real; the real clock on a
/// rehearsal's database would find its mark in the future. Both are refused, naming the
/// database and what to do, and nothing is written.
#[test]
fn a_rehearsal_and_the_real_clock_do_not_share_a_database() {
    // A rehearsal's database, then the real clock.
    let (cfg, d) = sent_one_reminder();
    let log = d.run_refused(None);
    assert!(
        log.contains(
            "error: the database var/nhacviec.db was made by a rehearsal (NHACVIEC_CLOCK was set)"
        ),
        "{log}"
    );
    assert_eq!(d.rows().len(), 1, "nothing written");

    // The real clock's database (the rule's deadline, in 2025, passed before it was made:
    // nothing to send), then a rehearsal.
    let mut d = Setup::new(&cfg).real_clock().start();
    d.stop();
    assert_eq!(d.meta("clock").as_deref(), Some("system"));
    let log = d.run_refused(Some(FIRST_START));
    assert!(
        log.contains(
            "error: NHACVIEC_CLOCK is set, but the database var/nhacviec.db runs on the real clock"
        ),
        "{log}"
    );
    assert!(d.rows().is_empty(), "nothing sent: {:?}", d.rows());
}

// ---------------------------------------------------------------------------------------
// Reload

/// SIGHUP with a config that fails `check` (a rule owed by an unknown unit): the error is
/// logged as FILE:LINE:COL, the old config keeps running (its next step, due after the
/// reload, arrives), the admin gets one email about it, and a second SIGHUP with the same
/// broken file logs the errors again but sends no second email. (The clock runs 60 ×: the
/// step is 5 minutes, 5 s, away.)
#[test]
fn sighup_with_a_broken_config_keeps_the_old_one_and_tells_the_admin_once() {
    let server = SmtpServer::start(SmtpOpts::default());
    let cfg = Cfg::new()
        .units(units(&["vp"]))
        .rule(meeting(&["vp"], &["1m"], &[]))
        .admins(&[ADMIN])
        .digest("to = []\ntime = \"23:30\"")
        .smtp(&server, Security::None);
    let good = cfg.toml();
    let broken = good.replacen("units = [\"vp\"]", "units = [\"vpp\"]", 1);
    assert_ne!(broken, good);
    let (line, col) = broken
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("\"vpp\"").map(|c| (i + 1, c + 1)))
        .unwrap();
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:54:00"))
        .speed(60)
        .start();
    d.wait("the first wake", |d| d.mark());

    d.write_config(&broken);
    d.signal("HUP");
    let got = server.wait_for(1, WAIT);
    assert_eq!(got[0].subject(), CONFIG_ERROR_SUBJECT);
    assert_eq!(got[0].rcpt_tos(), [ADMIN]);
    let text = got[0].text("text/plain");
    assert!(text.contains("`vpp`"), "the email lists the error:\n{text}");
    d.wait_log(NOT_APPLIED, 1);
    d.signal("HUP");
    d.wait_log(NOT_APPLIED, 2);
    assert!(
        d.now() < vn("2025-10-15 09:59:00"),
        "the premise: both reloads before the step"
    );

    // The old config still runs: its step, due after the reloads, arrives.
    d.wait_rows("the reminder sent", |rows| sent(rows, "before-1m") == 1);
    let got = server.wait_for(2, WAIT);
    d.stop();
    assert_eq!(id_step(&got[1]), "before-1m");
    assert_eq!(got[1].rcpt_tos(), ["vp@thu.example.vn"]);

    let log = d.log();
    let located = format!("nhacviec.toml:{line}:{col}: error: ");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&located) && l.contains("`vpp`"))
        .collect();
    assert_eq!(
        errors.len(),
        log.matches(NOT_APPLIED).count(),
        "the error, located, at each reload:\n{log}"
    );
    assert!(errors.len() >= 2, "{log}");
    assert!(errors.iter().all(|l| l.contains("ERROR")), "{errors:#?}");

    let rows = d.rows();
    let notices: Vec<&Row> = rows
        .iter()
        .filter(|r| r.template == "config_error")
        .collect();
    assert_eq!(notices.len(), 1, "one email per broken version: {rows:#?}");
    assert_eq!(
        (notices[0].recipient.as_str(), notices[0].status.as_str()),
        (ADMIN, "sent")
    );
    assert_eq!(server.captured().len(), 2, "nothing else arrives");
    assert_eq!(
        d.config_hashes(),
        [sha256(&good)],
        "the broken config was never applied"
    );
}

/// SIGHUP with a good config that adds the unit `kt` to the meeting; then, with no signal, a
/// config that also adds `hcc`, written beside the file and renamed over it as editors
/// save: the engine notices at its next wake (at most a minute of its clock away, a second
/// here at 60 ×). The meeting's before-1m step, due after both reloads, reaches `vp`, `kt`
/// and `hcc`; the first start's reminder to `vp` is not sent again; `config_versions` holds
/// the three configs.
#[test]
fn sighup_then_a_rename_apply_good_configs_that_add_units() {
    let server = SmtpServer::start(SmtpOpts::default());
    let version = |owing: &[&str]| {
        Cfg::new()
            .units(units(owing))
            .rule(tuyen_truyen(&["vp"]))
            .rule(meeting(owing, &["1m"], &[]))
            .smtp(&server, Security::None)
    };
    let cfg = version(&["vp"]);
    let first = cfg.toml();
    // Same port as the first: only units and rules change.
    let with_port = |mut c: Cfg| {
        c.port = cfg.port;
        c.public_url = cfg.public_url.clone();
        c.toml()
    };
    let second = with_port(version(&["vp", "kt"]));
    let third = with_port(version(&["vp", "kt", "hcc"]));
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:54:00"))
        .speed(60)
        .start();
    let got = server.wait_for(1, WAIT);
    assert!(got[0].get("message_id").unwrap().contains(".vp.before-5d."));

    // SIGHUP.
    d.write_config(&second);
    d.signal("HUP");
    d.wait_log(RELOADED, 1);
    assert!(d.log().contains(&sha256(&second)), "the log names the hash");

    // A rename, no signal.
    let tmp = d.path(".nhacviec.toml.new");
    std::fs::write(&tmp, &third).unwrap();
    std::fs::rename(&tmp, d.path("nhacviec.toml")).unwrap();
    d.wait_log(RELOADED, 2);
    assert!(d.log().contains(&sha256(&third)), "the log names the hash");
    assert_eq!(d.log().matches("SIGHUP").count(), 1, "{}", d.log());
    assert!(
        d.now() < vn("2025-10-15 09:59:00"),
        "the premise: both new configs are in place before the step"
    );

    let rows = d.wait_rows("the meeting sent to three units", |rows| {
        sent(rows, "before-1m") == 3
    });
    let got = server.wait_for(4, WAIT);
    d.stop();
    let mut to: Vec<String> = got[1..].iter().flat_map(Captured::rcpt_tos).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "hcc@thu.example.vn",
            "kt@thu.example.vn",
            "vp@thu.example.vn"
        ]
    );
    assert!(got[1..].iter().all(|c| id_step(c) == "before-1m"));
    for r in rows.iter().filter(|r| r.step == "before-1m") {
        assert!(at_ms(r.created_at) >= vn("2025-10-15 09:59:00"), "{r:#?}");
    }
    let counts = arrival_counts(&server);
    assert_eq!(counts.len(), 4, "{counts:#?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "nothing twice: {counts:#?}"
    );
    let rows = d.rows();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:#?}");
    assert_eq!(
        d.config_hashes(),
        [sha256(&first), sha256(&second), sha256(&third)]
    );
}

// ---------------------------------------------------------------------------------------
// Signals, logs, health

/// Idle, the daemon exits 0 within 10 s of SIGTERM, and with `--log-format json` every line
/// it logged is a JSON object with a level and a message; it said loudly that its clock is
/// set, and named the next step.
#[test]
fn sigterm_while_idle_exits_0_and_json_logs_parse() {
    let cfg = Cfg::new()
        .units(units(&["vp"]))
        .rule(meeting(&["vp"], &["1m"], &[]));
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-13 09:00:00"))
        .args(&["--log-format", "json"])
        .start();
    d.wait("the first wake", |d| d.mark());
    d.stop();

    let log = d.log();
    let mut lines = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n--- the log\n{log}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(
            v["fields"]["message"].is_string(),
            "no fields.message: {line}"
        );
        lines.push(v);
    }
    let find = |m: &str| {
        lines
            .iter()
            .find(|v| {
                v["fields"]["message"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(m))
            })
            .unwrap_or_else(|| panic!("{m:?} in\n{log}"))
    };
    for must in ["nhacviec started", "shutting down", "stopped"] {
        find(must);
    }
    assert_eq!(
        find("nhacviec started")["fields"]["listen"],
        format!("127.0.0.1:{}", cfg.port)
    );
    let warning = find("NHACVIEC_CLOCK is set");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(
        warning["fields"]["clock"],
        "set to 2025-10-13T02:00:00Z at start, running at real speed"
    );
    assert_eq!(
        find("next: ")["fields"]["message"],
        "next: before-1m of giao-ban/2025-10-15 at Wed 15/10/2025 09:59"
    );
}

/// Over real HTTP: `/healthz` is 200 JSON with the database, the last wake, the next step,
/// the clock and the outbox; `/metrics` is Prometheus text whose counters match the
/// database after the first start's sends.
#[test]
fn healthz_and_metrics_match_the_database() {
    let server = SmtpServer::start(SmtpOpts::default());
    let cfg = vp_and_kt(&server).rule(meeting(&["vp"], &["1m"], &[]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    server.wait_for(2, WAIT);

    let r = d.get("/healthz", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{r:?}");
    let h = r.json();
    assert_eq!(h["status"], "ok", "{h:#}");
    assert_eq!(h["problems"], serde_json::json!([]));
    assert_eq!(h["database"], "ok");
    let last_wake = DateTime::parse_from_rfc3339(h["last_wake"].as_str().unwrap()).unwrap();
    assert!(
        last_wake >= vn("2025-10-13 09:00:00") && last_wake <= d.now(),
        "{h:#}"
    );
    assert_eq!(
        h["next"], "before-1m of giao-ban/2025-10-15 at Wed 15/10/2025 09:59",
        "{h:#}"
    );
    assert_eq!(h["next_at"], "2025-10-15T02:59:00+00:00");
    assert_eq!(
        h["clock"],
        "set to 2025-10-13T02:00:00Z at start, running at real speed"
    );
    assert_eq!(
        h["outbox"],
        serde_json::json!({"pending": 0, "sending": 0, "failed": 0})
    );

    let r = d.get("/metrics", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{r:?}"
    );
    let m = &r.raw;
    let conn = d.db();
    let db = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as f64;
    let sent_total = sample(m, "nhacviec_messages_sent_total{channel=\"email\"}");
    assert_eq!(
        sent_total,
        db("SELECT COUNT(*) FROM messages WHERE channel = 'email' AND status = 'sent'")
    );
    assert_eq!(sent_total, 2.0);
    assert_eq!(
        sample(m, "nhacviec_messages_failed_total{channel=\"email\"}"),
        db("SELECT COUNT(*) FROM messages WHERE channel = 'email' AND status = 'failed'")
    );
    assert_eq!(
        sample(m, "nhacviec_outbox_depth"),
        db("SELECT COUNT(*) FROM messages WHERE status IN ('pending', 'sending')")
    );
    for action in ["seen", "done"] {
        assert_eq!(
            sample(m, &format!("nhacviec_acks_total{{action=\"{action}\"}}")),
            db(&format!(
                "SELECT COUNT(*) FROM acks WHERE action = '{action}'"
            ))
        );
    }
    let wake_seconds = sample(m, "nhacviec_last_wake_seconds") as i64;
    assert!(wake_seconds >= last_wake.timestamp(), "{m}");
    for line in m.lines().filter(|l| l.starts_with("# TYPE ")) {
        let kind = line.rsplit(' ').next().unwrap();
        assert!(["counter", "gauge"].contains(&kind), "{line}");
    }
    drop(conn);
    assert_eq!(d.get("/nothing-here", &[]).status, 404);
}

/// Another process holds the database's write lock for 10 s (an admin's `sqlite3`, a
/// backup) while the daemon's engine, woken every second by its 60 × clock, waits for it
/// and fails its wakes: `/healthz` and the ack page answer all along, each within a second,
/// and once the lock is gone the engine goes on.
#[test]
fn healthz_and_the_ack_page_answer_while_another_process_holds_the_write_lock() {
    let cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).speed(60).start();
    d.wait_sent(1);
    let token = crate::support::mime::message_token(&emls(&d.path("var/mail"))[0], &cfg.public_url);

    let lock = rusqlite::Connection::open(d.db_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE; INSERT INTO meta (key, value) VALUES ('lock', 'x');")
        .unwrap();
    let held = Instant::now();
    let mut answers = 0;
    while held.elapsed() < Duration::from_secs(10) {
        for path in ["/healthz".to_string(), format!("/a/{token}")] {
            let asked = Instant::now();
            let r = d.get(&path, &[]);
            let took = asked.elapsed();
            assert_eq!(r.status, 200, "{path}: {r:#?}");
            assert!(took < Duration::from_secs(1), "{path} took {took:?}");
            answers += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        d.log().contains("engine wake failed"),
        "the engine met the lock:\n{}",
        d.log()
    );
    lock.execute_batch("ROLLBACK").unwrap();
    assert!(answers >= 20, "{answers}");
    let after = d.now();
    d.wait("the engine's mark moving again", |d| {
        d.mark().filter(|m| *m > after)
    });
}

/// Waits until `/healthz` says degraded; its first problem must start with `problem`.
fn degraded(d: &mut crate::support::daemon::Daemon, problem: &str) -> Value {
    let h = d.wait("/healthz degraded", |d| {
        let h = d.health();
        (h["status"] == "degraded").then_some(h)
    });
    let first = h["problems"][0].as_str().unwrap_or_default();
    assert!(first.starts_with(problem), "{h:#}");
    h
}

/// A message that cannot leave turns `/healthz` degraded, with the reason: one stuck
/// `sending` for more than five minutes (an SMTP server that accepts the connection and
/// never says a word), then, after the daemon gave it up... here a 550 for another message,
/// one failed for good in the last day. (The clock runs 300 ×: five minutes pass in a
/// second.)
#[test]
fn healthz_is_degraded_while_a_message_is_stuck_or_after_one_failed() {
    // A server that never greets.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    cfg.email = crate::support::config::smtp_email(port, Security::None);
    let mut d = Setup::new(&cfg).speed(300).start();
    let h = degraded(
        &mut d,
        "1 message(s) sending for more than 5 minutes, the oldest tuyen-truyen/2025-10-15/vp before-5d to vp@thu.example.vn",
    );
    assert_eq!(h["outbox"]["sending"], 1, "{h:#}");
    d.kill(); // a SIGTERM would wait 8 s for the send to give up
    drop(silent);

    // A 550: failed for good.
    let server = SmtpServer::start(SmtpOpts {
        reply: Some(550),
        ..SmtpOpts::default()
    });
    let mut cfg = Cfg::new().units(units(&["vp"])).rule(tuyen_truyen(&["vp"]));
    cfg = cfg.smtp(&server, Security::None);
    let mut d = Setup::new(&cfg).start();
    let h = degraded(
        &mut d,
        "1 message(s) failed for good in the last 24 hours, the latest tuyen-truyen/2025-10-15/vp before-5d to vp@thu.example.vn: permanent error (550)",
    );
    assert_eq!(h["outbox"]["failed"], 1, "{h:#}");
    d.stop();
}
