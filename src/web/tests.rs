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
        let addr: SocketAddr = format!("{from}:40000").parse().unwrap();
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

#[tokio::test]
async fn ack_posts_are_limited_per_address_and_clock_minute() {
    let s = site("ack_per_minute = 3").await;
    let (vp, kt) = (s.token("vp"), s.token("kt"));
    let mut answers = Vec::new();
    for (t, action) in [(&vp, "seen"), (&vp, "done"), (&kt, "seen"), (&kt, "done")] {
        let r = s
            .post(
                &format!("/a/{t}"),
                &[],
                &format!("action={action}"),
                "127.0.0.1",
            )
            .await;
        answers.push(r.status.as_u16());
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.body.contains("Quá nhiều yêu cầu"), "{}", r.body);
        }
    }
    assert_eq!(answers, [200, 200, 200, 429]);
    assert_eq!(s.acks(), 3);
    assert_eq!(
        s.state("kt"),
        crate::state::ObligationState::Seen,
        "the 4th did nothing"
    );
    // GET is not limited; another address is not limited by this one.
    assert_eq!(s.get(&format!("/a/{kt}"), &[]).await.status, StatusCode::OK);
    let other = s
        .post(&format!("/a/{kt}"), &[], "action=done", "127.0.0.2")
        .await;
    assert_eq!(other.status, StatusCode::OK);
    // The next minute of the clock, this address may again.
    s.clock.advance(Duration::seconds(60));
    let again = s
        .post(&format!("/a/{vp}"), &[], "action=done", "127.0.0.1")
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(s.acks(), 5);
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
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(s.state("vp"), crate::state::ObligationState::Done);
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
