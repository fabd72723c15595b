//! The harness's own tests of the Zalo stand-in (`support/zalo.rs`, `tests/zalo/server.py`),
//! driven by hand-made HTTP/1.1: the token endpoint's single-use refresh tokens, ZNS's
//! checks and quota, the control route, and what it records.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::http::{self, Http};
use crate::support::zalo::{SEND_PATH, TOKEN_PATH, ZaloOpts, ZaloServer};

const WAIT: Duration = Duration::from_secs(10);

/// A refresh with this secret key, app id and refresh token.
fn refresh_with(server: &ZaloServer, secret_key: &str, app_id: &str, token: &str) -> Value {
    let body = http::form_body(&[
        ("app_id", app_id),
        ("refresh_token", token),
        ("grant_type", "refresh_token"),
    ]);
    let got = http::request(
        server.port(),
        "POST",
        TOKEN_PATH,
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("secret_key", secret_key),
        ],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST {TOKEN_PATH}: {e}"));
    zalo_json(&got)
}

/// A refresh with the server's credentials.
fn refresh(server: &ZaloServer, token: &str) -> Value {
    refresh_with(server, server.secret_key(), server.app_id(), token)
}

/// The first refresh: the new access token.
fn access_token(server: &ZaloServer) -> String {
    let got = refresh(server, server.initial_refresh_token());
    got["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{got}"))
        .to_string()
}

/// A ZNS send with this access token and body.
fn send(server: &ZaloServer, access_token: &str, body: &Value) -> Value {
    let got = http::request(
        server.port(),
        "POST",
        SEND_PATH,
        &[
            ("Content-Type", "application/json"),
            ("access_token", access_token),
        ],
        body.to_string().as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST {SEND_PATH}: {e}"));
    zalo_json(&got)
}

/// A template message to this phone.
fn message(phone: &str) -> Value {
    json!({"phone": phone, "template_id": "301234", "tracking_id": "u1-2025-10-15",
           "template_data": {"ten_viec": "Báo cáo quý III", "han": "15/10/2025"}})
}

/// Zalo answers HTTP 200 with JSON, errors too.
fn zalo_json(got: &Http) -> Value {
    assert_eq!(got.status, 200, "{got:#?}");
    assert_eq!(got.header("content-type"), Some("application/json"));
    got.json()
}

/// ZNS's error body.
fn zns_error(code: i64, message: &str) -> Value {
    json!({"error": code, "message": message})
}

#[test]
fn a_refresh_token_is_single_use_and_gives_a_new_pair() {
    let server = ZaloServer::start(ZaloOpts::default());
    let first = server.initial_refresh_token().to_string();
    let got = refresh(&server, &first);
    let access = got["access_token"].as_str().unwrap();
    let next = got["refresh_token"].as_str().unwrap();
    assert!(
        access.starts_with("acc-") && next.starts_with("ref-"),
        "{got}"
    );
    assert_ne!(next, first);
    assert_eq!(got["expires_in"], json!("90000"));
    assert_eq!(got.as_object().unwrap().len(), 3, "{got}");
    let invalid = json!({"error": -14014, "error_name": "Invalid refresh token",
                         "error_description": "Refresh token is invalid"});
    assert_eq!(refresh(&server, &first), invalid);
    assert_eq!(refresh(&server, "ref-unknown"), invalid);
    assert_eq!(
        server.state(),
        json!({"refresh_token": next, "used_refresh_tokens": [first], "sent_today": 0,
               "quota": 1000})
    );
    // The new one works, once.
    let again = refresh(&server, next);
    assert!(again["access_token"].is_string(), "{again}");
    assert_eq!(refresh(&server, next), invalid);
    let errors: Vec<_> = server.refreshes().iter().map(|r| r.error()).collect();
    assert_eq!(
        errors,
        [Some(0), Some(-14014), Some(-14014), Some(0), Some(-14014)]
    );
    assert_eq!(server.stderr(), "");
}

#[test]
fn a_send_with_the_access_token_succeeds_and_shows_the_quota() {
    let server = ZaloServer::start(ZaloOpts {
        access_ttl: Some(600),
        quota: Some(5),
    });
    let got = refresh(&server, server.initial_refresh_token());
    assert_eq!(got["expires_in"], json!("600"));
    let access = got["access_token"].as_str().unwrap();
    let mut got = send(&server, access, &message("84912345678"));
    let data = got["data"].as_object_mut().unwrap();
    let msg_id = data.remove("msg_id").unwrap();
    assert!(
        msg_id
            .as_str()
            .unwrap()
            .chars()
            .all(|c| c.is_ascii_hexdigit()),
        "{msg_id}"
    );
    let sent: u128 = data
        .remove("sent_time")
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(now.abs_diff(sent) < 60_000, "sent_time {sent}, now {now}");
    assert_eq!(
        got,
        json!({"error": 0, "message": "Success", "data": {
            "quota": {"dailyQuota": "5", "remainingQuota": "4"}}})
    );
    assert_eq!(server.state()["sent_today"], json!(1));
}

#[test]
fn an_expired_or_unknown_access_token_gets_124() {
    let server = ZaloServer::start(ZaloOpts::default());
    let invalid = zns_error(-124, "Access token is invalid");
    assert_eq!(
        send(&server, "acc-unknown", &message("84912345678")),
        invalid
    );
    let access = access_token(&server);
    assert_eq!(send(&server, &access, &message("84912345678"))["error"], 0);
    server.control(json!({"expire_access": true}));
    assert_eq!(send(&server, &access, &message("84912345678")), invalid);
    // A refresh mints a fresh one.
    let next = server.state()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    let fresh = refresh(&server, &next)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(send(&server, &fresh, &message("84912345678"))["error"], 0);
}

#[test]
fn an_access_token_expires_by_itself_after_its_ttl() {
    let server = ZaloServer::start(ZaloOpts {
        access_ttl: Some(1),
        quota: None,
    });
    let access = access_token(&server);
    let start = Instant::now();
    assert_eq!(send(&server, &access, &message("84912345678"))["error"], 0);
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed()));
    assert_eq!(
        send(&server, &access, &message("84912345678")),
        zns_error(-124, "Access token is invalid")
    );
}

#[test]
fn phones_templates_and_parameters_are_checked() {
    let server = ZaloServer::start(ZaloOpts::default());
    let access = access_token(&server);
    for phone in ["0912345678", "8491234567", "849123456789", "+84912345678"] {
        assert_eq!(
            send(&server, &access, &message(phone)),
            zns_error(-108, "Phone number is invalid"),
            "{phone}"
        );
    }
    server.control(json!({"no_account": ["84900000001"]}));
    assert_eq!(
        send(&server, &access, &message("84900000001")),
        zns_error(-118, "Zalo account not existed")
    );
    // No template known: any id is taken; once some are, only those.
    server.control(json!({"templates": {"301234": {"max_len": {"ten_viec": 15}}}}));
    let mut other = message("84912345678");
    other["template_id"] = json!("999");
    assert_eq!(
        send(&server, &access, &other),
        zns_error(-1124, "Template not found")
    );
    let mut long = message("84912345678");
    long["template_data"]["ten_viec"] = json!("Báo cáo quý III!");
    assert_eq!(
        send(&server, &access, &long),
        zns_error(-1126, "Parameter length exceeded")
    );
    // 15 characters (not bytes) is within the limit.
    assert_eq!(send(&server, &access, &message("84912345678"))["error"], 0);
    let mut number = message("84912345678");
    number["template_data"]["han"] = json!(15);
    assert_eq!(
        send(&server, &access, &number),
        zns_error(-1126, "Parameter is invalid")
    );
    // Only the success counted.
    assert_eq!(server.state()["sent_today"], json!(1));
    let errors: Vec<_> = server.sends().iter().map(|r| r.error()).collect();
    assert_eq!(
        errors,
        [
            Some(-108),
            Some(-108),
            Some(-108),
            Some(-108),
            Some(-118),
            Some(-1124),
            Some(-1126),
            Some(0),
            Some(-1126)
        ]
    );
}

#[test]
fn the_daily_quota_runs_out_until_the_day_is_reset() {
    let server = ZaloServer::start(ZaloOpts {
        access_ttl: None,
        quota: Some(1),
    });
    let access = access_token(&server);
    let got = send(&server, &access, &message("84912345678"));
    assert_eq!(
        got["data"]["quota"],
        json!({"dailyQuota": "1", "remainingQuota": "0"})
    );
    let out = zns_error(-1144, "Out of quota: daily quota exceeded");
    assert_eq!(send(&server, &access, &message("84912345678")), out);
    assert_eq!(send(&server, &access, &message("84987654321")), out);
    server.control(json!({"reset_day": true}));
    assert_eq!(send(&server, &access, &message("84912345678"))["error"], 0);
    assert_eq!(send(&server, &access, &message("84912345678")), out);
    // A bigger quota counts what was sent today.
    server.control(json!({"quota": 3}));
    let got = send(&server, &access, &message("84912345678"));
    assert_eq!(
        got["data"]["quota"],
        json!({"dailyQuota": "3", "remainingQuota": "1"})
    );
    assert_eq!(
        server.state(),
        json!({"refresh_token": server.state()["refresh_token"],
               "used_refresh_tokens": [server.initial_refresh_token()],
               "sent_today": 2, "quota": 3})
    );
}

#[test]
fn an_expired_or_revoked_refresh_token_is_refused() {
    let server = ZaloServer::start(ZaloOpts::default());
    server.control(json!({"expire_refresh": true}));
    let expired = json!({"error": -14020, "error_name": "Refresh token is expired",
                         "error_description": "Refresh token is expired"});
    assert_eq!(refresh(&server, server.initial_refresh_token()), expired);
    assert_eq!(refresh(&server, server.initial_refresh_token()), expired);
    // The admin authorizes again: a new valid one.
    server.control(json!({"refresh_token": "ref-from-admin"}));
    assert!(refresh(&server, "ref-from-admin")["access_token"].is_string());
    let current = server.state()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    server.control(json!({"revoke_refresh": true}));
    assert_eq!(refresh(&server, &current)["error"], -14014);
    assert_eq!(
        server.state(),
        json!({"refresh_token": null,
               "used_refresh_tokens": ["ref-from-admin", current],
               "sent_today": 0, "quota": 1000})
    );
}

#[test]
fn a_wrong_secret_key_or_app_id_is_refused_and_spends_nothing() {
    let server = ZaloServer::start(ZaloOpts::default());
    let first = server.initial_refresh_token();
    assert_eq!(
        refresh_with(&server, "TEST-secret-wrong", server.app_id(), first),
        json!({"error": -14002, "error_name": "Invalid secret key",
               "error_description": "The secret_key header is invalid"})
    );
    assert_eq!(
        refresh_with(&server, server.secret_key(), "1234", first)["error"],
        -14001
    );
    assert_eq!(server.state()["refresh_token"], first);
    assert!(refresh(&server, first)["access_token"].is_string());
}

#[test]
fn the_request_log_records_form_fields_and_headers() {
    let server = ZaloServer::start(ZaloOpts::default());
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let access = access_token(&server);
    send(&server, &access, &message("84912345678"));
    let reqs = server.wait_requests(2, WAIT);
    let r = &reqs[0];
    assert_eq!(
        (r.n, r.method.as_str(), r.path.as_str()),
        (1, "POST", TOKEN_PATH)
    );
    assert_eq!(r.header("secret_key"), Some(server.secret_key()));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.field("app_id"), Some(server.app_id()));
    assert_eq!(
        r.field("refresh_token"),
        Some(server.initial_refresh_token())
    );
    assert_eq!(r.field("grant_type"), Some("refresh_token"));
    assert_eq!(r.json, Value::Null);
    assert_eq!(r.answer, json!({"status": 200, "error": 0}));
    let at = r.at - before.as_secs_f64();
    assert!((0.0..30.0).contains(&at), "{at}");

    let s = &reqs[1];
    assert_eq!((s.n, s.path_only()), (2, SEND_PATH));
    assert_eq!(s.header("access_token"), Some(access.as_str()));
    assert_eq!(s.json, message("84912345678"));
    assert_eq!(s.form, None);
    assert_eq!(s.body, message("84912345678").to_string());
    assert_eq!(
        s.summary(),
        "#2 POST /message/template -> {\"error\":0,\"status\":200}"
    );
    assert_eq!((server.refreshes().len(), server.sends().len()), (1, 1));
    // The file: one line each, header names in lower case; control routes not there.
    server.control(json!({"reset_day": true}));
    server.state();
    let text = std::fs::read_to_string(server.dir().join("requests.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("\"secret_key\": "), "{text}");
    assert!(!text.contains("Content-Type"), "{text}");
}

#[test]
fn a_scripted_fault_comes_first_and_changes_nothing() {
    let server = ZaloServer::start(ZaloOpts::default());
    server.script(
        TOKEN_PATH,
        json!([{"status": 502, "body": "Bad Gateway"}, {"action": "hangup"}]),
        None,
    );
    let first = server.initial_refresh_token();
    let body = http::form_body(&[
        ("app_id", server.app_id()),
        ("refresh_token", first),
        ("grant_type", "refresh_token"),
    ]);
    let headers = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("secret_key", server.secret_key()),
    ];
    let got = http::request(server.port(), "POST", TOKEN_PATH, &headers, body.as_bytes()).unwrap();
    assert_eq!((got.status, got.raw.as_str()), (502, "Bad Gateway"));
    let err =
        http::request(server.port(), "POST", TOKEN_PATH, &headers, body.as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "no end of headers in \"\"");
    // The token was not spent by either.
    assert!(refresh(&server, first)["access_token"].is_string());
    // A Zalo error for a while, then forgotten.
    server.script(
        SEND_PATH,
        json!([]),
        Some(json!({"status": 200, "body": zns_error(-124, "Access token is invalid")})),
    );
    assert_eq!(
        send(&server, "acc-any", &message("84912345678"))["error"],
        -124
    );
    server.reset();
    assert_eq!(
        send(&server, "acc-any", &message("84912345678"))["error"],
        -124
    );
    let answers: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| r.answer.clone())
        .collect();
    assert_eq!(
        answers,
        [
            json!({"status": 502}),
            json!({"action": "hangup"}),
            json!({"status": 200, "error": 0}),
            json!({"status": 200}),
            json!({"status": 200, "error": -124}),
        ]
    );
    // Another path or method is no Zalo route.
    assert_eq!(server.base(), format!("http://127.0.0.1:{}", server.port()));
    let got = http::request(server.port(), "GET", SEND_PATH, &[], b"").unwrap();
    assert_eq!((got.status, got.header("allow")), (405, Some("POST")));
    let got = http::request(server.port(), "POST", "/v2.0/oa/message", &[], b"").unwrap();
    assert_eq!(got.status, 404);
    assert_eq!(server.stderr(), "");
}

#[test]
fn a_delayed_refresh_is_recorded_at_once_and_a_racing_one_finds_the_token_used() {
    let server = ZaloServer::start(ZaloOpts::default());
    server.control(json!({"delay_refresh": 0.5}));
    let first = server.initial_refresh_token().to_string();
    let start = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| refresh(&server, &first));
        server.wait_requests(1, WAIT);
        let b = s.spawn(|| refresh(&server, &first));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(a["access_token"].is_string(), "{a}");
    assert_eq!(b["error"], -14014);
    server.control(json!({"delay_refresh": 0}));
    let start = Instant::now();
    refresh(&server, "ref-unknown");
    assert!(start.elapsed() < Duration::from_millis(400));
}

#[test]
fn a_malformed_control_is_refused_saying_why() {
    let server = ZaloServer::start(ZaloOpts::default());
    let got = http::request(
        server.port(),
        "POST",
        "/_zalo",
        &[("Content-Type", "application/json")],
        br#"{"quota": -1}"#,
    )
    .unwrap();
    assert_eq!(
        (got.status, got.raw.as_str()),
        (400, r#""quota" is an integer >= 0"#)
    );
    let got = http::request(server.port(), "POST", "/_zalo", &[], br#"{"expire": true}"#).unwrap();
    assert_eq!(
        (got.status, got.raw.as_str()),
        (400, "unknown fields ['expire']")
    );
    assert_eq!(server.state()["quota"], 1000);
}
