//! The store against a real SQLite file in a temporary folder.

use chrono::{Duration, NaiveDate};
use serde_json::json;

use super::*;
use crate::state::{AckAction, AckSource, Channel, MessageStatus, ObligationState, TemplateKind};

use crate::testutil::TempDir;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 19, 1, 0, 0).unwrap()
}

fn occurrence() -> OccurrenceRecord {
    OccurrenceRecord {
        rule: "bao-cao-9-thang".into(),
        period: "2025-9M".into(),
        kind: "report".into(),
        title: "Báo cáo".into(),
        period_label: "9 tháng năm 2025".into(),
        deadline: Utc.with_ymd_and_hms(2025, 10, 4, 17, 0, 0).unwrap(),
        due_day: NaiveDate::from_ymd_opt(2025, 10, 5).unwrap(),
        last_day: NaiveDate::from_ymd_opt(2025, 10, 3).unwrap(),
    }
}

fn obligation(unit: &str) -> ObligationRecord {
    let mut token_hash = [0u8; 32];
    token_hash[..unit.len()].copy_from_slice(unit.as_bytes());
    ObligationRecord {
        unit: unit.into(),
        key: format!("bao-cao-9-thang/2025-9M/{unit}"),
        token_hash,
    }
}

fn message(unit: &str, step: &str, at: DateTime<Utc>) -> Message {
    Message::new(
        format!("bao-cao-9-thang/2025-9M/{unit}"),
        step.into(),
        Channel::Email,
        format!("{unit}@example.invalid"),
        TemplateKind::Before,
        json!({"unit": unit}),
        format!("<bao-cao-9-thang.2025-9M.{unit}.{step}@example.invalid>"),
        at,
    )
}

fn ack(action: AckAction) -> NewAck<'static> {
    NewAck {
        action,
        at: t0(),
        source: AckSource::Cli,
        ip: None,
        user_agent: None,
        note: None,
    }
}

/// Records `action` for `unit`'s obligation, with no leadership to tell.
fn ack_unit(store: &Store, unit: &str, action: AckAction) -> Option<AckOutcome> {
    let key = format!("bao-cao-9-thang/2025-9M/{unit}");
    store.ack(&key, &ack(action), |_| Vec::new()).unwrap()
}

/// A new, empty store in a temporary folder of its own.
fn new_store(name: &str) -> (TempDir, Store) {
    let dir = TempDir::new(name);
    let store = Store::open(&dir.0.join("db"), t0()).unwrap();
    (dir, store)
}

/// [`message`] from other templates than `before`.
fn message_as(unit: &str, step: &str, template: TemplateKind) -> Message {
    let mut m = message(unit, step, t0());
    m.template = template;
    m
}

/// A new store holding `vp`'s obligation and its message of `step`.
fn store_with_vp(name: &str, step: &str) -> (TempDir, Store) {
    let (dir, store) = new_store(name);
    let group = rows(&[obligation("vp")], &[message("vp", step, t0())]);
    store.enqueue(t0(), &[group], None).unwrap();
    (dir, store)
}

fn rows(obls: &[ObligationRecord], msgs: &[Message]) -> StepRows {
    StepRows {
        occurrence: occurrence(),
        obligations: obls.to_vec(),
        messages: msgs.to_vec(),
    }
}

#[test]
fn the_engine_mark_moves_with_its_enqueue() {
    let (_dir, store) = new_store("mark");
    assert_eq!(store.engine_until().unwrap(), None);
    let until = t0() + Duration::minutes(5);
    store.enqueue(t0(), &[], Some(until)).unwrap();
    assert_eq!(store.engine_until().unwrap(), Some(until));
    store
        .enqueue(
            t0(),
            &[rows(&[obligation("vp")], &[message("vp", "due", t0())])],
            None,
        )
        .unwrap();
    assert_eq!(
        store.engine_until().unwrap(),
        Some(until),
        "unchanged without a mark"
    );
}

#[test]
fn open_creates_a_wal_database_and_keeps_its_first_start() {
    let dir = TempDir::new("open");
    let path = dir.0.join("sub/nhacviec.db");
    let store = Store::open(&path, t0()).unwrap();
    assert!(path.is_file());
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(store.first_start().unwrap(), t0());
    drop(store);
    let again = Store::open(&path, t0() + Duration::days(3)).unwrap();
    assert_eq!(again.first_start().unwrap(), t0(), "first start is kept");
}

#[test]
fn enqueue_is_idempotent_by_the_unique_key() {
    let (_dir, store) = new_store("enqueue");
    let obls = [obligation("vp"), obligation("kt")];
    let msgs = [
        message("vp", "before-14d", t0()),
        message("kt", "before-14d", t0()),
    ];
    assert_eq!(store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap(), 2);
    assert_eq!(store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap(), 0);
    let rows = store.messages().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|m| m.status == MessageStatus::Pending && m.attempts == 0)
    );
    let count = |sql: &str| -> i64 { store.conn().query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM obligations WHERE occurrence_id IS NOT NULL"),
        2
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM messages WHERE obligation_id IS NOT NULL"),
        2,
        "messages point at their obligations"
    );
}

#[test]
fn claim_retry_fail_send_and_recover() {
    let (_dir, store) = new_store("claim");
    let later = t0() + Duration::hours(2);
    let skipped = message("hcc", "before-14d", t0()).skipped();
    let msgs = [
        message("vp", "before-14d", t0()),
        message("kt", "before-14d", t0()),
        message("vhxh", "before-14d", later),
        skipped,
    ];
    let obls: Vec<_> = ["vp", "kt", "vhxh", "hcc"].map(obligation).to_vec();
    store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap();

    let claimed = store.claim_due(t0(), 10).unwrap();
    let who: Vec<&str> = claimed.iter().map(|c| c.recipient.as_str()).collect();
    assert_eq!(
        who,
        ["vp@example.invalid", "kt@example.invalid"],
        "only due, never skipped"
    );
    assert!(
        claimed
            .iter()
            .all(|c| c.attempts == 1 && c.first_attempt_at == Some(t0()))
    );
    assert!(
        store.claim_due(t0(), 10).unwrap().is_empty(),
        "sending is not claimed twice"
    );

    store
        .mark_sent(claimed[0].id, t0(), Some("Tiêu đề"), None)
        .unwrap();
    let retry_at = t0() + Duration::minutes(1);
    store
        .mark_retry(claimed[1].id, retry_at, "451 4.3.0 Try again later", None)
        .unwrap();
    assert_eq!(store.next_attempt_at().unwrap(), Some(retry_at));
    let again = store.claim_due(retry_at, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(
        again[0].first_attempt_at,
        Some(t0()),
        "first attempt is kept"
    );
    store
        .mark_failed(again[0].id, "550 5.1.1 Mailbox unavailable", None)
        .unwrap();

    // vhxh's is claimed, then the process "crashes": it is put back at the next start.
    let cut = store.claim_due(later, 10).unwrap();
    assert_eq!(cut.len(), 1);
    assert_eq!(store.recover_sending(later).unwrap(), 1);
    let resent = store.claim_due(later, 10).unwrap();
    assert_eq!(resent[0].message_id, cut[0].message_id, "same Message-ID");
    assert_eq!(resent[0].attempts, 2);

    let rows = store.messages().unwrap();
    let by = |r: &str| rows.iter().find(|m| m.recipient == r).unwrap().clone();
    assert_eq!(by("vp@example.invalid").status, MessageStatus::Sent);
    assert_eq!(by("vp@example.invalid").subject.as_deref(), Some("Tiêu đề"));
    assert_eq!(by("vp@example.invalid").sent_at, Some(t0()));
    let kt = by("kt@example.invalid");
    assert_eq!(kt.status, MessageStatus::Failed);
    assert_eq!(
        kt.last_error.as_deref(),
        Some("550 5.1.1 Mailbox unavailable")
    );
    assert_eq!(kt.attempts, 2);
    assert_eq!(by("hcc@example.invalid").status, MessageStatus::Skipped);
    assert_eq!(
        store.outbox_counts().unwrap(),
        OutboxCounts {
            pending: 0,
            sending: 1,
            sent: 1,
            failed: 1,
            skipped: 1
        }
    );
}

#[test]
fn config_versions_record_changes_only() {
    let (_dir, store) = new_store("config");
    assert!(store.record_config("aaa", "x.toml", t0()).unwrap());
    assert!(!store.record_config("aaa", "x.toml", t0()).unwrap());
    assert!(store.record_config("bbb", "x.toml", t0()).unwrap());
    assert!(store.record_config("aaa", "x.toml", t0()).unwrap());
    assert_eq!(store.config_hashes().unwrap(), ["aaa", "bbb", "aaa"]);
}

#[test]
fn other_messages_have_no_obligation() {
    let (_dir, store) = new_store("other");
    let mut m = message("x", "digest", t0());
    m.obligation = "digest/2025-09-19".into();
    assert_eq!(store.enqueue_other(t0(), &[m.clone()]).unwrap(), 1);
    assert_eq!(store.enqueue_other(t0(), &[m]).unwrap(), 0);
    assert_eq!(store.claim_due(t0(), 5).unwrap().len(), 1);
}

#[test]
fn an_unwritable_place_is_a_clear_error() {
    let dir = TempDir::new("unwritable");
    let file = dir.0.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let err = Store::open(&file.join("nhacviec.db"), t0()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot create the folder for the database"),
        "{err}"
    );
}

#[test]
fn an_ack_skips_the_reminders_it_makes_moot() {
    let (_dir, store) = new_store("moot");
    let after = message_as("vp", "after-1wd", TemplateKind::After);
    let before = message("vp", "before-7d", t0());
    let kt_before = message("kt", "before-7d", t0());
    let kt_due = message_as("kt", "due", TemplateKind::Due);
    let obls = [obligation("vp"), obligation("kt")];
    store
        .enqueue(
            t0(),
            &[rows(&obls, &[before, after, kt_before, kt_due])],
            None,
        )
        .unwrap();
    ack_unit(&store, "vp", AckAction::Done);
    ack_unit(&store, "kt", AckAction::Seen);
    let by: Vec<(String, String, MessageStatus)> = store
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| {
            (
                m.obligation.rsplit('/').next().unwrap().to_string(),
                m.step,
                m.status,
            )
        })
        .collect();
    use MessageStatus::*;
    let want = [
        ("vp", "before-7d", Skipped),
        ("vp", "after-1wd", Skipped),
        ("kt", "before-7d", Skipped),
        ("kt", "due", Pending),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c));
    assert_eq!(by, want);
    assert_eq!(
        store.next_attempt_at().unwrap(),
        Some(t0()),
        "only kt's due is left"
    );
}

#[test]
fn a_step_enqueued_after_a_done_ack_is_skipped_not_sent() {
    // The engine read the state before the ack (from another process) was committed.
    let (_dir, store) = store_with_vp("late", "before-14d");
    ack_unit(&store, "vp", AckAction::Done);
    let after = message_as("vp", "after-1wd", TemplateKind::After);
    store
        .enqueue(t0(), &[rows(&[obligation("vp")], &[after])], None)
        .unwrap();
    assert!(store.claim_due(t0(), 10).unwrap().is_empty());
    let last = store.messages().unwrap().pop().unwrap();
    assert_eq!(
        (last.step.as_str(), last.status, last.last_error.as_deref()),
        (
            "after-1wd",
            MessageStatus::Skipped,
            Some("not sent: the unit acknowledged done first")
        )
    );
}

#[test]
fn an_ack_is_recorded_once_per_answer_and_moves_states_one_way() {
    let (_dir, store) = store_with_vp("acks", "due");
    let seen = ack_unit(&store, "vp", AckAction::Seen).unwrap();
    assert_eq!(
        (seen.before, seen.after),
        (ObligationState::Pending, ObligationState::Seen)
    );
    assert!(ack_unit(&store, "vp", AckAction::Done).unwrap().changed());
    let again = ack_unit(&store, "vp", AckAction::Seen).unwrap();
    assert!(!again.changed(), "seen after done changes nothing");
    assert_eq!(again.after, ObligationState::Done);
    assert_eq!(store.ack_counts().unwrap()[&AckAction::Seen], 2);
    assert!(ack_unit(&store, "nobody", AckAction::Done).is_none());
    let ob = &store.obligations(t0() - Duration::days(1)).unwrap()[0];
    assert_eq!(ob.state, ObligationState::Done);
    assert_eq!(ob.due_day, NaiveDate::from_ymd_opt(2025, 10, 5));
}

#[test]
fn reads_answer_while_another_connection_holds_the_write_lock() {
    let dir = TempDir::new("locked");
    let path = dir.0.join("db");
    let store = Store::open(&path, t0()).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO meta VALUES ('x', 'y');")
        .unwrap();
    // A write would wait for the lock (and fail after the busy timeout); reads answer.
    store.ping().unwrap();
    assert_eq!(store.outbox_counts().unwrap(), OutboxCounts::default());
    assert_eq!(
        store.meta("x").unwrap(),
        None,
        "the other transaction is not seen"
    );
    other.execute_batch("ROLLBACK").unwrap();
}

/// Two processes writing the same database (the daemon and `nhacviec ack`, say): each write
/// waits for the other's instead of failing with "database is locked", which a transaction
/// that read before it wrote did when the other committed in between.
#[test]
fn two_writers_wait_for_each_other() {
    let dir = TempDir::new("two-writers");
    let path = dir.0.join("db");
    let units: Vec<String> = (0..20).map(|i| format!("u{i:02}")).collect();
    {
        let store = Store::open(&path, t0()).unwrap();
        let obls: Vec<ObligationRecord> = units.iter().map(|u| obligation(u)).collect();
        store.enqueue(t0(), &[rows(&obls, &[])], None).unwrap();
    }
    let writers: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            let units = units.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path, t0()).unwrap();
                for round in 0..30 {
                    for unit in &units {
                        let key = format!("bao-cao-9-thang/2025-9M/{unit}");
                        let action = [AckAction::Seen, AckAction::Done][round % 2];
                        store.ack(&key, &ack(action), |_| Vec::new())?;
                    }
                }
                Ok::<(), StoreError>(())
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap().unwrap();
    }
    let store = Store::open_read_only(&path).unwrap();
    let total: u64 = store.ack_counts().unwrap().values().sum();
    assert_eq!(total, 2 * 30 * 20);
}

/// An ack recorded while reminders are being sent: those a temporary failure or a restart
/// puts back to `pending` are skipped when next due, with the reason, not sent; what the
/// new state does not silence (kt's `due` after a `seen`) still goes.
#[test]
fn an_ack_during_a_send_stops_its_retry_and_its_resend() {
    let (_dir, store) = new_store("in-flight");
    let kt_due = message_as("kt", "due", TemplateKind::Due);
    let msgs = [
        message("vp", "before-7d", t0()),
        message("kt", "before-7d", t0()),
        kt_due,
    ];
    let obls = [obligation("vp"), obligation("kt")];
    store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap();
    let flying = store.claim_due(t0(), 10).unwrap();
    assert_eq!(flying.len(), 3);

    ack_unit(&store, "vp", AckAction::Done);
    ack_unit(&store, "kt", AckAction::Seen);
    // vp's send fails for now; the process stops with kt's two in flight.
    let retry_at = t0() + Duration::minutes(1);
    store
        .mark_retry(flying[0].id, retry_at, "451 4.3.0 Try again later", None)
        .unwrap();
    assert_eq!(store.recover_sending(t0()).unwrap(), 2);

    let again = store.claim_due(retry_at, 10).unwrap();
    let steps: Vec<(&str, &str)> = again
        .iter()
        .map(|m| (m.obligation.as_str(), m.step.as_str()))
        .collect();
    assert_eq!(steps, [("bao-cao-9-thang/2025-9M/kt", "due")]);
    let by: Vec<(String, MessageStatus, Option<String>)> = store
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| (m.step, m.status, m.last_error))
        .collect();
    let skipped = |why: &str| (MessageStatus::Skipped, Some(why.to_string()));
    assert_eq!(
        by.iter()
            .map(|(_, s, e)| (*s, e.clone()))
            .collect::<Vec<_>>(),
        [
            skipped("not sent: the unit acknowledged done first"),
            skipped("not sent: the unit acknowledged seen first"),
            (MessageStatus::Sending, None),
        ],
        "{by:#?}"
    );
    assert_eq!(
        store.next_attempt_at().unwrap(),
        None,
        "nothing left to send"
    );
}

/// A row that cannot be read back (edited by hand) fails with the reason instead of
/// failing every claim, and the messages behind it go.
#[test]
fn an_unreadable_message_fails_and_the_others_are_claimed() {
    let (_dir, store) = new_store("unreadable");
    let msgs = [
        message("vp", "before-7d", t0()),
        message("kt", "before-7d", t0()),
    ];
    let obls = [obligation("vp"), obligation("kt")];
    store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap();
    store
        .conn()
        .execute(
            "UPDATE messages SET context = '{' WHERE recipient = 'vp@example.invalid'",
            [],
        )
        .unwrap();
    let claimed = store.claim_due(t0(), 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].recipient, "kt@example.invalid");
    let (status, error): (String, String) = store
        .conn()
        .query_row(
            "SELECT status, last_error FROM messages WHERE recipient = 'vp@example.invalid'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "failed");
    assert!(
        error.starts_with("cannot read this message back from the database (")
            && error.ends_with("it is not tried again"),
        "{error}"
    );
    assert!(store.claim_due(t0(), 10).unwrap().is_empty());
}

/// An escalated notice in flight when the obligation becomes done counts as sent: its
/// recipient gets the done notice (it most likely got the escalation).
#[test]
fn an_escalation_in_flight_at_done_gets_its_done_notice() {
    let (_dir, store) = new_store("escalated-in-flight");
    let mut sent = message("vp", "after-3wd", t0());
    sent.template = TemplateKind::Escalated;
    sent.recipient = "a@example.invalid".into();
    let mut flying = sent.clone();
    flying.recipient = "b@example.invalid".into();
    flying.message_id = "<b@example.invalid>".into();
    let mut waiting = sent.clone();
    waiting.recipient = "c@example.invalid".into();
    waiting.message_id = "<c@example.invalid>".into();
    waiting.next_attempt_at = Some(t0() + Duration::hours(1));
    store
        .enqueue(
            t0(),
            &[rows(&[obligation("vp")], &[sent, flying, waiting])],
            None,
        )
        .unwrap();
    let claimed = store.claim_due(t0(), 10).unwrap();
    assert_eq!(claimed.len(), 2);
    store
        .mark_sent(claimed[0].id, t0(), None, Some("42"))
        .unwrap();
    let mut told = Vec::new();
    store
        .ack(
            "bao-cao-9-thang/2025-9M/vp",
            &ack(AckAction::Done),
            |escalated| {
                told = escalated.iter().map(|m| m.recipient.clone()).collect();
                Vec::new()
            },
        )
        .unwrap();
    assert_eq!(told, ["a@example.invalid", "b@example.invalid"]);
}

/// `/healthz`'s view counts every stuck and failed message, and names the oldest stuck and
/// the latest failed.
#[test]
fn health_counts_every_problem_and_names_the_right_one() {
    let (_dir, store) = new_store("health");
    let units: Vec<String> = (0..15).map(|i| format!("u{i:02}")).collect();
    let msgs: Vec<Message> = units
        .iter()
        .map(|u| message(u, "before-7d", t0()))
        .collect();
    let obls: Vec<ObligationRecord> = units.iter().map(|u| obligation(u)).collect();
    store.enqueue(t0(), &[rows(&obls, &msgs)], None).unwrap();
    // Twelve fail, a minute apart; three stay sending from t0.
    for i in 0..12 {
        let at = t0() + Duration::minutes(i);
        let m = store.claim_due(at, 1).unwrap().pop().unwrap();
        store
            .mark_failed(m.id, &format!("550 number {i}"), None)
            .unwrap();
    }
    let stuck = store.claim_due(t0(), 3).unwrap();
    assert_eq!(stuck.len(), 3);
    let now = t0() + Duration::minutes(30);
    let h = store
        .health(now, Duration::minutes(5), Duration::hours(24))
        .unwrap();
    assert_eq!((h.stuck, h.failed), (3, 12));
    assert_eq!(h.oldest_stuck.unwrap().id, stuck[0].id);
    assert_eq!(
        h.latest_failed.unwrap().last_error.as_deref(),
        Some("550 number 11")
    );
}

/// The registration ahead: new obligations recorded; an occurrence nobody was reminded of
/// follows the config; an obligation no longer planned is withdrawn unless it was reminded
/// or answered; nothing changes when nothing differs.
#[test]
fn registration_follows_the_plan_until_the_first_reminder() {
    let (_dir, store) = new_store("register");
    let group = |title: &str, units: &[&str]| StepRows {
        occurrence: OccurrenceRecord {
            title: title.into(),
            ..occurrence()
        },
        obligations: units.iter().map(|u| obligation(u)).collect(),
        messages: Vec::new(),
    };
    let keys = |store: &Store| -> Vec<(String, String, bool)> {
        store
            .obligations(t0())
            .unwrap()
            .into_iter()
            .map(|o| (o.unit, o.title, o.reminded))
            .collect()
    };
    let r = store
        .register(t0(), &[group("Báo cáo", &["vp", "kt", "yt"])])
        .unwrap();
    assert_eq!((r.occurrences, r.added, r.withdrawn), (1, 3, 0));
    assert_eq!(
        store
            .register(t0(), &[group("Báo cáo", &["vp", "kt", "yt"])])
            .unwrap(),
        Registered::default(),
        "a second pass changes nothing"
    );
    // Not reminded yet: the new title applies; yt left the rule and is withdrawn.
    let r = store
        .register(t0(), &[group("Báo cáo mới", &["vp", "kt"])])
        .unwrap();
    assert_eq!((r.occurrences, r.added, r.withdrawn), (1, 0, 1));
    assert_eq!(
        keys(&store),
        [
            ("vp".into(), "Báo cáo mới".into(), false),
            ("kt".into(), "Báo cáo mới".into(), false)
        ]
    );
    let upcoming = &store.obligations(t0()).unwrap()[0];
    assert_eq!(upcoming.shown(t0()), crate::state::Shown::Upcoming);
    // vp is reminded, kt answers early: neither is withdrawn, and the reminded occurrence
    // keeps the facts it was sent with.
    store
        .enqueue(
            t0(),
            &[StepRows {
                messages: vec![message("vp", "before-14d", t0())],
                ..group("Báo cáo mới", &["vp"])
            }],
            None,
        )
        .unwrap();
    ack_unit(&store, "kt", AckAction::Seen).unwrap();
    let r = store.register(t0(), &[group("Khác", &[])]).unwrap();
    assert_eq!((r.occurrences, r.added, r.withdrawn), (0, 0, 0));
    assert_eq!(
        keys(&store),
        [
            ("vp".into(), "Báo cáo mới".into(), true),
            ("kt".into(), "Báo cáo mới".into(), false)
        ]
    );
    // Past its deadline, nothing is withdrawn any more.
    let after = occurrence().deadline + Duration::minutes(1);
    let (_dir2, store2) = new_store("register-past");
    store2.register(t0(), &[group("Báo cáo", &["vp"])]).unwrap();
    assert_eq!(store2.register(after, &[]).unwrap(), Registered::default());
    assert_eq!(store2.obligations(t0()).unwrap().len(), 1);
}

#[test]
fn unit_links_rotate_one_generation_at_a_time() {
    let (_dir, store) = new_store("links");
    assert!(store.unit_generations().unwrap().is_empty());
    assert_eq!(store.rotate_unit_link("vp", t0()).unwrap(), 1);
    assert_eq!(store.rotate_unit_link("vp", t0()).unwrap(), 2);
    assert_eq!(store.rotate_unit_link("kt", t0()).unwrap(), 1);
    let g = store.unit_generations().unwrap();
    assert_eq!((g["vp"], g["kt"], g.len()), (2, 1, 2));
}

/// An error printed with its whole chain (`{:#}`, as the commands print) says SQLite's or the
/// file system's words once: each message holds them, so none is also a `source`.
#[test]
fn store_errors_say_what_lies_beneath_once() {
    let full = StoreError::from(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        None,
    ));
    let dir = TempDir::new("errors");
    // A database whose folder would be inside a file, and one that is a folder.
    std::fs::write(dir.join("file"), "").unwrap();
    let folder = Store::open(&dir.join("file/nhacviec.db"), t0()).unwrap_err();
    let open = Store::open(&dir.join(""), t0()).unwrap_err();
    for (e, beneath) in [
        (full, "database or disk is full"),
        (folder, "File exists"),
        (open, "unable to open database file"),
    ] {
        let chain = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(chain.matches(beneath).count(), 1, "{chain}");
    }
}
