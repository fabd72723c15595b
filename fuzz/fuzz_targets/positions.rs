//! What the config and schedule targets check of every diagnostic: a position, when it
//! has one, is inside the text (line 1 to the last line, column 1 to one past the line's
//! last character), and the message is one line. Shared with the normal suite's corpus
//! replay (`tests/it/fuzz_corpus.rs`), which includes this file too.

use std::path::Path;

use nhacviec::config::{Diagnostic, Severity};

/// The config target's whole check of one text: read as a config beside a made-up path,
/// every diagnostic about the file at a position inside it, and a config loaded exactly when
/// no error was reported. Returns how many diagnostics were about the file.
#[allow(
    dead_code,
    reason = "the schedule target includes this file and does not use it"
)]
pub fn check_config(text: &str) -> usize {
    let today = chrono::NaiveDate::from_ymd_opt(2025, 9, 15).expect("a date");
    let path = Path::new("/nonexistent/nhacviec.toml");
    let loaded = nhacviec::config::load_str(path, text.to_string(), today);
    let ours: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.file == path)
        .cloned()
        .collect();
    check(text, &ours);
    let errors = loaded
        .diagnostics
        .iter()
        .any(|d| d.severity == Severity::Error);
    assert_eq!(loaded.config.is_some(), !errors, "{:?}", loaded.diagnostics);
    ours.len()
}

pub fn check(text: &str, diags: &[Diagnostic]) {
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diags {
        assert!(!d.message.is_empty(), "an empty message: {d:?}");
        assert!(
            !d.message.contains(['\n', '\r']),
            "a message of several lines: {d:?}"
        );
        if let Some((line, col)) = d.position {
            assert!(
                line >= 1 && line <= lines.len(),
                "line outside the text: {d:?}"
            );
            let len = lines[line - 1].chars().count();
            assert!(
                col >= 1 && col <= len + 1,
                "column outside line {line} ({len} characters): {d:?}"
            );
        }
    }
}
