//! The harness's own tests of the SMTP test server (`support/smtp.rs`), with lettre as the
//! client: modes, AUTH, TLS, and every fault it can inject.

use std::time::Duration;

use lettre::message::MultiPart;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use crate::support::smtp::{Mode, SmtpOpts, SmtpServer};

// ---------------------------------------------------------------------------------------
// The harness's own tests, with lettre as the client.

const SUBJECT: &str = "Nhắc việc: báo cáo 9 tháng năm 2025";
const PLAIN: &str =
    "Kính gửi Phòng Tài chính – Kế hoạch,\nHạn nộp: trước ngày 05/10/2025 (Chủ nhật).\n";
const HTML: &str =
    "<p>Kính gửi Phòng Tài chính – Kế hoạch,</p><p>Hạn nộp: <b>05/10/2025</b>.</p>\n";
const MESSAGE_ID: &str = "<q3-2025.tckh@nhacviec.stc.example.vn>";
const WAIT: Duration = Duration::from_secs(10);

fn message(subject: &str) -> Message {
    Message::builder()
        .from(
            "Nhắc việc Sở Tài chính <nhacviec@stc.example.vn>"
                .parse()
                .unwrap(),
        )
        .reply_to("Điều phối <dieuphoi@stc.example.vn>".parse().unwrap())
        .to("Phòng Tài chính – Kế hoạch <tckh@ubnd.example.vn>"
            .parse()
            .unwrap())
        .subject(subject)
        .message_id(Some(MESSAGE_ID.to_string()))
        .multipart(MultiPart::alternative_plain_html(
            PLAIN.to_string(),
            HTML.to_string(),
        ))
        .unwrap()
}

/// A transport to the server on 127.0.0.1, with this TLS.
fn transport(server: &SmtpServer, tls: Tls, credentials: Option<(&str, &str)>) -> SmtpTransport {
    let mut builder = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.port)
        .tls(tls)
        .timeout(Some(WAIT));
    if let Some((user, password)) = credentials {
        builder = builder.credentials(Credentials::new(user.into(), password.into()));
    }
    builder.build()
}

/// TLS trusting the server's CA, checking the certificate against `name`.
fn tls_params(server: &SmtpServer, name: &str) -> TlsParameters {
    let pem = std::fs::read(server.ca_pem.as_ref().unwrap()).unwrap();
    TlsParameters::builder(name.to_string())
        .add_root_certificate(Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

/// The events of the log, by name only: `["connect", "starttls", "auth", ...]`.
fn event_names(server: &SmtpServer) -> Vec<String> {
    server
        .log()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn plain_multipart_with_vietnamese_subject() {
    let server = SmtpServer::start(SmtpOpts::default());
    transport(&server, Tls::None, None)
        .send(&message(SUBJECT))
        .unwrap();
    let got = server.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.n, 1);
    assert_eq!(m.subject(), SUBJECT);
    // Encoded on the wire, as RFC 2047 wants: the raw header is ASCII.
    let raw = m.header("Subject");
    assert_eq!(raw.len(), 1);
    assert!(raw[0].is_ascii() && raw[0].contains("=?utf-8?"), "{raw:?}");
    assert_eq!(
        m.get("from"),
        Some("Nhắc việc Sở Tài chính <nhacviec@stc.example.vn>")
    );
    assert_eq!(
        m.get("reply_to"),
        Some("Điều phối <dieuphoi@stc.example.vn>")
    );
    assert_eq!(m.get("mail_from"), Some("nhacviec@stc.example.vn"));
    assert_eq!(m.rcpt_tos(), ["tckh@ubnd.example.vn"]);
    assert_eq!(m.get("message_id"), Some(MESSAGE_ID));
    assert!(m.get("date").is_some()); // lettre adds it
    assert_eq!(m.json["content_type"], "multipart/alternative");
    let types: Vec<_> = m.parts().into_iter().map(|p| p.content_type).collect();
    assert_eq!(types, ["text/plain", "text/html"]);
    assert_eq!(m.text("text/plain"), PLAIN);
    assert_eq!(m.text("text/html"), HTML);
    assert!(
        m.parts()
            .iter()
            .all(|p| p.charset.as_deref() == Some("utf-8"))
    );
    assert_eq!(m.defects(), Vec::<String>::new());
    assert!(String::from_utf8_lossy(&m.eml).contains("Content-Type: multipart/alternative"));
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": false})
    );
    assert_eq!(server.events("data")[0]["subject"], SUBJECT);
}

#[test]
fn several_messages_are_numbered_in_order() {
    let server = SmtpServer::start(SmtpOpts::default());
    let mailer = transport(&server, Tls::None, None);
    for i in 1..=3 {
        mailer.send(&message(&format!("Thư {i}"))).unwrap();
    }
    let got = server.wait_for(3, WAIT);
    let subjects: Vec<_> = got.iter().map(|m| (m.n, m.subject())).collect();
    assert_eq!(subjects, [(1, "Thư 1"), (2, "Thư 2"), (3, "Thư 3")]);
}

#[test]
#[should_panic(expected = "waited")]
fn waiting_for_a_message_that_never_comes_fails() {
    let server = SmtpServer::start(SmtpOpts::default());
    server.wait_for(1, Duration::from_millis(200));
}

#[test]
fn starttls_then_auth() {
    let server = SmtpServer::start(SmtpOpts {
        require_tls: true,
        ..SmtpOpts::auth(Mode::StartTls, "nhacviec", "mật khẩu")
    });
    let tls = Tls::Required(tls_params(&server, "localhost"));
    transport(&server, tls, Some(("nhacviec", "mật khẩu")))
        .send(&message(SUBJECT))
        .unwrap();
    assert_eq!(server.wait_for(1, WAIT)[0].subject(), SUBJECT);
    let names = event_names(&server);
    assert_eq!(names[..5], ["connect", "starttls", "auth", "mail", "rcpt"]);
    assert_eq!(server.log()[0]["tls"], false);
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], true);
    assert_eq!(auth["user"], "nhacviec");
    assert!(
        server.events("starttls")[0]["version"]
            .as_str()
            .unwrap()
            .starts_with("TLSv1.")
    );
}

#[test]
fn starttls_wrong_password_is_535() {
    let server = SmtpServer::start(SmtpOpts::auth(Mode::StartTls, "nhacviec", "đúng"));
    let tls = Tls::Required(tls_params(&server, "localhost"));
    let err = transport(&server, tls, Some(("nhacviec", "sai")))
        .send(&message(SUBJECT))
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(535), "{err}");
    assert!(
        err.to_string()
            .contains("5.7.8 Authentication credentials invalid"),
        "{err}"
    );
    let auth = &server.events("auth")[0];
    assert_eq!(auth["ok"], false);
    assert!(server.events("mail").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn starttls_with_an_unknown_ca_fails() {
    let server = SmtpServer::start(SmtpOpts::speaking(Mode::StartTls));
    // The system's roots only: the test CA is not among them.
    let tls = Tls::Required(TlsParameters::new("localhost".to_string()).unwrap());
    let err = send_err(&server, tls);
    // Not a TLS error to lettre, but a network one: rustls fails on the first read.
    assert!(
        !err.is_tls() && !err.is_permanent() && !err.is_transient(),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");
    assert!(server.events("starttls").is_empty());
    assert!(server.captured().is_empty());
}

#[test]
fn require_tls_refuses_mail_in_clear() {
    let server = SmtpServer::start(SmtpOpts {
        require_tls: true,
        ..SmtpOpts::speaking(Mode::StartTls)
    });
    let err = transport(&server, Tls::None, None)
        .send(&message(SUBJECT))
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert_eq!(err.status().map(u16::from), Some(530), "{err}");
    assert!(server.captured().is_empty());
}

#[test]
fn implicit_tls_with_auth() {
    let server = SmtpServer::start(SmtpOpts::auth(Mode::Tls, "nhacviec", "bí mật"));
    // The certificate names 127.0.0.1 too.
    let tls = Tls::Wrapper(tls_params(&server, "127.0.0.1"));
    transport(&server, tls, Some(("nhacviec", "bí mật")))
        .send(&message(SUBJECT))
        .unwrap();
    assert_eq!(server.wait_for(1, WAIT)[0].subject(), SUBJECT);
    assert_eq!(
        server.log()[0],
        serde_json::json!({"event": "connect", "tls": true})
    );
    assert!(server.events("starttls").is_empty());
    assert_eq!(server.events("auth")[0]["ok"], true);
}

/// Sends one message through a fresh transport and returns the error it must give.
fn send_err(server: &SmtpServer, tls: Tls) -> SmtpError {
    transport(server, tls, None)
        .send(&message(SUBJECT))
        .unwrap_err()
}

/// The server's injected answers reach lettre as SMTP errors of the right kind: a 451 at the
/// end of DATA is transient, a 550 there or at RCPT permanent, and nothing is kept.
#[test]
fn injected_answers_are_transient_or_permanent() {
    let cases = [
        ("data", 451, true, "4.3.0 Try again later"),
        ("data", 550, false, "5.1.1 Mailbox unavailable"),
        ("rcpt", 550, false, "5.1.1"),
    ];
    for (at, code, transient, says) in cases {
        let server = SmtpServer::start(SmtpOpts {
            reply: (at == "data").then_some(code),
            reject_rcpt: (at == "rcpt").then_some(code),
            ..SmtpOpts::default()
        });
        let err = send_err(&server, Tls::None);
        assert_eq!(
            (err.is_transient(), err.is_permanent()),
            (transient, !transient),
            "{at} {code}: {err:?}"
        );
        assert_eq!(err.status().map(u16::from), Some(code));
        assert!(err.to_string().contains(says), "{err}");
        assert_eq!(server.events(at)[0]["reply"], code);
        assert!(server.captured().is_empty());
        if at == "rcpt" {
            assert!(server.events("data").is_empty());
        }
    }
}

#[test]
fn fail_first_then_accept() {
    let server = SmtpServer::start(SmtpOpts {
        fail_first: 2,
        ..SmtpOpts::default()
    });
    let mailer = transport(&server, Tls::None, None);
    for _ in 0..2 {
        let err = mailer.send(&message(SUBJECT)).unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
    mailer.send(&message(SUBJECT)).unwrap();
    assert_eq!(server.wait_for(1, WAIT).len(), 1);
    let replies: Vec<_> = server
        .events("data")
        .iter()
        .map(|e| e["reply"].clone())
        .collect();
    assert_eq!(replies, [451, 451, 250]);
}

/// A connection dropped at the end of DATA: neither a success nor an SMTP reply, so
/// neither permanent nor transient. lettre reports EOF where a reply should be as a
/// response error ("incomplete response").
fn assert_dropped(err: &SmtpError, server: &SmtpServer) {
    assert!(!err.is_permanent() && !err.is_transient(), "{err:?}");
    assert_eq!(err.status(), None, "{err:?}");
    assert!(err.is_response(), "{err:?}");
    assert_eq!(server.events("dropped").len(), 1);
    assert_eq!(server.events("dropped")[0]["subject"], SUBJECT);
    assert!(server.captured().is_empty());
}

#[test]
fn dropped_after_data_is_neither_permanent_nor_transient() {
    let server = SmtpServer::start(SmtpOpts {
        drop_data: true,
        ..SmtpOpts::default()
    });
    let err = send_err(&server, Tls::None);
    assert_dropped(&err, &server);
}

#[test]
fn dropped_after_data_over_tls() {
    let server = SmtpServer::start(SmtpOpts {
        drop_data: true,
        ..SmtpOpts::speaking(Mode::Tls)
    });
    let err = send_err(&server, Tls::Wrapper(tls_params(&server, "localhost")));
    assert_dropped(&err, &server);
}

/// The product sends with the async transport: the same faults, the same kinds of error.
#[test]
fn async_transport_sees_the_same_errors() {
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

    // Built, used and dropped inside the runtime: its pool spawns tasks, even on drop.
    let send = |server: &SmtpServer| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                .port(server.port)
                .tls(Tls::Required(tls_params(server, "localhost")))
                .timeout(Some(WAIT))
                .build();
            mailer.send(message(SUBJECT)).await
        })
    };
    let starttls = |opts: SmtpOpts| SmtpOpts {
        mode: Mode::StartTls,
        require_tls: true,
        ..opts
    };

    let ok = SmtpServer::start(starttls(SmtpOpts::default()));
    send(&ok).unwrap();
    assert_eq!(ok.wait_for(1, WAIT)[0].subject(), SUBJECT);

    let busy = SmtpServer::start(starttls(SmtpOpts {
        reply: Some(451),
        ..SmtpOpts::default()
    }));
    assert!(send(&busy).unwrap_err().is_transient());

    let dropping = SmtpServer::start(starttls(SmtpOpts {
        drop_data: true,
        ..SmtpOpts::default()
    }));
    assert_dropped(&send(&dropping).unwrap_err(), &dropping);
}
