//! `/status`: the units × obligations grid behind HTTP Basic auth, its CSV, and the form that
//! marks an obligation done on a unit's behalf (with a CSRF token).

use std::collections::HashMap;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{AppState, guard};
use crate::deliver::{context, enqueue};
use crate::report;
use crate::store::NewAck;

/// `Ok` if the request carries the admin's credentials; else the response to send.
fn authorized(s: &AppState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(password) = &s.admin_password else {
        return Err(Box::new(s.message(
            StatusCode::NOT_FOUND,
            "Trang theo dõi đang tắt",
            "Quản trị cần đặt server.admin_password_file trong tệp cấu hình để bật trang này.",
        )));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if guard::basic_auth_ok(given, password) {
        Ok(())
    } else {
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

fn render_page(s: &AppState, result: Option<&str>) -> Response {
    let now = s.clock.now();
    let cfg = s.engine.config();
    let tz = cfg.organization.timezone;
    let states = match s.store.obligation_states(now - report::RECENT) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "status page");
            return s.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Hệ thống đang bận",
                "Không đọc được dữ liệu.",
            );
        }
    };
    let (columns, rows) = report::grid(&cfg, &states, now);
    let today = now.with_timezone(&tz).date_naive();
    s.render(
        StatusCode::OK,
        "status.html.j2",
        json!({
            "now": context::moment_words(now.with_timezone(&tz)),
            "any": !columns.is_empty(),
            "grid": report::grid_html(&columns, &rows, &guard::csrf_token(&s.key, today)),
            "result": result,
        }),
    )
}

/// `GET /status`.
pub(super) async fn page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    render_page(&s, None)
}

/// `GET /status.csv`.
pub(super) async fn csv(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    let now = s.clock.now();
    let cfg = s.engine.config();
    match s.store.obligation_states(now - report::RECENT) {
        Ok(states) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"nhacviec-status.csv\"",
                ),
            ],
            report::csv(&report::lines(&cfg, &states, now)),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status.csv");
            (StatusCode::SERVICE_UNAVAILABLE, "database error\n").into_response()
        }
    }
}

/// `GET /status/ack` (a refreshed or bookmarked result page): back to the grid.
pub(super) async fn back_to_status() -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/status")]).into_response()
}

/// `POST /status/ack` with `obligation` and `csrf`: marks it done on the unit's behalf.
pub(super) async fn mark_done(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Err(r) = authorized(&s, &headers) {
        return *r;
    }
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return super::bad_form(&s, &e),
    };
    let now = s.clock.now();
    let cfg = s.engine.config();
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    let csrf = form.get("csrf").map(String::as_str).unwrap_or("");
    if !guard::csrf_ok(&s.key, today, csrf) {
        return s.message(
            StatusCode::FORBIDDEN,
            "Biểu mẫu đã hết hạn",
            "Vui lòng tải lại trang theo dõi rồi thao tác lại.",
        );
    }
    let Some(key) = form.get("obligation") else {
        return s.message(
            StatusCode::BAD_REQUEST,
            "Yêu cầu không hợp lệ",
            "Thiếu nhiệm vụ.",
        );
    };
    let ip = addr.ip().to_string();
    let user_agent: Option<String> = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect());
    let ack = NewAck {
        action: "done",
        at: now,
        source: "status",
        ip: Some(&ip),
        user_agent: user_agent.as_deref(),
        note: Some("đánh dấu hoàn thành từ trang theo dõi"),
    };
    let result = match s
        .store
        .ack(key, &ack, |esc| enqueue::done_notices(&cfg, key, esc, now))
    {
        Ok(Some(o)) if o.changed => {
            tracing::info!(obligation = %key, "marked done from the status page");
            s.engine.waker().notify_one();
            "Đã đánh dấu hoàn thành."
        }
        Ok(Some(_)) => "Nhiệm vụ này đã hoàn thành trước đó.",
        Ok(None) => return s.not_found(),
        Err(e) => {
            tracing::error!(error = %e, "status ack");
            return s.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Chưa ghi nhận được",
                "Vui lòng thử lại.",
            );
        }
    };
    render_page(&s, Some(result))
}
