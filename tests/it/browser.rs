//! The pages in a real browser: Debian's headless Chromium, driven by Playwright
//! (`tests/browser/driver.py`), against the real daemon, its clock set to the usual first
//! start.
//!
//! The daemon starts with four units owing the usual one-off task (its before-5d step
//! already past, so the first start mails every unit at once, through the file transport)
//! and a status-page password with Vietnamese letters. Before the browser opens, `nhacviec ack`
//! marks one unit done from the command line. Then the browser, as a person would:
//!
//! - opens the ack link of another unit's message (the `.eml`, decoded), at desktop and at
//!   phone width (390 px), and presses "Đã nhận" on the phone;
//! - opens /status with a wrong password (the 401 page), then with the right one: the grid
//!   must show the units in config order with done, seen and pending cells, in their
//!   colours, a "Đánh dấu hoàn thành" button on every cell not done; it presses that
//!   button in a pending cell and the page it lands on, and /status loaded again, must show
//!   the cell done;
//! - opens `yt`'s own page (from `nhacviec links`) at desktop width and at a small phone's
//!   (360 px), and presses "Đã hoàn thành / đã nộp" there: the obligation must move from
//!   the open list to the done list;
//! - saves screenshots into `target/screenshots/`: `ack.png`, `ack-phone.png` (390 px wide),
//!   `ack-phone-seen.png`, `status.png`, `status-done.png`, `status-phone.png`, `unit.png`,
//!   `unit-phone.png` and `unit-phone-done.png` (360 px).
//!
//! Then the database must say the same: one ack per action with its source (`cli`, `web`
//! with Chromium's user agent, `status`) and the obligations' states. Beyond the states,
//! the test checks what a person sees: the Vietnamese text drawn with one font (no glyph
//! from a fallback font), white on every state colour at a contrast of at least 4.5:1
//! (WCAG AA), the ack page no wider than the phone, and its buttons at least 44 px tall.
//!
//! It needs `/usr/bin/chromium` (or `NHACVIEC_TEST_CHROMIUM`) and the venv's Python with
//! Playwright (`NHACVIEC_TEST_PYTHON`): `bash scripts/test.sh` installs both. The driver
//! gets [`DRIVER_TIMEOUT`] and is killed after it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::config::{
    Cfg, ORG, TUYEN_TRUYEN, TUYEN_TRUYEN_DUE, tuyen_truyen, tuyen_truyen_key, units,
};
use crate::support::daemon::Setup;
use crate::support::{REPO, python, read, wait_at_most};

/// How long the browser run may take (it takes a few seconds).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);

/// The `/status` password: Vietnamese letters, so the browser's Basic credentials must be
/// UTF-8, as the page's challenge (`charset="UTF-8"`) asks.
const PASSWORD: &str = "mật khẩu quản trị";

const TITLE: &str = TUYEN_TRUYEN;

/// The units owing the rule, in config order, with their names; `vhxh`, the coordinator,
/// owes nothing and is not in the grid.
const OWING: [(&str, &str); 4] = [
    ("vp", "Văn phòng HĐND và UBND phường"),
    ("kt", "Phòng Kinh tế – Hạ tầng – Đô thị"),
    ("hcc", "Trung tâm Phục vụ hành chính công"),
    ("yt", "Trạm Y tế phường"),
];

/// The state colours of the pages' stylesheet, as the browser computes them.
const DONE: &str = "rgb(21, 128, 61)";
const SEEN: &str = "rgb(29, 78, 216)";
const PENDING: &str = "rgb(180, 83, 9)";
const OVERDUE: &str = "rgb(185, 28, 28)";
const UPCOMING: &str = "rgb(75, 85, 99)";
const WHITE: &str = "rgb(255, 255, 255)";

fn config() -> Cfg {
    let owing: Vec<&str> = OWING.iter().map(|(id, _)| *id).collect();
    Cfg::new()
        .admin_password(PASSWORD)
        .units(units(&owing))
        .rule(tuyen_truyen(&owing))
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("NHACVIEC_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "no Chromium at {}: run the tests with `bash scripts/test.sh` (it installs Debian's \
         chromium), or set NHACVIEC_TEST_CHROMIUM",
        path.display()
    );
    path
}

/// `target/screenshots/`, emptied of earlier screenshots.
fn screenshot_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap();
    let dir = target.join("screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the driver with its JSON argument; returns what it printed, parsed. Panics with its
/// stderr if it fails or outlives [`DRIVER_TIMEOUT`] (then it is killed).
fn drive(dir: &Path, args: &Value) -> Value {
    let out = dir.join("driver.stdout");
    let err = dir.join("driver.stderr");
    let mut child = Command::new(python())
        .arg(Path::new(REPO).join("tests/browser/driver.py"))
        .arg(args.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let Some(status) = wait_at_most(&mut child, DRIVER_TIMEOUT) else {
        panic!(
            "the browser driver did not finish within {DRIVER_TIMEOUT:?}\n--- stderr\n{}\n--- stdout\n{}",
            read(&err),
            read(&out)
        );
    };
    assert!(
        status.success(),
        "the browser driver failed ({status})\n--- stderr\n{}\n--- what it saw\n{}",
        read(&err),
        read(&out)
    );
    serde_json::from_str(&read(&out)).unwrap()
}

/// The message file of one unit's reminder in the file transport's folder.
fn eml_of(dir: &Path, unit: &str) -> PathBuf {
    let mail = dir.join("var/mail");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".eml") && name.contains(&format!(".{unit}.before-5d."))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one message for {unit} in {}",
        mail.display()
    );
    found.pop().unwrap()
}

/// WCAG's contrast ratio of two `rgb(r, g, b)` colours.
fn contrast(a: &str, b: &str) -> f64 {
    fn luminance(css: &str) -> f64 {
        let inner = css
            .strip_prefix("rgb(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not rgb(): {css}"));
        let c: Vec<f64> = inner
            .split(',')
            .map(|v| {
                let s = v.trim().parse::<f64>().unwrap() / 255.0;
                if s <= 0.04045 {
                    s / 12.92
                } else {
                    ((s + 0.055) / 1.055).powf(2.4)
                }
            })
            .collect();
        0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
    }
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

/// The width and height of a PNG file, from its IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "{} is not a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The time and the date of an instant stored in milliseconds, as the pages print it
/// ("10:16 thứ Sáu 27/11/2026").
fn hm_and_date(at_ms: i64) -> (String, String) {
    let t = DateTime::<Utc>::from_timestamp_millis(at_ms)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
    (
        t.format("%H:%M").to_string(),
        t.format("%d/%m/%Y").to_string(),
    )
}

/// The grid as (unit, name, state, label text, label colour, button) per row, one column.
fn cells(page: &Value) -> Vec<(String, String, String, String, String, Option<String>)> {
    let grid = &page["grid"];
    assert_eq!(grid["columns"].as_array().unwrap().len(), 1, "{grid:#}");
    grid["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cells = r["cells"].as_array().unwrap();
            assert_eq!(cells.len(), 1, "{r:#}");
            let c = &cells[0];
            assert_eq!(c["label"]["color"], WHITE, "{c:#}");
            (
                r["unit"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
                c["label"]["text"].as_str().unwrap().to_string(),
                c["label"]["background"].as_str().unwrap().to_string(),
                c["button"].as_str().map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn status_and_ack_pages_in_chromium() {
    let chromium = chromium();
    let cfg = config();
    let port = cfg.port;
    let key = tuyen_truyen_key;
    let mut daemon = Setup::new(&cfg).start();
    daemon.wait_sent(OWING.len());

    // vp has done it, as the coordinator records from the command line.
    let out = daemon.cli(&["ack", "--obligation", &key("vp"), "--done"]);
    assert_eq!(out.status, 0, "nhacviec ack: {}", out.stderr);

    // yt's own page, as `nhacviec links` hands it out.
    let out = daemon.cli(&["links", "--unit", "yt"]);
    assert_eq!(out.status, 0, "nhacviec links: {}", out.stderr);
    let unit_page = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("page: "))
        .unwrap()
        .to_string();

    let shots = screenshot_dir();
    let base = format!("http://127.0.0.1:{port}");
    let seen = drive(
        &daemon.dir.path,
        &json!({
            "chromium": chromium,
            "base": base,
            "password": PASSWORD,
            "eml": eml_of(&daemon.dir.path, "kt"),
            "mark": key("hcc"),
            "unit_page": unit_page,
            "unit_done": key("yt"),
            "out": shots,
        }),
    );
    let acks = daemon.all_acks();
    let states: Vec<(String, String)> = daemon
        .states()
        .into_iter()
        .map(|(k, (state, _, _))| (k, state))
        .collect();
    let log = daemon.log();
    daemon.stop();
    let show = || format!("--- what the browser saw\n{seen:#}\n--- the daemon's log\n{log}");

    // The database: one ack per action, each from where it was made.
    let got: Vec<_> = acks
        .iter()
        .map(|(key, a)| {
            (
                key.as_str(),
                a.action.as_str(),
                a.source.as_str(),
                a.changed,
            )
        })
        .collect();
    let (vp, kt, hcc, tyt) = (key("vp"), key("kt"), key("hcc"), key("yt"));
    assert_eq!(
        got,
        [
            (vp.as_str(), "done", "cli", true),
            (kt.as_str(), "seen", "web", true),
            (hcc.as_str(), "done", "status", true),
            (tyt.as_str(), "done", "web", true),
        ],
        "{acks:#?}\n{}",
        show()
    );
    let ua = acks[1].1.user_agent.as_deref().unwrap_or("");
    assert!(ua.contains("Chrome/"), "the browser's user agent: {ua:?}");
    let mut want_states = vec![
        (hcc.clone(), "done".to_string()),
        (kt.clone(), "seen".to_string()),
        (tyt.clone(), "done".to_string()),
        (vp.clone(), "done".to_string()),
    ];
    want_states.sort();
    assert_eq!(states, want_states);

    // The ack page of kt's message: the link is the obligation's, on public_url.
    let link = seen["ack_link"].as_str().unwrap();
    assert!(link.starts_with(&format!("{base}/a/")), "{link}");
    let ack = &seen["ack"];
    assert_eq!(ack["http"], 200, "{}", show());
    assert_eq!(ack["lang"], "vi");
    assert_eq!(ack["title"], format!("Xác nhận nhiệm vụ – {ORG}"));
    assert_eq!(ack["header"], ORG);
    assert_eq!(ack["h1"], TITLE);
    assert_eq!(ack["fields"]["Đơn vị"], OWING[1].1);
    let deadline = ack["fields"]["Thời hạn"].as_str().unwrap().to_string();
    assert!(
        deadline.starts_with("hết ngày 15/10/2025 (thứ Tư)")
            && deadline.contains("; hạn làm việc cuối: "),
        "{deadline}"
    );
    assert_eq!(ack["fields"]["Trạng thái"], "Chưa xác nhận");
    assert_eq!(
        ack["state"],
        json!({"class": "state pending", "text": "Chưa xác nhận", "background": PENDING, "color": WHITE})
    );
    let buttons = |page: &Value| -> Vec<(String, String)> {
        page["buttons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["text"].as_str().unwrap().to_string(),
                    b["background"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let both = vec![
        ("Đã nhận".to_string(), SEEN.to_string()),
        ("Đã hoàn thành / đã nộp".to_string(), DONE.to_string()),
    ];
    assert_eq!(buttons(ack), both);
    // Each text drawn with one font: a glyph missing from it (ư, ạ, ể …) would bring a
    // second, fallback font into the list.
    for (selector, fonts) in ack["fonts"].as_object().unwrap() {
        assert_eq!(fonts.as_array().unwrap().len(), 1, "{selector}: {fonts}");
    }

    // At phone width: nothing wider than the screen, buttons a thumb can press.
    let phone = &seen["ack_phone"];
    assert_eq!(phone["http"], 200);
    assert_eq!(phone["viewport_width"], 390);
    assert_eq!(
        phone["page_width"], 390,
        "the page scrolls sideways on a phone"
    );
    assert_eq!(buttons(phone), both);
    for b in phone["buttons"].as_array().unwrap() {
        assert!(b["height"].as_i64().unwrap() >= 44, "{b}");
        assert!(b["width"].as_i64().unwrap() >= 300, "{b}");
    }
    // "Đã nhận" pressed: the result, the time, and only the other button left.
    let after = &seen["ack_seen"];
    assert_eq!(after["http"], 200);
    assert_eq!(
        after["url"],
        format!("{link}?kq=seen"),
        "the POST is redirected to its result on the same link"
    );
    assert_eq!(
        after["result"],
        "Đã ghi nhận: đơn vị đã nhận nhiệm vụ. Hệ thống vẫn nhắc khi đến hạn."
    );
    assert_eq!(after["state"]["text"], "Đã nhận");
    assert_eq!(after["state"]["background"], SEEN);
    let (hm, date) = hm_and_date(acks[1].1.at);
    let seen_at = after["fields"]["Đã nhận lúc"].as_str().unwrap();
    assert!(
        seen_at.starts_with(&hm) && seen_at.ends_with(&date),
        "{seen_at}"
    );
    assert_eq!(buttons(after), both[1..]);

    // /status: a wrong password gets the 401 page, which asks for UTF-8 credentials.
    let refused = &seen["status_wrong_password"];
    assert_eq!(refused["http"], 401);
    assert_eq!(
        refused["www_authenticate"],
        "Basic realm=\"nhacviec\", charset=\"UTF-8\""
    );
    assert_eq!(refused["h1"], "Cần đăng nhập");

    // The grid before the click: the units owing it, in config order, one column.
    let page = &seen["status"];
    assert_eq!(page["http"], 200, "{}", show());
    assert_eq!(page["title"], format!("Bảng theo dõi – {ORG}"));
    assert_eq!(page["h1"], "Bảng theo dõi thực hiện báo cáo, nhiệm vụ");
    let column = &page["grid"]["columns"][0];
    assert_eq!(column["key"], format!("tuyen-truyen/{TUYEN_TRUYEN_DUE}"));
    assert_eq!(column["lines"], json!([TITLE, deadline]), "{column}");
    assert_eq!(page["grid"]["corner"], "Đơn vị");
    let mark = "Đánh dấu hoàn thành".to_string();
    let row = |unit: usize, state: &str, label: &str, colour: &str, button: bool| {
        (
            OWING[unit].0.to_string(),
            OWING[unit].1.to_string(),
            state.to_string(),
            label.to_string(),
            colour.to_string(),
            button.then(|| mark.clone()),
        )
    };
    assert_eq!(
        cells(page),
        [
            row(0, "done", "Đã hoàn thành", DONE, false),
            row(1, "seen", "Đã nhận", SEEN, true),
            row(2, "pending", "Chưa xác nhận", PENDING, true),
            row(3, "pending", "Chưa xác nhận", PENDING, true),
        ],
        "{}",
        show()
    );
    for r in page["grid"]["rows"].as_array().unwrap() {
        let c = &r["cells"][0];
        assert_eq!(c["key"], key(r["unit"].as_str().unwrap()));
        if c["button"].is_string() {
            assert_eq!(c["obligation"], c["key"], "the form names its own cell");
            assert_eq!(c["csrf"].as_str().unwrap().len(), 32, "{c}");
        }
    }
    let legend: Vec<(&str, &str)> = page["legend"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["text"].as_str().unwrap(),
                l["background"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        legend,
        [
            ("Đã hoàn thành", DONE),
            ("Đã nhận", SEEN),
            ("Chưa xác nhận", PENDING),
            ("Quá hạn", OVERDUE),
            ("Chưa đến hạn nhắc", UPCOMING),
        ]
    );
    for (label, colour) in &legend {
        let ratio = contrast(colour, WHITE);
        assert!(ratio >= 4.5, "white on {label} ({colour}): {ratio:.2}:1");
    }
    for (selector, fonts) in page["fonts"].as_object().unwrap() {
        assert_eq!(fonts.as_array().unwrap().len(), 1, "{selector}: {fonts}");
    }

    // The click: the page the POST returns says so and shows hcc done, without a button;
    // /status loaded again shows the same.
    let want_after = [
        row(0, "done", "Đã hoàn thành", DONE, false),
        row(1, "seen", "Đã nhận", SEEN, true),
        row(2, "done", "Đã hoàn thành", DONE, false),
        row(3, "pending", "Chưa xác nhận", PENDING, true),
    ];
    let marked = &seen["status_marked"];
    assert_eq!(marked["http"], 200, "{}", show());
    assert_eq!(marked["url"], format!("{base}/status/ack"));
    assert_eq!(marked["result"], "Đã đánh dấu hoàn thành.");
    assert_eq!(cells(marked), want_after);
    let again = &seen["status_again"];
    assert_eq!(again["http"], 200);
    assert_eq!(again["result"], Value::Null);
    assert_eq!(cells(again), want_after);
    let (hm, date) = hm_and_date(acks[2].1.at);
    let at = again["grid"]["rows"][2]["cells"][0]["at"]
        .as_str()
        .unwrap_or("");
    assert!(
        at.starts_with(&hm) && at.ends_with(&date),
        "hcc done at {at:?}"
    );

    // At phone width the table scrolls inside its card; the page itself does not.
    let phone = &seen["status_phone"];
    assert_eq!(phone["http"], 200);
    assert_eq!(
        phone["page_width"], 390,
        "the status page scrolls sideways on a phone"
    );
    assert_eq!(cells(phone), want_after);

    // yt's page: its one obligation, open, with both buttons.
    let unit = &seen["unit"];
    assert_eq!(unit["http"], 200, "{}", show());
    assert_eq!(unit["title"], format!("Nhiệm vụ của đơn vị – {ORG}"));
    assert_eq!(unit["h1"], OWING[3].1);
    let keys = |page: &Value, list: &str| -> Vec<String> {
        page[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(unit, "open"), [tyt.as_str()]);
    assert!(keys(unit, "done").is_empty());
    let item = &unit["open"][0];
    assert_eq!(item["title"], TITLE);
    assert_eq!(
        item["state"],
        json!({"text": "Chưa xác nhận", "background": PENDING, "color": WHITE})
    );
    let texts: Vec<&str> = item["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["Đã nhận", "Đã hoàn thành / đã nộp"]);
    assert!(unit["feed"].as_str().unwrap().ends_with(".ics"));
    // At 360 px: nothing wider than the screen, buttons a thumb can press; then done.
    let phone = &seen["unit_phone"];
    assert_eq!(
        (
            phone["viewport_width"].as_i64(),
            phone["page_width"].as_i64()
        ),
        (Some(360), Some(360))
    );
    for b in phone["open"][0]["buttons"].as_array().unwrap() {
        assert!(b["height"].as_i64().unwrap() >= 44, "{b}");
        assert!(b["width"].as_i64().unwrap() >= 280, "{b}");
    }
    let done = &seen["unit_phone_done"];
    assert_eq!(done["http"], 200);
    assert_eq!(
        done["url"],
        format!("{unit_page}?kq=done"),
        "redirected to the page"
    );
    assert_eq!(
        done["result"],
        "Đã ghi nhận: đơn vị đã hoàn thành. Hệ thống sẽ không gửi thêm nhắc nhở."
    );
    assert!(keys(done, "open").is_empty(), "{done:#}");
    assert_eq!(keys(done, "done"), [tyt.as_str()], "moved to the done list");

    // The screenshots are there, at the widths asked for.
    for (name, width) in [
        ("ack.png", 1280),
        ("ack-phone.png", 390),
        ("ack-phone-seen.png", 390),
        ("status.png", 1280),
        ("status-done.png", 1280),
        ("status-phone.png", 390),
        ("unit.png", 1280),
        ("unit-phone.png", 360),
        ("unit-phone-done.png", 360),
    ] {
        let (w, h) = png_size(&shots.join(name));
        assert_eq!(w, width, "{name}");
        assert!(h >= 400, "{name}: {w}×{h}");
    }
}
