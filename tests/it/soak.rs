//! A year of faults: the soak test (`scripts/soak.sh`; CI runs a shorter year).
//!
//! 100 units (98 that report, the coordinator `vhxh` and the leadership `lanh-dao`) owe the
//! shipped config's rules plus two monthly ones; every unit is reminded by email and by
//! webhook. The daemon runs on a clock set to Mon 01/09/2025 08:00 going
//! `NHACVIEC_SOAK_SPEED` times real speed (5 000: a year in 105 minutes) for
//! `NHACVIEC_SOAK_DAYS` days (365), against a real SMTP server and a webhook receiver that
//! at random refuse connections, answer 4xx and 5xx, hang up after DATA (before or after
//! keeping the message) and stall (`NHACVIEC_SOAK_FAULTS` % of the time, 15). Meanwhile
//! it is SIGKILLed at random moments and restarted where its clock stood, given one SIGHUP
//! with a broken config and then one with a good one, and some obligations are marked done
//! (`nhacviec ack`). The random choices follow `NHACVIEC_SOAK_SEED` (printed).
//!
//! Afterwards, from the receivers' records and the database:
//! - every step the plan has up to the end, for an obligation not done before it, has its
//!   message rows, each `sent` (and received), `skipped` (a catch-up after a kill), or
//!   `failed` because a receiver refused it for good (a 554, a 400);
//! - a message is received at most once per attempt (one whose answer never came back,
//!   a server hanging up after keeping it or a timeout, is tried again: at least once, the
//!   resend has the same id) and once more per kill it was in flight at; nothing is
//!   received that the database does not hold;
//! - no reminder was enqueued on a day off (but at a restart's catch-up), none for an
//!   obligation after it was done, none sent an hour after that;
//! - nothing is left `sending` or `pending`;
//! - the admins were told once of the broken config.
//!
//! It prints the counts. It is `#[ignore]`d in the default run (it takes minutes); run it
//! with `cargo test --test it soak -- --ignored --nocapture`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike as _, NaiveDate, Utc, Weekday};
use chrono_tz::Asia::Ho_Chi_Minh;
use serde_json::{Value, json};

use crate::support::channels::{HookServer, Req};
use crate::support::config::{WEBHOOK_SECRET, free_port};
use crate::support::daemon::{Daemon, Setup};
use crate::support::db::{Row, at_ms};
use crate::support::smtp::{SmtpOpts, SmtpServer};
use crate::support::{REPO, read};

const START: &str = "2025-09-01T08:00:00+07:00";
const ADMIN: &str = "quantri@soak.example.vn";

/// A small deterministic generator (the seed is printed, so a run can be replayed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// A fraction in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.below(1_000_000) as f64 / 1_000_000.0)
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The reporting units: `u001` … `u098`.
fn reporting() -> Vec<String> {
    (1..=98).map(|i| format!("u{i:03}")).collect()
}

/// The config: the shipped rules and policies over 100 units, two monthly rules, email by
/// SMTP and a webhook per unit, the shipped calendar.
fn config(port: u16, smtp: u16, hooks: &HookServer) -> String {
    let shipped = read(&Path::new(REPO).join("config/nhacviec.toml"));
    let policies = &shipped[shipped
        .find("[policy.default]")
        .expect("the shipped config has policy.default")
        ..shipped.find("\n[[unit]]\n").expect("and units")];
    let rules = &shipped[shipped.find("\n[[rule]]\n").expect("and rules")..];
    let mut s = format!(
        r#"[organization]
name = "Ủy ban nhân dân phường Thử tải"
timezone = "Asia/Ho_Chi_Minh"
public_url = "http://127.0.0.1:{port}"
coordinator = "vhxh"
admins = ["{ADMIN}"]

[server]
listen = "127.0.0.1:{port}"
ack_per_minute = 100000

[email]
from = "Nhắc việc <nhacviec@soak.example.vn>"
transport = "smtp"
[email.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
max_per_minute = 1000000
timeout_seconds = 1

[channels.webhook]
secret_file = "secrets/webhook-secret"
max_per_minute = 1000000
timeout_seconds = 1

[calendar]
holidays = "vn"
include = ["calendar/vn-2025.toml", "calendar/vn-2026.toml"]

[digest]
time = "07:30"
to = ["lanh-dao"]

{policies}
[[unit]]
id = "vhxh"
name = "Phòng Văn hóa – Xã hội"
email = ["vhxh@soak.example.vn"]

[[unit]]
id = "lanh-dao"
name = "Lãnh đạo UBND phường"
email = ["lanhdao@soak.example.vn"]
"#
    );
    for u in reporting() {
        let _ = write!(
            s,
            "\n[[unit]]\nid = \"{u}\"\nname = \"Đơn vị {u}\"\nemail = [\"{u}@soak.example.vn\"]\nwebhook = \"{}\"\nescalate_to = [\"lanh-dao\"]\n",
            hooks.hook_url(&u)
        );
    }
    let list = |v: &[String]| {
        v.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all = reporting();
    let _ = write!(
        s,
        "\n[[group]]\nid = \"phong-ban\"\nunits = [{}]\n\n[[group]]\nid = \"don-vi-truc-thuoc\"\nunits = [{}]\n\n[[group]]\nid = \"don-vi-bao-cao\"\nunits = [{}]\n",
        list(&all[..10]),
        list(&all[10..]),
        list(&all)
    );
    s.push_str(
        r#"
[[rule]]
id = "bao-cao-thang"
kind = "report"
title = "Báo cáo tình hình thực hiện nhiệm vụ tháng"
period = "month"
due = { month = "next", day = 5, before = true }
units = ["don-vi-bao-cao"]

[[rule]]
id = "thong-ke-thang"
kind = "task"
title = "Cập nhật số liệu thống kê tháng"
period = "month"
due = { month = "last", day = 25 }
units = ["phong-ban"]
policy = "nhiem-vu"

"#,
    );
    s.push_str(rules);
    s
}

/// The webhook receiver's answers for one unit: `percent` % faults (5xx, 429, a 400 that
/// fails the message for good, a hang-up, a stall past the daemon's 1 s timeout), else 200.
fn hook_script(rng: &mut Rng, percent: u64, n: usize) -> Value {
    let ok = json!({"status": 200, "body": "ok"});
    Value::Array(
        (0..n)
            .map(|_| {
                if !rng.percent(percent) {
                    return ok.clone();
                }
                match rng.below(100) {
                    0..35 => json!({"status": 500, "body": "boom"}),
                    35..50 => json!({"status": 503, "body": "busy"}),
                    50..60 => json!({"status": 429, "headers": {"Retry-After": "1"}}),
                    60..70 => json!({"status": 400, "body": "no such hook"}),
                    70..85 => json!({"action": "hangup"}),
                    _ => json!({"action": "stall", "seconds": 1.5}),
                }
            })
            .collect(),
    )
}

fn write_chaos(path: &Path, percent: u64, seed: u64) {
    let text = json!({"percent": percent, "seed": seed, "spare": [ADMIN], "stall": 1.5});
    std::fs::write(path, text.to_string()).expect("write the chaos file");
}

/// Working days of 2025 and 2026 as `nhacviec calendar` lists their deviations, weekends
/// Saturday and Sunday.
fn working_days(d: &Daemon) -> impl Fn(NaiveDate) -> bool {
    let mut deviations: BTreeMap<NaiveDate, bool> = BTreeMap::new();
    for year in ["2025", "2026"] {
        let out = d.cli(&["calendar", "--year", year, "--format", "json"]);
        assert_eq!(out.status, 0, "{}", out.stderr);
        let days: Vec<Value> = serde_json::from_str(&out.stdout).expect("calendar JSON");
        for day in days {
            let date = day["date"].as_str().expect("date").parse().expect("a date");
            deviations.insert(date, day["working"].as_bool().expect("working"));
        }
    }
    move |d: NaiveDate| {
        deviations
            .get(&d)
            .copied()
            .unwrap_or(!matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
    }
}

/// The planned (obligation key, step, instant) from `start` to `end` (`nhacviec plan`).
fn planned(
    d: &Daemon,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<(String, String, DateTime<Utc>)> {
    let day = |t: DateTime<Utc>| t.with_timezone(&Ho_Chi_Minh).format("%Y-%m-%d").to_string();
    let out = d.cli(&[
        "plan",
        "--from",
        &day(start),
        "--to",
        &day(end),
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let plan: Vec<Value> = serde_json::from_str(&out.stdout).expect("plan JSON");
    let mut steps = Vec::new();
    for occ in plan {
        let key = format!(
            "{}/{}",
            occ["rule"].as_str().unwrap(),
            occ["period"].as_str().unwrap()
        );
        for ob in occ["obligations"].as_array().unwrap() {
            for st in ob["steps"].as_array().unwrap() {
                let at = DateTime::parse_from_rfc3339(st["at"].as_str().unwrap())
                    .unwrap()
                    .with_timezone(&Utc);
                if at >= start && at <= end {
                    steps.push((
                        format!("{key}/{}", ob["unit"].as_str().unwrap()),
                        st["step"].as_str().unwrap().to_string(),
                        at,
                    ));
                }
            }
        }
    }
    steps
}

/// A message id without its angle brackets (the webhook id's form).
fn bare(id: &str) -> String {
    id.trim_matches(['<', '>']).to_string()
}

/// Message ids that are in flight (`sending`) in the database now.
fn in_flight(d: &Daemon) -> BTreeSet<String> {
    d.rows()
        .into_iter()
        .filter(|r| r.status == "sending")
        .map(|r| bare(&r.message_id))
        .collect()
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
#[ignore = "minutes long: scripts/soak.sh runs it"]
fn a_year_of_faults() {
    let _alone = crate::support::heavy();
    let days: i64 = env_or("NHACVIEC_SOAK_DAYS", 365);
    let speed: u32 = env_or("NHACVIEC_SOAK_SPEED", 5_000);
    let percent: u64 = env_or("NHACVIEC_SOAK_FAULTS", 15);
    let seed: u64 = env_or(
        "NHACVIEC_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    let kills: usize = env_or("NHACVIEC_SOAK_KILLS", (days / 30 + 2) as usize);
    println!(
        "soak: {days} days at {speed}x, {percent}% faults, {kills} kills, NHACVIEC_SOAK_SEED={seed}"
    );
    let mut rng = Rng(seed);

    let chaos = crate::support::TempDir::new();
    let chaos_file = chaos.path.join("chaos.json");
    write_chaos(&chaos_file, percent, seed);
    let smtp = SmtpServer::start(SmtpOpts {
        chaos: Some(chaos_file.clone()),
        ..SmtpOpts::default()
    });
    let hooks = HookServer::start();
    for u in reporting() {
        hooks.script(
            &format!("/hook/{u}"),
            hook_script(&mut rng, percent, 600),
            None,
        );
    }
    let port = free_port();
    let good = config(port, smtp.port, &hooks);
    let mut files = vec![(
        "secrets/webhook-secret".to_string(),
        format!("{WEBHOOK_SECRET}\n"),
    )];
    for year in ["2025", "2026"] {
        let name = format!("calendar/vn-{year}.toml");
        files.push((
            name.clone(),
            read(&Path::new(REPO).join("config").join(&name)),
        ));
    }
    let mut d = Setup::text(good.clone(), port, files)
        .clock(START)
        .speed(speed)
        .args(&["--log-format", "json"])
        .start();
    let start = d.now();
    let end = start + chrono::Duration::days(days);
    let real = Duration::from_secs_f64(
        (end - start).num_milliseconds() as f64 / 1000.0 / f64::from(speed),
    );

    // The events, as fractions of the run: kills (never while the broken config is in the
    // file: the daemon would refuse to start on it), the broken and the good reload, acks.
    let mut kill_at: Vec<f64> = (0..kills)
        .map(|_| {
            let f = rng.between(0.03, 0.9);
            if (0.28..0.42).contains(&f) {
                f + 0.15
            } else {
                f
            }
        })
        .collect();
    kill_at.sort_by(f64::total_cmp);
    let mut ack_at: Vec<f64> = (0..(days / 4 + 5))
        .map(|_| rng.between(0.02, 0.95))
        .collect();
    ack_at.sort_by(f64::total_cmp);
    let (broken_at, good_at) = (0.3, 0.38);
    let broken = good.replace("units = [\"phong-ban\"]", "units = [\"phong-bna\"]");
    assert_ne!(broken, good);

    let mut inflight: BTreeSet<String> = BTreeSet::new();
    // The first start catches up like a restart.
    let mut restarts: Vec<DateTime<Utc>> = vec![
        DateTime::parse_from_rfc3339(START)
            .expect("START is RFC 3339")
            .with_timezone(&Utc),
    ];
    let mut acks: Vec<(String, DateTime<Utc>)> = Vec::new();
    let (mut reloads, mut ki, mut ai) = (0, 0, 0);
    let began = Instant::now();
    loop {
        let f = began.elapsed().as_secs_f64() / real.as_secs_f64();
        if f >= 1.0 {
            break;
        }
        if ki < kill_at.len() && f >= kill_at[ki] {
            ki += 1;
            let at = d.now();
            d.kill();
            inflight.extend(in_flight(&d));
            restarts.push(at);
            d.restart_at(&at.to_rfc3339(), speed);
        }
        if reloads == 0 && f >= broken_at {
            reloads = 1;
            d.write_config(&broken);
            d.signal("HUP");
        }
        if reloads == 1 && f >= good_at {
            reloads = 2;
            d.write_config(&good);
            d.signal("HUP");
        }
        // `ack` reads the config file too: none while the broken one is in it.
        if ai < ack_at.len() && f >= ack_at[ai] && reloads != 1 {
            ai += 1;
            // A unit answers "done" for one of its open obligations that has been reminded.
            let open: Vec<String> = d
                .rows()
                .into_iter()
                .filter(|r| ["before", "due", "after"].contains(&r.template.as_str()))
                .map(|r| r.obligation)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|k| !acks.iter().any(|(a, _)| a == k))
                .collect();
            if !open.is_empty() {
                let key = open[rng.below(open.len() as u64) as usize].clone();
                let now = d.now();
                let out = d.cli_at(&now.to_rfc3339(), &["ack", "--obligation", &key, "--done"]);
                assert_eq!(out.status, 0, "{}", out.stderr);
                acks.push((key, now));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    // The faults stop; what waits for a retry goes out, then the daemon stops.
    write_chaos(&chaos_file, 0, seed);
    hooks.reset();
    let drained = d.wait("the outbox to drain", |d| {
        let rows = d.rows();
        (!rows
            .iter()
            .any(|r| r.status == "pending" || r.status == "sending"))
        .then_some(rows)
    });
    let stopped_at = d.now();
    d.stop();
    let rows: Vec<Row> = d.rows();
    assert!(rows.len() >= drained.len());

    // What the receivers got.
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    let mut admin_notices = 0;
    for entry in std::fs::read_dir(&smtp.dir)
        .expect("the SMTP server's folder")
        .flatten()
    {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "json") {
            let m: Value = serde_json::from_str(&read(&p)).expect("a message summary");
            let id = bare(m["message_id"].as_str().unwrap_or_default());
            if m["rcpt_tos"]
                .as_array()
                .is_some_and(|r| r.iter().any(|a| a == ADMIN))
                && rows.iter().any(|r| {
                    bare(&r.message_id) == id && r.obligation.starts_with("admin/config-error/")
                })
            {
                admin_notices += 1;
            }
            *received.entry(id).or_default() += 1;
        }
    }
    let smtp_log = lines_of(&smtp.dir.join("log.jsonl"));
    let mut chaos_kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept_then_hung_up: BTreeSet<String> = BTreeSet::new();
    let mut refused_for_good: BTreeSet<String> = BTreeSet::new();
    for e in smtp_log.iter().filter(|e| e["event"] == "chaos") {
        let kind = e["kind"].as_str().unwrap_or("?").to_string();
        let id = bare(e["message_id"].as_str().unwrap_or_default());
        match kind.as_str() {
            "save-drop" => {
                kept_then_hung_up.insert(id);
            }
            "554" => {
                refused_for_good.insert(id);
            }
            _ => {}
        }
        *chaos_kinds.entry(format!("smtp {kind}")).or_default() += 1;
    }
    let hook_reqs: Vec<Req> = lines_of(&hooks.dir().join("requests.jsonl"))
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    for r in &hook_reqs {
        let id = r.header("webhook-id").unwrap_or_default().to_string();
        match (r.status(), r.answer["action"].as_str()) {
            (Some(200), _) => *received.entry(id).or_default() += 1,
            (Some(400), _) => {
                refused_for_good.insert(id);
                *chaos_kinds.entry("webhook 400".into()).or_default() += 1;
            }
            (Some(s), _) => *chaos_kinds.entry(format!("webhook {s}")).or_default() += 1,
            (None, Some(a)) => *chaos_kinds.entry(format!("webhook {a}")).or_default() += 1,
            (None, None) => {}
        }
    }

    // Every row: a final state, and `sent` ones received; `failed` ones refused for good.
    let mut problems: Vec<String> = Vec::new();
    let ids: BTreeSet<String> = rows.iter().map(|r| bare(&r.message_id)).collect();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.status.as_str()).or_default() += 1;
        let id = bare(&r.message_id);
        match r.status.as_str() {
            "sent" if !received.contains_key(&id) => {
                problems.push(format!("sent but never received: {r:?}"));
            }
            "failed" if !refused_for_good.contains(&id) => {
                problems.push(format!("failed without a refusal for good: {r:?}"));
            }
            "sent" | "failed" | "skipped" => {}
            other => problems.push(format!("left {other}: {r:?}")),
        }
    }
    // Nothing received that the database does not hold; at most one copy per attempt (an
    // attempt whose answer never came back, a hang-up after the message was kept or a
    // timeout on a loaded machine, is tried again: at least once) and one more for each
    // kill it was in flight at.
    let attempts: BTreeMap<String, i64> = rows
        .iter()
        .map(|r| (bare(&r.message_id), r.attempts))
        .collect();
    let mut duplicates = 0;
    for (id, n) in &received {
        if !ids.contains(id) {
            problems.push(format!("received but not in the database: {id}"));
        }
        if *n > 1 {
            duplicates += n - 1;
            let tries = usize::try_from(attempts.get(id).copied().unwrap_or(1)).unwrap_or(1);
            let allowed = tries.max(1) + usize::from(inflight.contains(id)) * kills;
            if *n > allowed {
                problems.push(format!(
                    "{id} received {n} times in {tries} attempts (in flight at a kill: {})",
                    inflight.contains(id)
                ));
            }
        }
    }
    // No reminder enqueued on a day off, but a restart's catch-up.
    let working = working_days(&d);
    let after_restart = |t: DateTime<Utc>| {
        restarts
            .iter()
            .any(|r| t >= *r && t < *r + chrono::Duration::hours(6))
    };
    let reminders = ["before", "due", "after", "escalated"];
    for r in rows
        .iter()
        .filter(|r| reminders.contains(&r.template.as_str()))
    {
        let t = at_ms(r.created_at);
        let day = t.with_timezone(&Ho_Chi_Minh).date_naive();
        if !working(day) && !after_restart(t) {
            problems.push(format!("enqueued on a day off ({day}): {r:?}"));
        }
    }
    // Nothing for an obligation after it was done.
    for (key, at) in &acks {
        for r in rows
            .iter()
            .filter(|r| &r.obligation == key && r.template != "resolved")
        {
            if at_ms(r.created_at) > *at {
                problems.push(format!("enqueued after done at {at}: {r:?}"));
            }
            if r.sent_at
                .is_some_and(|s| at_ms(s) > *at + chrono::Duration::hours(1))
            {
                problems.push(format!("sent after done at {at}: {r:?}"));
            }
        }
    }
    // Every planned step up to the end has its rows, but for an obligation done first.
    let have: BTreeSet<(&str, &str)> = rows
        .iter()
        .map(|r| (r.obligation.as_str(), r.step.as_str()))
        .collect();
    let plan = planned(&d, start, stopped_at - chrono::Duration::hours(1));
    let mut planned_steps = 0;
    for (key, step, at) in &plan {
        let done_before = acks.iter().any(|(k, t)| k == key && t <= at);
        if done_before {
            continue;
        }
        planned_steps += 1;
        if !have.contains(&(key.as_str(), step.as_str())) {
            let its: Vec<String> = rows
                .iter()
                .filter(|r| &r.obligation == key)
                .map(|r| {
                    format!(
                        "{} {} {} created {}",
                        r.step,
                        r.channel,
                        r.status,
                        at_ms(r.created_at)
                    )
                })
                .collect();
            problems.push(format!(
                "planned but never enqueued: {key} {step} at {at}; its rows: {its:?}; restarts {restarts:?}"
            ));
        }
    }
    // The admins were told once of the broken config.
    let notices: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.obligation.starts_with("admin/config-error/"))
        .map(|r| r.obligation.as_str())
        .collect();
    if notices.len() != 1 || admin_notices != 1 {
        let log: Vec<String> = d
            .logs()
            .lines()
            .filter(|l| l.contains("config") || l.contains("reload") || l.contains("HUP"))
            .map(String::from)
            .collect();
        problems.push(format!(
            "{} broken-config notices in the database, {admin_notices} received (want 1 and 1); the log:\n{}",
            notices.len(),
            log.join("\n")
        ));
    }

    println!(
        "soak: {} days in {:.0} s; {} planned steps, {} message rows {:?}; {} deliveries received, {} duplicates ({} in flight at {} kills, {} kept then hung up); faults {:?}; {} acks (done); reloads: 1 broken (1 notice), 1 good",
        days,
        began.elapsed().as_secs_f64(),
        planned_steps,
        rows.len(),
        by_status,
        received.values().sum::<usize>(),
        duplicates,
        inflight.len(),
        kills,
        kept_then_hung_up.len(),
        chaos_kinds,
        acks.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems (NHACVIEC_SOAK_SEED={seed}):\n{}",
        problems.len(),
        problems
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(planned_steps > 0 && by_status.get("sent").is_some_and(|n| *n > 0));
}
