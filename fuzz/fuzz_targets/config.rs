//! The config reader and `check` on arbitrary text: never a panic, every diagnostic at a
//! position inside the file, and a config either loads or says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "positions.rs"]
mod positions;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    positions::check_config(text);
});
