//! Zalo, sent for real by the real binary to the stand-in of `tests/zalo/server.py`: Zalo's
//! token service (single-use refresh tokens, access tokens that expire) and ZNS (a daily
//! quota, numbers with no Zalo account), recording every request.

use serde_json::json;

use crate::support::config::{
    Cfg, TUYEN_TRUYEN, name, policy, tuyen_truyen, tuyen_truyen_key, unit,
};
use crate::support::daemon::{Daemon, Setup};
use crate::support::db::Row;
use crate::support::zalo::{ZaloOpts, ZaloServer};
use crate::support::{assert_contains, assert_lacks};

/// Just before the second reminder of [`two_reminders`], Tue 14/10 08:00.
const BEFORE_1D: &str = "2025-10-14T07:59:58+07:00";

/// The usual task with two reminders: five days before the last day (past at the first
/// start, so sent at once) and the day before ([`BEFORE_1D`]).
fn two_reminders(units: &[&str]) -> crate::support::config::Rule {
    tuyen_truyen(units).policy(policy(&["5d", "1d"], &[]))
}

/// `vp` reached by email and on Zalo at 0912 345 678, owing `rule`, through `z`.
fn vp_on_zalo(z: &ZaloServer, rule: crate::support::config::Rule) -> Cfg {
    Cfg::new()
        .units([unit("vp").zalo(&["0912 345 678"])])
        .rule(rule)
        .zalo(z)
}

fn zalo_rows(rows: &[Row]) -> Vec<&Row> {
    rows.iter().filter(|r| r.channel == "zalo").collect()
}

/// The stored tokens: (access, refresh, locked).
fn tokens(d: &Daemon) -> (Option<String>, String, Option<String>) {
    d.db()
        .query_row(
            "SELECT access_token, refresh_token, locked FROM zalo_tokens WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// No token nor the app's secret key in the log, any outbox column, `meta`, `/healthz` or
/// `/metrics` (the token table is the one place they are kept): every token the daemon ever
/// sent Zalo or was given by it, and the stand-in's current one.
fn assert_no_secret(d: &Daemon, z: &ZaloServer) {
    let mut written = d.logs();
    let conn = d.db();
    for sql in [
        "SELECT obligation || step || recipient || context || message_id || COALESCE(subject, '') || COALESCE(last_error, '') || COALESCE(remote_id, '') FROM messages",
        "SELECT key || value FROM meta",
    ] {
        let mut st = conn.prepare(sql).unwrap();
        let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
        for r in rows {
            written.push_str(&r.unwrap());
        }
    }
    written.push_str(&d.get("/healthz", &[]).raw);
    written.push_str(&d.get("/metrics", &[]).raw);
    let state = z.state();
    let mut secrets = vec![
        z.secret_key().to_string(),
        z.initial_refresh_token().to_string(),
    ];
    for t in state["used_refresh_tokens"].as_array().unwrap() {
        secrets.push(t.as_str().unwrap().to_string());
    }
    if let Some(t) = state["refresh_token"].as_str() {
        secrets.push(t.to_string());
    }
    for s in z.sends() {
        if let Some(a) = s.header("access_token") {
            secrets.push(a.to_string());
        }
    }
    if let (Some(a), _, _) = tokens(d) {
        secrets.push(a);
    }
    for s in secrets {
        assert_lacks(&written, &s, "a Zalo secret leaked");
    }
}

/// A unit with email and a Zalo number gets the reminder on both: on Zalo, the `before`
/// template with its parameters filled (and cut to their `max_len`), to the number as Zalo
/// wants it, after one renewal of the first refresh token, whose successor is stored.
#[test]
fn a_reminder_arrives_on_zalo_with_its_template_and_data() {
    let z = ZaloServer::start(ZaloOpts::default());
    let cfg = vp_on_zalo(&z, tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_sent(2);
    let row = zalo_rows(&rows)[0];
    assert_eq!(row.recipient, "84912345678");
    assert_eq!(z.refreshes().len(), 1, "the first refresh token spent once");
    let sends = z.sends();
    assert_eq!(sends.len(), 1);
    let body = &sends[0].json;
    assert_eq!(body["phone"], "84912345678");
    assert_eq!(body["template_id"], "301001");
    let title: String = TUYEN_TRUYEN.chars().take(29).collect();
    assert_eq!(
        body["template_data"],
        json!({
            "ten_don_vi": name("vp"),
            "noi_dung": format!("{title}…"),
            "han": "15/10/2025",
            "ma": "2025-10-15",
        })
    );
    assert!(body.get("mode").is_none());
    let tracking = body["tracking_id"].as_str().unwrap();
    assert!(
        tracking.starts_with("nv") && tracking.len() == 26,
        "{tracking}"
    );
    assert_eq!(sends[0].error(), Some(0));
    // The new refresh token is the stored one, and the stand-in's only valid one.
    let (access, refresh, locked) = tokens(&d);
    assert!(access.is_some());
    assert_eq!(Some(refresh.as_str()), z.state()["refresh_token"].as_str());
    assert_eq!(locked, None);
    let remote: Option<String> = d
        .db()
        .query_row(
            "SELECT remote_id FROM messages WHERE channel = 'zalo'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        remote.is_some_and(|id| !id.is_empty()),
        "Zalo's msg_id is kept"
    );
    assert_eq!(row.obligation, tuyen_truyen_key("vp"));
    // The quota Zalo reported, in /metrics and `zalo status`.
    let metrics = d.get("/metrics", &[]).raw;
    assert_contains(
        &metrics,
        &[
            "nhacviec_zalo_quota_daily 1000",
            "nhacviec_zalo_quota_remaining 999",
            "nhacviec_messages_sent_total{channel=\"zalo\"} 1",
        ],
    );
    let out = d.cli(&["zalo", "status"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_contains(
        &out.stdout,
        &[
            "refresh token: issued ",
            // Issued by this run's first send: today, not "0 days ago".
            " (today)\n",
            "access token: valid until ",
            "state: sending",
            "quota: 999 of 1000 left",
            "sent on Zalo today: 1",
        ],
    );
    assert_no_secret(&d, &z);
}

/// An access token Zalo calls invalid (expired before its time) is renewed once and the
/// message sent with the new one.
#[test]
fn an_expired_access_token_is_renewed_once_and_the_message_sent() {
    let z = ZaloServer::start(ZaloOpts::default());
    let cfg = vp_on_zalo(&z, two_reminders(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    z.control(json!({"expire_access": true}));
    d.stop();
    d.restart_at(BEFORE_1D, 1);
    let rows = d.wait_rows("before-1d sent on Zalo", |rows| {
        zalo_rows(rows)
            .iter()
            .any(|r| r.step == "before-1d" && r.status == "sent")
    });
    let row = zalo_rows(&rows)
        .into_iter()
        .find(|r| r.step == "before-1d")
        .unwrap()
        .clone();
    assert_eq!(row.attempts, 1, "one attempt: renewed inside it");
    assert_eq!(z.refreshes().len(), 2, "the bootstrap and one renewal");
    let sends = z.sends();
    let errors: Vec<Option<i64>> = sends.iter().map(|s| s.error()).collect();
    assert_eq!(errors, [Some(0), Some(-124), Some(0)]);
    assert_ne!(
        sends[1].header("access_token"),
        sends[2].header("access_token"),
        "the second try with the new token"
    );
    assert_no_secret(&d, &z);
}

/// A number with no Zalo account fails for good, saying so, while the same unit's email
/// goes out.
#[test]
fn a_number_without_zalo_fails_for_good_while_the_email_goes() {
    let z = ZaloServer::start(ZaloOpts::default());
    z.control(json!({"no_account": ["84987654321"]}));
    let cfg = Cfg::new()
        .units([unit("vp").zalo(&["0987 654 321"])])
        .rule(tuyen_truyen(&["vp"]))
        .zalo(&z);
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_rows("the email sent, the Zalo message failed", |rows| {
        rows.iter()
            .any(|r| r.channel == "email" && r.status == "sent")
            && zalo_rows(rows).iter().any(|r| r.status == "failed")
    });
    let zr = zalo_rows(&rows)[0];
    assert_eq!(zr.attempts, 1);
    assert_contains(
        zr.last_error.as_deref().unwrap_or(""),
        &[
            "84987654321 has no Zalo account",
            "other channels are unaffected",
        ],
    );
}

/// The OA's daily quota used up: the message waits for the next day (on the test clock)
/// and leaves then.
#[test]
fn out_of_quota_waits_for_the_next_day() {
    let z = ZaloServer::start(ZaloOpts {
        quota: Some(1),
        ..ZaloOpts::default()
    });
    let cfg = Cfg::new()
        .units([
            unit("vp").zalo(&["0912345678"]),
            unit("kt").zalo(&["0912345679"]),
        ])
        .rule(tuyen_truyen(&["vp", "kt"]))
        .zalo(&z);
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_rows("one sent on Zalo, one waiting", |rows| {
        let zr = zalo_rows(rows);
        zr.iter().filter(|r| r.status == "sent").count() == 1
            && zr.iter().any(|r| r.status == "pending" && r.attempts == 1)
    });
    let waiting = zalo_rows(&rows)
        .into_iter()
        .find(|r| r.status == "pending")
        .unwrap()
        .clone();
    assert_contains(
        waiting.last_error.as_deref().unwrap_or(""),
        &["daily quota is used up", "after midnight"],
    );
    let next = crate::support::db::at_ms(waiting.next_attempt_at.unwrap());
    assert_eq!(
        next,
        crate::support::vn("2025-10-14 00:01:00"),
        "a minute after local midnight"
    );
    d.stop();
    z.control(json!({"reset_day": true}));
    d.restart_at("2025-10-14T00:00:58+07:00", 1);
    d.wait_rows("the held message sent the next day", |rows| {
        zalo_rows(rows).iter().all(|r| r.status == "sent")
    });
    assert_eq!(z.sends().len(), 3, "sent, refused, sent");
}

/// A refresh token Zalo no longer takes stops the channel: the messages wait (an hour at a
/// time) with what the admin must do, nothing more is spent, and the admins are told once
/// by email. `nhacviec zalo token --import` then unlocks it: the held messages and the next
/// step leave on Zalo with the new token.
#[test]
fn a_refused_refresh_token_locks_the_channel() {
    let z = ZaloServer::start(ZaloOpts::default());
    z.control(json!({"revoke_refresh": true}));
    let cfg = Cfg::new()
        .units([
            unit("vp").zalo(&["0912345678"]),
            unit("kt").zalo(&["0912345679"]),
        ])
        .rule(two_reminders(&["vp", "kt"]))
        .admins(&[crate::support::config::ADMIN])
        .zalo(&z);
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_rows("both Zalo messages held, the admin told", |rows| {
        let zr = zalo_rows(rows);
        zr.len() == 2
            && zr.iter().all(|r| r.status == "pending" && r.attempts == 1)
            && rows
                .iter()
                .any(|r| r.template == "channel_locked" && r.status == "sent")
    });
    let told: Vec<&Row> = rows
        .iter()
        .filter(|r| r.template == "channel_locked")
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_eq!(
        (told[0].channel.as_str(), told[0].recipient.as_str()),
        ("email", crate::support::config::ADMIN)
    );
    let mail = crate::ack::mails(&d)
        .into_iter()
        .find(|m| m.subject().contains("Kênh Zalo đã dừng"))
        .expect("the admin's email");
    assert_contains(
        &mail.text("text/plain"),
        &["nhacviec zalo token --import", z.app_id()],
    );
    for r in zalo_rows(&rows) {
        assert_contains(
            r.last_error.as_deref().unwrap_or(""),
            &[
                "Zalo is stopped",
                "refused the OA's refresh token",
                "nhacviec zalo token --import",
            ],
        );
        // Held an hour from the attempt (a few seconds after the 09:00 start), not failed.
        let held = crate::support::db::at_ms(r.next_attempt_at.unwrap())
            - crate::support::vn("2025-10-13 10:00:00");
        assert!(
            (0..60_000).contains(&held.num_milliseconds()),
            "held an hour: {held}"
        );
    }
    assert_eq!(
        z.refreshes().len(),
        1,
        "one refresh call, then the channel is locked"
    );
    assert!(tokens(&d).2.is_some(), "locked in the database");
    assert_no_secret(&d, &z);

    // A new refresh token, imported: the next step leaves on Zalo.
    z.control(json!({"refresh_token": "TEST-refresh-new-0001"}));
    crate::support::write(&d.path("new-token"), "TEST-refresh-new-0001\n");
    let out = d.cli(&["zalo", "token", "--import", "new-token"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_contains(&out.stdout, &["the Zalo channel is unlocked"]);
    assert_lacks(
        &out.stdout,
        "TEST-refresh-new-0001",
        "the import shows no token",
    );
    assert_eq!(tokens(&d).2, None, "unlocked");
    d.stop();
    d.restart_at(BEFORE_1D, 1);
    d.wait_rows("the held reminders and before-1d sent on Zalo", |rows| {
        let zr = zalo_rows(rows);
        zr.len() == 4 && zr.iter().all(|r| r.status == "sent")
    });
    assert_eq!(
        z.sends().len(),
        4,
        "nothing was lost while the channel was stopped"
    );
    assert_eq!(
        z.refreshes().len(),
        2,
        "the refused one, then one with the new token"
    );
}

/// Four senders needing a new access token at once make one renewal: at the first start
/// (the first refresh token), and again when Zalo calls the access token invalid for all
/// four. The token service answers slowly (a second), so they really are waiting together.
#[test]
fn four_senders_needing_a_token_at_once_make_one_renewal() {
    let z = ZaloServer::start(ZaloOpts::default());
    z.control(json!({"delay_refresh": 1}));
    let ids = ["vp", "kt", "hcc", "yt"];
    let phones = ["0912000001", "0912000002", "0912000003", "0912000004"];
    let cfg = Cfg::new()
        .units(ids.iter().zip(phones).map(|(u, p)| unit(u).zalo(&[p])))
        .rule(two_reminders(&ids))
        .zalo(&z);
    let mut d = Setup::new(&cfg).start();
    d.wait_rows("four sent on Zalo", |rows| {
        zalo_rows(rows)
            .iter()
            .filter(|r| r.status == "sent")
            .count()
            == 4
    });
    assert_eq!(z.refreshes().len(), 1, "one renewal for four senders");
    z.control(json!({"expire_access": true}));
    d.stop();
    d.restart_at(BEFORE_1D, 1);
    d.wait_rows("the next four sent on Zalo", |rows| {
        zalo_rows(rows)
            .iter()
            .filter(|r| r.step == "before-1d" && r.status == "sent")
            .count()
            == 4
    });
    assert_eq!(
        z.refreshes().len(),
        2,
        "one more renewal for the four refused"
    );
    let refused = z.sends().iter().filter(|s| s.error() == Some(-124)).count();
    assert!((1..=4).contains(&refused), "{refused}");
    assert_no_secret(&d, &z);
}

/// SIGKILL after Zalo answered a renewal (the send that follows hangs): the new refresh
/// token was stored before anything else, so after a restart the message leaves with the
/// new access token, and the stored refresh token is the one Zalo still takes.
#[test]
fn sigkill_after_a_renewal_keeps_the_new_refresh_token() {
    let z = ZaloServer::start(ZaloOpts::default());
    let cfg = vp_on_zalo(&z, two_reminders(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    d.stop();
    // The next send: "invalid token" (a renewal follows), then the retry hangs.
    z.script(
        "/message/template",
        json!([
            {"status": 200, "body": {"error": -124, "message": "Access token is invalid"}},
            {"action": "stall", "seconds": 30},
        ]),
        None,
    );
    d.restart_at(BEFORE_1D, 1);
    d.wait("the renewal answered and the retry hanging", |_| {
        (z.refreshes().len() == 2 && z.sends().len() == 3).then_some(())
    });
    d.kill();
    let (_, stored, _) = tokens(&d);
    assert_eq!(
        Some(stored.as_str()),
        z.state()["refresh_token"].as_str(),
        "the new refresh token was stored before the send"
    );
    d.restart_at("2025-10-14T08:05:00+07:00", 1);
    d.wait_rows("before-1d sent after the restart", |rows| {
        zalo_rows(rows)
            .iter()
            .any(|r| r.step == "before-1d" && r.status == "sent")
    });
    assert_eq!(
        z.refreshes().len(),
        2,
        "no renewal needed after the restart"
    );
    let last = z.sends().last().cloned().unwrap();
    assert_eq!(last.error(), Some(0));
    assert_no_secret(&d, &z);
}

/// Nothing sent on Zalo for a month: the daemon renews the tokens all the same, so the
/// refresh token (good for about three months) never lapses.
#[test]
fn the_refresh_token_is_renewed_after_a_month_without_sends() {
    let z = ZaloServer::start(ZaloOpts::default());
    let cfg = vp_on_zalo(&z, tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    let (_, first, _) = tokens(&d);
    d.stop();
    // Thirty days and an hour later, nothing due.
    d.restart_at("2025-11-12T10:00:00+07:00", 1);
    d.wait("the tokens renewed", |d| {
        (tokens(d).1 != first).then_some(())
    });
    assert_eq!(z.refreshes().len(), 2);
    assert_eq!(z.sends().len(), 1, "nothing more was sent");
    assert_eq!(
        Some(tokens(&d).1.as_str()),
        z.state()["refresh_token"].as_str()
    );
    d.wait_log(
        "renewing the Zalo tokens before the refresh token lapses",
        1,
    );
    assert_no_secret(&d, &z);
}

/// `send-test` and `preview` on Zalo. A command never renews the tokens (its renewal could
/// race the daemon's and spend the single-use refresh token twice): before the daemon's
/// first message, and once the access token is refused, it says so and sends nothing.
#[test]
fn send_test_and_preview_on_zalo_never_renew() {
    let z = ZaloServer::start(ZaloOpts::default());
    let cfg = vp_on_zalo(&z, tuyen_truyen(&["vp"]));
    let mut d = Setup::new(&cfg).prepare();
    let preview = d.cli(&[
        "preview",
        "--obligation",
        &tuyen_truyen_key("vp"),
        "--step",
        "before-5d",
        "--channel",
        "zalo",
    ]);
    assert_eq!(preview.status, 0, "{preview:?}");
    let body: serde_json::Value = serde_json::from_str(&preview.stdout).unwrap();
    assert_eq!(body["phone"], "84912345678");
    assert_eq!(body["template_id"], "301001");
    assert_eq!(body["template_data"]["ten_don_vi"], name("vp"));
    let out = d.cli(&["send-test", "--channel", "zalo", "--to", "0912 345 678"]);
    assert_eq!(out.status, 1, "{out:?}");
    assert_contains(&out.stderr, &["no database at", "start it first"]);
    assert!(z.requests().is_empty(), "nothing reached Zalo");

    d.restart_at(crate::support::config::FIRST_START, 1);
    d.wait_sent(2);
    let out = d.cli(&["send-test", "--channel", "zalo", "--to", "0912 345 678"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_contains(&out.stdout, &["sent a test zalo message to 84912345678"]);
    assert_eq!(z.sends().len(), 2);
    assert_eq!(z.sends()[1].json["template_id"], "301001");

    z.control(json!({"expire_access": true}));
    let out = d.cli(&["send-test", "--channel", "zalo", "--to", "0912 345 678"]);
    assert_eq!(out.status, 1, "{out:?}");
    assert_contains(&out.stderr, &["only `nhacviec run` renews it"]);
    assert_eq!(z.refreshes().len(), 1, "the command renewed nothing");
    assert_lacks(
        &out.stderr,
        z.secret_key(),
        "no secret in the command's words",
    );
}
