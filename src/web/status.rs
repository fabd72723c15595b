//! `/status`: the units × obligations grid behind HTTP Basic auth, its CSV, and the form that
//! marks an obligation done on a unit's behalf (with a CSRF token).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, guard};
use crate::clock::ClockKind;
use crate::present;
use crate::report::{self, Column, Row};
use crate::state::{AckAction, AckSource, Shown};

/// `Ok` if the request carries the admin's credentials; else the response to send. A
/// client with too many failed logins lately is turned away first (429); each failure (wrong
/// credentials, not a request without any, which is how a browser asks for the prompt) is
/// counted and logged with the client's address, never with what it sent.
fn authorized(s: &AppState, headers: &HeaderMap, addr: SocketAddr) -> Result<(), Box<Response>> {
    // The password in force: a reload puts a new one in force for the next request.
    let applied = s.current.get();
    let Some(password) = &applied.admin_password else {
        return Err(Box::new(s.message(
            StatusCode::NOT_FOUND,
            "Trang theo dõi đang tắt",
            "Quản trị cần đặt server.admin_password_file trong tệp cấu hình để bật trang này.",
        )));
    };
    // Real time, as the ack limit counts (the daemon's clock may run fast in a rehearsal).
    let now = s.ack_limit.clock().instant();
    if let Some(wait) = s.logins.refused(addr.ip(), now) {
        let mut r = s.message(
            StatusCode::TOO_MANY_REQUESTS,
            "Quá nhiều lần đăng nhập sai",
            "Địa chỉ này đã đăng nhập sai quá nhiều lần trong một phút. Vui lòng thử lại sau.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
        return Err(Box::new(r));
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or(""));
    if guard::basic_auth_ok(given, password) {
        Ok(())
    } else {
        if given.is_some()
            && let guard::LogLine::Write { not_logged } = s.logins.failed(addr.ip(), now)
        {
            tracing::warn!(
                client = %addr.ip(),
                not_logged,
                "status page: wrong credentials"
            );
        }
        let mut r = s.message(
            StatusCode::UNAUTHORIZED,
            "Cần đăng nhập",
            "Trang theo dõi dành cho quản trị (tài khoản admin).",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"nhacviec\", charset=\"UTF-8\""),
        );
        Err(Box::new(r))
    }
}

/// A warning for the status page when the daemon runs on a set clock (a rehearsal).
fn clock_note(kind: ClockKind, tz: chrono_tz::Tz) -> Option<String> {
    match kind {
        ClockKind::Set { start, speed } => Some(format!(
            "Hệ thống đang chạy với đồng hồ thử nghiệm (NHACVIEC_CLOCK): bắt đầu từ {}{}.",
            present::moment_words(start.with_timezone(&tz)),
            if speed > 1 {
                format!(", nhanh gấp {speed} lần")
            } else {
                String::new()
            }
        )),
        ClockKind::Manual => Some("Hệ thống đang chạy với đồng hồ thử nghiệm.".into()),
        ClockKind::System => None,
    }
}

/// The status page. Read and written on the blocking pool, like every database call: with
/// a thousand cells a page takes milliseconds of CPU, which would otherwise queue up on the
/// HTTP thread and hold up every other request.
async fn render_page(s: &AppState, result: Option<&'static str>) -> Response {
    let now = s.clock.now();
    let page = s.clone();
    let built = s
        .db(move |store| {
            let states = store.obligations(now - report::RECENT)?;
            let cfg = page.current.config();
            let tz = cfg.organization.timezone;
            let (states, later) = report::split_ahead(states, now);
            let (columns, rows) = report::grid(&cfg, &states, now);
            let today = now.with_timezone(&tz).date_naive();
            let later = later_json(&cfg, &later, now);
            Ok(page.render(
                StatusCode::OK,
                "status.html.j2",
                json!({
                    "now": present::moment_words(now.with_timezone(&tz)),
                    "clock": clock_note(page.clock.kind(), tz),
                    "any": !columns.is_empty(),
                    "later": later,
                    "grid": grid_html(&columns, &rows, &guard::csrf_token(&page.key, today), &page.base()),
                    "result": result,
                }),
            ))
        })
        .await;
    built.unwrap_or_else(|e| s.busy("status page", &e))
}

/// The occurrences further ahead than the grid, one entry each: what, when, who owes it,
/// and who answered early.
fn later_json(
    cfg: &crate::config::Config,
    later: &[crate::store::Obligation],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<serde_json::Value> {
    let tz = cfg.organization.timezone;
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut last: Option<(&str, &str)> = None;
    for o in later {
        if last != Some((&o.rule, &o.period)) {
            last = Some((&o.rule, &o.period));
            out.push(json!({
                "title": o.title,
                "period_label": o.period_label,
                "once": o.once(),
                "deadline": present::deadline_words(
                    o.deadline.with_timezone(&tz),
                    o.due_day,
                    Some(o.last_day),
                ),
                "units": [],
            }));
        }
        let shown = o.shown(now);
        if let Some(units) = out.last_mut().and_then(|e| e["units"].as_array_mut()) {
            units.push(json!({
                "name": cfg.unit_name(&o.unit),
                "state": shown.as_str(),
                "state_label": shown.label(),
            }));
        }
    }
    out
}

/// `GET /status`.
pub(super) async fn page(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&s, &headers, addr) {
        return *r;
    }
    render_page(&s, None).await
}

/// `GET /status.csv`.
pub(super) async fn csv(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&s, &headers, addr) {
        return *r;
    }
    let now = s.clock.now();
    let cfg = s.current.config();
    // Built on the blocking pool too, like the page.
    match s
        .db(move |store| {
            let states = store.obligations(now - report::RECENT)?;
            Ok(report::csv(&report::lines(&cfg, &states, now)))
        })
        .await
    {
        Ok(csv) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"nhacviec-status.csv\"",
                ),
                // Every unit's state, behind a password: in no cache, and never taken for
                // anything but CSV.
                (header::CACHE_CONTROL, "no-store"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            csv,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status.csv");
            (StatusCode::SERVICE_UNAVAILABLE, "database error\n").into_response()
        }
    }
}

/// `GET /status.ics`: every unit's deadlines as one calendar feed, behind the same login.
pub(super) async fn feed(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&s, &headers, addr) {
        return *r;
    }
    super::unit::admin_feed(&s, &headers).await
}

/// `GET /status/ack` (a refreshed or bookmarked result page): back to the grid.
pub(super) async fn back_to_status(State(s): State<AppState>) -> Response {
    let to = format!("{}/status", s.base());
    (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
}

/// `POST /status/ack` with `obligation` and `csrf`: marks it done on the unit's behalf.
pub(super) async fn mark_done(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Err(r) = authorized(&s, &headers, addr) {
        return *r;
    }
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return super::bad_form(&s, &e),
    };
    let now = s.clock.now();
    let cfg = s.current.config();
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    if !guard::csrf_ok(&s.key, today, csrf) {
        return s.message(
            StatusCode::FORBIDDEN,
            "Biểu mẫu đã hết hạn",
            "Vui lòng tải lại trang theo dõi rồi thao tác lại.",
        );
    }
    let Some(key) = form.get("obligation").cloned() else {
        return s.message(
            StatusCode::BAD_REQUEST,
            "Yêu cầu không hợp lệ",
            "Thiếu nhiệm vụ.",
        );
    };
    let ack = super::PageAck {
        key,
        action: AckAction::Done,
        source: AckSource::Status,
        note: Some("đánh dấu hoàn thành từ trang theo dõi"),
    };
    let result = match s.record_ack(ack, addr, &headers).await {
        Ok(Some(o)) if o.changed() => "Đã đánh dấu hoàn thành.",
        Ok(Some(_)) => "Nhiệm vụ này đã hoàn thành trước đó.",
        Ok(None) => return s.not_found(),
        Err(page) => return page,
    };
    render_page(&s, Some(result)).await
}

/// The grid as an HTML table (`table#grid`), each cell not done with a form that marks it
/// done. Written directly rather than through a template: with a thousand cells a template
/// engine costs several milliseconds a page, and the status page must stay fast.
fn grid_html(columns: &[Column], rows: &[Row], csrf: &str, base: &str) -> String {
    let action = format!("{base}/status/ack");
    let mut h = String::with_capacity(256 + rows.len() * columns.len() * 320);
    h.push_str("<table id=\"grid\">\n<thead><tr><th>Đơn vị</th>");
    for c in columns {
        put(&mut h, &["<th data-key=\"", &c.key, "\">", &c.title]);
        if !c.once {
            put(&mut h, &[" ", &c.period_label]);
        }
        put(
            &mut h,
            &["<br><span class=\"note\">", &c.deadline, "</span></th>"],
        );
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        put(
            &mut h,
            &["<tr data-unit=\"", &r.id, "\"><th>", &r.name, "</th>"],
        );
        for cell in &r.cells {
            let Some(c) = cell else {
                h.push_str("<td><span class=\"note\">–</span></td>");
                continue;
            };
            put(&mut h, &["<td data-key=\"", &c.key]);
            let _ = write!(
                h,
                "\" data-state=\"{s}\"><span class=\"state {s}\">{l}</span>",
                s = c.state.as_str(),
                l = c.state.label()
            );
            if let Some(at) = &c.at {
                put(&mut h, &["<br><span class=\"note\">", at, "</span>"]);
            }
            if c.state != Shown::Done {
                put(
                    &mut h,
                    &[
                        "<form method=\"post\" action=\"",
                        &action,
                        "\"><input type=\"hidden\" name=\"obligation\" value=\"",
                        &c.key,
                        "\"><input type=\"hidden\" name=\"csrf\" value=\"",
                        csrf,
                        "\"><button type=\"submit\">Đánh dấu hoàn thành</button></form>",
                    ],
                );
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>");
    h
}

/// Appends `parts` to `h`: the first, third, … as they are (markup), the others escaped
/// (text and attribute values).
fn put(h: &mut String, parts: &[&str]) {
    for (i, p) in parts.iter().enumerate() {
        if i % 2 == 0 {
            h.push_str(p);
        } else {
            present::html_escape(p, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Cell;

    #[test]
    fn grid_html_escapes_and_has_a_form_per_open_cell() {
        let columns = vec![Column {
            key: "r/2025".into(),
            title: "Báo cáo <năm> & \"tổng kết\"".into(),
            period_label: "năm 2025".into(),
            once: false,
            deadline: "trước ngày 05/01/2026".into(),
        }];
        let cell = |key: &str, state: Shown| {
            Some(Cell {
                key: key.into(),
                state,
                at: None,
            })
        };
        let rows = vec![
            Row {
                id: "vp".into(),
                name: "Văn phòng".into(),
                cells: vec![cell("r/2025/vp", Shown::Done)],
            },
            Row {
                id: "kt".into(),
                name: "Kinh tế".into(),
                cells: vec![cell("r/2025/kt", Shown::Overdue)],
            },
            Row {
                id: "hcc".into(),
                name: "HCC".into(),
                cells: vec![None],
            },
        ];
        let h = grid_html(&columns, &rows, "abc", "");
        assert!(h.contains("Báo cáo &lt;năm&gt; &amp; &quot;tổng kết&quot; năm 2025"));
        assert_eq!(h.matches("<form").count(), 1, "only the open cell: {h}");
        assert!(h.contains("data-key=\"r/2025/kt\" data-state=\"overdue\""));
        assert!(h.contains("value=\"abc\""));
        assert!(h.contains("action=\"/status/ack\""), "{h}");
        // Behind a proxy under a path (public_url https://host/dong-hai), the form posts there.
        let prefixed = grid_html(&columns, &rows, "abc", "/dong-hai");
        assert!(
            prefixed.contains("action=\"/dong-hai/status/ack\""),
            "{prefixed}"
        );
        assert_eq!(
            crate::web::base_path("https://nhacviec.example.vn/dong-hai/"),
            "/dong-hai"
        );
        assert_eq!(crate::web::base_path("http://127.0.0.1:8080"), "");
        assert!(
            h.contains("<tr data-unit=\"hcc\"><th>HCC</th><td><span class=\"note\">–</span></td>")
        );
    }
}
