//! Telegram and webhooks, sent for real by the real binary to the stand-in of
//! `tests/channels/server.py` (a Bot API and a webhook receiver that record every request):
//! what each channel carries, each answer a receiver may give, a crash in a burst, and that
//! no secret ever reaches a log line, the database, `/healthz` or `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::json;

use crate::ack::{ack, mails};
use crate::support::channels::{HookServer, Req};
use crate::support::config::{
    Cfg, FIRST_START, ORG, REFERENCE, TUYEN_TRUYEN, WEBHOOK_SECRET, address, name, policy,
    tuyen_truyen, tuyen_truyen_key, unit,
};
use crate::support::daemon::{Daemon, Setup};
use crate::support::db::Row;
use crate::support::mime::{ack_token, message_token, run_python};
use crate::support::{REPO, assert_contains, assert_lacks};

/// A group's chat id.
const CHAT: &str = "-1001234567890";

/// How much faster than real time the retry tests' clocks run.
const SPEED: u32 = 120;
const SPEED_F: f64 = SPEED as f64;

/// How long a test waits for the stand-in to see requests.
const WAIT: Duration = Duration::from_secs(30);

/// Verifies a recorded webhook request with `tests/channels/receiver.py` (the receiver
/// docs/channels.md shows: Python's own HMAC and base64, not ours).
fn verified_by_the_example_receiver(req: &Req) -> bool {
    let code = "import json, os, sys\n\
                sys.path.insert(0, sys.argv[1])\n\
                os.environ['WEBHOOK_SECRET'] = sys.argv[2]\n\
                import receiver\n\
                d = json.loads(sys.argv[3])\n\
                print(receiver.verified(d['headers'], d['body'].encode()))";
    let arg = json!({"headers": req.headers, "body": req.body}).to_string();
    let dir = format!("{REPO}/tests/channels");
    match run_python(code, &[&dir, WEBHOOK_SECRET, &arg]).trim() {
        "True" => true,
        "False" => false,
        other => panic!("receiver.py said {other:?}"),
    }
}

fn rows_of<'a>(rows: &'a [Row], channel: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.channel == channel).collect()
}

/// Waits until the `n` rows of `channel` are each sent or failed; returns them by unit.
fn settled(d: &mut Daemon, channel: &str, n: usize) -> BTreeMap<String, Row> {
    let rows = d.wait_rows(&format!("{n} {channel} messages sent or failed"), |rows| {
        let of = rows_of(rows, channel);
        of.len() == n
            && of
                .iter()
                .all(|r| r.status == "sent" || r.status == "failed")
    });
    rows_of(&rows, channel)
        .into_iter()
        .map(|r| (r.unit().to_string(), r.clone()))
        .collect()
}

/// The webhook-id of a row: its Message-ID without the angle brackets.
fn webhook_id(row: &Row) -> String {
    row.message_id
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Everything the daemon wrote: its log, every row of its database (the main file and the
/// WAL, as bytes), `/healthz` and `/metrics`. A secret must be in none of them.
fn everything_written(d: &Daemon) -> String {
    let mut all = d.logs();
    for f in ["var/nhacviec.db", "var/nhacviec.db-wal"] {
        if let Ok(bytes) = std::fs::read(d.path(f)) {
            all.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    for r in d.rows() {
        all.push_str(&format!("{r:?}"));
    }
    all.push_str(&d.get("/healthz", &[]).raw);
    all.push_str(&d.get("/metrics", &[]).raw);
    all
}

/// Neither the bot token nor the webhook secret, nor a piece of either, is in anything the
/// daemon wrote.
fn assert_no_secret(d: &Daemon, hooks: &HookServer) {
    let written = everything_written(d);
    let token = hooks.token();
    let (_, token_secret) = token.split_once(':').unwrap();
    let key = WEBHOOK_SECRET.trim_start_matches("whsec_");
    for (secret, what) in [
        (token, "the bot token"),
        (token_secret, "the bot token's secret half"),
        (key, "the webhook secret"),
        (&key[..12], "a piece of the webhook secret"),
    ] {
        assert_lacks(&written, secret, &format!("{what} leaked"));
    }
}

/// A unit with email, a Telegram group and a webhook gets the step on all three, each as
/// its channel carries it: the webhook's exact event and headers, its signature checked by
/// the docs' receiver; the Telegram message in its HTML subset with the link in the text
/// (a loopback `public_url` is not one Telegram takes in a button). Its ack then stops the
/// later steps on all three channels, while a unit that did not answer gets them.
#[test]
fn three_channels_get_the_step_and_one_ack_stops_them_all() {
    let hooks = HookServer::start();
    let hook = hooks.hook_url("vp");
    let cfg = Cfg::new()
        .units([unit("vp").telegram(CHAT).webhooks(&[&hook]), unit("kt")])
        .rule(tuyen_truyen(&["vp", "kt"]).policy(policy(&["5d"], &["1wd"])))
        .channels(&hooks);
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_sent(4);
    let vp: Vec<&Row> = rows.iter().filter(|r| r.unit() == "vp").collect();
    let mut channels: Vec<(&str, &str)> = vp
        .iter()
        .map(|r| (r.channel.as_str(), r.recipient.as_str()))
        .collect();
    channels.sort();
    let vp_addr = address("vp");
    assert_eq!(
        channels,
        [
            ("email", vp_addr.as_str()),
            ("telegram", CHAT),
            ("webhook", hook.as_str())
        ]
    );

    // The email's link is the one the chat message and the event carry.
    let mail = mails(&d)
        .into_iter()
        .find(|m| m.json["to"].as_str().unwrap_or("").contains(&vp_addr))
        .expect("vp's email");
    let token = message_token(&mail, &cfg.public_url);
    let ack_url = format!("{}/a/{token}", cfg.public_url);
    // And the unit's page, as `nhacviec links` hands it out.
    let links = d.cli(&["links", "--unit", "vp"]);
    let unit_url = links
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("page: "))
        .unwrap_or_else(|| panic!("{links:?}"))
        .to_string();

    // The webhook: one POST, exactly this event, signed.
    let posts = hooks.hooks();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    let post = &posts[0];
    let row = rows_of(&rows, "webhook")[0];
    assert_eq!(post.header("content-type"), Some("application/json"));
    assert_eq!(post.header("webhook-id"), Some(webhook_id(row).as_str()));
    let ts: i64 = post.header("webhook-timestamp").unwrap().parse().unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(FIRST_START)
        .unwrap()
        .timestamp();
    assert!(
        (started..started + 120).contains(&ts),
        "the timestamp is the daemon's clock at the send: {ts}"
    );
    let sig = post.header("webhook-signature").unwrap();
    assert!(
        sig.starts_with("v1,") && !sig.contains(' '),
        "one secret, one signature: {sig}"
    );
    assert!(
        verified_by_the_example_receiver(post),
        "the signature verifies"
    );
    let mut forged = post.clone();
    forged.body = forged.body.replacen("vp", "kt", 1);
    assert!(
        !verified_by_the_example_receiver(&forged),
        "a changed body does not"
    );

    let event = &post.json;
    let text = event["data"]["text"].as_str().unwrap().to_string();
    let html = event["data"]["html"].as_str().unwrap().to_string();
    assert_eq!(
        text,
        mail.text("text/plain"),
        "the event's text is the email's"
    );
    assert_eq!(
        html,
        mail.text("text/html"),
        "the event's HTML is the email's"
    );
    let subject = event["data"]["subject"].as_str().unwrap().to_string();
    assert_eq!(Some(subject.as_str()), mail.json["subject"].as_str());
    let timestamp = event["timestamp"].clone();
    let want = json!({
        "type": "reminder.before",
        "id": webhook_id(row),
        "timestamp": timestamp,
        "organization": ORG,
        "data": {
            "obligation": tuyen_truyen_key("vp"),
            "unit": {"id": "vp", "name": name("vp")},
            "recipient": {"name": name("vp"), "escalation": false},
            "rule": {
                "id": "tuyen-truyen",
                "kind": "task",
                "title": TUYEN_TRUYEN,
                "description": null,
                "reference": REFERENCE,
            },
            "period": {"id": "2025-10-15", "label": "hạn ngày 15/10/2025"},
            "step": {"name": "before-5d", "kind": "before"},
            "deadline": "2025-10-16T00:00:00+07:00",
            "last_day": "2025-10-15",
            "deadline_words": "hết ngày 15/10/2025 (thứ Tư); hạn làm việc cuối: thứ Tư 15/10/2025",
            // Sent Mon 13/10: Tue 14 and Wed 15 are left.
            "working_days_left": 2,
            "working_days_late": null,
            "submit_to": name("vhxh"),
            "ack_url": ack_url,
            "view_url": null,
            "unit_url": unit_url,
            "subject": subject,
            "text": text,
            "html": html,
        }
    });
    assert_eq!(event, &want, "{event:#}");
    let t = chrono::DateTime::parse_from_rfc3339(timestamp.as_str().unwrap()).unwrap();
    assert_eq!(t.timestamp(), ts, "the event's timestamp is the header's");

    // Telegram: HTML, the link in the text, no button.
    let sends = hooks.telegram_sends();
    assert_eq!(sends.len(), 1, "{sends:#?}");
    let body = &sends[0].json;
    assert_eq!(body["chat_id"], json!(-1_001_234_567_890_i64));
    assert_eq!(body["parse_mode"], "HTML");
    assert_eq!(body["link_preview_options"], json!({"is_disabled": true}));
    assert!(body.get("reply_markup").is_none(), "{body:#}");
    let chat = body["text"].as_str().unwrap();
    assert_contains(
        chat,
        &[
            format!("🔔 <b>Nhắc việc:</b> {TUYEN_TRUYEN}"),
            format!("Kính gửi: {}", name("vp")),
            "còn 2 ngày làm việc".to_string(),
            format!("<b>Căn cứ:</b> {REFERENCE}"),
        ],
    );
    assert_eq!(ack_token(chat, &cfg.public_url), token);
    assert_eq!(sends[0].status(), Some(200), "the stand-in parsed the HTML");

    // vp is done; on Thu 16/10 kt gets its overdue notice and vp nothing, on any channel.
    assert_eq!(ack(&d, &token, "done").status, 200);
    d.stop();
    d.restart_at("2025-10-16T07:59:58+07:00", 1);
    let rows = d.wait_rows("kt's overdue notice sent", |rows| {
        rows.iter()
            .any(|r| r.unit() == "kt" && r.step == "after-1wd" && r.status == "sent")
    });
    let vp_after: Vec<&Row> = rows
        .iter()
        .filter(|r| r.unit() == "vp" && r.step != "before-5d")
        .collect();
    assert!(vp_after.is_empty(), "{vp_after:#?}");
    assert_eq!(
        hooks.requests().len(),
        2,
        "nothing more reached the stand-in"
    );
    assert_no_secret(&d, &hooks);
}

/// Each answer a webhook receiver may give, one unit each, on a clock [`SPEED`] times faster
/// (a minute's backoff takes half a second): 429 with `Retry-After` is retried no sooner than it
/// says; 500 and a hang-up are retried and then delivered, with the same `webhook-id`; 410
/// fails at once and says the endpoint is gone; 400 fails for good; a redirect is not
/// followed. The errors name no URL.
#[test]
fn webhook_answers_are_retried_or_failed_as_they_deserve() {
    let hooks = HookServer::start();
    let cases = [
        (
            "yt",
            json!([{"status": 429, "headers": {"Retry-After": "300"}, "body": "slow down"}]),
        ),
        ("th", json!([{"status": 500, "body": "oops"}])),
        ("hcc", json!([{"action": "hangup"}])),
        ("kt", json!([{"status": 410, "body": "gone"}])),
        (
            "vp",
            json!([{"status": 400, "body": {"error": "bad signature"}}]),
        ),
        (
            "lanh-dao",
            json!([{"status": 302, "headers": {"Location": "https://elsewhere.example.vn/x"}}]),
        ),
    ];
    for (u, script) in &cases {
        hooks.script(&format!("/hook/{u}"), script.clone(), None);
    }
    let ids: Vec<&str> = cases.iter().map(|(u, _)| *u).collect();
    let cfg = Cfg::new()
        .units(ids.iter().map(|u| unit(u).webhooks(&[&hooks.hook_url(u)])))
        .rule(tuyen_truyen(&ids))
        .channels(&hooks);
    let mut d = Setup::new(&cfg).speed(SPEED).start();
    let by_unit = settled(&mut d, "webhook", 6);
    let requests = hooks.hooks();
    let to = |u: &str| -> Vec<&Req> {
        requests
            .iter()
            .filter(|r| r.path == format!("/hook/{u}"))
            .collect()
    };
    for u in ["yt", "th", "hcc"] {
        let r = &by_unit[u];
        assert_eq!((r.status.as_str(), r.attempts), ("sent", 2), "{u}: {r:#?}");
        let got = to(u);
        assert_eq!(got.len(), 2, "{u}");
        assert_eq!(
            got[0].header("webhook-id"),
            got[1].header("webhook-id"),
            "{u}: the retry carries the same webhook-id"
        );
        assert_eq!(got[0].json["id"], got[1].json["id"], "{u}");
        assert_eq!(
            got[0].json["data"], got[1].json["data"],
            "{u}: the same event (only its timestamp is the attempt's)"
        );
    }
    // 429 said 300 s: 2.5 real seconds at least (the backoff alone would be half a second).
    let waited = to("yt")[1].at - to("yt")[0].at;
    assert!(
        waited >= 0.9 * 300.0 / SPEED_F,
        "the retry waited {waited} s"
    );
    assert_contains(
        by_unit["yt"].last_error.as_deref().unwrap_or(""),
        &["429", "slow down"],
    );
    let failed = |u: &str| {
        let r = &by_unit[u];
        assert_eq!(
            (r.status.as_str(), r.attempts),
            ("failed", 1),
            "{u}: {r:#?}"
        );
        assert_eq!(to(u).len(), 1, "{u}: tried once");
        r.last_error.clone().unwrap_or_default()
    };
    assert_contains(&failed("kt"), &["410 Gone", "no longer exists"]);
    assert_contains(&failed("vp"), &["400", "bad signature"]);
    assert_contains(
        &failed("lanh-dao"),
        &["302", "https://elsewhere.example.vn/…", "not followed"],
    );
    for r in by_unit.values() {
        assert_lacks(
            r.last_error.as_deref().unwrap_or(""),
            "127.0.0.1",
            "errors name no URL (a webhook URL may hold a secret)",
        );
    }
    let health = d.health();
    assert_eq!(health["status"], "degraded");
    assert_eq!(health["channels"]["webhook"]["failed"], 3, "{health:#}");
    assert_eq!(health["channels"]["webhook"]["sent"], 3, "{health:#}");
    assert_eq!(health["channels"]["email"]["sent"], 6, "{health:#}");
    let metrics = d.get("/metrics", &[]).raw;
    assert_contains(
        &metrics,
        &[
            "nhacviec_messages_sent_total{channel=\"webhook\"} 3",
            "nhacviec_messages_failed_total{channel=\"webhook\"} 3",
            "nhacviec_messages_failed_total{channel=\"telegram\"} 0",
            "nhacviec_channel_outbox_depth{channel=\"webhook\"} 0",
            "nhacviec_outbox_depth 0",
        ],
    );
    assert_no_secret(&d, &hooks);
    let problems = health["problems"].to_string();
    assert_contains(
        &problems,
        &[format!("to webhook http://127.0.0.1:{}/…", hooks.port())],
    );
    assert_lacks(
        &problems,
        "/hook/",
        "/healthz shows a webhook by its host only",
    );
}

/// A receiver that takes longer than its timeout (15 s by default; 3 s here, set by
/// `timeout_seconds`) is given up on (the send is retried), and the mail of the same step
/// is not held up by it.
#[test]
fn a_stalled_receiver_times_out_without_holding_up_mail() {
    let hooks = HookServer::start();
    hooks.script("/hook/vp", json!([{"action": "stall", "seconds": 8}]), None);
    let mut cfg = Cfg::new()
        .units([unit("vp").webhooks(&[&hooks.hook_url("vp")]), unit("kt")])
        .rule(tuyen_truyen(&["vp", "kt"]))
        .channels(&hooks);
    cfg.extra = cfg.extra.replace(
        "[channels.webhook]\n",
        "[channels.webhook]\ntimeout_seconds = 3\n",
    );
    assert!(cfg.extra.contains("timeout_seconds = 3"));
    let mut d = Setup::new(&cfg).start();
    let rows = d.wait_rows("both emails sent while the webhook stalls", |rows| {
        rows_of(rows, "email")
            .iter()
            .filter(|r| r.status == "sent")
            .count()
            == 2
    });
    let hook = rows_of(&rows, "webhook")[0].clone();
    assert_eq!(
        hook.status, "sending",
        "the webhook is still in flight: {hook:#?}"
    );
    let rows = d.wait_rows("the webhook given up on after 3 s", |rows| {
        rows_of(rows, "webhook")[0].status == "pending"
    });
    let hook = rows_of(&rows, "webhook")[0];
    assert_eq!(hook.attempts, 1);
    assert_contains(
        hook.last_error.as_deref().unwrap_or(""),
        &["no answer within 3 s"],
    );
}

/// Each answer the Bot API may give: 429 with `retry_after` (retried no sooner), a group
/// migrated to a supergroup (failed, naming the new id to put in the config), a blocked bot
/// and an unknown chat (failed for good, saying what to do), a 500 (retried, delivered). A
/// `public_url` Telegram takes gets the link as a button, not in the text. The rule's legal
/// basis is 6 000 characters long: every message is shortened to what Telegram takes (the
/// stand-in refuses more than 4 096 characters after parsing), its button kept.
#[test]
fn telegram_answers_are_retried_or_failed_with_what_to_do() {
    let hooks = HookServer::start();
    let chats = [
        (
            "yt",
            "-1001",
            json!([{"telegram": {"error_code": 429, "description": "Too Many Requests: retry after 240", "parameters": {"retry_after": 240}}}]),
        ),
        (
            "th",
            "-1002",
            json!([{"telegram": {"error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat", "parameters": {"migrate_to_chat_id": -1_009_876_543_210_i64}}}]),
        ),
        (
            "hcc",
            "1003",
            json!([{"telegram": {"error_code": 403, "description": "Forbidden: bot was blocked by the user"}}]),
        ),
        (
            "kt",
            "-1004",
            json!([{"telegram": {"error_code": 400, "description": "Bad Request: chat not found"}}]),
        ),
        (
            "vp",
            "@thu_nghiem_vp",
            json!([{"telegram": {"error_code": 500, "description": "Internal Server Error"}}]),
        ),
    ];
    for (_, chat, script) in &chats {
        hooks.script(&format!("chat:{chat}"), script.clone(), None);
    }
    let ids: Vec<&str> = chats.iter().map(|(u, _, _)| *u).collect();
    let long = "Căn cứ <pháp lý> & ".repeat(300);
    let cfg = Cfg::new()
        .public_url("https://nhacviec.thu.example.vn")
        .units(chats.iter().map(|(u, chat, _)| unit(u).telegram(chat)))
        .rule(tuyen_truyen(&ids).reference(&long))
        .channels(&hooks);
    let mut d = Setup::new(&cfg).speed(SPEED).start();
    let by_unit = settled(&mut d, "telegram", 5);
    let sends = hooks.telegram_sends();
    let to = |chat: &str| -> Vec<&Req> {
        sends
            .iter()
            .filter(|r| r.json["chat_id"].to_string().trim_matches('"') == chat)
            .collect()
    };
    for (u, chat) in [("yt", "-1001"), ("vp", "@thu_nghiem_vp")] {
        assert_eq!(
            (by_unit[u].status.as_str(), by_unit[u].attempts),
            ("sent", 2),
            "{u}"
        );
        assert_eq!(to(chat).len(), 2, "{u}");
    }
    let waited = to("-1001")[1].at - to("-1001")[0].at;
    assert!(
        waited >= 0.9 * 240.0 / SPEED_F,
        "retry_after 240 s: waited {waited} s"
    );
    let failed = |u: &str| {
        let r = &by_unit[u];
        assert_eq!(
            (r.status.as_str(), r.attempts),
            ("failed", 1),
            "{u}: {r:#?}"
        );
        r.last_error.clone().unwrap_or_default()
    };
    assert_contains(
        &failed("th"),
        &["became a supergroup", "telegram = \"-1009876543210\""],
    );
    assert_contains(&failed("hcc"), &["blocked", "unblock"]);
    assert_contains(
        &failed("kt"),
        &["chat -1004 not found", "added to the group"],
    );

    // The button: the ack link, not in the text.
    let ok = to("-1001")[1];
    let button = &ok.json["reply_markup"]["inline_keyboard"][0][0];
    let url = button["url"].as_str().unwrap();
    let token = ack_token(url, "https://nhacviec.thu.example.vn");
    assert_eq!(button["text"], "Xác nhận: Đã nhận / Đã hoàn thành");
    assert_lacks(
        ok.json["text"].as_str().unwrap(),
        &token,
        "the link is in the button",
    );
    assert_eq!(
        ok.status(),
        Some(200),
        "the stand-in took the button and the length"
    );
    let shown = ok.json["text"].as_str().unwrap();
    assert_contains(shown, &["Căn cứ &lt;pháp lý&gt; &amp;", "…"]);
    assert!(shown.len() < long.len(), "the legal basis was shortened");
    assert_no_secret(&d, &hooks);
}

/// A wrong bot token fails for good saying what to do; a Bot API that cannot be reached is
/// retried. Neither error, nor any log line, row, `/healthz` or `/metrics`, holds the token
/// (the HTTP client's errors print the URL, which holds it), not even when a proxy on the
/// way echoes the address back, plainly and percent-encoded, at the edge of the excerpt an
/// error keeps; a 200 that is not the Bot API's answer is retried (it may have arrived).
#[test]
fn the_bot_token_never_leaks() {
    let hooks = HookServer::start();
    let closed = crate::support::config::free_port();
    let wrong = "987654:WRONG-token-aaaaaaaaaaaaaaaa";
    let mut cfg = Cfg::new()
        .units([unit("vp").telegram(CHAT)])
        .rule(tuyen_truyen(&["vp"]))
        .channels(&hooks);
    for f in &mut cfg.files {
        if f.0 == "secrets/telegram-token" {
            f.1 = format!("{wrong}\n");
        }
    }
    // Redacted, the plain token is within the 300 characters an error keeps, the raw one
    // across the cut; the percent-encoded one well inside it.
    let echo = format!(
        "/bot{}/sendMessage {}Cannot POST /bot{wrong}/sendMessage",
        wrong.replace(':', "%3A"),
        "x".repeat(220),
    );
    hooks.script(
        &format!("/bot{wrong}/sendMessage"),
        json!([
            {"status": 502, "body": echo},
            {"status": 200, "body": "<html>Đăng nhập Wi-Fi</html>"},
        ]),
        None,
    );
    let mut d = Setup::new(&cfg).speed(SPEED).start();
    let rows = d.wait_rows("the message failed", |rows| {
        rows_of(rows, "telegram")
            .iter()
            .any(|r| r.status == "failed")
    });
    let tg = rows_of(&rows, "telegram")[0];
    assert_contains(
        tg.last_error.as_deref().unwrap_or(""),
        &["refused the bot token", "bot_token_file"],
    );
    let answers: Vec<Option<u16>> = hooks.telegram_sends().iter().map(|r| r.status()).collect();
    assert_eq!(
        answers,
        [Some(502), Some(200), Some(401)],
        "a 502 and a 200 that is not the API's are retried"
    );
    assert_contains(
        &d.logs(),
        &[
            "Cannot POST /bot<bot token>/sendMessage",
            "a proxy in the way?",
        ],
    );
    let written = everything_written(&d);
    assert_lacks(&written, wrong, "the wrong token leaked");
    assert_lacks(&written, "WRONG-token", "part of the token leaked");
    d.stop();

    // `send-test` to a Bot API nobody listens on: a network error, without the token.
    let text = cfg
        .toml()
        .replace(&hooks.base(), &format!("http://127.0.0.1:{closed}"));
    d.write_config(&text);
    let out = d.cli(&["send-test", "--channel", "telegram", "--to", CHAT]);
    assert_eq!(out.status, 1, "{out:?}");
    let said = out.stderr.clone();
    assert_contains(&said, &["the test telegram message to", "cannot connect"]);
    assert_lacks(&said, wrong, "the token leaked in a network error");
    assert_lacks(
        &said,
        "WRONG-token",
        "part of the token leaked in a network error",
    );
}

/// SIGKILL in a burst of 300 webhook events loses none, and sends again only those in
/// flight at the kill, with the same `webhook-id`.
#[test]
fn sigkill_during_a_burst_of_webhooks_loses_none() {
    const N: usize = 300;
    let _alone = crate::support::heavy();
    let hooks = HookServer::start();
    // 6000 a minute: the burst takes three seconds, so the kill lands in it.
    let cfg = Cfg::webhook_burst(&hooks, N, 6000);
    let mut d = Setup::new(&cfg).start();
    hooks.wait_requests(40, WAIT);
    d.kill();
    let in_flight: BTreeSet<String> = d
        .rows()
        .iter()
        .filter(|r| r.channel == "webhook" && r.status == "sending")
        .map(webhook_id)
        .collect();
    assert!(in_flight.len() <= 4, "at most 4 in flight: {in_flight:?}");
    let before_restart = hooks.hooks().len();
    assert!(
        before_restart < N,
        "killed in the burst ({before_restart} arrived)"
    );

    d.restart_at(FIRST_START, 1);
    let rows = d.wait_rows("all 300 sent", |rows| {
        let hooks = rows_of(rows, "webhook");
        hooks.len() == N && hooks.iter().all(|r| r.status == "sent")
    });
    let rows: Vec<Row> = rows_of(&rows, "webhook").into_iter().cloned().collect();
    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for r in hooks.hooks() {
        *arrivals
            .entry(r.header("webhook-id").unwrap_or_default().to_string())
            .or_default() += 1;
    }
    let missing: Vec<String> = rows
        .iter()
        .map(webhook_id)
        .filter(|id| !arrivals.contains_key(id))
        .collect();
    assert!(missing.is_empty(), "never arrived: {missing:?}");
    let twice: Vec<&String> = arrivals
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| id)
        .collect();
    assert!(
        twice.iter().all(|id| in_flight.contains(*id)),
        "arrived twice without being in flight: {twice:?} (in flight {in_flight:?})"
    );
    assert!(arrivals.values().all(|n| *n <= 2), "{arrivals:?}");
    assert_eq!(arrivals.len(), N);
    assert_no_secret(&d, &hooks);
}

/// `send-test` and `preview` on each channel: a signed `test` event and a Telegram message
/// through the stand-in; the webhook event and the `sendMessage` request a step would be;
/// an address the channel cannot take is refused before anything is sent.
#[test]
fn send_test_and_preview_on_each_channel() {
    let hooks = HookServer::start();
    let hook = hooks.hook_url("vp");
    let cfg = Cfg::new()
        .units([unit("vp").telegram(CHAT).webhooks(&[&hook])])
        .rule(tuyen_truyen(&["vp"]))
        .channels(&hooks);
    let d = Setup::new(&cfg).prepare();

    let out = d.cli(&["send-test", "--channel", "webhook", "--to", &hook]);
    assert_eq!(out.status, 0, "{out:?}");
    let posts = hooks.hooks();
    assert_eq!(posts.len(), 1);
    let id = posts[0].header("webhook-id").unwrap().to_string();
    assert_eq!(
        out.stdout,
        format!(
            "sent a test webhook event to {hook} via webhooks (Standard Webhooks signatures); webhook-id <{id}>\n"
        )
    );
    assert_eq!(posts[0].json["type"], "test");
    assert!(verified_by_the_example_receiver(&posts[0]));

    let out = d.cli(&["send-test", "--channel", "telegram", "--to", CHAT]);
    assert_eq!(out.status, 0, "{out:?}");
    let sends = hooks.telegram_sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].status(), Some(200));
    assert_contains(
        sends[0].json["text"].as_str().unwrap(),
        &["Đây là tin thử nghiệm", ORG],
    );
    assert_contains(
        &out.stdout,
        &[format!("sent a test telegram message to {CHAT}")],
    );

    let out = d.cli(&[
        "send-test",
        "--channel",
        "webhook",
        "--to",
        "http://hooks.example.vn/x",
    ]);
    assert_eq!(out.status, 1);
    assert_contains(&out.stderr, &["is not https"]);
    let out = d.cli(&[
        "send-test",
        "--channel",
        "telegram",
        "--to",
        "nhóm văn phòng",
    ]);
    assert_eq!(out.status, 1);
    assert_contains(&out.stderr, &["is not a Telegram chat id"]);
    assert_eq!(
        hooks.requests().len(),
        2,
        "nothing sent for the refused ones"
    );

    let key = tuyen_truyen_key("vp");
    let preview = |channel: &str| {
        let out = d.cli(&[
            "preview",
            "--obligation",
            &key,
            "--step",
            "before-5d",
            "--channel",
            channel,
        ]);
        assert_eq!(out.status, 0, "{out:?}");
        serde_json::from_str::<serde_json::Value>(&out.stdout).unwrap()
    };
    let event = preview("webhook");
    assert_eq!(event["type"], "reminder.before");
    assert_eq!(event["data"]["obligation"], key);
    assert_eq!(event["data"]["unit"]["id"], "vp");
    let request = preview("telegram");
    assert_eq!(request["chat_id"], json!(-1_001_234_567_890_i64));
    assert_eq!(request["parse_mode"], "HTML");
    assert_contains(request["text"].as_str().unwrap(), &["🔔 <b>Nhắc việc:</b>"]);
}

/// An admin may be a unit: the digest and the notice of a config that fails to load then go
/// to every channel it has (the notice once per broken version), as `digest` and
/// `config.rejected` events to its webhook.
#[test]
fn an_admin_unit_hears_of_a_broken_config_on_each_channel() {
    let hooks = HookServer::start();
    let hook = hooks.hook_url("quan-tri");
    let mut cfg = Cfg::new()
        .units([unit("vp")])
        .rule(tuyen_truyen(&["vp"]))
        .admins(&[crate::support::config::ADMIN, "vhxh"])
        .channels(&hooks);
    cfg.units[0] = unit("vhxh").telegram(CHAT).webhooks(&[&hook]);
    let mut d = Setup::new(&cfg).start();
    // Started Mon 13/10 09:00, after the digest's 07:30: the reminder and today's digest.
    let rows = d.wait_sent(5);
    let mut digests: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.template == "digest")
        .map(|r| (r.channel.as_str(), r.recipient.as_str()))
        .collect();
    digests.sort();
    let vhxh = address("vhxh");
    assert_eq!(
        digests,
        [
            ("email", crate::support::config::ADMIN),
            ("email", vhxh.as_str()),
            ("telegram", CHAT),
            ("webhook", hook.as_str()),
        ]
    );
    let digest = &hooks.hooks()[0].json;
    assert_eq!(digest["type"], "digest");
    assert_eq!(digest["data"]["totals"]["pending"], 1, "{digest:#}");
    let broken = cfg
        .toml()
        .replacen("units = [\"vp\"]", "units = [\"vpp\"]", 1);
    d.write_config(&broken);
    d.signal("HUP");
    let rows = d.wait_rows("the four notices sent", |rows| {
        rows.iter()
            .filter(|r| r.template == "config_error" && r.status == "sent")
            .count()
            == 4
    });
    let mut told: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r.template == "config_error")
        .map(|r| (r.channel.clone(), r.recipient.clone()))
        .collect();
    told.sort();
    assert_eq!(
        told,
        [
            (
                "email".to_string(),
                crate::support::config::ADMIN.to_string()
            ),
            ("email".to_string(), address("vhxh")),
            ("telegram".to_string(), CHAT.to_string()),
            ("webhook".to_string(), hook.clone()),
        ]
    );
    let event = &hooks.hooks()[1].json;
    assert_eq!(event["type"], "config.rejected");
    assert_contains(
        &event["data"]["errors"].to_string(),
        &["unknown unit or group `vpp`; did you mean `vp`?"],
    );
    assert_contains(
        hooks.telegram_sends()[1].json["text"].as_str().unwrap(),
        &["Cấu hình nhắc việc có lỗi", "`vpp`"],
    );
    d.signal("HUP");
    d.wait_log("not applied", 2);
    let notices = d
        .rows()
        .iter()
        .filter(|r| r.template == "config_error")
        .count();
    assert_eq!(notices, 4, "once per broken version");
}

/// Shutdown and recovery for a webhook as for email: SIGTERM while a receiver stalls exits
/// 0 within 10 s and leaves nothing `sending`; the next start sends the event again, with
/// the same `webhook-id`, and it is delivered.
#[test]
fn sigterm_while_a_webhook_stalls_releases_it_and_the_next_start_delivers_it() {
    let hooks = HookServer::start();
    hooks.script(
        "/hook/vp",
        json!([{"action": "stall", "seconds": 40}]),
        None,
    );
    let mut cfg = Cfg::new()
        .units([unit("vp").webhooks(&[&hooks.hook_url("vp")])])
        .rule(tuyen_truyen(&["vp"]))
        .channels(&hooks);
    cfg.extra = cfg.extra.replace(
        "[channels.webhook]\n",
        "[channels.webhook]\ntimeout_seconds = 30\n",
    );
    let mut d = Setup::new(&cfg).start();
    hooks.wait_requests(1, WAIT);
    // `terminate` fails the test unless it exits within 10 s.
    let (status, _) = d.terminate();
    assert_eq!(status.code(), Some(0), "{}", d.log());
    let hook = rows_of(&d.rows(), "webhook")[0].clone();
    assert_ne!(hook.status, "sending", "released: {hook:#?}");
    assert_eq!(hook.status, "pending", "{hook:#?}");

    d.restart_at("2025-10-13T09:05:00+07:00", 1);
    let rows = d.wait_rows("the webhook sent at the next start", |rows| {
        rows_of(rows, "webhook")[0].status == "sent"
    });
    let posts = hooks.hooks();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert_eq!(posts[0].header("webhook-id"), posts[1].header("webhook-id"));
    assert_eq!(
        posts[1].header("webhook-id"),
        Some(webhook_id(rows_of(&rows, "webhook")[0]).as_str())
    );
}

/// SIGHUP with a new `max_per_minute` for webhooks applies it to the messages already
/// waiting: a burst paced at one a minute (the first event at once, the others a minute
/// apart) goes out at once after the reload raises the limit.
#[test]
fn a_reload_applies_a_channels_new_max_per_minute_at_once() {
    const N: usize = 4;
    let hooks = HookServer::start();
    let cfg = Cfg::webhook_burst(&hooks, N, 1);
    let mut d = Setup::new(&cfg).start();
    hooks.wait_requests(1, WAIT);
    let text = cfg.toml();
    let paced = "secret_file = \"secrets/webhook-secret\"\nmax_per_minute = 1\n";
    assert!(text.contains(paced), "{text}");
    d.write_config(&text.replace(
        paced,
        "secret_file = \"secrets/webhook-secret\"\nmax_per_minute = 100000\n",
    ));
    d.signal("HUP");
    d.wait_log("config reloaded", 1);
    // Paced at one a minute, the other three would take three minutes: far beyond WAIT.
    let got = hooks.wait_requests(N, WAIT);
    assert_eq!(got.len(), N);
    d.wait_rows("every event sent", |rows| {
        rows.iter()
            .filter(|r| r.channel == "webhook" && r.status == "sent")
            .count()
            == N
    });
}
