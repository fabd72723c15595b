//! A reminder rendered and built as the daemon sends it, with a hostile unit name, rule
//! title and organisation name (the input, split at NUL bytes), each one `check` would
//! accept (one line, no control character). Never a panic; the email has exactly one
//! From, To, Subject and Message-ID header and no header the input made up; the HTML part
//! shows the input's markup as text, not as markup.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nhacviec::deliver::channel::Outgoing;
use nhacviec::deliver::email::Envelope;
use nhacviec::deliver::templates::{Templates, sample_of};
use nhacviec::state::{Channel, TemplateKind};

fn templates() -> &'static (Templates, Envelope) {
    static T: OnceLock<(Templates, Envelope)> = OnceLock::new();
    T.get_or_init(|| {
        let (templates, diags) = Templates::load(None);
        let templates = templates.unwrap_or_else(|| panic!("the built-in templates: {diags:?}"));
        let text = r#"
[organization]
name = "Ủy ban nhân dân phường Thử"
[email]
from = "Nhắc việc <nhacviec@thu.example.vn>"
transport = "file"
[calendar]
holidays = "none"
[[unit]]
id = "vp"
name = "Văn phòng"
email = ["vp@thu.example.vn"]
[[rule]]
id = "r"
kind = "task"
title = "Việc"
period = "once"
due = { date = "2025-10-15" }
units = ["vp"]
"#;
        let today = chrono::NaiveDate::from_ymd_opt(2025, 9, 15).expect("a date");
        let loaded =
            nhacviec::config::load_str(Path::new("/nonexistent/nhacviec.toml"), text.into(), today);
        let cfg = loaded
            .config
            .unwrap_or_else(|| panic!("the config: {:?}", loaded.diagnostics));
        let envelope = Envelope::of(&cfg).expect("its envelope");
        (templates, envelope)
    })
}

/// The header names a built reminder has (lower case).
const HEADERS: [&str; 12] = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "list-id",
    "auto-submitted",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = input.split('\0');
    let name = parts.next().unwrap_or("").trim();
    let title = parts.next().unwrap_or("Việc").trim();
    let org = parts.next().unwrap_or("Ủy ban").trim();
    // What `check` lets through: names and titles of one line without control characters.
    if [name, title, org]
        .iter()
        .any(|s| s.is_empty() || s.chars().any(char::is_control))
    {
        return;
    }
    // Marked at both ends, so "the input shown raw in the HTML" is not a `<` of a tag.
    let (name, title, org) = (
        format!("⟦{name}⟧"),
        format!("⟦{title}⟧"),
        format!("⟦{org}⟧"),
    );
    let (name, title, org) = (name.as_str(), title.as_str(), org.as_str());
    let (templates, envelope) = templates();
    for kind in [
        TemplateKind::Before,
        TemplateKind::Due,
        TemplateKind::After,
        TemplateKind::Escalated,
    ] {
        let mut ctx = sample_of(kind);
        ctx["unit"]["name"] = name.into();
        ctx["recipient"]["name"] = name.into();
        ctx["rule"]["title"] = title.into();
        ctx["org"]["name"] = org.into();
        let Ok(rendered) = templates.render(kind, &ctx) else {
            panic!("a built-in template failed on {name:?} / {title:?}");
        };
        let date = chrono::DateTime::from_timestamp(1_760_000_000, 0).expect("a date");
        let out = Outgoing {
            channel: Channel::Email,
            key: "r/2025-10-15/vp",
            kind,
            context: &ctx,
            to_name: Some(name),
            to: "vp@thu.example.vn",
            message_id: "<r.2025-10-15.vp.before-5d.r1@thu.example.vn>",
            rendered: &rendered,
            date,
        };
        let message = match envelope.build(&out) {
            Ok(m) => m,
            Err(e) => panic!("cannot build the email for {name:?} / {title:?}: {e}"),
        };
        let bytes = message.formatted();
        let text = String::from_utf8_lossy(&bytes);
        let head = text.split("\r\n\r\n").next().unwrap_or("");
        let mut seen: Vec<String> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                continue; // a folded continuation
            }
            let field = line.split(':').next().unwrap_or("").to_ascii_lowercase();
            assert!(
                HEADERS.contains(&field.as_str()),
                "a header the input made: {line:?} in\n{head}"
            );
            seen.push(field);
        }
        for h in ["from", "to", "subject", "message-id"] {
            assert_eq!(seen.iter().filter(|s| *s == h).count(), 1, "{h} in\n{head}");
        }
        for s in [name, title, org] {
            if s.contains(['<', '>', '&', '"']) {
                assert!(
                    !rendered.html.contains(s),
                    "{s:?} unescaped in the HTML part"
                );
            }
        }
    }
});
