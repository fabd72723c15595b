//! Messages as Python's own MIME parser reads them (`tests/smtp/server.py`'s summary), for
//! the `.eml` files of the file transport and `preview --format eml`; RFC 2047 words decoded
//! as the RFC says; the acknowledgement link of a message.
//!
//! Display names: lettre splits a long UTF-8 name into several RFC 2047 encoded words, even
//! inside a word; RFC 2047 §6.2 says the white space between encoded words is dropped, but
//! Python's `email.policy.default` keeps it in address headers ("Thử nghiệ m"), so names
//! are decoded here with [`decode_words`] (Python's `email.header`, which follows the RFC).

use std::path::Path;
use std::process::Command;

use super::smtp::Captured;
use super::{REPO, TempDir, python};

/// Runs a Python snippet with arguments; returns its stdout.
pub fn run_python(code: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Parses a whole message with the SMTP test server's own summary, so it reads as a
/// [`Captured`] message.
pub fn parse_eml(eml: &[u8]) -> Captured {
    let tmp = TempDir::new();
    let path = tmp.path.join("m.eml");
    std::fs::write(&path, eml).unwrap();
    let code = "import json, sys, types\n\
                sys.path.insert(0, sys.argv[1])\n\
                import server\n\
                env = types.SimpleNamespace(original_content=open(sys.argv[2], 'rb').read(),\n\
                                            mail_from=None, rcpt_tos=[])\n\
                print(json.dumps(server.summary(env), ensure_ascii=False))\n";
    let smtp_dir = Path::new(REPO).join("tests/smtp");
    let json = run_python(code, &[smtp_dir.to_str().unwrap(), path.to_str().unwrap()]);
    Captured {
        n: 0,
        eml: eml.to_vec(),
        json: serde_json::from_str(&json).unwrap(),
    }
}

/// The `.eml` files in `dir`, parsed, by file name.
pub fn emls(dir: &Path) -> Vec<Captured> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|p| parse_eml(&std::fs::read(p).unwrap()))
        .collect()
}

/// Decodes RFC 2047 words in a raw header value, as the RFC says (white space between
/// adjacent encoded words dropped): `=?utf-8?b?...?= <a@b>` → `Tên <a@b>`.
pub fn decode_words(raw: &str) -> String {
    let code = "import sys, email.header\n\
                print(str(email.header.make_header(email.header.decode_header(sys.argv[1]))), end='')\n";
    run_python(code, &[raw])
}

/// The one raw value of a header; panics unless there is exactly one.
pub fn one_header(m: &Captured, name: &str) -> String {
    let values = m.header(name);
    assert_eq!(values.len(), 1, "{name}: {values:?} in {:#}", m.json);
    values[0].clone()
}

/// The token of the one acknowledgement link `{base}/a/<32 lowercase hex>` in `text`;
/// panics unless there is exactly one distinct link.
pub fn ack_token(text: &str, base: &str) -> String {
    let prefix = format!("{base}/a/");
    let mut tokens: Vec<String> = text
        .match_indices(&prefix)
        .map(|(i, _)| {
            text[i + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect()
        })
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        1,
        "one ack link to {base} expected in\n{text}"
    );
    let token = tokens.pop().unwrap();
    assert!(
        token.len() == 32
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a 128-bit token: {token}"
    );
    token
}

/// The token of a message's acknowledgement link, the same in its text and HTML parts.
pub fn message_token(m: &Captured, base: &str) -> String {
    let text = ack_token(&m.text("text/plain"), base);
    let html = ack_token(&m.text("text/html"), base);
    assert_eq!(text, html, "the two parts link to the same obligation");
    text
}
