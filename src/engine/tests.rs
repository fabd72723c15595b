//! The engine with a manual clock, a real SQLite file and the file transport.

use chrono::TimeZone;

use super::*;
use crate::clock::{ManualClock, SetClock};
use crate::deliver::Applied;
use crate::deliver::templates::Templates;
use crate::plan::{self, Filter};
use crate::state::{AckAction, AckSource, MessageStatus, StepKind};
use crate::testutil::TempDir;

fn temp_dir(name: &str) -> TempDir {
    TempDir::new(name)
}

/// The config in force for `cfg`, with the built-in templates.
fn current(cfg: crate::config::Config) -> Arc<Current> {
    let (templates, diags) = Templates::load(cfg.templates_dir.as_deref());
    assert!(diags.is_empty(), "{diags:#?}");
    Arc::new(Current::new(
        Applied::new(cfg, templates.unwrap(), None).unwrap(),
    ))
}

/// The ward's units (`vp` escalates to the leadership); `vp` owes the 6-month and the
/// 9-month reports.
fn rules() -> String {
    let due = "due = { month = \"next\", day = 5, before = true }\nunits = [\"vp\"]";
    let six = format!("period = \"half-year\"\nwhich = [1]\n{due}");
    let nine = format!("period = \"nine-months\"\n{due}");
    crate::testutil::rule("bao-cao-6-thang", "Báo cáo 6 tháng", &six)
        + &crate::testutil::rule("bao-cao-9-thang", "Báo cáo 9 tháng", &nine)
}

fn config_text(rules: &str) -> String {
    crate::testutil::ward("", rules)
}

fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct Fixture {
    _dir: TempDir,
    /// The config file the engine watches (tests rewrite it to reload).
    path: std::path::PathBuf,
    clock: Arc<ManualClock>,
    store: Arc<Store>,
    engine: Engine,
}

fn fixture(name: &str, first_start: DateTime<Utc>) -> Fixture {
    let dir = temp_dir(name);
    let path = dir.0.join("nhacviec.toml");
    let text = config_text(&rules());
    std::fs::write(&path, &text).unwrap();
    let cfg = crate::testutil::config_at(&path, &text);
    let clock = Arc::new(ManualClock::new(first_start));
    let store = Arc::new(Store::open(&dir.0.join("var/db"), first_start).unwrap());
    let key = TokenKey::from_bytes([3; 32]);
    let engine = Engine::new(store.clone(), clock.clone(), current(cfg), key).watch(path.clone());
    Fixture {
        _dir: dir,
        path,
        clock,
        store,
        engine,
    }
}

type Row = (String, String, MessageStatus);

impl Fixture {
    /// Writes a new config and wakes the engine with a reload asked for.
    async fn reload_with(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
        self.engine.request_reload();
        self.engine.wake_once().await.unwrap();
    }
}

fn statuses(store: &Store) -> Vec<Row> {
    store
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| (m.obligation, m.step, m.status))
        .collect()
}

fn row(o: &str, s: &str, st: &str) -> Row {
    (o.into(), s.into(), st.parse().unwrap())
}

#[tokio::test]
async fn first_start_sends_the_latest_missed_step_and_never_chases_past_deadlines() {
    // First start on Mon 29/09/2025 09:00: before-14d (19/09) and before-7d (26/09) of the
    // 9-month report are past; the 6-month report (deadline 05/07) is long over.
    let f = fixture("first", local(2025, 9, 29, 9, 0));
    f.engine.wake_once().await.unwrap();
    assert_eq!(
        statuses(&f.store),
        [
            row("bao-cao-9-thang/2025-9M/vp", "before-14d", "skipped"),
            row("bao-cao-9-thang/2025-9M/vp", "before-7d", "sent"),
        ]
    );
    // A second wake at the same time adds nothing.
    f.engine.wake_once().await.unwrap();
    assert_eq!(f.store.messages().unwrap().len(), 2);
}

#[tokio::test]
async fn after_downtime_only_the_latest_missed_step_is_sent() {
    let f = fixture("downtime", local(2025, 9, 29, 9, 0));
    f.engine.wake_once().await.unwrap();
    // Down from 29/09 until Thu 09/10 09:00: before-3wd (30/09), before-1wd (02/10),
    // due (03/10), after-1wd (06/10) and after-3wd (08/10, escalated) were missed.
    f.clock.set(local(2025, 10, 9, 9, 0));
    f.engine.wake_once().await.unwrap();
    let rows = statuses(&f.store);
    let sent: Vec<_> = rows.iter().filter(|r| r.2 == MessageStatus::Sent).collect();
    assert_eq!(sent.len(), 3, "{rows:#?}");
    assert!(
        sent.iter().filter(|r| r.1 == "after-3wd").count() == 2,
        "to vp and its escalation"
    );
    let skipped: Vec<&str> = rows
        .iter()
        .filter(|r| r.2 == MessageStatus::Skipped)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(
        skipped,
        ["before-14d", "before-3wd", "before-1wd", "due", "after-1wd"]
    );
}

#[tokio::test]
async fn steps_are_sent_at_their_time_and_the_engine_sleeps_at_most_a_minute() {
    let f = fixture("timing", local(2025, 10, 2, 7, 0));
    assert_eq!(
        f.engine.wake_once().await.unwrap(),
        local(2025, 10, 2, 7, 1),
        "capped at 60 s"
    );
    // before-3wd (30/09) was missed at first start and is sent now; the two before it are
    // recorded as skipped.
    assert_eq!(
        statuses(&f.store).last().unwrap(),
        &row("bao-cao-9-thang/2025-9M/vp", "before-3wd", "sent")
    );
    assert_eq!(f.store.messages().unwrap().len(), 3);
    f.clock.set(local(2025, 10, 2, 7, 59));
    assert_eq!(
        f.engine.wake_once().await.unwrap(),
        local(2025, 10, 2, 8, 0),
        "wakes exactly at the next step"
    );
    assert_eq!(f.store.messages().unwrap().len(), 3, "not early");
    f.clock.set(local(2025, 10, 2, 8, 0));
    f.engine.wake_once().await.unwrap();
    let rows = statuses(&f.store);
    assert_eq!(
        rows.last().unwrap(),
        &row("bao-cao-9-thang/2025-9M/vp", "before-1wd", "sent")
    );
}

#[tokio::test(start_paused = true)]
async fn a_reporting_year_of_the_shipped_config() {
    use std::collections::{BTreeMap, BTreeSet};

    let dir = temp_dir("year");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let base = local(2025, 8, 28, 0, 0); // the programme's date: the first start
    let end = local(2026, 8, 28, 0, 0);
    let shipped = repo.join("config/nhacviec.toml");
    let mut cfg = crate::testutil::config_at(&shipped, &std::fs::read_to_string(&shipped).unwrap());
    cfg.email.file_dir = dir.0.join("mail"); // not into the repository
    let clock = Arc::new(SetClock::new(base, 1));
    let start = tokio::time::Instant::now();
    let store = Arc::new(Store::open(&dir.0.join("db"), base).unwrap());
    let key = TokenKey::from_bytes([5; 32]);
    let current = current(cfg);
    let cfg = current.config();
    let engine = Arc::new(
        Engine::new(store.clone(), clock.clone(), current, key.clone())
            .with_max_sleep(Duration::hours(6)),
    );

    // Mid-year, vp marks the 9-month report done after its before-7d (26/09), and kt says
    // it has seen it.
    let done_at = local(2025, 9, 26, 10, 0);
    let acker = {
        let (store, waker) = (store.clone(), engine.waker());
        tokio::spawn(async move {
            tokio::time::sleep_until(start + (done_at - base).to_std().unwrap()).await;
            for (unit, action) in [("vp", AckAction::Done), ("kt", AckAction::Seen)] {
                let ack = crate::store::NewAck {
                    action,
                    at: done_at,
                    source: AckSource::Cli,
                    ip: None,
                    user_agent: None,
                    note: None,
                };
                let key = format!("bao-cao-9-thang/2025-9M/{unit}");
                assert!(
                    store
                        .ack(&key, &ack, |_| Vec::new())
                        .unwrap()
                        .unwrap()
                        .changed()
                );
            }
            waker.notify_one();
        })
    };
    let stop = start + (end - base).to_std().unwrap();
    engine.run(tokio::time::sleep_until(stop), |_| {}).await;
    acker.await.unwrap();

    let rows = store.messages().unwrap();
    let tz = cfg.organization.timezone;
    // What the plan says must have gone out after the first start, per (obligation, step).
    let mut expected: BTreeMap<(String, String), DateTime<Utc>> = BTreeMap::new();
    for occ in plan::occurrences(&cfg, base.date_naive(), end.date_naive(), Filter::default()) {
        for step in &occ.steps {
            let at = step.at.with_timezone(&Utc);
            if at <= base || at > end || occ.deadline.with_timezone(&Utc) <= base {
                continue;
            }
            for &u in &cfg.rules[occ.rule].units {
                let key = occ.obligation_key(&cfg, u);
                let quiet = (key == "bao-cao-9-thang/2025-9M/vp" && at > done_at)
                    || (key == "bao-cao-9-thang/2025-9M/kt"
                        && at > done_at
                        && step.name.kind == StepKind::Before);
                if !quiet {
                    expected.insert((key, step.name.to_string()), at);
                }
            }
        }
    }
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut sent = 0;
    for m in rows.iter().filter(|m| m.status == MessageStatus::Sent) {
        sent += 1;
        let at = m.sent_at.unwrap();
        let local_at = at.with_timezone(&tz);
        assert!(
            cfg.calendar.is_working(local_at.date_naive()),
            "{} {} sent on a day off: {local_at}",
            m.obligation,
            m.step
        );
        if m.step == "digest" {
            assert_eq!(local_at.format("%H:%M").to_string(), "07:30", "{m:?}");
            continue;
        }
        let k = (m.obligation.clone(), m.step.clone());
        if at == base {
            continue; // the first start's catch-up of the latest missed step
        }
        let want = expected
            .get(&k)
            .unwrap_or_else(|| panic!("unexpected {k:?} at {local_at}"));
        assert_eq!(at, *want, "{k:?} at its step's instant");
        assert_eq!(local_at.format("%H:%M").to_string(), "08:00");
        seen.insert(k);
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(missing.is_empty(), "never sent: {missing:?}");
    assert!(
        rows.iter()
            .all(|m| matches!(m.status, MessageStatus::Sent | MessageStatus::Skipped))
    );
    // The 9-month report for vp went quiet after it was done; kt still got due and after.
    let vp_after: Vec<_> = rows
        .iter()
        .filter(|m| {
            m.obligation == "bao-cao-9-thang/2025-9M/vp" && m.sent_at.is_some_and(|t| t > done_at)
        })
        .collect();
    assert!(vp_after.is_empty(), "{vp_after:?}");
    let kt_steps: BTreeSet<&str> = rows
        .iter()
        .filter(|m| m.obligation == "bao-cao-9-thang/2025-9M/kt")
        .map(|m| m.step.as_str())
        .collect();
    assert!(
        kt_steps.contains("due") && kt_steps.contains("after-7wd"),
        "{kt_steps:?}"
    );
    assert!(
        !kt_steps.contains("before-1wd"),
        "seen stops the before steps: {kt_steps:?}"
    );
    // A whole year's work: the reports and tasks of the programme, and the digests.
    assert!(sent > 150, "{sent} messages");
    let digests = rows.iter().filter(|m| m.step == "digest").count();
    assert!(digests > 20, "{digests} digests");
}

#[tokio::test]
async fn a_reload_that_adds_a_unit_catches_it_up_and_nothing_else() {
    let f = fixture("reload", local(2025, 9, 29, 9, 0));
    let (clock, store, engine) = (&f.clock, &f.store, &f.engine);
    engine.wake_once().await.unwrap();
    assert_eq!(
        store.messages().unwrap().len(),
        2,
        "vp: before-14d skipped, before-7d sent"
    );

    // The next day, a unit is added to the 9-month report.
    clock.set(local(2025, 9, 30, 9, 0));
    let added = config_text(&rules()).replacen(
        "period = \"nine-months\"\ndue = { month = \"next\", day = 5, before = true }\nunits = [\"vp\"]",
        "period = \"nine-months\"\ndue = { month = \"next\", day = 5, before = true }\nunits = [\"vp\", \"kt\"]",
        1,
    );
    assert_ne!(added, config_text(&rules()));
    f.reload_with(&added).await;
    let rows = statuses(store);
    let kt: Vec<_> = rows
        .iter()
        .filter(|r| r.0 == "bao-cao-9-thang/2025-9M/kt")
        .collect();
    // 30/09 08:00 (before-3wd) is the latest past step: kt gets it; vp gets it too, as a
    // step after the mark; nothing before it is sent again to vp.
    assert_eq!(
        kt,
        [
            &row("bao-cao-9-thang/2025-9M/kt", "before-14d", "skipped"),
            &row("bao-cao-9-thang/2025-9M/kt", "before-7d", "skipped"),
            &row("bao-cao-9-thang/2025-9M/kt", "before-3wd", "sent"),
        ]
    );
    let vp_sent: Vec<&str> = rows
        .iter()
        .filter(|r| r.0 == "bao-cao-9-thang/2025-9M/vp" && r.2 == MessageStatus::Sent)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(vp_sent, ["before-7d", "before-3wd"]);
    assert_eq!(
        store.config_hashes().unwrap().len(),
        1,
        "the watched file's version"
    );
}

#[tokio::test]
async fn a_reload_does_not_chase_deadlines_that_passed_before_it() {
    let f = fixture("reload-old", local(2025, 9, 29, 9, 0));
    let (clock, store, engine) = (&f.clock, &f.store, &f.engine);
    engine.wake_once().await.unwrap();
    // Months later, with the daemon running (it just woke), a monthly report is added.
    clock.set(local(2026, 6, 10, 8, 59));
    engine.wake_once().await.unwrap();
    let before = store.messages().unwrap().len();
    clock.set(local(2026, 6, 10, 9, 0));
    let monthly = "\n[[rule]]\nid = \"bao-cao-thang\"\nkind = \"report\"\ntitle = \"Báo cáo tháng\"\nperiod = \"month\"\ndue = { month = \"next\", day = 20 }\nunits = [\"vp\"]\n";
    f.reload_with(&config_text(&(rules() + monthly))).await;
    let added: Vec<Row> = statuses(store).into_iter().skip(before).collect();
    // Only May's report (due 20/06, still ahead) is caught up: its latest past step. The
    // months whose deadlines passed before the rule existed are not chased.
    assert!(
        added.iter().all(|r| r.0 == "bao-cao-thang/2026-05/vp"),
        "{added:#?}"
    );
    assert_eq!(
        added.iter().filter(|r| r.2 == MessageStatus::Sent).count(),
        1,
        "{added:#?}"
    );
}

/// The log says where the engine stands at its first wake, even when nothing is planned,
/// and then only when that changes.
#[test]
fn the_next_step_is_told_at_the_first_wake_and_on_change() {
    let status = Status::default();
    let t = Utc.with_ymd_and_hms(2025, 10, 1, 1, 0, 0).unwrap();
    assert!(status.set(t, None), "the first wake is told");
    assert!(
        !status.set(t + Duration::minutes(1), None),
        "nothing changed"
    );
    assert_eq!(status.last_wake(), Some(t + Duration::minutes(1)));
}

/// The first wake records the next 12 months' obligations, not yet reminded; a reload
/// records what it adds at once and withdraws what it removes, while nothing was sent.
#[tokio::test]
async fn obligations_ahead_are_recorded_and_follow_the_config() {
    let f = fixture("ahead", local(2025, 9, 29, 9, 0));
    let (store, engine) = (&f.store, &f.engine);
    engine.wake_once().await.unwrap();
    let now = f.clock.now();
    let known = || -> Vec<(String, crate::state::Shown)> {
        store
            .obligations(now - Duration::days(1))
            .unwrap()
            .into_iter()
            .map(|o| (o.key.clone(), o.shown(now)))
            .collect()
    };
    use crate::state::Shown::{Pending, Upcoming};
    assert_eq!(
        known(),
        [
            ("bao-cao-9-thang/2025-9M/vp".into(), Pending),
            ("bao-cao-6-thang/2026-H1/vp".into(), Upcoming),
        ],
        "the 9-month report of 2026 is due more than 12 months ahead"
    );
    let six = "period = \"half-year\"\nwhich = [1]\ndue = { month = \"next\", day = 5, before = true }\nunits = [\"vp\"]";
    let with =
        |units: &str| config_text(&rules()).replacen(six, &six.replace("[\"vp\"]", units), 1);
    f.reload_with(&with("[\"vp\", \"kt\"]")).await;
    assert_eq!(
        known(),
        [
            ("bao-cao-9-thang/2025-9M/vp".into(), Pending),
            ("bao-cao-6-thang/2026-H1/vp".into(), Upcoming),
            ("bao-cao-6-thang/2026-H1/kt".into(), Upcoming),
        ]
    );
    f.reload_with(&with("[\"kt\"]")).await;
    assert_eq!(
        known(),
        [
            ("bao-cao-9-thang/2025-9M/vp".into(), Pending),
            ("bao-cao-6-thang/2026-H1/kt".into(), Upcoming),
        ],
        "vp's, never reminded nor answered, is withdrawn"
    );
}

/// The wall clock stepped back an hour and then forward a day while the daemon runs (NTP
/// correcting a fast clock, a VM resumed): no step is sent twice, nothing is sent early for
/// the steps the hour replays, and the jump forward is caught up like a downtime: only the
/// latest missed step goes out, the ones it passed are recorded skipped.
#[tokio::test]
async fn clock_jumps_back_and_forward_send_no_step_twice() {
    let f = fixture("jumps", local(2025, 10, 2, 7, 0));
    f.engine.wake_once().await.unwrap();
    f.clock.set(local(2025, 10, 2, 8, 0));
    f.engine.wake_once().await.unwrap();
    let before = statuses(&f.store);
    assert_eq!(
        before.last().unwrap(),
        &row("bao-cao-9-thang/2025-9M/vp", "before-1wd", "sent")
    );
    let mark = f.store.engine_until().unwrap();

    // Back an hour: the hour 07:00-08:00 replays; the before-1wd step of 08:00 is not sent
    // again, neither during the hour nor when 08:00 comes round again.
    f.clock.set(local(2025, 10, 2, 7, 0));
    let next = f.engine.wake_once().await.unwrap();
    assert!(next > local(2025, 10, 2, 7, 0));
    assert_eq!(
        statuses(&f.store),
        before,
        "nothing new after the step back"
    );
    assert_eq!(
        f.store.engine_until().unwrap(),
        mark,
        "the mark never moves back"
    );
    for t in [
        local(2025, 10, 2, 7, 30),
        local(2025, 10, 2, 8, 0),
        local(2025, 10, 2, 8, 1),
    ] {
        f.clock.set(t);
        f.engine.wake_once().await.unwrap();
        assert_eq!(statuses(&f.store), before, "at {t}");
    }

    // Forward past two steps in one jump (Fri 03/10 `due` 08:00 and Mon 06/10 `after-1wd`):
    // the latest is sent, `due` is recorded skipped, as after a downtime.
    f.clock.set(local(2025, 10, 6, 9, 0));
    f.engine.wake_once().await.unwrap();
    let rows = statuses(&f.store);
    assert_eq!(rows.len(), before.len() + 2, "{rows:#?}");
    assert!(rows.contains(&row("bao-cao-9-thang/2025-9M/vp", "due", "skipped")));
    assert!(rows.contains(&row("bao-cao-9-thang/2025-9M/vp", "after-1wd", "sent")));
    let sent: Vec<_> = rows
        .iter()
        .filter(|r| r.2 == MessageStatus::Sent)
        .map(|r| (&r.0, &r.1))
        .collect();
    let distinct: std::collections::BTreeSet<_> = sent.iter().collect();
    assert_eq!(sent.len(), distinct.len(), "no step sent twice: {rows:#?}");
}

/// A config file caught half written by the watch (truncated by an editor or `cp`, the new
/// text not in yet) is not loaded: no broken-config notice for a file nobody finished, and
/// the old config stays; once the file has been still for `SETTLE`, the new text applies.
#[tokio::test]
async fn the_watch_waits_for_a_config_file_to_settle() {
    let f = fixture("settle", local(2025, 9, 29, 9, 0));
    f.engine.wake_once().await.unwrap();
    let units = f.engine.current.config().units.len();
    let notices = |store: &Store| {
        store
            .messages()
            .unwrap()
            .into_iter()
            .filter(|m| m.obligation.starts_with("admin/"))
            .count()
    };
    std::fs::write(&f.path, "").unwrap();
    f.engine.wake_once().await.unwrap();
    assert_eq!(
        notices(&f.store),
        0,
        "the empty file is not read as a config"
    );
    assert_eq!(
        f.engine.current.config().units.len(),
        units,
        "the old config stays"
    );

    let added = config_text(&rules()).replace("units = [\"vp\"]", "units = [\"vp\", \"kt\"]");
    std::fs::write(&f.path, &added).unwrap();
    f.engine.wake_once().await.unwrap();
    assert_eq!(f.store.config_hashes().unwrap().len(), 0, "still settling");
    std::thread::sleep(reload::SETTLE);
    f.engine.wake_once().await.unwrap();
    assert_eq!(notices(&f.store), 0);
    assert_eq!(
        f.store.config_hashes().unwrap().len(),
        1,
        "applied once still"
    );
    assert!(
        f.store
            .messages()
            .unwrap()
            .iter()
            .any(|m| m.obligation.ends_with("/kt")),
        "the unit the new text adds is caught up"
    );
}

/// A log in memory, for the tests of what is said how often.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

impl Log {
    fn count(&self, line: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .matches(line)
            .count()
    }
}

/// While the database refuses to record the obligations ahead (a trigger stands in for the
/// cause: a full disk would fail the whole wake), every wake tries again and the wakes go on,
/// but the log says so once, and once more when it works again: not a line a minute.
#[tokio::test]
async fn a_registration_that_keeps_failing_is_logged_once() {
    let log = Log::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let t0 = local(2025, 11, 10, 9, 0);
    let f = fixture("ahead-log", t0);
    let db = rusqlite::Connection::open(f.store.path()).unwrap();
    db.execute_batch(
        "CREATE TRIGGER no_room BEFORE INSERT ON occurrences
         BEGIN SELECT RAISE(ABORT, 'no room'); END;",
    )
    .unwrap();
    for minute in 0..120 {
        f.clock.set(t0 + Duration::minutes(minute));
        f.engine.wake_once().await.unwrap();
    }
    let failing = "cannot record the obligations ahead";
    assert_eq!(log.count(failing), 1, "said once in 120 wakes");
    assert_eq!(log.count("no room"), 1);
    assert_eq!(f.store.unit_obligations(None, t0).unwrap().len(), 0);

    db.execute_batch("DROP TRIGGER no_room").unwrap();
    f.clock.set(t0 + Duration::minutes(120));
    f.engine.wake_once().await.unwrap();
    assert_eq!(log.count("the obligations ahead are recorded again"), 1);
    assert!(!f.store.unit_obligations(None, t0).unwrap().is_empty());
    assert_eq!(log.count(failing), 1);
}
