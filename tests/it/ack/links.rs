//! Done, seen and escalation in one daemon.
//!
//! The one-off `dot-xuat` is due Wed 15/10/2025 10:00, owed by `vp`, `kt`, `yt` and `th`,
//! with steps `before-2m` (09:58), `before-1m` (09:59), `after-1m` (10:01) and `after-2m`
//! (10:02), escalated from `after-2m` to the leadership of `vp`, `kt` and `yt`.
//!
//! The daemon starts a second before `before-2m` on a clock at real speed: the four units
//! get it; `vp` opens its link (GET changes nothing) and POSTs done, `yt` POSTs seen, with a
//! whole minute to spare before `before-1m`. It is then restarted a second before
//! `before-1m` on a clock 60 × real speed, so the remaining steps come within seconds: `vp`
//! gets nothing more, `yt` no more `before` step but the overdue ones, `th` (the control)
//! everything. Once the escalated notices of `kt` and `yt` reached the leadership, `kt`
//! POSTs done: each leadership address gets exactly one "[Đã hoàn thành]" notice. A second
//! done is recorded with `changed = 0`. The log holds none of the tokens.

use std::collections::{BTreeMap, BTreeSet};

use super::{LANH_DAO, UA, ack, ack_units, mails, to_address};
use crate::support::config::{Cfg, address, name, once, policy};
use crate::support::daemon::Setup;
use crate::support::db::{Ack, Row, addressed, at_ms};
use crate::support::mime::message_token;
use crate::support::{assert_contains, assert_lacks, clock, vn};

const TITLE: &str = "Họp xử lý công việc đột xuất";

#[test]
fn links_done_seen_and_escalation_in_one_daemon() {
    let rule = once("dot-xuat", TITLE, "2025-10-15 10:00")
        .units(&["vp", "kt", "yt", "th"])
        .policy(
            policy(&["2m", "1m"], &["1m", "2m"])
                .escalate_from("2m")
                .keep(),
        );
    let cfg = Cfg::new()
        .units(ack_units())
        .rule(rule)
        .server("ack_per_minute = 100");
    let key = |u: &str| format!("dot-xuat/2025-10-15/{u}");
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:57:59"))
        .start();

    // before-2m reaches the four units.
    let first = d.wait_rows("before-2m sent to the four units", |rows| {
        rows.iter()
            .filter(|r| r.step == "before-2m" && r.status == "sent")
            .count()
            == 4
    });
    assert_eq!(first.len(), 4, "{first:#?}");
    let got = mails(&d);
    let mut tokens = BTreeMap::new();
    for u in ["vp", "kt", "yt", "th"] {
        let m = to_address(&got, &address(u));
        assert_eq!(m.len(), 1, "{u}");
        tokens.insert(u, message_token(m[0], &cfg.public_url));
    }
    assert_eq!(
        tokens.values().collect::<BTreeSet<_>>().len(),
        4,
        "one token per obligation"
    );

    // vp opens its link: the page, and nothing recorded (twice, as a mail scanner would).
    for _ in 0..2 {
        let page = d.get(&format!("/a/{}", tokens["vp"]), &[("User-Agent", UA)]);
        assert_eq!(page.status, 200, "{page:#?}");
        assert!(
            page.header("content-type")
                .is_some_and(|v| v.starts_with("text/html")),
            "{page:#?}"
        );
        assert_contains(
            &page.text,
            &[
                name("vp"),
                TITLE,
                "10:00 ngày 15/10/2025 (thứ Tư)",
                "Chưa xác nhận",
                "<input type=\"hidden\" name=\"action\" value=\"seen\">",
                "<input type=\"hidden\" name=\"action\" value=\"done\">",
            ],
        );
        assert_eq!(
            page.text.matches("<form method=\"post\">").count(),
            2,
            "{}",
            page.text
        );
    }
    assert_eq!(d.state(&key("vp")), ("pending".into(), None, None));
    assert_eq!(d.ack_count(), 0, "GET records nothing");

    // vp POSTs done.
    let before = d.now().timestamp_millis();
    let done = ack(&d, &tokens["vp"], "done");
    let after = d.now().timestamp_millis();
    assert_eq!(done.status, 200, "{done:#?}");
    assert_contains(
        &done.text,
        &[
            "Đã ghi nhận: đơn vị đã hoàn thành. Hệ thống sẽ không gửi thêm nhắc nhở.",
            "Đã hoàn thành",
            "Hoàn thành lúc",
            name("vp"),
            TITLE,
        ],
    );
    assert_lacks(&done.text, "name=\"action\"", "no buttons once done");
    let (state, seen_at, done_at) = d.state(&key("vp"));
    assert_eq!((state.as_str(), seen_at), ("done", None));
    let done_at = done_at.unwrap();
    // The daemon's clock and the test's agree within the start-up of the process.
    assert!(
        (before - 1000..=after).contains(&done_at),
        "{before} {done_at} {after}"
    );
    assert_eq!(
        d.acks(&key("vp")),
        [Ack {
            action: "done".into(),
            at: done_at,
            source: "web".into(),
            ip: Some("127.0.0.1".into()),
            user_agent: Some(UA.into()),
            note: None,
            changed: true,
        }]
    );

    // yt POSTs seen after the first before step.
    let seen = ack(&d, &tokens["yt"], "seen");
    assert_eq!(seen.status, 200, "{seen:#?}");
    assert_contains(
        &seen.text,
        &[
            "Đã ghi nhận: đơn vị đã nhận nhiệm vụ. Hệ thống vẫn nhắc khi đến hạn.",
            "Đã nhận lúc",
            name("yt"),
            "<input type=\"hidden\" name=\"action\" value=\"done\">",
        ],
    );
    assert_lacks(&seen.text, "value=\"seen\"", "no second seen button");
    let (state, seen_at, done_at) = d.state(&key("yt"));
    assert_eq!((state.as_str(), done_at), ("seen", None));
    let yt_acks = d.acks(&key("yt"));
    assert_eq!(yt_acks.len(), 1, "{yt_acks:#?}");
    assert_eq!(
        (
            yt_acks[0].action.as_str(),
            yt_acks[0].changed,
            Some(yt_acks[0].at)
        ),
        ("seen", true, seen_at)
    );
    assert!(d.now() < vn("2025-10-15 09:59:00"), "the premise");

    // The rest of the sequence, 60 × faster.
    d.stop();
    d.restart_at(&clock("2025-10-15 09:58:59"), 60);
    let rows = d.wait_rows("after-2m sent", |rows| {
        rows.iter()
            .filter(|r| r.step == "after-2m" && r.status == "sent")
            .count()
            == 7
    });
    let units_of = |step: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| r.step == step && r.template != "escalated")
            .map(|r| r.unit().to_string())
            .collect()
    };
    let set = |us: &[&str]| us.iter().map(|u| u.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(units_of("before-1m"), set(&["kt", "th"]));
    // seen does not stop the overdue notices.
    assert_eq!(units_of("after-1m"), set(&["kt", "th", "yt"]));
    assert_eq!(units_of("after-2m"), set(&["kt", "th", "yt"]));
    assert!(
        rows.iter()
            .filter(|r| r.template == "escalated")
            .all(|r| r.step == "after-2m"),
        "after-1m is before escalate_from: {rows:#?}"
    );
    let escalated = addressed(&rows, "escalated");
    let mut want = Vec::new();
    for u in ["kt", "yt"] {
        for to in LANH_DAO {
            want.push((key(u), "after-2m".to_string(), to.to_string()));
        }
    }
    assert_eq!(escalated, want);
    let got = mails(&d);
    for to in LANH_DAO {
        let mut subjects: Vec<&str> = to_address(&got, to).iter().map(|m| m.subject()).collect();
        subjects.sort();
        assert_eq!(
            subjects,
            [
                format!(
                    "[Quá hạn – báo cáo lãnh đạo] {} chưa hoàn thành {TITLE}",
                    name("kt")
                ),
                format!(
                    "[Quá hạn – báo cáo lãnh đạo] {} chưa hoàn thành {TITLE}",
                    name("yt")
                ),
            ],
            "to {to}"
        );
    }
    let steps_of = |u: &str| -> Vec<String> {
        rows.iter()
            .filter(|r| r.obligation == key(u) && r.template != "escalated")
            .map(|r| r.step.clone())
            .collect()
    };
    // vp, done after before-2m, got nothing more, while the others got every step.
    assert_eq!(steps_of("vp"), ["before-2m"]);
    for u in ["th", "kt"] {
        assert_eq!(
            steps_of(u),
            ["before-2m", "before-1m", "after-1m", "after-2m"]
        );
    }
    // yt, seen after before-2m: no before-1m, but both after steps.
    assert_eq!(steps_of("yt"), ["before-2m", "after-1m", "after-2m"]);
    assert_eq!(to_address(&got, &address("vp")).len(), 1);
    assert_eq!(to_address(&got, &address("yt")).len(), 3);

    // kt POSTs done once its escalated notice was sent: each leadership address gets one
    // "[Đã hoàn thành]" notice, at once (the POST wakes the engine).
    let done = ack(&d, &tokens["kt"], "done");
    assert_eq!(done.status, 200, "{done:#?}");
    assert!(
        done.has("Đã ghi nhận: đơn vị đã hoàn thành."),
        "{}",
        done.text
    );
    assert_eq!(d.state(&key("kt")).0, "done");
    let rows = d.wait_rows("the done notices sent", |rows| {
        rows.iter()
            .filter(|r| r.template == "resolved" && r.status == "sent")
            .count()
            == 2
    });
    let notices = addressed(&rows, "resolved");
    assert_eq!(
        notices,
        LANH_DAO.map(|to| (key("kt"), "done-notice".to_string(), to.to_string()))
    );
    let got = mails(&d);
    for to in LANH_DAO {
        let resolved: Vec<&str> = to_address(&got, to)
            .iter()
            .map(|m| m.subject())
            .filter(|s| s.starts_with("[Đã hoàn thành]"))
            .collect();
        assert_eq!(
            resolved,
            [format!("[Đã hoàn thành] {}: {TITLE}", name("kt"))],
            "to {to}"
        );
    }

    // A second done, of kt and of vp: recorded with changed = 0, nothing else.
    let outbox = rows.len();
    for u in ["kt", "vp"] {
        let (_, _, done_at) = d.state(&key(u));
        let again = ack(&d, &tokens[u], "done");
        assert_eq!(again.status, 200, "{again:#?}");
        assert!(
            again.has("Trạng thái này đã được ghi nhận trước đó."),
            "{}",
            again.text
        );
        assert_eq!(d.state(&key(u)), ("done".into(), None, done_at));
        let acks = d.acks(&key(u));
        assert_eq!(acks.len(), 2, "{acks:#?}");
        assert_eq!(
            (
                acks[1].action.as_str(),
                acks[1].changed,
                acks[1].ip.as_deref()
            ),
            ("done", false, Some("127.0.0.1"))
        );
    }
    assert_eq!(d.rows().len(), outbox, "a second done enqueues nothing");
    assert_eq!(d.state(&key("th")).0, "pending");

    // Every message the database says was sent was written, once.
    d.stop();
    let rows: Vec<Row> = d.rows();
    let mut ids: Vec<String> = rows
        .iter()
        .filter(|r| r.status == "sent")
        .map(|r| r.message_id.clone())
        .collect();
    ids.sort();
    let mut written: Vec<String> = mails(&d)
        .iter()
        .map(|m| m.get("message_id").unwrap().to_string())
        .collect();
    written.sort();
    assert_eq!(written, ids);
    assert_eq!(ids.len(), 4 + 2 + 3 + 7 + 2, "{rows:#?}");
    assert!(
        rows.iter()
            .all(|r| at_ms(r.created_at) >= vn("2025-10-15 09:58:00"))
    );

    // No token in the daemon's logs.
    let logs = d.logs();
    assert!(logs.contains("acknowledged from the web"), "{logs}");
    for (u, t) in &tokens {
        assert!(
            !logs.contains(t.as_str()),
            "{u}'s token in the log:\n{logs}"
        );
    }
}

/// The leadership's escalated notice does not carry the unit's acknowledgement link: it
/// links to a read-only view of the obligation (who is late, how to reach them), which no
/// request can turn into an ack. The view's address is the SHA-256 of the unit's token.
#[test]
fn the_escalated_notice_cannot_record_an_ack() {
    use sha2::Digest as _;
    let rule = once("dot-xuat", TITLE, "2025-10-15 10:00")
        .units(&["kt"])
        .policy(policy(&[], &["1m"]).escalate_from("1m").keep());
    let cfg = Cfg::new()
        .units(ack_units())
        .rule(rule)
        .server("ack_per_minute = 100");
    let key = "dot-xuat/2025-10-15/kt";
    // Started before the deadline (10:00), so the obligation is chased; 30 times faster.
    let mut d = Setup::new(&cfg)
        .clock(&clock("2025-10-15 09:59:58"))
        .speed(30)
        .start();
    d.wait_rows("after-1m sent to kt and its leadership", |rows| {
        rows.iter()
            .filter(|r| r.step == "after-1m" && r.status == "sent")
            .count()
            == 1 + LANH_DAO.len()
    });
    let got = mails(&d);
    let unit = to_address(&got, &address("kt"));
    let token = message_token(unit[0], &cfg.public_url);
    let leaders = to_address(&got, LANH_DAO[0]);
    assert_eq!(leaders.len(), 1);
    let view_hash: String = sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let view = format!("/v/{view_hash}");
    for part in ["text/plain", "text/html"] {
        let body = leaders[0].text(part);
        assert_contains(&body, &[format!("{}{view}", cfg.public_url)]);
        assert_lacks(&body, &format!("/a/{token}"), "the unit's ack link");
        assert_lacks(&body, "/a/", "any ack link");
        assert_lacks(&body, "/u/", "the unit's own page, where its buttons are");
    }

    let page = d.get(&view, &[]);
    assert_eq!(page.status, 200);
    assert_contains(
        &page.text,
        &[TITLE, name("kt"), "Quá hạn", &address("kt"), "chỉ để xem"],
    );
    assert_lacks(&page.raw, "<form", "the view has no form");
    for (method, body) in [("POST", "action=done"), ("PUT", ""), ("DELETE", "")] {
        let r = d.http(
            method,
            &view,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            body.as_bytes(),
        );
        assert_eq!(r.status, 405, "{method} {view}");
    }
    assert_eq!(d.acks(key), Vec::new(), "nothing recorded");
    assert_eq!(d.state(key).0, "pending");
    // A forged or truncated view is the same 404 as a forged ack link.
    assert_eq!(d.get(&format!("/v/{}", "0".repeat(64)), &[]).status, 404);
    assert_eq!(d.get(&view[..view.len() - 1], &[]).status, 404);
    // The unit's own link still records.
    let r = ack(&d, &token, "done");
    assert_eq!(r.status, 200);
    assert_eq!(d.state(key).0, "done");
}
