//! `GET /a/{token}` shows an obligation and two buttons; `POST /a/{token}` records the ack.
//!
//! GET changes nothing (mail scanners prefetch links). POST is idempotent, rate-limited per
//! client address, records time, action, address and user agent, wakes the engine, and shows
//! the result. Unknown, expired (90 days after the deadline) and tampered tokens all get the
//! same 404 page.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

use super::AppState;
use crate::deliver::{context, digest, enqueue};
use crate::store::{NewAck, ObligationState};
use crate::token;

/// Links stop working this long after the deadline.
pub const TOKEN_LIFETIME: Duration = Duration::days(90);

/// The obligation of a token, if the token is well formed, known and not expired.
fn lookup(
    s: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<ObligationState>, Box<Response>> {
    if !token::well_formed(token) {
        return Ok(None);
    }
    match s.store.obligation_by_token(&token::hash(token)) {
        Ok(Some(ob)) if now <= ob.deadline + TOKEN_LIFETIME => Ok(Some(ob)),
        Ok(_) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "ack lookup failed");
            Err(Box::new(s.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Hệ thống đang bận",
                "Không đọc được dữ liệu. Vui lòng thử lại sau ít phút.",
            )))
        }
    }
}

fn when(s: &AppState, t: Option<DateTime<Utc>>) -> Value {
    let tz = s.engine.config().organization.timezone;
    t.map_or(Value::Null, |t| {
        json!(context::moment_words(t.with_timezone(&tz)))
    })
}

fn render(
    s: &AppState,
    ob: &ObligationState,
    now: DateTime<Utc>,
    result: Option<&str>,
) -> Response {
    let cfg = s.engine.config();
    let unit = cfg
        .unit_index(&ob.unit)
        .map_or_else(|| ob.unit.clone(), |i| cfg.units[i].name.clone());
    let (state, label, _) = digest::shown_state(ob, now);
    let last_day = NaiveDate::parse_from_str(&ob.last_day, "%Y-%m-%d").ok();
    s.render(
        StatusCode::OK,
        "ack.html.j2",
        json!({
            "title": ob.title,
            "period_label": ob.period_label,
            "once": NaiveDate::parse_from_str(&ob.period, "%Y-%m-%d").is_ok(),
            "unit": unit,
            "deadline_words": context::stored_deadline_words(
                ob.deadline.with_timezone(&cfg.organization.timezone),
                last_day,
            ),
            "state": state,
            "state_label": label,
            "seen_at": when(s, ob.seen_at),
            "done_at": when(s, ob.done_at),
            "result": result,
        }),
    )
}

/// `GET /a/{token}`.
pub(super) async fn page(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let now = s.clock.now();
    match lookup(&s, &token, now) {
        Ok(Some(ob)) => render(&s, &ob, now, None),
        Ok(None) => s.not_found(),
        Err(r) => *r,
    }
}

/// `POST /a/{token}` with `action=seen` or `action=done`.
pub(super) async fn post(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(token): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let now = s.clock.now();
    if !s.ack_limit.allow(addr.ip(), now) {
        return s.message(
            StatusCode::TOO_MANY_REQUESTS,
            "Quá nhiều yêu cầu",
            "Địa chỉ này đã gửi quá nhiều xác nhận trong một phút. Vui lòng thử lại sau.",
        );
    }
    let ob = match lookup(&s, &token, now) {
        Ok(Some(ob)) => ob,
        Ok(None) => return s.not_found(),
        Err(r) => return *r,
    };
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return super::bad_form(&s, &e),
    };
    let action = match form.get("action").map(String::as_str) {
        Some(a @ ("seen" | "done")) => a,
        _ => {
            return s.message(
                StatusCode::BAD_REQUEST,
                "Yêu cầu không hợp lệ",
                "Vui lòng dùng nút \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" trên trang.",
            );
        }
    };
    let user_agent: Option<String> = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect());
    let ip = addr.ip().to_string();
    let cfg = s.engine.config();
    let ack = NewAck {
        action,
        at: now,
        source: "web",
        ip: Some(&ip),
        user_agent: user_agent.as_deref(),
        note: None,
    };
    let outcome = s.store.ack(&ob.key, &ack, |esc| {
        enqueue::done_notices(&cfg, &ob.key, esc, now)
    });
    let result = match outcome {
        Ok(Some(o)) if o.changed && o.after == "done" => {
            tracing::info!(obligation = %ob.key, action, "acknowledged from the web");
            s.engine.waker().notify_one();
            "Đã ghi nhận: đơn vị đã hoàn thành. Hệ thống sẽ không gửi thêm nhắc nhở."
        }
        Ok(Some(o)) if o.changed => {
            tracing::info!(obligation = %ob.key, action, "acknowledged from the web");
            s.engine.waker().notify_one();
            "Đã ghi nhận: đơn vị đã nhận nhiệm vụ. Hệ thống vẫn nhắc khi đến hạn."
        }
        Ok(Some(_)) => "Trạng thái này đã được ghi nhận trước đó.",
        Ok(None) => return s.not_found(),
        Err(e) => {
            tracing::error!(error = %e, "ack not recorded");
            return s.message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Chưa ghi nhận được",
                "Hệ thống không ghi được xác nhận. Vui lòng thử lại sau ít phút.",
            );
        }
    };
    match lookup(&s, &token, now) {
        Ok(Some(ob)) => render(&s, &ob, now, Some(result)),
        Ok(None) => s.not_found(),
        Err(r) => *r,
    }
}
