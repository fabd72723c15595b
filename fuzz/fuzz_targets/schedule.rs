//! An official yearly calendar schedule file (`config/calendar/vn-2026.toml`) on arbitrary
//! text: never a panic, every diagnostic at a position inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

#[path = "positions.rs"]
mod positions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let diags = nhacviec::config::check_schedule(Path::new("vn-2026.toml"), text.to_string());
    positions::check(text, &diags);
});
