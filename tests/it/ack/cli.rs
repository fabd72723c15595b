//! `nhacviec ack` and `nhacviec status` beside the running daemon (and after it stopped),
//! on its clock: what they print agrees with the database.

use std::collections::BTreeSet;

use chrono::DateTime;
use serde_json::Value;

use super::{CSV_HEADER, key, parse_csv, shown_states, site};
use crate::support::config::{Cfg, name};
use crate::support::db::Ack;

/// An RFC 3339 instant as ms, or `None` for an empty field / null.
fn rfc3339_ms(s: Option<&str>) -> Option<i64> {
    s.filter(|s| !s.is_empty()).map(|s| {
        let t = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(t.offset().local_minus_utc(), 7 * 3600, "{s}: local time");
        t.timestamp_millis()
    })
}

#[test]
fn cli_ack_and_status_agree_with_the_database() {
    let (mut d, _) = site(&["vp", "kt", "yt"], Cfg::new());
    let note = "Đã nộp bản giấy qua văn thư, số 12/BC";

    let out = d.cli(&["ack", "--obligation", &key("vp"), "--done", "--note", note]);
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (
            0,
            format!("{}: done (was pending)\n", key("vp")).as_str(),
            ""
        )
    );
    let (state, _, done_at) = d.state(&key("vp"));
    assert_eq!(state, "done");
    assert_eq!(
        d.acks(&key("vp")),
        [Ack {
            action: "done".into(),
            at: done_at.unwrap(),
            source: "cli".into(),
            ip: None,
            user_agent: None,
            note: Some(note.into()),
            changed: true,
        }]
    );

    let out = d.cli(&["ack", "--obligation", &key("kt"), "--seen"]);
    assert_eq!(
        (out.status, out.stdout),
        (0, format!("{}: seen (was pending)\n", key("kt")))
    );
    assert_eq!(d.state(&key("kt")).0, "seen");

    // Again: recorded, nothing changed.
    let out = d.cli(&["ack", "--obligation", &key("vp"), "--done"]);
    assert_eq!(
        (out.status, out.stdout),
        (
            0,
            format!(
                "{}: already done; recorded again, nothing changed\n",
                key("vp")
            )
        )
    );
    assert_eq!(d.acks(&key("vp")).len(), 2);
    assert!(!d.acks(&key("vp"))[1].changed);
    assert_eq!(d.state(&key("vp")).2, done_at);

    // Unknown obligations: exit 1, a message, nothing recorded.
    let acks = d.ack_count();
    let states = d.states();
    for unknown in [
        key("th"),
        "tuyen-truyen/2020-01-01/vp".to_string(),
        "khong-co".to_string(),
    ] {
        let out = d.cli(&["ack", "--obligation", &unknown, "--done"]);
        assert_eq!(
            (out.status, out.stdout.as_str()),
            (1, ""),
            "{unknown}: {}",
            out.stderr
        );
        assert!(
            out.stderr
                .starts_with(&format!("error: unknown obligation `{unknown}`")),
            "{}",
            out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "once: {}", out.stderr);
    }
    assert_eq!(d.ack_count(), acks);
    assert_eq!(d.states(), states);

    // status: CSV and JSON agree with the database, with the daemon running and after.
    for running in [true, false] {
        if !running {
            d.stop();
        }
        let csv = d.cli(&["status", "--format", "csv"]);
        assert_eq!((csv.status, csv.stderr.as_str()), (0, ""));
        let json = d.cli(&["status", "--format", "json"]);
        assert_eq!((json.status, json.stderr.as_str()), (0, ""));
        let table = d.cli(&["status"]);
        assert_eq!(table.status, 0);

        let records = parse_csv(&csv.stdout);
        assert_eq!(records[0], CSV_HEADER);
        let json: Vec<Value> = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(json.len(), records.len() - 1);
        let db = d.states();
        assert_eq!(db.len(), 3);
        let shown = shown_states(&d);
        for (r, j) in records[1..].iter().zip(&json) {
            // The same line in both formats.
            for (i, field) in CSV_HEADER.iter().enumerate() {
                let jv = j[*field].as_str().unwrap_or("");
                assert_eq!(r[i], jv, "{field}: csv {r:?}, json {j}");
            }
            let k = &r[0];
            let (state, seen_at, done_at) = &db[k];
            assert_eq!(&r[9], &shown[k], "{k}");
            assert_eq!(&r[9], state, "{k}: none is overdue");
            assert_eq!(
                rfc3339_ms(Some(&r[10])).map(|t| t / 1000),
                seen_at.map(|t| t / 1000),
                "{k}"
            );
            assert_eq!(
                rfc3339_ms(Some(&r[11])).map(|t| t / 1000),
                done_at.map(|t| t / 1000),
                "{k}"
            );
            assert!(table.stdout.contains(k.as_str()), "{}", table.stdout);
            assert_eq!(r[8], name(&r[7]));
        }
        assert_eq!(
            records[1..]
                .iter()
                .map(|r| r[0].clone())
                .collect::<BTreeSet<_>>(),
            db.keys().cloned().collect()
        );
    }

    // On a clock past the deadline, status shows the open ones overdue.
    let late = d.cli_at("2025-10-20T09:00:00+07:00", &["status", "--format", "csv"]);
    let records = parse_csv(&late.stdout);
    let states: Vec<(String, String)> = records[1..]
        .iter()
        .map(|r| (r[7].clone(), r[9].clone()))
        .collect();
    assert_eq!(
        states,
        [("vp", "done"), ("kt", "overdue"), ("yt", "overdue")]
            .map(|(u, s)| (u.to_string(), s.to_string()))
    );
}

/// A unit that submitted early, recorded by the admin before its first reminder: right after
/// the first start `status` lists both obligations as not reminded yet, `ack` records the
/// answer, and the unit is never reminded, while the other unit is. A name that is not a
/// planned obligation is refused, saying why.
#[test]
fn done_before_the_first_reminder_means_no_reminder() {
    use crate::support::config::{policy, tuyen_truyen, tuyen_truyen_key, unit};

    use crate::support::daemon::Setup;
    // One reminder, the day before the last day: Tue 14/10 08:00; the start is Mon 09:00.
    let cfg = Cfg::new()
        .units([unit("vp"), unit("kt")])
        .rule(tuyen_truyen(&["vp", "kt"]).policy(policy(&["1d"], &[])));
    let mut d = Setup::new(&cfg).start();
    d.wait("the first wake", |d| d.mark());
    assert!(d.rows().is_empty(), "nothing due yet");
    let out = d.cli(&["status", "--format", "json"]);
    assert_eq!(out.status, 0, "{out:?}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let listed: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|l| {
            (
                l["obligation"].as_str().unwrap(),
                l["state"].as_str().unwrap(),
                l["state_label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                tuyen_truyen_key("vp").as_str(),
                "upcoming",
                "Chưa đến hạn nhắc"
            ),
            (
                tuyen_truyen_key("kt").as_str(),
                "upcoming",
                "Chưa đến hạn nhắc"
            ),
        ]
    );
    let out = d.cli(&["ack", "--obligation", &tuyen_truyen_key("vp"), "--done"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("{}: done (was pending)\n", tuyen_truyen_key("vp"))
    );
    assert_eq!(d.state(&tuyen_truyen_key("vp")).0, "done");
    let out = d.cli(&[
        "ack",
        "--obligation",
        "tuyen-truyen/2025-10-16/vp",
        "--done",
    ]);
    assert_eq!(out.status, 1);
    assert_eq!(
        out.stderr,
        "error: unknown obligation `tuyen-truyen/2025-10-16/vp`: rule `tuyen-truyen` has no occurrence `2025-10-16`\n"
    );
    d.stop();
    d.restart_at("2025-10-14T07:59:58+07:00", 1);
    let rows = d.wait_rows("kt's before-1d sent", |rows| {
        rows.iter().any(|r| r.unit() == "kt" && r.status == "sent")
    });
    assert!(
        rows.iter().all(|r| r.unit() != "vp"),
        "no message at all for vp, done ahead: {rows:#?}"
    );
    assert_eq!(rows.len(), 1);
}

/// Before the daemon's first start there is no database: `status` says so and what comes
/// next, and exits 0 (JSON and CSV stay well formed, the note on stderr). The shipped
/// config, copied, so that a database the shipped config made in the repository is not
/// seen.
#[test]
fn status_before_the_first_start_says_what_will_come() {
    use crate::support::{REPO, Test, read};
    let shipped = read(&std::path::Path::new(REPO).join("config/nhacviec.toml"));
    let test = |args: &[&str]| {
        Test::new()
            .config(&shipped)
            .shipped_calendar()
            .clock("2025-09-15T09:00:00+07:00")
            .args(args)
    };
    let out = test(&["status"]).stderr("").run();
    assert_eq!(
        out.stdout,
        "no database yet at var/nhacviec.db: `nhacviec run` creates it, and records each obligation whose deadline is within 12 months at its first start.\n\
         the next reminder step in the plan: before-14d of bao-cao-9-thang/2025-9M at Fri 19/09/2025 08:00.\n"
    );
    let json = test(&["status", "--format", "json"]).run();
    assert_eq!(json.stdout, "[]\n");
    assert!(
        json.stderr.starts_with("no database yet"),
        "{}",
        json.stderr
    );
    let csv = test(&["status", "--format", "csv"]).run();
    assert!(csv.stdout.starts_with("obligation,rule,"), "{}", csv.stdout);
    assert_eq!(csv.stdout.lines().count(), 1, "the header only");
}
