//! The fuzzers' committed corpora replayed through the same checks as the fuzz targets
//! (`fuzz/fuzz_targets/config.rs`, `schedule.rs`), in the normal suite: every input the
//! fuzzers kept, on the stable toolchain. (Fuzzing itself needs nightly: ARCHITECTURE.md,
//! Fuzzing.)

use std::path::Path;

use crate::support::REPO;

#[path = "../../fuzz/fuzz_targets/positions.rs"]
mod positions;

/// At most this many inputs of each corpus are replayed (every n-th by name), so the suite
/// stays quick: a debug build reads about a hundred configs a second.
const SAMPLE: usize = 120;

/// The files of a corpus, as text (the fuzz targets skip input that is not UTF-8): the
/// seeds and a sample of [`SAMPLE`] of the rest, spread evenly over the names.
fn corpus(name: &str) -> Vec<(String, String)> {
    let dir = Path::new(REPO).join("fuzz/corpus").join(name);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let p = e.ok()?.path();
            let text = String::from_utf8(std::fs::read(&p).ok()?).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect();
    out.sort();
    // The seeds (named files: the shipped config, the test fixtures) always; of what the
    // fuzzer kept (named by their SHA-1), a sample.
    let is_seed = |p: &str| p.rsplit('/').next().is_none_or(|n| n.len() != 40);
    let (seeds, found): (Vec<_>, Vec<_>) = out.into_iter().partition(|(p, _)| is_seed(p));
    let step = found.len().div_ceil(SAMPLE).max(1);
    seeds
        .into_iter()
        .chain(found.into_iter().step_by(step))
        .collect()
}

#[test]
fn the_config_corpus_loads_or_says_why_at_positions_inside_each_file() {
    let inputs = corpus("config");
    assert!(inputs.len() >= 20, "{} inputs", inputs.len());
    let mut checked = 0;
    for (name, text) in &inputs {
        let result = std::panic::catch_unwind(|| positions::check_config(text));
        checked += result.unwrap_or_else(|_| panic!("{name}"));
    }
    assert!(checked > inputs.len(), "{checked} diagnostics checked");
}

#[test]
fn the_schedule_corpus_reports_at_positions_inside_each_file() {
    let inputs = corpus("schedule");
    assert!(inputs.len() >= 2, "{} inputs", inputs.len());
    for (name, text) in &inputs {
        let diags = nhacviec::config::check_schedule(Path::new("vn-2026.toml"), text.clone());
        let result = std::panic::catch_unwind(|| positions::check(text, &diags));
        assert!(result.is_ok(), "{name}");
    }
}
