//! `/status`, `/status/ack` and `/status.csv` on the real daemon: the grid is the database
//! (units in config order, each cell's state as shown, a form on each cell not done), its
//! form marks a cell done on the unit's behalf, and the CSV says the same. Wrong passwords
//! and CSRF tokens are tried in-process (`src/web/tests.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::{CSV_HEADER, ack, key, parse_csv, shown_states, site};
use crate::support::config::{Cfg, TUYEN_TRUYEN, TUYEN_TRUYEN_DUE, name};
use crate::support::db::random_token;
use crate::support::http::{basic, unescape};

/// The status page's password (in `secrets/admin-password`, with an editor's newline).
const ADMIN_PASSWORD: &str = "mật khẩu quản trị";

/// The tags of an HTML text: name and attributes (values decoded).
fn tags(html: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        let Some(j) = rest[i..].find('>') else { break };
        let inner = &rest[i + 1..i + j];
        rest = &rest[i + j + 1..];
        if inner.starts_with('/') || inner.starts_with('!') {
            continue;
        }
        let name: String = inner.chars().take_while(|c| !c.is_whitespace()).collect();
        let mut attrs = BTreeMap::new();
        let mut a = &inner[name.len()..];
        while let Some(eq) = a.find("=\"") {
            let key = a[..eq].split_whitespace().last().unwrap_or("").to_string();
            let after = &a[eq + 2..];
            let end = after.find('"').expect("closing quote");
            attrs.insert(key, unescape(&after[..end]));
            a = &after[end + 1..];
        }
        out.push((name, attrs));
    }
    out
}

/// The status grid: its columns (occurrence keys), rows (unit ids), cells (key → state)
/// and forms (obligation, csrf), in page order.
#[derive(Debug, Default)]
struct Grid {
    columns: Vec<String>,
    rows: Vec<String>,
    cells: BTreeMap<String, String>,
    forms: Vec<(String, String)>,
}

fn grid(page: &str) -> Grid {
    let start = page
        .find("<table id=\"grid\"")
        .unwrap_or_else(|| panic!("no table#grid in\n{page}"));
    let end = start + page[start..].find("</table>").expect("</table>");
    let mut g = Grid::default();
    let mut cell: Option<String> = None;
    let mut form: Option<String> = None;
    for (name, attrs) in tags(&page[start..end]) {
        match name.as_str() {
            "th" => g.columns.extend(attrs.get("data-key").cloned()),
            "tr" => g.rows.extend(attrs.get("data-unit").cloned()),
            "td" => {
                cell = attrs.get("data-key").cloned();
                if let (Some(k), Some(s)) = (attrs.get("data-key"), attrs.get("data-state")) {
                    assert!(
                        g.cells.insert(k.clone(), s.clone()).is_none(),
                        "cell {k} twice"
                    );
                }
            }
            "form" => {
                assert_eq!(attrs.get("method").map(String::as_str), Some("post"));
                assert_eq!(attrs.get("action").map(String::as_str), Some("/status/ack"));
                assert!(cell.is_some(), "a form outside a cell");
            }
            "input" => match attrs.get("name").map(String::as_str) {
                Some("obligation") => {
                    let v = attrs["value"].clone();
                    assert_eq!(Some(&v), cell.as_ref(), "the form is for its own cell");
                    form = Some(v);
                }
                Some("csrf") => {
                    let ob = form.take().expect("csrf after obligation");
                    g.forms.push((ob, attrs["value"].clone()));
                }
                other => panic!("unexpected input {other:?}"),
            },
            _ => {}
        }
    }
    g
}

#[test]
fn the_status_grid_its_form_and_its_csv_are_the_database() {
    let (d, tokens) = site(
        &["vp", "kt", "yt", "th"],
        Cfg::new().admin_password(ADMIN_PASSWORD),
    );
    assert_eq!(ack(&d, &tokens["vp"], "done").status, 200);
    assert_eq!(ack(&d, &tokens["kt"], "seen").status, 200);
    // th also owes an occurrence whose deadline passed yesterday (overdue), and one of 70
    // days ago, older than the status views show.
    let day = chrono::Duration::days(1);
    let overdue = d.insert_obligation("qua-han", d.now() - day, "th", &random_token());
    let old = d.insert_obligation("cu", d.now() - day * 70, "th", &random_token());

    let r = d.get("/status", &[]);
    assert_eq!(r.status, 401, "{r:#?}");
    let auth = basic("admin", ADMIN_PASSWORD);
    let page = d.get("/status", &[("Authorization", &auth)]);
    assert_eq!(page.status, 200, "{page:#?}");
    let g = grid(&page.raw);
    let occ = format!("tuyen-truyen/{TUYEN_TRUYEN_DUE}");
    let overdue_occ = overdue.rsplit_once('/').unwrap().0.to_string();
    assert_eq!(
        g.columns.iter().collect::<BTreeSet<_>>(),
        [&occ, &overdue_occ].into_iter().collect(),
        "{g:#?}"
    );
    assert_eq!(g.rows, ["vp", "kt", "yt", "th"], "units in config order");
    for text in ["vp", "kt", "yt", "th"]
        .map(name)
        .iter()
        .chain([&TUYEN_TRUYEN])
    {
        assert!(page.has(text), "{text:?} missing in\n{}", page.text);
    }
    assert!(
        page.has("Hệ thống đang chạy với đồng hồ thử nghiệm (NHACVIEC_CLOCK): bắt đầu từ 09:00 thứ Hai 13/10/2025."),
        "the page says its clock is set:\n{}",
        page.text
    );
    let want: BTreeMap<String, String> = [
        (key("vp"), "done"),
        (key("kt"), "seen"),
        (key("yt"), "pending"),
        (key("th"), "pending"),
        (overdue.clone(), "overdue"),
    ]
    .into_iter()
    .map(|(k, s)| (k, s.to_string()))
    .collect();
    assert_eq!(g.cells, want, "{g:#?}");
    assert_eq!(g.cells, shown_states(&d), "the grid is the database");
    assert!(!g.cells.contains_key(&old));
    let formed: BTreeSet<&str> = g.forms.iter().map(|(k, _)| k.as_str()).collect();
    let open = [key("kt"), key("yt"), key("th"), overdue.clone()];
    assert_eq!(
        formed,
        open.iter().map(String::as_str).collect(),
        "a form for each cell not done"
    );
    let csrf = g.forms[0].1.clone();
    assert!(g.forms.iter().all(|(_, c)| *c == csrf) && !csrf.is_empty());

    // The form of yt's cell marks it done.
    let before = d.now().timestamp_millis() - 1000;
    let r = d.post(
        "/status/ack",
        &[("Authorization", &auth)],
        &[("obligation", &key("yt")), ("csrf", &csrf)],
    );
    assert_eq!(r.status, 200, "{r:#?}");
    assert!(r.has("Đã đánh dấu hoàn thành."), "{}", r.text);
    assert_eq!(grid(&r.raw).cells[&key("yt")], "done");
    let (state, _, done_at) = d.state(&key("yt"));
    assert_eq!(state, "done");
    let acks = d.acks(&key("yt"));
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(
        (
            acks[0].action.as_str(),
            acks[0].source.as_str(),
            acks[0].changed,
            Some(acks[0].at)
        ),
        ("done", "status", true, done_at)
    );
    assert!(acks[0].at >= before);

    // /status.csv: a header line and one line per obligation shown.
    let csv = d.get("/status.csv", &[("Authorization", &auth)]);
    assert_eq!(csv.status, 200, "{csv:#?}");
    assert!(
        csv.header("content-type")
            .is_some_and(|v| v.starts_with("text/csv")),
        "{csv:#?}"
    );
    let records = parse_csv(&csv.raw);
    assert_eq!(records[0], CSV_HEADER);
    let shown = shown_states(&d);
    assert_eq!(records.len() - 1, shown.len(), "{records:#?}");
    let from_csv: BTreeMap<String, String> = records[1..]
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 12, "{r:?}");
            (r[0].clone(), r[9].clone())
        })
        .collect();
    assert_eq!(from_csv, shown);
    let vp_line = records.iter().find(|r| r[0] == key("vp")).unwrap();
    assert_eq!(
        (
            vp_line[3].as_str(),
            vp_line[7].as_str(),
            vp_line[8].as_str()
        ),
        (TUYEN_TRUYEN, "vp", name("vp"))
    );
}
