//! The config reader and `check` on arbitrary text: never a panic, every diagnostic at a
//! position inside the file, and a config either loads or says why.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "positions.rs"]
mod positions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let today = chrono::NaiveDate::from_ymd_opt(2025, 9, 15).expect("a date");
    let path = Path::new("/nonexistent/nhacviec.toml");
    let loaded = nhacviec::config::load_str(path, text.to_string(), today);
    let ours: Vec<_> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.file == path)
        .cloned()
        .collect();
    positions::check(text, &ours);
    let errors = loaded
        .diagnostics
        .iter()
        .any(|d| d.severity == nhacviec::config::Severity::Error);
    assert_eq!(loaded.config.is_some(), !errors, "{:?}", loaded.diagnostics);
});
