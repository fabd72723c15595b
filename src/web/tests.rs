//! The router in-process (`tower::ServiceExt::oneshot`), over a real daemon's state (a
//! SQLite file, the token key, a manual clock) whose engine has sent the usual reminders: the
//! checks that need no process of their own. The real binary, the browser and the crash
//! tests are in `tests/it/`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use chrono::{DateTime, Duration, TimeZone, Utc};
use tower::ServiceExt as _;

use crate::clock::ManualClock;
use crate::daemon::Daemon;
use crate::state::{Channel, TemplateKind};
use crate::store::Message;
use crate::testutil::TempDir;

const PASSWORD: &str = "mật khẩu quản trị";

fn config(server: &str) -> String {
    crate::testutil::ward(
        "coordinator = \"vhxh\"",
        &format!(
            "[digest]\nto = []\n[server]\nlisten = \"127.0.0.1:0\"\n{server}\n\
             [policy.p]\nbefore = [\"5d\"]\non_due = false\nafter = []\n{}",
            crate::testutil::rule(
                "tuyen-truyen",
                "Tuyên truyền",
                "period = \"once\"\ndue = { date = \"2025-10-15\" }\nunits = [\"vp\", \"kt\"]\npolicy = \"p\""
            )
        ),
    )
}

/// Mon 13/10/2025 09:00 in Vietnam: the reminders (Fri 10/10) are past, the deadline ahead.
fn t0() -> DateTime<Utc> {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2025, 10, 13, 9, 0, 0)
        .unwrap()
        .with_timezone(&Utc)
}

struct Site {
    _dir: TempDir,
    clock: Arc<ManualClock>,
    daemon: Daemon,
}

/// A daemon whose first wake has sent the reminders of `vp` and `kt`; `server` lines go
/// into `[server]`.
async fn site(server: &str) -> Site {
    let dir = TempDir::new("web");
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    std::fs::write(dir.join("secrets/admin-password"), format!("{PASSWORD}\n")).unwrap();
    let path = dir.join("nhacviec.toml");
    std::fs::write(&path, config(server)).unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let daemon = Daemon::open(&path, clock.clone()).unwrap();
    daemon.engine().wake_once().await.unwrap();
    assert_eq!(daemon.store().outbox_counts().unwrap().sent, 2);
    Site {
        _dir: dir,
        clock,
        daemon,
    }
}

/// What the router answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Answer {
    /// Panics, showing the answer, unless it has this status and its body says `text`.
    fn expect(&self, status: StatusCode, text: &str) {
        assert_eq!(self.status, status, "{self:#?}");
        assert!(
            self.body.contains(text),
            "{text:?} missing in {}",
            self.body
        );
    }
}

impl Site {
    fn token(&self, unit: &str) -> String {
        self.daemon
            .key()
            .token(&format!("tuyen-truyen/2025-10-15/{unit}"))
    }

    /// One request from `from`.
    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
        from: &str,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(Body::from(body.to_string())).unwrap();
        let addr = SocketAddr::new(from.parse().unwrap(), 40000);
        req.extensions_mut().insert(ConnectInfo(addr));
        let r = self.daemon.router().oneshot(req).await.unwrap();
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, uri: &str, headers: &[(&str, &str)]) -> Answer {
        self.call("GET", uri, headers, "", "127.0.0.1").await
    }

    /// A form POST from `from`.
    async fn post(&self, uri: &str, headers: &[(&str, &str)], form: &str, from: &str) -> Answer {
        let mut h = headers.to_vec();
        h.push(("content-type", "application/x-www-form-urlencoded"));
        self.call("POST", uri, &h, form, from).await
    }

    /// A form POST from 127.0.0.1 that must answer with a redirect (303, not cached), and the
    /// page it leads to.
    async fn follow(&self, uri: &str, form: &str) -> Answer {
        let r = self.post(uri, &[], form, "127.0.0.1").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:#?}");
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
        let to = r.headers[header::LOCATION].to_str().unwrap();
        self.get(to, &[]).await
    }

    fn acks(&self) -> u64 {
        self.daemon.store().ack_counts().unwrap().values().sum()
    }

    fn state(&self, unit: &str) -> crate::state::ObligationState {
        let key = format!("tuyen-truyen/2025-10-15/{unit}");
        self.daemon
            .store()
            .states(std::slice::from_ref(&key))
            .unwrap()[&key]
            .state
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `n` ack POSTs from `from` (alternating seen and done on `vp`'s link): how many passed
/// the limit (anything but 429).
async fn ack_burst(s: &Site, n: usize, from: &str) -> usize {
    let vp = s.token("vp");
    let mut passed = 0;
    for i in 0..n {
        let action = if i % 2 == 0 { "seen" } else { "done" };
        let r = s
            .post(&format!("/a/{vp}"), &[], &format!("action={action}"), from)
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.body.contains("Quá nhiều yêu cầu"), "{}", r.body);
        } else {
            passed += 1;
        }
    }
    passed
}

/// The ack limit is a token bucket per client: `ack_per_minute` at once, then one every
/// `60 / ack_per_minute` seconds. A fixed window per clock minute let twice the limit
/// through within a second across a minute's boundary (3 at 09:00:59.5, 3 more at
/// 09:01:00.5): no more.
#[tokio::test]
async fn ack_posts_are_a_token_bucket_per_address_even_across_a_minute_boundary() {
    let s = site("ack_per_minute = 3").await;
    // t0 is 09:00:00 sharp: half a second before the clock minute ends.
    s.clock.advance(Duration::milliseconds(59_500));
    assert_eq!(ack_burst(&s, 3, "127.0.0.1").await, 3);
    s.clock.advance(Duration::seconds(1));
    assert_eq!(
        ack_burst(&s, 3, "127.0.0.1").await,
        0,
        "over the minute's boundary, nothing more"
    );
    assert_eq!(s.acks(), 3, "a refused POST records nothing");
    // Another address has a bucket of its own; GET is not limited.
    assert_eq!(ack_burst(&s, 4, "127.0.0.2").await, 3);
    assert_eq!(
        s.get(&format!("/a/{}", s.token("kt")), &[]).await.status,
        StatusCode::OK
    );
    // One token comes back every 20 s (60 / 3): 19 s after the burst, none yet.
    s.clock.advance(Duration::seconds(18));
    assert_eq!(ack_burst(&s, 1, "127.0.0.1").await, 0);
    s.clock.advance(Duration::seconds(1));
    assert_eq!(ack_burst(&s, 2, "127.0.0.1").await, 1);
    // A quiet minute fills the bucket again, to the limit and no more.
    s.clock.advance(Duration::seconds(60));
    assert_eq!(ack_burst(&s, 5, "127.0.0.1").await, 3);
    // An IPv6 client counts by its /64: its neighbours share its bucket.
    assert_eq!(ack_burst(&s, 2, "2001:db8:1:2::1").await, 2);
    assert_eq!(ack_burst(&s, 2, "2001:db8:1:2::ffff").await, 1);
    assert_eq!(ack_burst(&s, 1, "2001:db8:1:3::1").await, 1);
    assert_eq!(s.acks(), 3 + 3 + 1 + 3 + 3 + 1);
}

#[tokio::test]
async fn a_body_over_16_kib_is_refused_and_records_nothing() {
    let s = site("").await;
    let vp = s.token("vp");
    let big = format!("action=done&note={}", "x".repeat(20 * 1024));
    let r = s.post(&format!("/a/{vp}"), &[], &big, "127.0.0.1").await;
    r.expect(StatusCode::PAYLOAD_TOO_LARGE, "Yêu cầu quá lớn.");
    assert_eq!(s.acks(), 0);
    let ok = s
        .post(&format!("/a/{vp}"), &[], "action=done", "127.0.0.1")
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(s.state("vp"), crate::state::ObligationState::Done);
    // Announced by its Content-Length, the body is refused before it is read: the same page.
    let r = s
        .call(
            "POST",
            &format!("/a/{vp}"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("content-length", &big.len().to_string()),
            ],
            &big,
            "127.0.0.1",
        )
        .await;
    r.expect(StatusCode::PAYLOAD_TOO_LARGE, "Yêu cầu quá lớn.");
    assert!(r.body.contains("<html lang=\"vi\">"), "{}", r.body);
    assert_eq!(s.acks(), 1);
}

#[tokio::test]
async fn every_bad_link_gets_the_same_404_and_changes_nothing() {
    let s = site("").await;
    let real = s.token("vp");
    let tampered = {
        let mut t = real.clone().into_bytes();
        let last = t.last_mut().unwrap();
        *last = if *last == b'0' { b'1' } else { b'0' };
        String::from_utf8(t).unwrap()
    };
    let bad = [
        ("forged", "0123456789abcdef0123456789abcdef".to_string()),
        ("truncated", real[..31].to_string()),
        ("tampered", tampered),
        ("upper-cased", real.to_uppercase()),
        ("one digit more", format!("{real}0")),
    ];
    let mut bodies = std::collections::BTreeSet::new();
    for (what, t) in &bad {
        let get = s.get(&format!("/a/{t}"), &[]).await;
        let post = s
            .post(&format!("/a/{t}"), &[], "action=done", "127.0.0.1")
            .await;
        for r in [&get, &post] {
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{what}: {r:#?}");
            assert!(
                r.body.contains("Đường dẫn không hợp lệ hoặc đã hết hạn"),
                "{what}"
            );
            assert!(!r.body.contains("Văn phòng") && !r.body.contains("Tuyên truyền"));
            bodies.insert(r.body.clone());
        }
    }
    for path in ["/a/", "/khong-co"] {
        bodies.insert(s.get(path, &[]).await.body);
    }
    // The real link 89 days after the deadline works; 91 days after, it has expired.
    let deadline = chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2025, 10, 16, 0, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    s.clock.set(deadline + Duration::days(89));
    let page = s.get(&format!("/a/{real}"), &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Văn phòng") && page.body.contains("Quá hạn"));
    s.clock.set(deadline + Duration::days(91));
    for r in [
        s.get(&format!("/a/{real}"), &[]).await,
        s.post(&format!("/a/{real}"), &[], "action=done", "127.0.0.1")
            .await,
    ] {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "expired: {r:#?}");
        bodies.insert(r.body);
    }
    assert_eq!(bodies.len(), 1, "one 404 page for all: {bodies:#?}");
    assert_eq!(s.acks(), 0, "nothing recorded");
    assert_eq!(s.state("vp"), crate::state::ObligationState::Pending);
}

#[tokio::test]
async fn the_status_page_needs_the_password_and_its_forms_a_fresh_csrf_token() {
    let off = site("").await;
    let r = off.get("/status", &[]).await;
    r.expect(StatusCode::NOT_FOUND, "Trang theo dõi đang tắt");

    let s = site("admin_password_file = \"secrets/admin-password\"").await;
    let wrong = [
        None,
        Some(basic("admin", "mật khẩu sai")),
        Some(basic("root", PASSWORD)),
        Some(basic("admin", &format!("{PASSWORD}\n"))),
        Some("Basic !!!".to_string()),
        Some(format!("Bearer {PASSWORD}")),
    ];
    for path in ["/status", "/status.csv"] {
        for h in &wrong {
            let headers: Vec<(&str, &str)> =
                h.iter().map(|v| ("authorization", v.as_str())).collect();
            let r = s.get(path, &headers).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path} with {h:?}");
            assert!(
                r.headers
                    .get(header::WWW_AUTHENTICATE)
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Basic ")),
                "{r:#?}"
            );
            assert!(!r.body.contains("Văn phòng"), "{path}: {}", r.body);
        }
    }
    // Those were ten failed logins from this address: it is turned away for a minute
    // (`status_logins_are_throttled_per_address`).
    s.clock.advance(Duration::seconds(60));
    let auth = basic("admin", PASSWORD);
    let auth = [("authorization", auth.as_str())];
    let page = s.get("/status", &auth).await;
    assert_eq!(page.status, StatusCode::OK);
    let key = "tuyen-truyen/2025-10-15/vp";
    let today = t0()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive();
    let csrf = |day| super::guard::csrf_token(s.daemon.key(), day);
    assert!(
        page.body.contains(&csrf(today)),
        "the page carries today's token"
    );
    let form = |c: &str| format!("obligation={}&csrf={c}", key.replace('/', "%2F"));

    let old = csrf(today - Duration::days(2));
    for c in ["", "0123456789abcdef0123456789abcdef", old.as_str()] {
        let r = s.post("/status/ack", &auth, &form(c), "127.0.0.1").await;
        r.expect(StatusCode::FORBIDDEN, "Biểu mẫu đã hết hạn");
    }
    let r = s
        .post("/status/ack", &[], &form(&csrf(today)), "127.0.0.1")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(s.acks(), 0, "nothing recorded");

    // Yesterday's page, submitted after midnight, still works.
    let r = s
        .post(
            "/status/ack",
            &auth,
            &form(&csrf(today - Duration::days(1))),
            "127.0.0.1",
        )
        .await;
    r.expect(StatusCode::OK, "Đã đánh dấu hoàn thành.");
    assert_eq!(s.state("vp"), crate::state::ObligationState::Done);
}

#[tokio::test]
async fn healthz_is_degraded_after_a_message_failed_for_good_and_says_why() {
    let s = site("").await;
    let h = s.get("/healthz", &[]).await;
    h.expect(StatusCode::OK, "\"status\":\"ok\"");
    assert!(
        h.body.contains("\"clock\":\"manual (tests)\""),
        "{}",
        h.body
    );

    let store = s.daemon.store();
    let m = Message::new(
        "digest/2025-10-13".into(),
        "digest".into(),
        Channel::Email,
        "quantri@example.invalid".into(),
        TemplateKind::Digest,
        serde_json::json!({}),
        "<d@example.invalid>".into(),
        t0(),
    );
    store.enqueue_other(t0(), &[m]).unwrap();
    let claimed = store.claim_due(t0(), 1).unwrap();
    store
        .mark_failed(claimed[0].id, "550 5.1.1 Mailbox unavailable", None)
        .unwrap();
    let h = s.get("/healthz", &[]).await;
    assert_eq!(h.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(
        v["problems"][0],
        "1 message(s) failed for good in the last 24 hours, the latest digest/2025-10-13 digest to quantri@example.invalid: 550 5.1.1 Mailbox unavailable"
    );
    // A day later it is history, reported by the digest, and health is ok again.
    s.clock.advance(Duration::hours(25));
    let v: serde_json::Value = serde_json::from_str(&s.get("/healthz", &[]).await.body).unwrap();
    assert_eq!(v["status"], "ok", "{v:#}");
}

/// `GET /status` from `from`, with `auth` as its `Authorization`.
async fn login(s: &Site, auth: Option<&str>, from: &str) -> Answer {
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
    s.call("GET", "/status", &headers, "", from).await
}

#[tokio::test]
async fn status_logins_are_throttled_per_address() {
    let s = site("admin_password_file = \"secrets/admin-password\"").await;
    let wrong = basic("admin", "mật khẩu sai");
    let right = basic("admin", PASSWORD);
    // A browser's first request carries no credentials (it asks for the prompt): not a
    // failure, however often.
    for _ in 0..20 {
        assert_eq!(
            login(&s, None, "127.0.0.1").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..super::guard::LOGIN_FAILURES {
        let r = login(&s, Some(&wrong), "127.0.0.1").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    // Turned away now, the right password too, until a minute after the first failure.
    for auth in [Some(wrong.as_str()), Some(right.as_str()), None] {
        let r = login(&s, auth, "127.0.0.1").await;
        r.expect(StatusCode::TOO_MANY_REQUESTS, "Quá nhiều lần đăng nhập sai");
        assert_eq!(
            r.headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            Some("60"),
            "{r:#?}"
        );
        assert!(!r.body.contains("Văn phòng"));
    }
    let csv = s
        .call(
            "GET",
            "/status.csv",
            &[("authorization", &right)],
            "",
            "127.0.0.1",
        )
        .await;
    assert_eq!(csv.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address logs in; the scheme's name in any case.
    let lower = right.replacen("Basic", "basic", 1);
    for auth in [&right, &lower] {
        let r = login(&s, Some(auth), "127.0.0.2").await;
        r.expect(StatusCode::OK, "Văn phòng");
    }
    s.clock.advance(Duration::seconds(30));
    let r = login(&s, Some(&right), "127.0.0.1").await;
    assert_eq!(
        r.headers
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap()),
        Some("30")
    );
    s.clock.advance(Duration::seconds(30));
    login(&s, Some(&right), "127.0.0.1")
        .await
        .expect(StatusCode::OK, "Văn phòng");
}

#[tokio::test]
async fn every_page_forbids_framing_and_loads_nothing() {
    let s = site("admin_password_file = \"secrets/admin-password\"").await;
    let ack = s.token("vp");
    let view: String = crate::token::hash(&ack)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let generations = s.daemon.store().unit_generations().unwrap();
    let unit = crate::deliver::context::unit_token(s.daemon.key(), &generations, "vp");
    let auth = basic("admin", PASSWORD);
    let auth = [("authorization", auth.as_str())];
    let pages = [
        (s.get(&format!("/a/{ack}"), &[]).await, StatusCode::OK),
        (s.get(&format!("/v/{view}"), &[]).await, StatusCode::OK),
        (s.get(&format!("/u/{unit}"), &[]).await, StatusCode::OK),
        (s.get("/status", &auth).await, StatusCode::OK),
        (s.get("/status", &[]).await, StatusCode::UNAUTHORIZED),
        (s.get("/khong-co", &[]).await, StatusCode::NOT_FOUND),
        (
            s.post(&format!("/a/{ack}"), &[], "action=x", "127.0.0.1")
                .await,
            StatusCode::BAD_REQUEST,
        ),
        (
            s.follow(&format!("/a/{ack}"), "action=done").await,
            StatusCode::OK,
        ),
    ];
    // The policy is the one the issue asks for, spelled out once here; `is_page` holds every
    // page to it.
    assert_eq!(
        super::PAGE_CSP,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    );
    for (i, (r, status)) in pages.iter().enumerate() {
        is_page(&format!("page {i}"), r, *status, "");
        // Nothing the policy would block: no script, image, font, stylesheet or frame.
        for tag in [
            "<script", "<img", "<link", "<iframe", "<object", "<embed", "url(", "@import",
        ] {
            assert!(!r.body.contains(tag), "{tag} in {}", r.body);
        }
    }
    // The admin's downloads: never cached, never sniffed.
    for path in ["/status.csv", "/status.ics"] {
        let r = s.get(path, &auth).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(
            r.headers[header::X_CONTENT_TYPE_OPTIONS],
            "nosniff",
            "{path}"
        );
    }
    let csv = s.get("/status.csv", &auth).await;
    assert_eq!(csv.headers[header::CACHE_CONTROL], "no-store");
}

/// A request body that sends its first bytes and then nothing.
struct Stalls(Option<axum::body::Bytes>);

impl hyper::body::Body for Stalls {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.0.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_records_nothing() {
    let s = site("timeout_seconds = 1").await;
    let vp = s.token("vp");
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("/a/{vp}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-length", "11")
        .body(Body::new(Stalls(Some("action=".into()))))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    // Far beyond the one second of the config: only a body that is never cut off fails.
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        s.daemon.router().oneshot(req),
    )
    .await
    .expect("the stalled body was not cut off")
    .unwrap();
    assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("quá chậm"));
    assert_eq!(s.acks(), 0);
    assert_eq!(s.state("vp"), crate::state::ObligationState::Pending);
}

#[tokio::test]
async fn an_ack_post_redirects_to_its_result_and_a_refresh_posts_nothing() {
    let s = site("").await;
    let vp = s.token("vp");
    let link = format!("/a/{vp}");
    let r = s.post(&link, &[], "action=seen", "127.0.0.1").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{r:#?}");
    assert_eq!(r.headers[header::LOCATION], format!("{link}?kq=seen"));
    assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(s.acks(), 1);
    // The page it leads to shows the result and the state; loading it again (a refresh)
    // records nothing.
    for _ in 0..2 {
        let page = s.get(&format!("{link}?kq=seen"), &[]).await;
        page.expect(
            StatusCode::OK,
            "Đã ghi nhận: đơn vị đã nhận nhiệm vụ. Hệ thống vẫn nhắc khi đến hạn.",
        );
        assert!(page.body.contains("Đã nhận lúc"), "{}", page.body);
    }
    assert_eq!(s.acks(), 1, "a GET records nothing");
    assert_eq!(s.state("vp"), crate::state::ObligationState::Seen);
    let done = s.follow(&link, "action=done").await;
    done.expect(
        StatusCode::OK,
        "Đã ghi nhận: đơn vị đã hoàn thành. Hệ thống sẽ không gửi thêm nhắc nhở.",
    );
    assert!(done.body.contains("Hoàn thành lúc"), "{}", done.body);
    let again = s.follow(&link, "action=done").await;
    again.expect(StatusCode::OK, "Trạng thái này đã được ghi nhận trước đó.");
    assert_eq!(s.acks(), 3);
    // The plain link, or a result it does not know, shows no result.
    for uri in [link.clone(), format!("{link}?kq=khac")] {
        let page = s.get(&uri, &[]).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("role=\"status\""), "{}", page.body);
    }
    // What is not recorded is answered at once, not redirected.
    let bad = s.post(&link, &[], "action=x", "127.0.0.1").await;
    bad.expect(StatusCode::BAD_REQUEST, "Yêu cầu không hợp lệ");
    let forged = "0123456789abcdef0123456789abcdef";
    let r = s
        .post(&format!("/a/{forged}"), &[], "action=done", "127.0.0.1")
        .await;
    r.expect(
        StatusCode::NOT_FOUND,
        "Đường dẫn không hợp lệ hoặc đã hết hạn",
    );
    assert_eq!(s.acks(), 3);
}

/// Panics: what a handler with a bug does.
async fn boom() -> &'static str {
    panic!("a bug in a handler")
}

/// Asserts that `r` is one of the Vietnamese pages, with `status`, saying `text`, with the
/// pages' headers.
fn is_page(what: &str, r: &Answer, status: StatusCode, text: &str) {
    assert_eq!(r.status, status, "{what}: {r:#?}");
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{what}: {r:#?}"
    );
    assert!(
        r.body.contains("<html lang=\"vi\">") && r.body.contains(text),
        "{what}: {text:?} missing in {}",
        r.body
    );
    assert_eq!(
        r.headers[header::CONTENT_SECURITY_POLICY],
        super::PAGE_CSP,
        "{what}"
    );
    assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY", "{what}");
}

#[tokio::test]
async fn every_error_answer_is_a_vietnamese_page_with_its_status() {
    let s = site("ack_per_minute = 1").await;
    let vp = s.token("vp");
    let link = format!("/a/{vp}");
    let not_found = "Đường dẫn không hợp lệ hoặc đã hết hạn";
    is_page(
        "404",
        &s.get("/khong-co", &[]).await,
        StatusCode::NOT_FOUND,
        not_found,
    );
    // A method a route does not take: 405, with the methods it does.
    for (method, uri, allow) in [
        ("PUT", link.as_str(), "GET,HEAD,POST"),
        ("DELETE", "/status", "GET,HEAD"),
        ("POST", "/healthz", "GET,HEAD"),
    ] {
        let r = s.call(method, uri, &[], "", "127.0.0.1").await;
        is_page(
            &format!("{method} {uri}"),
            &r,
            StatusCode::METHOD_NOT_ALLOWED,
            "Địa chỉ này không nhận kiểu yêu cầu đó.",
        );
        assert_eq!(r.headers[header::ALLOW], allow, "{method} {uri}");
    }
    // A path that is not UTF-8: axum's 400.
    let r = s.get("/a/%FF%FE", &[]).await;
    is_page(
        "bad path",
        &r,
        StatusCode::BAD_REQUEST,
        "Máy chủ không hiểu yêu cầu này.",
    );
    // Over the ack limit: 429, and when to come back.
    assert_eq!(
        s.post(&link, &[], "action=seen", "127.0.0.1").await.status,
        StatusCode::SEE_OTHER
    );
    let r = s.post(&link, &[], "action=done", "127.0.0.1").await;
    is_page(
        "429",
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "Quá nhiều yêu cầu",
    );
    assert_eq!(r.headers[header::RETRY_AFTER], "60");
    // A handler that panics, and answers that come as plain text: the same pages.
    let routes = axum::Router::new()
        .route("/boom", axum::routing::get(boom))
        .route(
            "/plain/{code}",
            axum::routing::get(
                |axum::extract::Path(code): axum::extract::Path<u16>| async move {
                    (StatusCode::from_u16(code).unwrap(), "plain text\n")
                },
            ),
        );
    let app = super::layered(routes, s.daemon.state());
    let call = |uri: &str| {
        let mut req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let app = app.clone();
        async move {
            let r = app.oneshot(req).await.unwrap();
            let (parts, body) = r.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            Answer {
                status: parts.status,
                headers: parts.headers,
                body: String::from_utf8(bytes.to_vec()).unwrap(),
            }
        }
    };
    is_page(
        "panic",
        &call("/boom").await,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Hệ thống gặp lỗi khi xử lý yêu cầu.",
    );
    for (code, text) in [
        (400, "Máy chủ không hiểu yêu cầu này."),
        (404, not_found),
        (408, "Yêu cầu gửi đến quá chậm."),
        (413, "Yêu cầu quá lớn."),
        (500, "Hệ thống gặp lỗi khi xử lý yêu cầu."),
        (503, "Không đọc được dữ liệu. Vui lòng thử lại sau ít phút."),
    ] {
        let r = call(&format!("/plain/{code}")).await;
        is_page(
            &code.to_string(),
            &r,
            StatusCode::from_u16(code).unwrap(),
            text,
        );
        assert!(!r.body.contains("plain text"));
    }
    // What is not an error stays as it is.
    let ok = call("/plain/200").await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "plain text\n")
    );
}

/// The client addresses the acks of `vp`'s obligation were recorded with, in order.
fn ack_ips(s: &Site) -> Vec<String> {
    let db = rusqlite::Connection::open(s.daemon.store().path()).unwrap();
    let mut st = db.prepare("SELECT ip FROM acks ORDER BY id").unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_the_one_it_reports() {
    let s = site(
        "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\nack_per_minute = 2\n\
         admin_password_file = \"secrets/admin-password\"",
    )
    .await;
    let link = format!("/a/{}", s.token("vp"));
    let from = |via: &'static str, client: &'static str, action: &'static str| {
        let xff = [("x-forwarded-for", client)];
        let link = link.clone();
        let s = &s;
        async move {
            s.post(&link, &xff, &format!("action={action}"), via)
                .await
                .status
                .as_u16()
        }
    };
    // Through the proxy (127.0.0.1), each client has its own bucket and is recorded.
    assert_eq!(from("127.0.0.1", "203.0.113.7", "seen").await, 303);
    assert_eq!(
        from("127.0.0.1", "198.51.100.1, 203.0.113.7", "done").await,
        303
    );
    assert_eq!(from("127.0.0.1", "203.0.113.7", "done").await, 429);
    assert_eq!(
        from("127.0.0.1", "203.0.113.8, 10.1.1.1", "done").await,
        303
    );
    // From an address that is no proxy, the header is ignored: one bucket, however it lies.
    assert_eq!(from("127.0.0.2", "203.0.113.20", "done").await, 303);
    assert_eq!(from("127.0.0.2", "203.0.113.21", "done").await, 303);
    assert_eq!(from("127.0.0.2", "203.0.113.22", "done").await, 429);
    assert_eq!(
        ack_ips(&s),
        [
            "203.0.113.7",
            "203.0.113.7",
            "203.0.113.8",
            "127.0.0.2",
            "127.0.0.2"
        ]
    );
    // The login throttle counts the client too: one guessing behind the proxy is turned
    // away, another behind the same proxy is not.
    let wrong = basic("admin", "mật khẩu sai");
    let right = basic("admin", PASSWORD);
    let status = |client: &'static str, auth: String| {
        let s = &s;
        async move {
            let headers = [
                ("x-forwarded-for", client),
                ("authorization", auth.as_str()),
            ];
            s.call("GET", "/status", &headers, "", "127.0.0.1")
                .await
                .status
                .as_u16()
        }
    };
    for _ in 0..super::guard::LOGIN_FAILURES {
        assert_eq!(status("192.0.2.66", wrong.clone()).await, 401);
    }
    assert_eq!(status("192.0.2.66", right.clone()).await, 429);
    assert_eq!(status("192.0.2.67", right).await, 200);
}
