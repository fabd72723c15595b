//! Email end to end: the real `nhacviec` against the real SMTP test server
//! (`tests/smtp/server.py`, see [`crate::support::smtp`]), and the file transport.
//!
//! - `send-test` over plain SMTP, STARTTLS + AUTH with a private CA, and implicit TLS + AUTH:
//!   the message as Python's MIME parser reads it (subject, parts, headers, no defects); a
//!   wrong password and a refused connection fail with exit 1 and say why.
//! - `run`: the reminders due at the first start arrive with the right recipients,
//!   subjects, bodies and ack links, and the outbox rows say `sent`; a 451, a 550, a
//!   connection cut at the end of DATA and a wrong password leave the rows in the states and
//!   with the retry times the product promises (transient: again in a minute; 5xx: failed).
//! - `preview`: the text output pinned, the escalated copy, an unknown step, `--format eml`.
//! - The file transport: one `.eml` per message, named after its Message-ID.
//!
//! Every daemon here runs [`tuyen_truyen`]'s first start ([`FIRST_START`]): its one reminder,
//! Fri 10/10/2025 08:00, is past, so the daemon sends it at once.

use crate::support::config::{
    Cfg, DOMAIN, FIRST_START, FROM_ADDR, FROM_NAME, ORG, REFERENCE, SMTP_USER, Security,
    TUYEN_TRUYEN, TUYEN_TRUYEN_DUE, free_port, tuyen_truyen, tuyen_truyen_key, unit,
};
use crate::support::daemon::{Setup, WAIT};
use crate::support::db::Row;
use crate::support::mime::{decode_words, message_token, one_header, parse_eml};
use crate::support::smtp::{Captured, Mode, SmtpOpts, SmtpServer};
use crate::support::{Test, assert_contains, lines, same_text};

/// The base of the links in these messages.
const PUBLIC_URL: &str = "https://nhacviec.thu.example.vn";
const COORDINATOR_ADDR: &str = "vhxh@thu.example.vn";

/// `vp` (one address), `kt` (two addresses, escalates to `lanh-dao`) and the leadership.
fn mail_units() -> Vec<crate::support::config::Unit> {
    vec![
        unit("vp"),
        unit("kt")
            .emails(&["kt@thu.example.vn", "kt.pho@thu.example.vn"])
            .escalates_to(&["lanh-dao"]),
        unit("lanh-dao").emails(&["lanhdao@thu.example.vn"]),
    ]
}

/// The config of these tests: [`mail_units`], [`tuyen_truyen`] owed by `owing`.
fn mail_cfg(owing: &[&str]) -> Cfg {
    Cfg::new()
        .public_url(PUBLIC_URL)
        .units(mail_units())
        .rule(tuyen_truyen(owing))
}

/// A server of this kind; with TLS it requires AUTH with the harness's user and password.
fn server_for(security: Security, faults: SmtpOpts) -> SmtpServer {
    let mode = match security {
        Security::None => Mode::Plain,
        Security::StartTls => Mode::StartTls,
        Security::Tls => Mode::Tls,
    };
    let with_auth = SmtpOpts::auth(mode, SMTP_USER, crate::support::config::SMTP_PASSWORD);
    SmtpServer::start(SmtpOpts {
        mode,
        auth: with_auth.auth.filter(|_| mode != Mode::Plain),
        require_tls: mode == Mode::StartTls,
        ..faults
    })
}

/// A one-shot command on `cfg`, with its files.
fn test_of(cfg: &Cfg) -> Test {
    let mut t = Test::new().config(&cfg.toml()).clock(FIRST_START);
    for (path, text) in &cfg.files {
        t = t.file(path, text);
    }
    t
}

/// The headers every message carries (docs/operations.md), checked on one parsed message.
fn assert_common_headers(m: &Captured) {
    assert_eq!(one_header(m, "MIME-Version"), "1.0");
    assert_eq!(one_header(m, "Auto-Submitted"), "auto-generated");
    assert_eq!(
        one_header(m, "List-Id"),
        format!("nhacviec <nhacviec.{DOMAIN}>")
    );
    assert_eq!(m.get("reply_to"), Some(COORDINATOR_ADDR));
    let from = one_header(m, "From");
    assert!(from.is_ascii(), "the From header is encoded: {from}");
    assert_eq!(decode_words(&from), format!("{FROM_NAME} <{FROM_ADDR}>"));
    let id = m.get("message_id").unwrap();
    assert!(
        id.starts_with('<') && id.ends_with(&format!("@{DOMAIN}>")),
        "Message-ID on our own domain: {id}"
    );
    assert!(m.get("date").is_some());
    let subject = one_header(m, "Subject");
    assert!(
        subject.is_ascii(),
        "the Subject header is encoded: {subject}"
    );
    assert_eq!(m.json["content_type"], "multipart/alternative");
    let parts = m.parts();
    let types: Vec<_> = parts.iter().map(|p| p.content_type.as_str()).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert!(
        parts.iter().all(|p| p.charset.as_deref() == Some("utf-8")),
        "{parts:#?}"
    );
    assert_eq!(m.defects(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------------------
// send-test

/// `send-test` through a server of this kind: the exit, the stdout line, the message.
fn send_test_through(security: Security) -> (SmtpServer, Captured) {
    let server = server_for(security, SmtpOpts::default());
    let test = test_of(&mail_cfg(&["vp"]).smtp(&server, security));
    let to = "thu.nghiem@thu.example.vn";
    let out = test.args(&["send-test", "--to", to]).stderr("").run();
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let m = got.into_iter().next().unwrap();
    let id = m.get("message_id").unwrap().to_string();
    assert_eq!(
        out.stdout,
        format!(
            "sent a test email to {to} via {}; Message-ID {id}\n",
            security.describe(server.port)
        )
    );
    assert!(id.starts_with("<test."), "{id}");

    assert_eq!(m.subject(), format!("[Nhắc việc] Thư thử nghiệm từ {ORG}"));
    assert_common_headers(&m);
    assert_eq!(m.rcpt_tos(), [to]);
    assert_eq!(m.get("to"), Some(to));
    assert_eq!(m.get("mail_from"), Some(FROM_ADDR));
    let text = m.text("text/plain");
    assert!(
        text.starts_with(&format!(
            "Đây là thư thử nghiệm của hệ thống nhắc việc {ORG}, gửi lúc "
        )),
        "{text}"
    );
    let transport = format!(
        "cấu hình gửi thư ({}) đã hoạt động",
        security.describe(server.port)
    );
    assert!(text.contains(&transport), "{text}");
    let html = m.text("text/html");
    assert!(html.contains(&format!("<strong>{ORG}</strong>")), "{html}");
    assert!(html.contains(&transport), "{html}");
    (server, m)
}

#[test]
fn send_test_plain_smtp() {
    let (server, _) = send_test_through(Security::None);
    assert_eq!(server.log()[0]["tls"], false);
    assert!(server.events("auth").is_empty());
}

#[test]
fn send_test_starttls_with_auth_and_a_private_ca() {
    let (server, _) = send_test_through(Security::StartTls);
    let names: Vec<_> = server
        .log()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["connect", "starttls", "auth", "mail", "rcpt", "data"]
    );
    assert_eq!(server.log()[0]["tls"], false);
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], true);
    assert_eq!(auth["user"], SMTP_USER);
}

#[test]
fn send_test_implicit_tls_with_auth() {
    let (server, _) = send_test_through(Security::Tls);
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": true})
    );
    assert!(server.events("starttls").is_empty());
    assert_eq!(server.events("auth")[0]["ok"], true);
}

#[test]
fn send_test_with_a_wrong_password_names_the_failure_and_the_keys() {
    let server = server_for(Security::StartTls, SmtpOpts::default());
    let cfg = mail_cfg(&["vp"]).smtp_password(&server, Security::StartTls, "mật khẩu sai");
    let stderr = send_test_fails(&cfg, Security::StartTls.describe(server.port));
    assert_contains(
        &stderr,
        &[
            "SMTP authentication failed",
            "535",
            "Authentication credentials invalid",
            "check `email.smtp.username` and the password in `email.smtp.password_file` (or `password_env`)",
        ],
    );
    assert!(!stderr.contains("mật khẩu"), "no password in errors");
    assert_eq!(server.events("auth")[0]["ok"], false);
    assert!(server.events("mail").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn send_test_without_a_server_says_the_connection_was_refused() {
    // A port that was free a moment ago: nothing listens on it.
    let port = free_port();
    let mut cfg = mail_cfg(&["vp"]);
    cfg.email = crate::support::config::smtp_email(port, Security::None);
    let stderr = send_test_fails(&cfg, Security::None.describe(port));
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

/// `send-test` on `cfg` must fail with one line on stderr that names the transport; that
/// line.
fn send_test_fails(cfg: &Cfg, transport: String) -> String {
    let to = "thu.nghiem@thu.example.vn";
    let out = test_of(cfg)
        .args(&["send-test", "--to", to])
        .stdout("")
        .status(1)
        .run();
    let want = format!("error: the test email to {to} was not sent via {transport}");
    assert!(out.stderr.starts_with(&want), "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    out.stderr
}

// ---------------------------------------------------------------------------------------
// The daemon against a real server

#[test]
fn run_sends_the_reminders_due_at_first_start() {
    let server = server_for(Security::None, SmtpOpts::default());
    let cfg = mail_cfg(&["vp", "kt"]).smtp(&server, Security::None);
    let mut daemon = Setup::new(&cfg).start();
    let period = TUYEN_TRUYEN_DUE;

    // vp's one address and kt's two; not the leadership (a before step is not escalated),
    // not the coordinator (it owes nothing).
    let got = server.wait_for(3, WAIT);
    let rows = daemon.wait_sent(3);
    daemon.stop();
    assert_eq!(server.captured().len(), 3);
    assert_eq!(server.events("data").len(), 3);

    let ob = tuyen_truyen_key;
    let mut want = vec![
        (ob("vp"), "vp@thu.example.vn"),
        (ob("kt"), "kt@thu.example.vn"),
        (ob("kt"), "kt.pho@thu.example.vn"),
    ];
    let mut have: Vec<_> = rows
        .iter()
        .map(|r| (r.obligation.clone(), r.recipient.as_str()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
    for r in &rows {
        assert_eq!(
            (r.step.as_str(), r.channel.as_str(), r.template.as_str()),
            ("before-5d", "email", "before"),
            "{r:#?}"
        );
        assert_eq!(r.attempts, 1, "{r:#?}");
        assert_eq!(r.last_error, None, "{r:#?}");
        assert_eq!(r.next_attempt_at, None, "{r:#?}");
        let (first, last, sent) = (
            r.first_attempt_at.unwrap(),
            r.last_attempt_at.unwrap(),
            r.sent_at.unwrap(),
        );
        assert!(
            r.created_at <= first && first == last && last <= sent,
            "{r:#?}"
        );
    }

    // A one-off's period label ("hạn ngày …") is left out of the subject, which has the date.
    let subject = format!("[Nhắc việc] {TUYEN_TRUYEN} – hạn thứ Tư 15/10/2025");
    let deadline_words = "hết ngày 15/10/2025 (thứ Tư); hạn làm việc cuối: thứ Tư 15/10/2025";
    let unit_name = |id: &str| match id {
        "vp" => "Văn phòng HĐND và UBND phường",
        _ => "Phòng Kinh tế – Hạ tầng – Đô thị",
    };
    let mut links = std::collections::BTreeMap::new();
    for m in &got {
        let rcpt = m.rcpt_tos();
        let [addr] = &rcpt[..] else {
            panic!("one recipient per message: {rcpt:?}");
        };
        let row = rows.iter().find(|r| &r.recipient == addr).unwrap();
        let unit = row.unit();
        assert_common_headers(m);
        assert_eq!(m.subject(), subject);
        assert_eq!(row.subject.as_deref(), Some(subject.as_str()));
        assert_eq!(m.get("message_id"), Some(row.message_id.as_str()));
        assert!(
            row.message_id
                .starts_with(&format!("<tuyen-truyen.{period}.{unit}.before-5d.r")),
            "the Message-ID names the message: {}",
            row.message_id
        );
        assert_eq!(
            decode_words(&one_header(m, "To")),
            format!("{} <{addr}>", unit_name(unit))
        );
        let text = m.text("text/plain");
        let html = m.text("text/html");
        for body in [&text, &html] {
            assert_contains(
                body,
                &[
                    format!("Kính gửi: {}", unit_name(unit)),
                    format!("{TUYEN_TRUYEN}\" hạn ngày 15/10/2025"),
                    deadline_words.to_string(),
                    REFERENCE.to_string(),
                    "Phòng Văn hóa – Xã hội".to_string(),
                ],
            );
        }
        assert!(
            text.contains(&format!("Đơn vị thực hiện: {}\n", unit_name(unit))),
            "{text}"
        );
        assert!(
            text.contains(&format!("Thời hạn: {deadline_words}\n")),
            "{text}"
        );
        let link = message_token(m, PUBLIC_URL);
        let known = links.entry(row.obligation.clone()).or_insert(link.clone());
        assert_eq!(*known, link, "one link per obligation");
    }
    assert_eq!(links.len(), 2);
    assert_ne!(
        links[&ob("vp")],
        links[&ob("kt")],
        "each obligation has its own link"
    );

    // The token key: beside the database, private; the database holds each token's
    // SHA-256 only, never the token.
    let key = daemon.path("var/nhacviec.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    let conn = daemon.db();
    for (obligation, token) in &links {
        let token = token.as_str();
        let stored: Vec<u8> = conn
            .query_row(
                "SELECT token_hash FROM obligations WHERE key = ?1",
                [obligation],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("obligation {obligation}: {e}"));
        use sha2::Digest as _;
        assert_eq!(stored, sha2::Sha256::digest(token.as_bytes()).to_vec());
        for file in [
            "var/nhacviec.db",
            "var/nhacviec.db-wal",
            "var/nhacviec.db-shm",
        ] {
            let Ok(bytes) = std::fs::read(daemon.path(file)) else {
                continue;
            };
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "{file} holds the token {token}"
            );
        }
        assert!(!daemon.log().contains(token), "the log holds the token");
    }
}

/// The daemon with one unit and one address against a server with these faults (and,
/// with TLS, AUTH with `password`): waits until the one message has been tried once,
/// stops the daemon (exit 0 within 10 s of SIGTERM), returns the row and the server.
fn one_failed_attempt(security: Security, faults: SmtpOpts, password: &str) -> (Row, SmtpServer) {
    let server = server_for(security, faults);
    let cfg = mail_cfg(&["vp"]).smtp_password(&server, security, password);
    let mut daemon = Setup::new(&cfg).start();
    let rows = daemon.wait_rows("one attempt", |rows| {
        rows.len() == 1
            && rows
                .iter()
                .all(|r| r.attempts >= 1 && r.status != "sending" && r.last_error.is_some())
    });
    daemon.stop();
    let [row] = &rows[..] else {
        panic!("one row expected: {rows:#?}");
    };
    assert_eq!(row.attempts, 1, "{row:#?}");
    assert_eq!(row.recipient, "vp@thu.example.vn");
    assert_eq!(row.sent_at, None, "{row:#?}");
    assert!(server.captured().is_empty());
    // The row as it is after the stop: the stop changed nothing.
    let after = daemon.rows();
    assert_eq!(
        (after[0].status.as_str(), after[0].attempts),
        (row.status.as_str(), 1)
    );
    (row.clone(), server)
}

/// [`one_failed_attempt`] against a plain server with these faults.
fn fails_on(faults: SmtpOpts) -> (Row, SmtpServer) {
    one_failed_attempt(
        Security::None,
        faults,
        crate::support::config::SMTP_PASSWORD,
    )
}

/// A transient failure: `pending`, retried one minute after the attempt.
fn assert_retry_in_a_minute(row: &Row) {
    assert_eq!(row.status, "pending", "{row:#?}");
    let gap = row.next_attempt_at.unwrap() - row.last_attempt_at.unwrap();
    assert!(
        (59_000..=61_000).contains(&gap),
        "next attempt {gap} ms after the first, not a minute: {row:#?}"
    );
}

/// A 451 and a connection cut at the end of DATA (the server may or may not have taken the
/// message) are retried a minute later; a 550 fails at once. Each row says what happened.
#[test]
fn run_retries_a_451_and_a_cut_connection_and_fails_a_550() {
    let cases = [
        (451, "data", true, &["451", "4.3.0 Try again later"][..]),
        (
            550,
            "data",
            false,
            &["550", "5.1.1 Mailbox unavailable"][..],
        ),
        (
            0,
            "dropped",
            true,
            &[
                "the server closed the connection without answering",
                "same Message-ID",
            ][..],
        ),
    ];
    for (code, event, transient, says) in cases {
        let (row, server) = fails_on(SmtpOpts {
            reply: (code > 0).then_some(code),
            drop_data: code == 0,
            ..SmtpOpts::default()
        });
        if transient {
            assert_retry_in_a_minute(&row);
        } else {
            assert_eq!(row.status, "failed", "{row:#?}");
            assert_eq!(row.next_attempt_at, None, "{row:#?}");
        }
        let error = row.last_error.as_deref().unwrap();
        for must in says {
            assert!(error.contains(must), "{code}: {must:?} in {error}");
        }
        assert_eq!(server.events(event).len(), 1, "{code}");
    }
}

#[test]
fn run_wrong_password_is_retried_and_says_so() {
    let (row, server) = one_failed_attempt(Security::StartTls, SmtpOpts::default(), "mật khẩu sai");
    assert_retry_in_a_minute(&row);
    let error = row.last_error.as_deref().unwrap();
    assert!(error.starts_with("SMTP authentication failed"), "{error}");
    assert!(error.contains("535"), "{error}");
    assert!(error.contains("`email.smtp.username`"), "{error}");
    assert!(
        !error.contains("mật khẩu"),
        "no password in errors: {error}"
    );
    assert_eq!(server.events("auth")[0]["ok"], false);
    assert!(server.events("mail").is_empty());
}

/// SIGTERM stops the daemon with exit 0 within 10 s, whenever it comes ("finish
/// or release in-flight sends"), even during the first wake's sends (a first start with many
/// messages, sent at `max_per_minute`): the daemon registers its signal handlers before
/// anything else, and a shutdown during a wake stops new sends and releases what is in
/// flight after a grace period. (Once, the handler was installed only after the first wake,
/// and this test found it.)
#[test]
fn sigterm_during_the_first_wake_is_a_clean_stop() {
    let server = server_for(Security::None, SmtpOpts::default());
    // vp with 30 addresses: 30 messages, sent 0.5 s apart (120 a minute).
    let addresses: Vec<String> = (1..=30).map(|i| format!("vp{i}@{DOMAIN}")).collect();
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let mut cfg = Cfg::new()
        .units([unit("vp").emails(&addresses)])
        .rule(tuyen_truyen(&["vp"]))
        .smtp(&server, Security::None);
    cfg.email = cfg
        .email
        .replace("max_per_minute = 100000", "max_per_minute = 120");
    let mut daemon = Setup::new(&cfg).spawn();
    daemon.wait_catching(15);
    server.wait_for(1, WAIT);
    let (status, _) = daemon.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM during the first sends: {status}\n--- its log\n{}",
        daemon.log()
    );
    let rows = daemon.rows();
    assert!(
        rows.iter().all(|r| r.status != "sending"),
        "rows left `sending`: {rows:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// preview

/// A periodic report with fixed dates: the 9-month report of 2025, due before 05/10/2025
/// (a Sunday, so the last day is Friday 03/10), steps before-7d, due, after-1wd and
/// after-3wd, escalated from after-3wd. `kt` owes it and escalates to `lanh-dao`.
fn preview_config() -> String {
    Cfg::new()
        .public_url(PUBLIC_URL)
        .units(mail_units())
        .extra(
            r#"
[policy.bao-cao]
before = ["7d"]
after = ["1wd", "3wd"]
escalate_from = "3wd"

[[rule]]
id = "bao-cao-9-thang"
kind = "report"
title = "Báo cáo kết quả công tác dân vận chính quyền"
reference = "Chương trình 05/CTr-UBND"
period = "nine-months"
due = { month = "next", day = 5, before = true }
units = ["kt"]
submit_to = "vhxh"
policy = "bao-cao"
"#,
        )
        .toml()
}

/// `preview --obligation bao-cao-9-thang/2025-9M/kt --step ARGS…` on [`preview_config`].
fn preview_kt(step_and_args: &[&str]) -> Test {
    Test::new().config(&preview_config()).args(
        &[
            &[
                "preview",
                "--obligation",
                "bao-cao-9-thang/2025-9M/kt",
                "--step",
            ][..],
            step_and_args,
        ]
        .concat(),
    )
}

/// What `preview` says on stderr while `run` has not made the token key yet.
const NO_KEY_YET: &str = "note: var/nhacviec.key does not exist yet (`nhacviec run` creates it), so the links below are placeholders\n";

/// The part of a text preview before its HTML part, and the HTML part.
fn split_preview(stdout: &str) -> (&str, &str) {
    stdout
        .split_once("\n----- text/html -----\n")
        .unwrap_or_else(|| panic!("no HTML part in\n{stdout}"))
}

#[test]
fn preview_shows_a_reminder_as_it_would_be_sent() {
    let out = preview_kt(&["before-7d"]).stderr(NO_KEY_YET).run();
    let (text, html) = split_preview(&out.stdout);
    let want = lines(&[
        "From: Nhắc việc UBND phường Thử nghiệm <nhacviec@thu.example.vn>",
        "To: Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>",
        "Reply-To: vhxh@thu.example.vn",
        "Subject: [Nhắc việc] Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025 – hạn thứ Sáu 03/10/2025",
        "Message-ID: <bao-cao-9-thang.2025-9M.kt.before-7d.rf02adc3c@thu.example.vn>",
        "Sent: 2025-09-26 08:00 +07:00",
        "",
        "Kính gửi: Phòng Kinh tế – Hạ tầng – Đô thị",
        "",
        "Ủy ban nhân dân phường Thử nghiệm nhắc đơn vị thực hiện: \"Báo cáo kết quả công tác dân vận chính quyền\" 9 tháng năm 2025. Hạn làm việc cuối là thứ Sáu 03/10/2025, còn 5 ngày làm việc.",
        "",
        "Đơn vị thực hiện: Phòng Kinh tế – Hạ tầng – Đô thị",
        "Nội dung: Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025",
        "Thời hạn: trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
        "Nơi gửi: Phòng Văn hóa – Xã hội",
        "Căn cứ: Chương trình 05/CTr-UBND",
        "",
        "Xác nhận \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" tại:",
        "https://nhacviec.thu.example.vn/a/<ma-xac-nhan>",
        "--",
        "Thư gửi tự động từ hệ thống nhắc việc của Ủy ban nhân dân phường Thử nghiệm.",
        "Nếu đơn vị đã hoàn thành, vui lòng bấm \"Đã hoàn thành / đã nộp\" ở đường dẫn trên để không nhận thêm nhắc nhở.",
        "Xem tất cả nhiệm vụ của đơn vị: https://nhacviec.thu.example.vn/u/<ma-don-vi>",
    ]);
    same_text("preview", "stdout", &want, text);
    assert!(html.starts_with("<!DOCTYPE html>\n"), "{html}");
    assert!(html.ends_with("</html>\n"), "{html}");
    assert_contains(
        html,
        &[
            "<title>Nhắc việc</title>",
            "<p>Kính gửi: Phòng Kinh tế – Hạ tầng – Đô thị</p>",
            "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025",
            // The placeholder is text, so HTML-escaped.
            "https://nhacviec.thu.example.vn/a/&lt;ma-xac-nhan&gt;",
        ],
    );
}

#[test]
fn preview_escalated_goes_to_the_leadership() {
    let out = preview_kt(&["after-3wd", "--escalated"])
        .stderr(NO_KEY_YET)
        .run();
    let (text, html) = split_preview(&out.stdout);
    let head: Vec<&str> = text.lines().take(6).collect();
    assert_eq!(
        head,
        [
            "From: Nhắc việc UBND phường Thử nghiệm <nhacviec@thu.example.vn>",
            "To: Lãnh đạo UBND phường <lanhdao@thu.example.vn>",
            "Reply-To: vhxh@thu.example.vn",
            "Subject: [Quá hạn – báo cáo lãnh đạo] Phòng Kinh tế – Hạ tầng – Đô thị chưa hoàn thành Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025",
            "Message-ID: <bao-cao-9-thang.2025-9M.kt.after-3wd.r351b1b50@thu.example.vn>",
            "Sent: 2025-10-08 08:00 +07:00",
        ]
    );
    for body in [text, html] {
        assert_contains(
            body,
            &[
                "Kính gửi: Lãnh đạo UBND phường",
                "quá hạn 3 ngày làm việc",
                "hạn làm việc cuối: thứ Sáu 03/10/2025",
                "Thư này được gửi đến lãnh đạo để theo dõi, đôn đốc.",
            ],
        );
    }
    assert!(
        text.contains(
            "\nĐơn vị Phòng Kinh tế – Hạ tầng – Đô thị chưa hoàn thành \"Báo cáo kết quả công tác dân vận chính quyền\" 9 tháng năm 2025, đã quá hạn 3 ngày làm việc"
        ),
        "{text}"
    );

    // Without --escalated the same step goes to the unit, as an overdue notice.
    let out = preview_kt(&["after-3wd"]).stderr(NO_KEY_YET).run();
    assert!(
        out.stdout
            .contains("\nTo: Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("[Quá hạn – báo cáo lãnh đạo]"));

    // A step before escalate_from has no escalated copy.
    preview_kt(&["after-1wd", "--escalated"])
        .stdout("")
        .stderr("error: step `after-1wd` is not escalated (the policy's `escalate_from` is later or unset)\n")
        .status(1)
        .run();
}

#[test]
fn preview_of_an_unknown_step_lists_the_steps() {
    preview_kt(&["before-3d"])
        .stdout("")
        .stderr("error: `before-3d` is not a step of bao-cao-9-thang/2025-9M; its steps are before-7d, due, after-1wd, after-3wd\n")
        .status(1)
        .run();
}

#[test]
fn preview_as_eml_is_the_encoded_message() {
    let out = preview_kt(&["due", "--format", "eml"])
        .stderr(NO_KEY_YET)
        .run();
    assert!(out.stdout.is_ascii(), "every header and part is encoded");
    assert!(
        out.stdout
            .contains("\r\nContent-Type: multipart/alternative;")
    );
    assert!(
        out.stdout.contains("\r\nSubject: =?utf-8?"),
        "{}",
        out.stdout
    );
    let m = parse_eml(out.stdout.as_bytes());
    assert_common_headers(&m);
    assert_eq!(
        m.subject(),
        "[Hạn cuối hôm nay] Báo cáo kết quả công tác dân vận chính quyền 9 tháng năm 2025"
    );
    assert_eq!(
        m.get("message_id"),
        Some("<bao-cao-9-thang.2025-9M.kt.due.rf02adc3c@thu.example.vn>")
    );
    assert_eq!(
        decode_words(&one_header(&m, "To")),
        "Phòng Kinh tế – Hạ tầng – Đô thị <kt@thu.example.vn>"
    );
    assert!(
        m.text("text/plain").contains(
            "Thời hạn: trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025"
        ),
        "{}",
        m.text("text/plain")
    );
}

// ---------------------------------------------------------------------------------------
// The file transport

#[test]
fn file_transport_writes_one_eml_per_message_named_by_its_message_id() {
    let mut cfg = mail_cfg(&["vp", "kt"]);
    cfg.email.push_str("\n[email.file]\ndir = \"out/mail\"\n");
    let mut daemon = Setup::new(&cfg).start();
    let rows = daemon.wait_sent(3);
    daemon.stop();

    let mail = daemon.path("out/mail");
    let mut names: Vec<String> = std::fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = rows
        .iter()
        .map(|r| format!("{}.eml", r.message_id.trim_matches(['<', '>'])))
        .collect();
    want.sort();
    assert_eq!(names, want, "one .eml per message and nothing else");

    for r in &rows {
        let name = format!("{}.eml", r.message_id.trim_matches(['<', '>']));
        let eml = std::fs::read(mail.join(&name)).unwrap();
        let m = parse_eml(&eml);
        assert_common_headers(&m);
        assert_eq!(m.get("message_id"), Some(r.message_id.as_str()));
        assert_eq!(m.subject(), r.subject.as_deref().unwrap());
        assert!(
            decode_words(&one_header(&m, "To")).ends_with(&format!("<{}>", r.recipient)),
            "{:#}",
            m.json
        );
        let token = message_token(&m, PUBLIC_URL);

        // Now that `run` made the key, preview shows the very link that was sent.
        let out = daemon.cli(&[
            "preview",
            "--obligation",
            &r.obligation,
            "--step",
            "before-5d",
        ]);
        assert_eq!((out.status, out.stderr.as_str()), (0, ""));
        let (text, _) = split_preview(&out.stdout);
        assert_eq!(
            crate::support::mime::ack_token(text, PUBLIC_URL),
            token,
            "{text}"
        );
    }
}

/// `security = "starttls"` against a server that speaks TLS from the first byte (an SMTPS
/// port, here not 465): no greeting comes, and after `timeout_seconds` the error says the
/// silence means TLS is expected and which setting the port wants; temporary.
#[test]
fn send_test_with_starttls_on_an_implicit_tls_port_says_what_to_set() {
    let server = server_for(Security::Tls, SmtpOpts::default());
    let mut cfg = mail_cfg(&["vp"]).smtp(&server, Security::StartTls);
    cfg.email.push_str("timeout_seconds = 2\n");
    let stderr = send_test_fails(&cfg, Security::StartTls.describe(server.port));
    assert_contains(
        &stderr,
        &[
            "greeting: no answer within 2 s",
            &format!(
                "port {} sent no greeting: a server that waits in silence expects TLS at once, as port 465 does, and wants `security = \"tls\"`",
                server.port
            ),
            "[temporary: the daemon would retry it for 48 hours]",
        ],
    );
    assert!(server.captured().is_empty());
}

/// `security = "tls"` against a server that greets in plain text (a STARTTLS port): the
/// error says which setting the port wants, and that the failure is temporary.
#[test]
fn send_test_with_tls_on_a_starttls_port_says_what_to_set() {
    let server = server_for(Security::StartTls, SmtpOpts::default());
    let cfg = mail_cfg(&["vp"]).smtp(&server, Security::Tls);
    let stderr = send_test_fails(&cfg, Security::Tls.describe(server.port));
    assert_contains(
        &stderr,
        &[
            &format!(
                "port {} answers in plain text, so it wants `security = \"starttls\"`",
                server.port
            ),
            "[temporary: the daemon would retry it for 48 hours]",
        ],
    );
    assert!(server.captured().is_empty());
}
