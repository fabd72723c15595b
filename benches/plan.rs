//! Benchmark: computing (not printing) one year's plan for 10 000 units × 50 rules.
//!
//! The target (from the issue): with the default policy, `plan::plan` over 2026-01-01 to
//! 2026-12-31 for 10 000 units and 50 rules takes under 1 s and the process peaks under
//! 300 MB of resident memory, in release mode.
//!
//! What it does:
//!
//! 1. generates a config text in memory: `[organization]` (Asia/Ho_Chi_Minh), 10 000
//!    `[[unit]]`s (`u00001`…, Vietnamese names, one `@example.invalid` address each) and
//!    50 `[[rule]]`s owed by `all` with no `policy` key (so the built-in default policy):
//!    20 monthly, 15 quarterly, 5 half-year, 2 nine-months, 3 yearly and 5 one-offs spread
//!    over 2026; no `[calendar]`, so the built-in 2025/2026 official schedules apply;
//! 2. loads it with `config::load_str` and reports that time separately (any error aborts
//!    with the diagnostics and exit status 2);
//! 3. times `plan::plan(&cfg, 2026-01-01, 2026-12-31, Filter::default())`: one warm-up and
//!    10 measured runs (min / median / max), only one plan alive at a time, each result
//!    passed through `std::hint::black_box`; it prints the counts of occurrences,
//!    obligations and steps (each obligation times its occurrence's steps);
//! 4. reads `VmHWM` (peak resident set) and `VmRSS` from `/proc/self/status` right after the
//!    load and at the end, in MB (10^6 bytes; the kernel's kB are KiB);
//! 5. prints one summary line against the targets and exits 1 if one is missed.
//!
//! Run it with `cargo bench --bench plan` (release profile). It is a plain binary
//! (`harness = false`), never part of `cargo test`, so it can be used as a check. The
//! figures quoted in ARCHITECTURE.md come from it, with the machine they were measured on.

use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use nhacviec::config::{self, Config, Severity};
use nhacviec::plan::{self, Filter, Plan};

const UNITS: usize = 10_000;
const RUNS: usize = 10;
const TARGET_TIME: Duration = Duration::from_secs(1);
const TARGET_MB: f64 = 300.0;

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("bad date {y}-{m}-{d}"))
}

/// The config text: organization, units and rules (see the module doc).
fn config_text() -> String {
    use std::fmt::Write;

    const KINDS: [&str; 8] = [
        "Trường Mầm non",
        "Trường Tiểu học",
        "Trường THCS",
        "Trạm Y tế",
        "Ủy ban nhân dân xã",
        "Phòng Văn hóa – Xã hội",
        "Trung tâm Phục vụ hành chính công",
        "Ban Chỉ huy Quân sự",
    ];
    const PLACES: [&str; 10] = [
        "Đông Hải",
        "Hòa Bình",
        "Tân Phú",
        "Phước Long",
        "Bình Thạnh",
        "Hưng Yên",
        "Quảng Điền",
        "Nghĩa Đô",
        "Thủy Nguyên",
        "Long Biên",
    ];

    let mut s = String::with_capacity(UNITS * 160 + 50 * 300);
    s.push_str(
        "[organization]\n\
         name = \"Ủy ban nhân dân tỉnh (benchmark)\"\n\
         timezone = \"Asia/Ho_Chi_Minh\"\n\
         coordinator = \"u00001\"\n\
         admins = [\"quantri@example.invalid\"]\n\n",
    );
    for i in 1..=UNITS {
        let kind = KINDS[i % KINDS.len()];
        let place = PLACES[(i / KINDS.len()) % PLACES.len()];
        let _ = write!(
            s,
            "[[unit]]\nid = \"u{i:05}\"\nname = \"{kind} {place} số {i}\"\nemail = [\"u{i:05}@example.invalid\"]\n"
        );
        if i > 1 {
            // The leadership (u00001) is copied on escalated notices, as in the shipped config.
            s.push_str("escalate_to = [\"u00001\"]\n");
        }
        s.push('\n');
    }

    // (period, which, due, kind) per rule; "which" empty means every period of the year.
    let mut rules: Vec<(&str, &str, String, &str)> = Vec::new();
    let monthly = [
        r#"{ month = "next", day = 5, before = true }"#,
        r#"{ month = "next", day = 10 }"#,
        r#"{ month = "next", day = 15 }"#,
        r#"{ month = "last", day = "last" }"#,
        r#"{ month = "last", day = 20 }"#,
    ];
    for i in 0..20 {
        rules.push(("month", "", monthly[i % monthly.len()].into(), "report"));
    }
    let quarterly = [
        r#"{ month = "next", day = 5, before = true }"#,
        r#"{ month = "last", day = 15 }"#,
        r#"{ month = "next", day = 10 }"#,
    ];
    for i in 0..15 {
        // A few quarterly reports are owed only for some quarters.
        let which = if i % 5 == 4 { "[1, 3]" } else { "" };
        rules.push((
            "quarter",
            which,
            quarterly[i % quarterly.len()].into(),
            "report",
        ));
    }
    for i in 0..5 {
        let which = if i % 2 == 0 { "[1]" } else { "" };
        let due = if i % 2 == 0 {
            r#"{ month = "next", day = 5, before = true }"#
        } else {
            r#"{ month = "last", day = 20 }"#
        };
        rules.push(("half-year", which, due.into(), "report"));
    }
    for _ in 0..2 {
        let due = r#"{ month = "next", day = 5, before = true }"#;
        rules.push(("nine-months", "", due.into(), "report"));
    }
    for i in 0..3 {
        let due = if i == 0 {
            r#"{ month = "next", day = 5, before = true }"#
        } else {
            r#"{ month = "last", day = 15 }"#
        };
        rules.push(("year", "", due.into(), "report"));
    }
    // One-offs spread over the year; 2026-02-17 (Tết) and 2026-05-01 fall on days off.
    for d in [
        "2026-02-17",
        "2026-04-10",
        "2026-05-01",
        "2026-08-19",
        "2026-11-20",
    ] {
        rules.push(("once", "", format!(r#"{{ date = "{d}" }}"#), "task"));
    }
    assert_eq!(rules.len(), 50);

    for (n, (period, which, due, kind)) in rules.iter().enumerate() {
        let n = n + 1;
        let _ = writeln!(
            s,
            "[[rule]]\nid = \"r{n:02}-{period}\"\nkind = \"{kind}\"\n\
             title = \"Báo cáo số {n}: tình hình, kết quả thực hiện nhiệm vụ\"\n\
             reference = \"Kế hoạch số {n}/KH-UBND ngày 05/01/2026\"\n\
             period = \"{period}\""
        );
        if !which.is_empty() {
            let _ = writeln!(s, "which = {which}");
        }
        let _ = writeln!(s, "due = {due}\nunits = [\"all\"]\n");
    }
    s
}

/// `VmHWM` and `VmRSS` from /proc/self/status, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/status: {e}"));
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no `{name}` in /proc/self/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Occurrences, obligations and steps (each obligation times its occurrence's steps).
fn counts(p: &Plan) -> (usize, usize, usize) {
    let steps = p
        .obligations
        .iter()
        .map(|o| p.occurrences[o.occurrence as usize].steps.len())
        .sum();
    (p.occurrences.len(), p.obligations.len(), steps)
}

fn load() -> Result<Config, ExitCode> {
    let t = Instant::now();
    let text = config_text();
    let gen_time = t.elapsed();
    let bytes = text.len();

    let t = Instant::now();
    let loaded = config::load_str(
        Path::new("/nonexistent/bench/nhacviec.toml"),
        text,
        date(2026, 1, 1),
    );
    let load_time = t.elapsed();
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let Some(cfg) = loaded.config else {
        eprintln!("the generated config does not load:");
        for d in &loaded.diagnostics {
            eprintln!("  {d}");
        }
        return Err(ExitCode::from(2));
    };
    println!(
        "config: {} units, {} rules, {:.1} MB of TOML (generated in {:.1} ms)",
        cfg.units.len(),
        cfg.rules.len(),
        mb(bytes as u64),
        ms(gen_time)
    );
    println!(
        "load:   {:.1} ms, {warnings} warning(s) (expected: no status page, no 2027 schedule)",
        ms(load_time)
    );
    for d in &loaded.diagnostics {
        println!("        {d}");
    }
    Ok(cfg)
}

fn main() -> ExitCode {
    let cfg = match load() {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let (hwm_load, rss_load) = memory();
    println!(
        "memory after load: peak {:.1} MB, resident {:.1} MB",
        mb(hwm_load),
        mb(rss_load)
    );

    let (from, to) = (date(2026, 1, 1), date(2026, 12, 31));
    let mut times = Vec::with_capacity(RUNS);
    let mut seen = None;
    for run in 0..=RUNS {
        let t = Instant::now();
        let p = black_box(plan::plan(
            black_box(&cfg),
            black_box(from),
            black_box(to),
            Filter::default(),
        ));
        let elapsed = t.elapsed();
        let c = counts(&p);
        if *seen.get_or_insert(c) != c {
            eprintln!("run {run} gave {c:?}, earlier runs {seen:?}: the plan is not deterministic");
            return ExitCode::FAILURE;
        }
        if run > 0 {
            times.push(elapsed);
        }
        drop(black_box(p));
    }
    times.sort_unstable();
    let (min, max) = (times[0], times[RUNS - 1]);
    let median = (times[(RUNS - 1) / 2] + times[RUNS / 2]) / 2;
    let (occurrences, obligations, steps) = seen.unwrap_or_default();
    println!("plan {from} – {to}: 1 warm-up + {RUNS} runs");
    println!(
        "        min {:.1} ms, median {:.1} ms, max {:.1} ms",
        ms(min),
        ms(median),
        ms(max)
    );
    println!("        {occurrences} occurrences, {obligations} obligations, {steps} steps");

    let (hwm, rss) = memory();
    println!(
        "memory at end: peak {:.1} MB (of which {:.1} MB by the time the config was loaded), resident {:.1} MB",
        mb(hwm),
        mb(hwm_load),
        mb(rss)
    );

    let time_ok = median < TARGET_TIME;
    let mem_ok = mb(hwm) < TARGET_MB;
    println!(
        "plan: median {:.1} ms (target < {} s){}; peak RSS {:.0} MB (target < {TARGET_MB:.0} MB){}",
        ms(median),
        TARGET_TIME.as_secs(),
        if time_ok { "" } else { " MISSED" },
        mb(hwm),
        if mem_ok { "" } else { " MISSED" },
    );
    if time_ok && mem_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
