//! The HTTP routes in-process (`tower::ServiceExt::oneshot`) over a real daemon's state: a
//! ward of two units whose reminders are sent, a status password, the database in a
//! temporary folder. Each input is one request: its first byte picks the method, its second
//! the headers (Basic auth right or wrong, a form body, a proxy header), then the path up
//! to the first newline and the body after it. In the path `{A}` and `{K}` become vp's and
//! kt's ack tokens and `{U}` vp's page token, so the fuzzer reaches past the token checks.
//! Never a panic, never a 500, and every HTML answer carries the page security headers.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use chrono::TimeZone as _;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

const PASSWORD: &str = "mật khẩu quản trị";

struct Site {
    rt: tokio::runtime::Runtime,
    /// Built once; each input gets a clone (a router is cheap to clone, its state shared).
    router: axum::Router,
    /// Kept open for the router's state: its database and folders.
    _daemon: nhacviec::daemon::Daemon,
    tokens: [(&'static str, String); 3],
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("nhacviec-fuzz-router-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("secrets")).expect("a temporary folder");
        std::fs::write(dir.join("secrets/admin-password"), format!("{PASSWORD}\n")).expect("write");
        let config = r#"
[organization]
name = "Ủy ban nhân dân phường Thử"
timezone = "Asia/Ho_Chi_Minh"
coordinator = "vhxh"
[server]
listen = "127.0.0.1:0"
admin_password_file = "secrets/admin-password"
[email]
from = "Nhắc việc <nhacviec@thu.example.vn>"
transport = "file"
[calendar]
holidays = "vn"
[digest]
to = []
[policy.p]
before = ["5d"]
on_due = false
after = []
[[unit]]
id = "vhxh"
name = "Phòng Văn hóa – Xã hội"
email = ["vhxh@thu.example.vn"]
[[unit]]
id = "vp"
name = "Văn phòng <b>HĐND</b> & \"UBND\""
email = ["vp@thu.example.vn"]
[[unit]]
id = "kt"
name = "Phòng Kinh tế"
email = ["kt@thu.example.vn"]
[[rule]]
id = "tuyen-truyen"
kind = "task"
title = "Tuyên truyền <script>alert(1)</script>"
period = "once"
due = { date = "2025-10-15" }
units = ["vp", "kt"]
policy = "p"
"#;
        let path = dir.join("nhacviec.toml");
        std::fs::write(&path, config).expect("write the config");
        let t0 = chrono_tz_free_vn(2025, 10, 13, 9);
        let clock = Arc::new(nhacviec::clock::ManualClock::new(t0));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let daemon = nhacviec::daemon::Daemon::open(&path, clock).expect("the daemon opens");
        rt.block_on(daemon.engine().wake_once())
            .expect("the first wake");
        let key = daemon.key();
        let tokens = [
            ("{A}", key.token("tuyen-truyen/2025-10-15/vp")),
            ("{K}", key.token("tuyen-truyen/2025-10-15/kt")),
            ("{U}", key.unit_token("vp", 0)),
        ];
        let router = daemon.router();
        Site {
            rt,
            router,
            _daemon: daemon,
            tokens,
        }
    })
}

/// A local time in Vietnam (UTC+7, no DST) as UTC.
fn chrono_tz_free_vn(y: i32, m: u32, d: u32, h: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::FixedOffset::east_opt(7 * 3600)
        .and_then(|o| o.with_ymd_and_hms(y, m, d, h, 0, 0).single())
        .expect("a time")
        .with_timezone(&chrono::Utc)
}

const METHODS: [&str; 6] = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let s = site();
    let method = METHODS[usize::from(data[0]) % METHODS.len()];
    let flags = data[1];
    let rest = &data[2..];
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    let mut path = path.to_string();
    for (mark, token) in &s.tokens {
        path = path.replace(mark, token);
    }
    let mut req = Request::builder().method(method).uri(path.as_str());
    if flags & 1 != 0 {
        req = req.header(
            "authorization",
            "Basic YWRtaW46beG6rXQga2jhuql1IHF14bqjbiB0cuG7iw==",
        );
    }
    if flags & 2 != 0 {
        req = req.header("authorization", "basic YWRtaW46c2Fp");
    }
    if flags & 4 != 0 {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    if flags & 8 != 0 {
        req = req.header("x-forwarded-for", "203.0.113.7, 127.0.0.1");
    }
    let Ok(mut req) = req.body(Body::from(body.to_vec())) else {
        return;
    };
    let from = if flags & 16 != 0 {
        "127.0.0.2"
    } else {
        "127.0.0.1"
    };
    let addr = SocketAddr::new(from.parse().expect("an address"), 40000);
    req.extensions_mut().insert(ConnectInfo(addr));
    let router = s.router.clone();
    let answer = s.rt.block_on(async move {
        let r = router.oneshot(req).await.expect("infallible");
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 22).await.expect("the body");
        (parts, bytes)
    });
    let (parts, bytes) = answer;
    assert_ne!(
        parts.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{method} {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let html = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        assert!(
            parts.headers.contains_key("content-security-policy")
                && parts.headers.contains_key("x-frame-options"),
            "{method} {path}: an HTML answer without its security headers: {:?}",
            parts.headers
        );
    }
});
