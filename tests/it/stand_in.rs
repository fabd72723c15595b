//! The harness's own tests of the Telegram Bot API and webhook stand-in
//! (`support/channels.rs`, `tests/channels/server.py`), driven by hand-made HTTP/1.1: what
//! it accepts and refuses as Telegram does, its scripted faults, and what it records.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::channels::HookServer;
use crate::support::http::{self, Http};

const WAIT: Duration = Duration::from_secs(10);

/// A `sendMessage` with this JSON body, with the server's token.
fn send(server: &HookServer, body: &Value) -> Http {
    post(
        server,
        &server.send_message_path(),
        "application/json",
        &body.to_string(),
    )
}

fn post(server: &HookServer, path: &str, content_type: &str, body: &str) -> Http {
    http::request(
        server.port(),
        "POST",
        path,
        &[("Content-Type", content_type)],
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// Telegram's error body.
fn error(code: u16, description: &str) -> Value {
    json!({"ok": false, "error_code": code, "description": description})
}

/// The answer's status and JSON body, with `result.date` checked to be now and removed.
fn answer(got: &Http) -> (u16, Value) {
    let mut body = got.json();
    let result = body.get_mut("result").and_then(Value::as_object_mut);
    if let Some(date) = result.and_then(|r| r.remove("date")) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let date = date.as_u64().unwrap();
        assert!(now.abs_diff(date) < 60, "date {date}, now {now}");
    }
    (got.status, body)
}

/// The 400 for this `text` in HTML parse mode to chat 42.
fn html(server: &HookServer, text: &str) -> (u16, Value) {
    answer(&send(
        server,
        &json!({"chat_id": 42, "text": text, "parse_mode": "HTML"}),
    ))
}

#[test]
fn send_message_answers_with_the_parsed_text() {
    let server = HookServer::start();
    let text = "<b>Nhắc việc</b>: báo cáo quý III &amp; <a href=\"https://nhacviec.example.vn/a/x\">xác nhận</a> &lt;ngay&gt; &#8212; &#x1F600;";
    let got = send(
        &server,
        &json!({"chat_id": -1001234567890_i64, "text": text, "parse_mode": "HTML",
                "link_preview_options": {"is_disabled": true}}),
    );
    assert_eq!(
        answer(&got),
        (
            200,
            json!({"ok": true, "result": {
                "message_id": 1,
                "chat": {"id": -1001234567890_i64},
                "text": "Nhắc việc: báo cáo quý III & xác nhận <ngay> — 😀",
                "entities": [
                    {"type": "bold", "offset": 0, "length": 9},
                    {"type": "text_link", "offset": 29, "length": 8,
                     "url": "https://nhacviec.example.vn/a/x"},
                ],
            }})
        )
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    // A string chat id, no parse mode (the text as is, trimmed), the next message id.
    let got = send(
        &server,
        &json!({"chat_id": "42", "text": "  <b>x</b> &amp;\n"}),
    );
    assert_eq!(
        answer(&got),
        (
            200,
            json!({"ok": true, "result": {"message_id": 2, "chat": {"id": 42}, "text": "<b>x</b> &amp;"}})
        )
    );
    assert_eq!(server.stderr(), "");
}

#[test]
fn a_wrong_token_gets_401_and_another_method_404() {
    let server = HookServer::start();
    let body = json!({"chat_id": 42, "text": "x"}).to_string();
    let wrong = "/bot123456:TEST-token-wrong/sendMessage".to_string();
    let got = post(&server, &wrong, "application/json", &body);
    assert_eq!(answer(&got), (401, error(401, "Unauthorized")));
    let get_me = format!("/bot{}/getMe", server.token());
    let got = post(&server, &get_me, "application/json", "{}");
    assert_eq!(answer(&got), (404, error(404, "Not Found")));
    // Both recorded, as received, and the token printed nowhere.
    let reqs = server.wait_requests(2, WAIT);
    let seen: Vec<_> = reqs.iter().map(|r| (r.path.as_str(), r.status())).collect();
    assert_eq!(
        seen,
        [(wrong.as_str(), Some(401)), (get_me.as_str(), Some(404))]
    );
    assert_eq!(
        reqs[1].summary(),
        "#2 POST /bot<TOKEN>/getMe -> {\"status\":404}"
    );
    assert_eq!(server.stderr(), "");
}

#[test]
fn chat_id_and_text_are_required() {
    let server = HookServer::start();
    let got = send(&server, &json!({"text": "x"}));
    assert_eq!(
        answer(&got),
        (400, error(400, "Bad Request: chat_id is empty"))
    );
    let got = send(&server, &json!({"chat_id": 42, "text": ""}));
    assert_eq!(
        answer(&got),
        (400, error(400, "Bad Request: message text is empty"))
    );
    let got = send(&server, &json!({"chat_id": 42}));
    assert_eq!(
        answer(&got),
        (400, error(400, "Bad Request: message text is empty"))
    );
    assert_eq!(
        html(&server, "<b> </b>"),
        (400, error(400, "Bad Request: message text is empty"))
    );
}

#[test]
fn html_that_telegram_cannot_parse_gets_400() {
    let server = HookServer::start();
    let cases = [
        (
            "<b>Hạn nộp",
            "Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            "<b>Hạn</i>",
            "Unmatched end tag at byte offset 8, expected \"</b>\", found \"</i>\"",
        ),
        (
            "<div>Hạn nộp</div>",
            "Unsupported start tag \"div\" at byte offset 0",
        ),
        ("a < b", "Unsupported start tag \"\" at byte offset 2"),
        ("Hạn</b>", "Unexpected end tag at byte offset 5"),
        (
            "<span>x</span>",
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0",
        ),
        (
            "Q&nbsp;A",
            "Character reference \"&nbsp;\" at byte offset 1 is not one of &lt; &gt; &amp; \
             &quot; &#NN; &#xHH; (a & must be written &amp;)",
        ),
    ];
    for (text, why) in cases {
        let description = format!("Bad Request: can't parse entities: {why}");
        assert_eq!(
            html(&server, text),
            (400, error(400, &description)),
            "{text}"
        );
    }
    // Every supported tag, entities decoded, in any case.
    let got = html(
        &server,
        "<B>b</B><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins><s>s</s>\
         <strike>k</strike><del>d</del><span class=\"tg-spoiler\">p</span>\
         <tg-spoiler>t</tg-spoiler><code>c</code><pre><code class=\"language-rust\">r</code></pre>\
         <blockquote>q</blockquote><blockquote expandable>x</blockquote>&quot;",
    );
    assert_eq!(got.0, 200, "{:#}", got.1);
    assert_eq!(got.1["result"]["text"], "bsieunskdptcrqx\"");
}

#[test]
fn the_length_limit_is_4096_utf16_units_after_parsing() {
    let server = HookServer::start();
    let too_long = (400, error(400, "Bad Request: message is too long"));
    let text = |t: String| json!({"chat_id": 42, "text": t});
    let ok = |t: String| {
        let got = send(
            &server,
            &json!({"chat_id": 42, "text": t, "parse_mode": "HTML"}),
        );
        assert_eq!(got.status, 200, "{}", got.raw);
        got.json()["result"]["text"].as_str().unwrap().to_string()
    };
    assert_eq!(answer(&send(&server, &text("a".repeat(4096)))).0, 200);
    assert_eq!(answer(&send(&server, &text("a".repeat(4097)))), too_long);
    // &amp; is one character, tags none.
    assert_eq!(ok("&amp;".repeat(4096)), "&".repeat(4096));
    assert_eq!(ok(format!("<b>{}</b>", "a".repeat(4096))), "a".repeat(4096));
    assert_eq!(
        html(&server, &format!("{}a", "&amp;".repeat(4096))),
        too_long
    );
    // An emoji outside the BMP is two UTF-16 units; a Vietnamese letter one.
    assert_eq!(ok("😀".repeat(2048)), "😀".repeat(2048));
    assert_eq!(html(&server, &format!("{}a", "😀".repeat(2048))), too_long);
    assert_eq!(ok("ệ".repeat(4096)), "ệ".repeat(4096));
}

#[test]
fn button_urls_must_be_http_on_a_domain_name() {
    let server = HookServer::start();
    let button = |url: &str| {
        answer(&send(
            &server,
            &json!({"chat_id": 42, "text": "Xác nhận",
                    "reply_markup": {"inline_keyboard": [[{"text": "Đã xong", "url": url}]]}}),
        ))
    };
    let invalid = (400, error(400, "Bad Request: BUTTON_URL_INVALID"));
    assert_eq!(button("http://127.0.0.1:8080/a/x"), invalid);
    assert_eq!(button("http://localhost/a/x"), invalid);
    assert_eq!(button("ftp://nhacviec.example.vn/a/x"), invalid);
    let url = "https://nhacviec.example.vn/a/x";
    assert_eq!(
        button(url),
        (
            200,
            json!({"ok": true, "result": {"message_id": 1, "chat": {"id": 42}, "text": "Xác nhận",
                   "reply_markup": {"inline_keyboard": [[{"text": "Đã xong", "url": url}]]}}})
        )
    );
    // A markup that is no inline keyboard.
    let got = send(
        &server,
        &json!({"chat_id": 42, "text": "x", "reply_markup": [1]}),
    );
    assert_eq!(
        answer(&got),
        (
            400,
            error(
                400,
                "Bad Request: can't parse reply keyboard markup JSON object"
            )
        )
    );
}

#[test]
fn a_form_encoded_send_is_taken_too() {
    let server = HookServer::start();
    let markup =
        json!({"inline_keyboard": [[{"text": "Mở", "url": "https://nhacviec.example.vn/a/x"}]]});
    let body = http::form_body(&[
        ("chat_id", "@nhacviec_test"),
        ("text", "<i>Hạn</i> nộp"),
        ("parse_mode", "HTML"),
        ("reply_markup", &markup.to_string()),
    ]);
    let path = server.send_message_path();
    let got = post(&server, &path, "application/x-www-form-urlencoded", &body);
    assert_eq!(
        answer(&got),
        (
            200,
            json!({"ok": true, "result": {"message_id": 1, "chat": {"id": "@nhacviec_test"},
                   "text": "Hạn nộp", "entities": [{"type": "italic", "offset": 0, "length": 3}],
                   "reply_markup": markup}})
        )
    );
    let reqs = server.telegram_sends();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].body, body);
    assert_eq!(reqs[0].json, Value::Null);
}

#[test]
fn a_chat_scripted_429_then_the_default() {
    let server = HookServer::start();
    let limit = json!({"telegram": {"error_code": 429,
        "description": "Too Many Requests: retry after 3", "parameters": {"retry_after": 3}}});
    server.script("chat:42", json!([limit]), None);
    let message = json!({"chat_id": 42, "text": "Nhắc việc"});
    // An invalid send to that chat still gets its 400, and leaves the script alone.
    let got = send(
        &server,
        &json!({"chat_id": 42, "text": "<b>", "parse_mode": "HTML"}),
    );
    assert_eq!(got.status, 400);
    // Another chat is not scripted.
    let got = send(&server, &json!({"chat_id": 7, "text": "x"}));
    assert_eq!(got.status, 200);
    assert_eq!(
        answer(&send(&server, &message)),
        (
            429,
            json!({"ok": false, "error_code": 429,
                   "description": "Too Many Requests: retry after 3",
                   "parameters": {"retry_after": 3}})
        )
    );
    let (status, body) = answer(&send(&server, &message));
    assert_eq!((status, &body["result"]["message_id"]), (200, &json!(2)));
    let statuses: Vec<_> = server.telegram_sends().iter().map(|r| r.status()).collect();
    assert_eq!(statuses, [Some(400), Some(200), Some(429), Some(200)]);
}

#[test]
fn a_hook_scripted_answers_then_repeats_then_reset() {
    let server = HookServer::start();
    assert_eq!(
        server.hook_url("a"),
        format!("http://127.0.0.1:{}/hook/a", server.port())
    );
    assert_eq!(server.base(), format!("http://127.0.0.1:{}", server.port()));
    server.script(
        "/hook/a",
        json!([{"status": 429, "headers": {"Retry-After": "2"}, "body": {"error": "slow down"}}]),
        Some(json!({"status": 503, "body": "Dịch vụ tạm ngừng"})),
    );
    let hook = |path: &str| post(&server, path, "application/json", "{}");
    let got = hook("/hook/a");
    assert_eq!(
        (got.status, got.header("retry-after"), got.json()),
        (429, Some("2"), json!({"error": "slow down"}))
    );
    assert_eq!(got.header("content-type"), Some("application/json"));
    for _ in 0..2 {
        let got = hook("/hook/a?x=1");
        assert_eq!((got.status, got.raw.as_str()), (503, "Dịch vụ tạm ngừng"));
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
    let got = hook("/hook/b");
    assert_eq!((got.status, got.raw.as_str()), (200, "ok"));
    server.reset();
    let got = hook("/hook/a");
    assert_eq!((got.status, got.raw.as_str()), (200, "ok"));
    // A malformed script is refused, saying why.
    let got = post(
        &server,
        "/_script",
        "application/json",
        r#"{"key": "/hook/a", "responses": [{"action": "explode"}]}"#,
    );
    assert_eq!(
        (got.status, got.raw.as_str()),
        (
            400,
            r#"responses[0]: "action" is "hangup" or "stall", not "explode""#
        )
    );
    let statuses: Vec<_> = server.hooks().iter().map(|r| r.status()).collect();
    assert_eq!(
        statuses,
        [Some(429), Some(503), Some(503), Some(200), Some(200)]
    );
}

#[test]
fn a_hook_scripted_to_hang_up_answers_nothing_and_is_recorded() {
    let server = HookServer::start();
    server.script("/hook/a", json!([{"action": "hangup"}]), None);
    let err = http::request(server.port(), "POST", "/hook/a", &[], b"{\"n\":1}").unwrap_err();
    // The helper reads to the end and finds not even a status line.
    assert_eq!(err.to_string(), "no end of headers in \"\"");
    let got = post(&server, "/hook/a", "application/json", "{\"n\":2}");
    assert_eq!((got.status, got.raw.as_str()), (200, "ok"));
    let reqs = server.hooks();
    let seen: Vec<_> = reqs.iter().map(|r| (&r.json, &r.answer)).collect();
    assert_eq!(
        seen,
        [
            (&json!({"n": 1}), &json!({"action": "hangup"})),
            (&json!({"n": 2}), &json!({"status": 200})),
        ]
    );
}

#[test]
fn a_stalled_request_is_recorded_before_it_ends_and_does_not_block_others() {
    let server = HookServer::start();
    server.script(
        "/hook/slow",
        json!([{"action": "stall", "seconds": 1.0}]),
        None,
    );
    let port = server.port();
    let start = Instant::now();
    let stalled = std::thread::spawn(move || {
        let got = http::request(port, "POST", "/hook/slow", &[], b"slow");
        (
            got.map(|h| h.status).map_err(|e| e.to_string()),
            start.elapsed(),
        )
    });
    let reqs = server.wait_requests(1, WAIT);
    assert_eq!(reqs[0].answer, json!({"action": "stall"}));
    // Meanwhile another connection is answered at once.
    let got = post(&server, "/hook/fast", "text/plain", "fast");
    assert_eq!((got.status, got.raw.as_str()), (200, "ok"));
    assert!(
        !stalled.is_finished(),
        "the stall ended before another was answered"
    );
    let (result, took) = stalled.join().unwrap();
    assert_eq!(result, Err("no end of headers in \"\"".to_string()));
    assert!(took >= Duration::from_secs(1), "{took:?}");
}

#[test]
fn it_stops_at_once_even_with_a_request_stalled() {
    let server = HookServer::start();
    server.script(
        "/hook/slow",
        json!([{"action": "stall", "seconds": 30}]),
        None,
    );
    let port = server.port();
    let stalled = std::thread::spawn(move || http::request(port, "POST", "/hook/slow", &[], b""));
    server.wait_requests(1, WAIT);
    let start = Instant::now();
    drop(server); // panics unless it exits 0
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(stalled.join().unwrap().is_err());
}

#[test]
fn keep_alive_connections_get_every_answer() {
    let server = HookServer::start();
    let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for i in 0..3 {
        let body = format!("{{\"i\":{i}}}");
        let head = format!(
            "POST /hook/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200 "), "{status:?}");
        let mut length = None;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.trim().parse::<usize>().unwrap());
            }
        }
        let mut answer = vec![0; length.expect("a Content-Length")];
        r.read_exact(&mut answer).unwrap();
        assert_eq!(answer, b"ok");
    }
    let bodies: Vec<_> = server.hooks().into_iter().map(|r| r.json).collect();
    assert_eq!(bodies, [json!({"i": 0}), json!({"i": 1}), json!({"i": 2})]);
}

#[test]
fn requests_are_recorded_with_headers_in_lower_case_and_the_body_exactly() {
    let server = HookServer::start();
    let body = "{\"sự_kiện\": \"nhắc\",  \"n\" : 1}\n";
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let got = http::request(
        server.port(),
        "POST",
        "/hook/ky?v=2",
        &[
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Nhacviec-Signature", "sha256=ABC123"),
            ("X-Nhacviec-Timestamp", "1760000000"),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!((got.status, got.raw.as_str()), (200, "ok"));
    let got = send(&server, &json!({"chat_id": 42, "text": "x"}));
    assert_eq!(got.status, 200);

    let reqs = server.wait_requests(2, WAIT);
    let hook = &reqs[0];
    assert_eq!(
        (hook.n, hook.method.as_str(), hook.path.as_str()),
        (1, "POST", "/hook/ky?v=2")
    );
    assert_eq!(hook.path_only(), "/hook/ky");
    assert_eq!(hook.body, body);
    assert_eq!(hook.json, json!({"sự_kiện": "nhắc", "n": 1}));
    assert_eq!(hook.answer, json!({"status": 200}));
    let len = body.len().to_string();
    let want = [
        ("connection", "close"),
        ("content-length", len.as_str()),
        ("content-type", "application/json; charset=utf-8"),
        ("host", &format!("127.0.0.1:{}", server.port())),
        ("x-nhacviec-signature", "sha256=ABC123"),
        ("x-nhacviec-timestamp", "1760000000"),
    ];
    let headers: Vec<_> = hook
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(headers, want);
    assert_eq!(hook.header("X-Nhacviec-Signature"), Some("sha256=ABC123"));
    assert_eq!(hook.header("x-missing"), None);
    let at = hook.at - before.as_secs_f64();
    assert!((0.0..30.0).contains(&at), "{at}");

    let sends = server.telegram_sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(
        (sends[0].n, sends[0].path.as_str()),
        (2, server.send_message_path().as_str())
    );
    assert_eq!(server.hooks().len(), 1);
    // The file itself: one line each, the names as written there in lower case.
    let text = std::fs::read_to_string(server.dir().join("requests.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(
        text.contains("\"x-nhacviec-signature\": \"sha256=ABC123\""),
        "{text}"
    );
    assert!(!text.contains("X-Nhacviec"), "{text}");
    // GET /_requests says the same, and is itself not recorded.
    let got = http::request(server.port(), "GET", "/_requests", &[], b"").unwrap();
    let all = got.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["body"], body);
    assert_eq!(all[1]["path"], server.send_message_path());
    assert_eq!(server.requests().len(), 2);
}
