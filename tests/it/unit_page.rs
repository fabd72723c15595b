//! Each unit's page (`/u/{token}`) and calendar feed (`/u/{token}.ics`) against the real
//! daemon, and `nhacviec links`.
//!
//! The daemon starts at the usual first start (Mon 13/10/2025 09:00) with `vhxh` the
//! coordinator, and two rules: the usual one-off task owed by `vp` and `kt` (its `before-5d`
//! reminder already past, so the first start sends it; an overdue notice `after-1d` on Thu
//! 16/10), and a quarterly report owed by `vp` only, due Thu 20/11, not reminded yet.
//!
//! The feed is read by Python's `icalendar` (`tests/ics/parse.py`), not by our writer.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::config::{Cfg, once, policy, tuyen_truyen, tuyen_truyen_key, unit};
use crate::support::daemon::{Daemon, Setup};
use crate::support::http::{Http, basic};
use crate::support::mime::emls;
use crate::support::{assert_contains, assert_lacks, python};

const REPORT: &str = "Báo cáo quý IV";
const REPORT_DUE: &str = "2025-11-20";
const PASSWORD: &str = "mật khẩu quản trị";

/// The daemon's public URL (the harness's default: its port on 127.0.0.1).
fn base(d: &Daemon) -> String {
    format!("http://127.0.0.1:{}", d.port)
}

fn report_key(unit: &str) -> String {
    format!("bao-cao-quy/{REPORT_DUE}/{unit}")
}

fn cfg() -> Cfg {
    Cfg::new()
        .units([unit("vp"), unit("kt")])
        .rule(tuyen_truyen(&["vp", "kt"]).policy(policy(&["5d"], &["1d"])))
        .rule(
            once("bao-cao-quy", REPORT, REPORT_DUE)
                .units(&["vp"])
                .policy(policy(&["5wd"], &[])),
        )
        .admin_password(PASSWORD)
}

/// Each unit's page path (`/u/…`), from `nhacviec links`.
fn links(d: &Daemon) -> BTreeMap<String, String> {
    let out = d.cli(&["links"]);
    assert_eq!(out.status, 0, "{out:?}");
    parse_links(&out.stdout, d)
}

fn parse_links(stdout: &str, d: &Daemon) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut unit = None;
    for line in stdout.lines() {
        if !line.starts_with(' ') {
            unit = line.split_whitespace().next().map(str::to_string);
        } else if let Some(url) = line.trim().strip_prefix("page: ") {
            let path = url
                .strip_prefix(&base(d))
                .unwrap_or_else(|| panic!("{url} under the public URL"));
            out.insert(unit.clone().unwrap(), path.to_string());
        } else {
            let feed = line.trim().strip_prefix("feed: ").unwrap();
            assert!(feed.ends_with(".ics"), "{line}");
        }
    }
    out
}

/// The keys of the obligations listed in one section (`open` or `done`) of a unit page.
fn listed(page: &Http, section: &str) -> Vec<String> {
    let start = page
        .text
        .find(&format!("id=\"{section}\""))
        .unwrap_or_else(|| panic!("no section {section}: {}", page.text));
    let rest = &page.text[start..];
    let end = rest[1..]
        .find("class=\"card\"")
        .map_or(rest.len(), |i| i + 1);
    rest[..end]
        .split("data-key=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn a_unit_page_lists_its_own_obligations_and_records_its_answers() {
    let cfg = cfg();
    let mut d = Setup::new(&cfg).start();
    d.wait_rows("before-5d sent to vp and kt", |rows| {
        rows.iter()
            .filter(|r| r.step == "before-5d" && r.status == "sent")
            .count()
            == 2
    });
    let urls = links(&d);
    assert_eq!(
        urls.keys().collect::<Vec<_>>(),
        ["kt", "vhxh", "vp"],
        "every unit"
    );
    let (vp, kt) = (urls["vp"].clone(), urls["kt"].clone());
    assert_ne!(vp, kt);

    // The reminder's footer carries the unit's page.
    let mails = emls(&d.path("var/mail"));
    let to_vp: Vec<_> = mails
        .iter()
        .filter(|m| m.get("to").is_some_and(|t| t.contains("vp@")))
        .collect();
    assert_eq!(to_vp.len(), 1);
    for part in ["text/plain", "text/html"] {
        assert!(
            to_vp[0].text(part).contains(&format!("{}{vp}", base(&d))),
            "{part}: {}",
            to_vp[0].text(part)
        );
    }
    assert_contains(
        &to_vp[0].text("text/plain"),
        &["Xem tất cả nhiệm vụ của đơn vị"],
    );

    // vp's page: its two obligations, soonest first, none of kt's.
    let page = d.get(&vp, &[]);
    assert_eq!(page.status, 200, "{page:#?}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert_eq!(
        listed(&page, "open"),
        [tuyen_truyen_key("vp"), report_key("vp")]
    );
    assert!(listed(&page, "done").is_empty());
    assert_lacks(&page.text, &tuyen_truyen_key("kt"), "kt's obligation");
    assert_contains(
        &page.text,
        &[
            "Văn phòng HĐND và UBND phường",
            "Đầu mối liên hệ: Phòng Văn hóa – Xã hội",
            "Chưa xác nhận",
            "Còn 2 ngày làm việc",
            "Chưa đến hạn nhắc",
            REPORT,
            &format!("{}{vp}.ics", base(&d)),
        ],
    );

    // vp cannot answer for kt: the same 404 as any unknown link, and nothing recorded.
    let not_found = d.get("/u/00000000000000000000000000000000", &[]);
    assert_eq!(not_found.status, 404);
    let r = d.post(
        &vp,
        &[],
        &[("obligation", &tuyen_truyen_key("kt")), ("action", "done")],
    );
    assert_eq!((r.status, r.raw.as_str()), (404, not_found.raw.as_str()));
    assert_eq!(d.ack_count(), 0);

    // vp finishes the report ahead of its first reminder, from its page.
    let ua = "Mozilla/5.0 nhacviec-unit-page-test";
    let r = d.post(
        &vp,
        &[("User-Agent", ua)],
        &[("obligation", &report_key("vp")), ("action", "done")],
    );
    assert_eq!(r.status, 303, "{r:#?}");
    assert_eq!(r.header("location"), Some(format!("{vp}?kq=done").as_str()));
    let acks = d.acks(&report_key("vp"));
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(
        (
            acks[0].action.as_str(),
            acks[0].source.as_str(),
            acks[0].user_agent.as_deref(),
            acks[0].note.as_deref(),
            acks[0].changed
        ),
        ("done", "web", Some(ua), Some("trang đơn vị"), true)
    );
    assert_eq!(d.state(&report_key("vp")).0, "done");
    let page = d.get(&format!("{vp}?kq=done"), &[]);
    assert_contains(&page.text, &["Đã ghi nhận: đơn vị đã hoàn thành"]);
    assert_eq!(listed(&page, "open"), [tuyen_truyen_key("vp")]);
    assert_eq!(listed(&page, "done"), [report_key("vp")]);
    // And seen on the task: it stays open, seen.
    let r = d.post(
        &vp,
        &[],
        &[("obligation", &tuyen_truyen_key("vp")), ("action", "seen")],
    );
    assert_eq!(r.status, 303);
    assert_eq!(d.state(&tuyen_truyen_key("vp")).0, "seen");
    assert_eq!(listed(&d.get(&vp, &[]), "open"), [tuyen_truyen_key("vp")]);

    // kt's page has only kt's.
    let page = d.get(&kt, &[]);
    assert_eq!(listed(&page, "open"), [tuyen_truyen_key("kt")]);

    // Forged, truncated, upper-cased tokens: the same 404, GET and POST.
    let tok = vp.strip_prefix("/u/").unwrap();
    let last = tok.chars().last().unwrap();
    let flipped = format!("{}{}", &tok[..31], if last == '0' { '1' } else { '0' });
    for bad in [
        flipped.clone(),
        tok[..31].to_string(),
        tok.to_uppercase(),
        format!("{tok}0"),
    ] {
        let r = d.get(&format!("/u/{bad}"), &[]);
        assert_eq!(
            (r.status, r.raw.as_str()),
            (404, not_found.raw.as_str()),
            "{bad}"
        );
        let r = d.get(&format!("/u/{bad}.ics"), &[]);
        assert_eq!(r.status, 404, "{bad}.ics");
        let r = d.post(
            &format!("/u/{bad}"),
            &[],
            &[("obligation", &tuyen_truyen_key("vp")), ("action", "done")],
        );
        assert_eq!(r.status, 404, "{bad}");
    }
    assert_eq!(d.state(&tuyen_truyen_key("vp")).0, "seen");

    // A leaked link is rotated: the old one is a 404, the new one works, kt's is unchanged.
    let out = d.cli(&["links", "--rotate", "--unit", "vp"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_contains(&out.stderr, &["vp: new links (generation 1)"]);
    let rotated = parse_links(&out.stdout, &d);
    let new_vp = rotated["vp"].clone();
    assert_ne!(new_vp, vp);
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        links(&d)["vp"],
        new_vp,
        "`links` shows the new one from now on"
    );
    assert_eq!(links(&d)["kt"], kt);
    let r = d.get(&vp, &[]);
    assert_eq!((r.status, r.raw.as_str()), (404, not_found.raw.as_str()));
    assert_eq!(d.get(&format!("{vp}.ics"), &[]).status, 404);
    assert_eq!(d.get(&new_vp, &[]).status, 200);
    assert_eq!(d.get(&kt, &[]).status, 200);
    let out = d.cli(&["links", "--rotate"]);
    assert_ne!(out.status, 0, "--rotate needs --unit: {out:?}");
    let out = d.cli(&["links", "--unit", "nope"]);
    assert_eq!(out.status, 1);
    assert_contains(&out.stderr, &["unknown unit `nope`"]);

    // The next message carries the new link: the overdue notice of Thu 16/10.
    d.stop();
    d.restart_at("2025-10-16T07:59:58+07:00", 1);
    d.wait_rows("after-1d sent to vp and kt", |rows| {
        rows.iter()
            .filter(|r| r.step == "after-1d" && r.status == "sent")
            .count()
            == 2
    });
    let mails = emls(&d.path("var/mail"));
    let overdue = |u: &str| {
        mails
            .iter()
            .find(|m| {
                m.get("to").is_some_and(|t| t.contains(&format!("{u}@")))
                    && m.get("subject").is_some_and(|s| s.contains("Quá hạn"))
            })
            .unwrap_or_else(|| panic!("the overdue notice to {u}"))
            .text("text/plain")
    };
    let text = overdue("vp");
    assert!(text.contains(&new_vp), "{text}");
    assert_lacks(&text, &vp, "the rotated link");
    assert!(overdue("kt").contains(&kt));

    // The report, done from the page before its first reminder, is never reminded: its
    // before-5wd (Thu 13/11 08:00) passes with nothing enqueued.
    d.stop();
    d.restart_at("2025-11-13T07:59:58+07:00", 1);
    let step = crate::support::vn("2025-11-13 08:00:00");
    d.wait("the engine past 13/11 08:00", |d| {
        d.mark().filter(|m| *m >= step)
    });
    let rows = d.rows();
    assert!(
        rows.iter()
            .all(|r| !r.obligation.starts_with("bao-cao-quy/")),
        "{rows:#?}"
    );
}

/// The feed as the independent parser reads it.
fn parse(feed: &Http) -> Value {
    let mut child = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ics/parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(feed.raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "icalendar refused the feed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        feed.raw
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn uids(cal: &Value) -> Vec<String> {
    cal["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["uid"].as_str().unwrap().to_string())
        .collect()
}

/// The instant of each obligation's first `before` step, from `nhacviec plan`.
fn first_before(d: &Daemon) -> BTreeMap<String, String> {
    let out = d.cli(&[
        "plan",
        "--from",
        "2025-10-01",
        "--to",
        "2025-12-31",
        "--format",
        "json",
    ]);
    assert_eq!(out.status, 0, "{out:?}");
    let plan: Value = serde_json::from_str(&out.stdout).unwrap();
    let mut first = BTreeMap::new();
    for occ in plan.as_array().unwrap() {
        for ob in occ["obligations"].as_array().unwrap() {
            let step = ob["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["step"].as_str().unwrap().starts_with("before-"))
                .unwrap();
            let key = format!(
                "{}/{}/{}",
                occ["rule"].as_str().unwrap(),
                occ["period"].as_str().unwrap(),
                ob["unit"].as_str().unwrap()
            );
            let at = chrono::DateTime::parse_from_rfc3339(step["at"].as_str().unwrap()).unwrap();
            first.insert(key, at.with_timezone(&chrono::Utc).to_rfc3339());
        }
    }
    first
}

#[test]
fn the_feed_is_valid_icalendar_stable_and_conditional() {
    let cfg = cfg();
    let mut d = Setup::new(&cfg).start();
    d.wait_rows("before-5d sent", |rows| {
        rows.iter().filter(|r| r.status == "sent").count() == 2
    });
    let urls = links(&d);
    let feed_path = format!("{}.ics", urls["vp"]);
    let feed = d.get(&feed_path, &[]);
    assert_eq!(feed.status, 200, "{feed:#?}");
    assert_eq!(
        feed.header("content-type"),
        Some("text/calendar; charset=utf-8")
    );
    let cal = parse(&feed);
    assert_eq!(cal["version"], "2.0");
    assert_eq!(cal["name"], "Nhắc việc – Văn phòng HĐND và UBND phường");
    assert_eq!(cal["timezone"], "Asia/Ho_Chi_Minh");
    assert_eq!(cal["refresh"], "PT6H");
    assert_eq!(cal["ttl"], "PT6H");
    let host = "127.0.0.1";
    assert_eq!(
        uids(&cal),
        [
            format!("tuyen-truyen.2025-10-15.vp@{host}"),
            format!("bao-cao-quy.{REPORT_DUE}.vp@{host}"),
        ],
        "one event per obligation of vp, none of kt's"
    );
    let first = first_before(&d);
    for (e, key) in cal["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip([tuyen_truyen_key("vp"), report_key("vp")])
    {
        assert_eq!(
            (e["start_type"].as_str(), e["end_type"].as_str()),
            (Some("DATE"), Some("DATE"))
        );
        let (start, end) = (
            crate::support::date(e["start"].as_str().unwrap()),
            crate::support::date(e["end"].as_str().unwrap()),
        );
        assert_eq!(end, start.succ_opt().unwrap(), "DTEND is the next day: {e}");
        assert_eq!(e["transp"], "TRANSPARENT");
        assert!(e["summary"].as_str().unwrap().starts_with("Hạn: "), "{e}");
        let anchor = key.replace('/', ".");
        assert_eq!(
            e["url"].as_str().unwrap(),
            format!("{}{}#{anchor}", base(&d), urls["vp"]),
            "its place on the unit's page"
        );
        assert!(
            d.get(&urls["vp"], &[])
                .raw
                .contains(&format!("id=\"{anchor}\"")),
            "the page has the anchor"
        );
        let alarms = e["alarms"].as_array().unwrap();
        // The task's first step (Fri 10/10) is past: a subscriber is not shown a missed
        // alarm. The report's (Thu 13/11) is ahead.
        let ahead = chrono::DateTime::parse_from_rfc3339(&first[&key]).unwrap() > d.now();
        assert_eq!(alarms.len(), usize::from(ahead), "{e}");
        if !ahead {
            continue;
        }
        assert_eq!(alarms[0]["action"], "DISPLAY");
        let trigger = chrono::DateTime::parse_from_rfc3339(alarms[0]["trigger"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339();
        assert_eq!(
            trigger, first[&key],
            "the alarm at the policy's first before step"
        );
    }
    let events = cal["events"].as_array().unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["alarms"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(events[0]["start"], "2025-10-15");
    assert_contains(
        events[0]["description"].as_str().unwrap(),
        &[
            "Thời hạn: hết ngày 15/10/2025 (thứ Tư)",
            "Nơi gửi: Phòng Văn hóa – Xã hội",
            "Căn cứ: Chương trình 05/CTr-UBND, mục III",
            &format!("trên trang của đơn vị: {}{}", base(&d), urls["vp"]),
        ],
    );
    // No ack token leaves in a feed: rotating the unit's link must revoke all it gave.
    assert_lacks(&feed.raw, "/a/", "an ack link");

    // A conditional GET: 304 with the same ETag, 200 with another.
    let etag = feed.header("etag").unwrap().to_string();
    assert!(feed.header("last-modified").is_some());
    let again = d.get(&feed_path, &[("If-None-Match", &etag)]);
    assert_eq!((again.status, again.raw.as_str()), (304, ""));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = d.get(&feed_path, &[("If-None-Match", "\"something-else\"")]);
    assert_eq!(other.status, 200);

    // The coordinator's feed follows every unit, linking to the read-only views.
    let coord = parse(&d.get(&format!("{}.ics", urls["vhxh"]), &[]));
    assert_eq!(
        uids(&coord),
        [
            format!("tuyen-truyen.2025-10-15.vp@{host}"),
            format!("tuyen-truyen.2025-10-15.kt@{host}"),
            format!("bao-cao-quy.{REPORT_DUE}.vp@{host}"),
        ]
    );
    for e in coord["events"].as_array().unwrap() {
        assert!(e["url"].as_str().unwrap().contains("/v/"), "{e}");
        assert!(
            e["summary"].as_str().unwrap().contains(" – "),
            "names the unit: {e}"
        );
    }
    // The admin's: behind the status page's login.
    assert_eq!(d.get("/status.ics", &[]).status, 401);
    let auth = basic("admin", PASSWORD);
    let all = parse(&d.get("/status.ics", &[("Authorization", &auth)]));
    assert_eq!(uids(&all), uids(&coord));
    assert_contains(
        &d.get("/status", &[("Authorization", &auth)]).text,
        &["/status.ics"],
    );

    // Done: the event stays, marked done and without its alarm; the ETag changes.
    let r = d.post(
        &urls["vp"],
        &[],
        &[("obligation", &report_key("vp")), ("action", "done")],
    );
    assert_eq!(r.status, 303);
    let done = d.get(&feed_path, &[("If-None-Match", &etag)]);
    assert_eq!(done.status, 200, "changed since");
    let cal = parse(&done);
    let e = &cal["events"][1];
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .starts_with("✓ Đã hoàn thành: "),
        "{e}"
    );
    assert_eq!(e["alarms"].as_array().unwrap().len(), 0);
    let before = uids(&cal);

    // The same UIDs after a restart, and after a reload that renames the report.
    d.stop();
    d.restart_at("2025-10-14T09:00:00+07:00", 1);
    assert_eq!(uids(&parse(&d.get(&feed_path, &[]))), before);
    let renamed = cfg.toml().replace(REPORT, "Báo cáo quý IV năm 2025");
    d.write_config(&renamed);
    d.signal("HUP");
    d.wait_log("config reloaded", 1);
    let kt_feed = format!("{}.ics", urls["kt"]);
    let cal = parse(&d.get(&feed_path, &[]));
    assert_eq!(uids(&cal), before);
    assert_eq!(
        cal["events"][1]["summary"], "✓ Đã hoàn thành: Báo cáo quý IV năm 2025",
        "not reminded yet: it follows the new config"
    );
    assert_eq!(
        uids(&parse(&d.get(&kt_feed, &[]))),
        [format!("tuyen-truyen.2025-10-15.kt@{host}")]
    );
}

/// The status page's grid holds what is current; an obligation recorded further ahead than
/// 45 days and not reminded waits below it, while `nhacviec status` lists everything.
#[test]
fn the_status_page_lists_far_obligations_below_its_grid() {
    let far = "Kế hoạch năm 2026";
    let cfg = Cfg::new()
        .units([unit("vp")])
        .rule(tuyen_truyen(&["vp"]))
        .rule(once("ke-hoach", far, "2026-03-31").units(&["vp"]))
        .admin_password(PASSWORD);
    let mut d = Setup::new(&cfg).start();
    d.wait_sent(1);
    let page = d.get("/status", &[("Authorization", &basic("admin", PASSWORD))]);
    assert_eq!(page.status, 200);
    let later_at = page.text.find("id=\"later\"").expect("the later list");
    let grid = &page.text[..later_at];
    assert_contains(grid, &["data-key=\"tuyen-truyen/2025-10-15/vp\""]);
    assert_lacks(grid, "ke-hoach/2026-03-31", "the far one in the grid");
    assert_contains(
        &page.text[later_at..],
        &["Sắp tới: chưa đến hạn nhắc (1)", far, "31/03/2026"],
    );
    let out = d.cli(&["status", "--format", "csv"]);
    assert_eq!(out.status, 0, "{out:?}");
    assert_contains(
        &out.stdout,
        &["tuyen-truyen/2025-10-15/vp", "ke-hoach/2026-03-31/vp"],
    );
}
