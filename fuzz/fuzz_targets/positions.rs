//! What the config and schedule targets check of every diagnostic: a position, when it
//! has one, is inside the text (line 1 to the last line, column 1 to one past the line's
//! last character), and the message is one line.

use nhacviec::config::Diagnostic;

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
