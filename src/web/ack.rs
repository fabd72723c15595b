//! `GET /a/{token}` shows an obligation and two buttons; `POST /a/{token}` records the ack.
//! `GET /v/{hash}` (the SHA-256 of the token, as the leadership's escalated notice links
//! it) shows the same obligation read-only: no form, and no POST route, so a leader's click
//! never records the unit's answer.
//!
//! GET changes nothing (mail scanners prefetch links). POST is idempotent, rate-limited per
//! client address, records time, action, address and user agent, wakes the engine, and
//! answers with a redirect (303) to the page with the result (`?kq=done|seen|same`), so a
//! refresh of the result does not post again. Unknown, expired (90 days after the deadline)
//! and tampered tokens all get the same 404 page.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use super::AppState;
use crate::present;
use crate::state::{AckAction, AckSource, ObligationState};
use crate::store::Obligation;
use crate::token;

/// Links stop working this long after the deadline.
pub const TOKEN_LIFETIME: Duration = Duration::days(90);

/// The obligation of a token, if the token is well formed, known and not expired.
async fn lookup(
    s: &AppState,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Obligation>, Box<Response>> {
    if !token::well_formed(token) {
        return Ok(None);
    }
    lookup_hash(s, token::hash(token), now).await
}

/// The obligation whose token hashes to `hash`, if known and not expired.
async fn lookup_hash(
    s: &AppState,
    hash: [u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<Obligation>, Box<Response>> {
    match s.db(move |store| store.obligation_by_token(&hash)).await {
        Ok(Some(ob)) if now <= ob.deadline + TOKEN_LIFETIME => Ok(Some(ob)),
        Ok(_) => Ok(None),
        Err(e) => Err(Box::new(s.busy("ack lookup failed", &e))),
    }
}

/// `GET /v/{hash}`: the obligation, read-only, with how to reach the unit.
pub(super) async fn view(State(s): State<AppState>, Path(hash): Path<String>) -> Response {
    let now = s.clock.now();
    let Some(hash) = hex32(&hash) else {
        return s.not_found();
    };
    match lookup_hash(&s, hash, now).await {
        Ok(Some(ob)) => {
            let cfg = s.current.config();
            let mut data = page_data(&cfg, &ob, now);
            data["contacts"] = json!(
                cfg.unit_index(&ob.unit)
                    .map(|u| cfg.units[u].email.clone())
                    .unwrap_or_default()
            );
            s.render(StatusCode::OK, "view.html.j2", data)
        }
        Ok(None) => s.not_found(),
        Err(r) => *r,
    }
}

/// 64 lowercase hex digits as 32 bytes (what `/v/` takes), or `None`.
fn hex32(s: &str) -> Option<[u8; 32]> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if s.len() != 64 || !s.bytes().all(lower_hex) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// What the ack page, the read-only view and a unit page's item show of an obligation.
pub(super) fn page_data(cfg: &crate::config::Config, ob: &Obligation, now: DateTime<Utc>) -> Value {
    let tz = cfg.organization.timezone;
    let when = |t: Option<DateTime<Utc>>| {
        t.map_or(Value::Null, |t| {
            json!(present::moment_words(t.with_timezone(&tz)))
        })
    };
    let state = ob.shown(now);
    json!({
        "title": ob.title,
        "period_label": ob.period_label,
        "once": ob.once(),
        "unit": cfg.unit_name(&ob.unit),
        "deadline_words": present::deadline_words(
            ob.deadline.with_timezone(&tz),
            ob.due_day,
            Some(ob.last_day),
        ),
        "state": state.as_str(),
        "state_label": state.label(),
        "seen_at": when(ob.seen_at),
        "done_at": when(ob.done_at),
    })
}

fn render(s: &AppState, ob: &Obligation, now: DateTime<Utc>, result: Option<&str>) -> Response {
    let mut data = page_data(s.current.config().as_ref(), ob, now);
    data["result"] = json!(result);
    s.render(StatusCode::OK, "ack.html.j2", data)
}

/// `GET /a/{token}`, and `GET /a/{token}?kq=…` after a POST: the page with what it recorded
/// ([`super::unit::result_text`]; records nothing, so a refresh is harmless).
pub(super) async fn page(
    State(s): State<AppState>,
    Path(token): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let now = s.clock.now();
    let result = q.get("kq").and_then(|kq| super::unit::result_text(kq));
    match lookup(&s, &token, now).await {
        Ok(Some(ob)) => render(&s, &ob, now, result),
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
    if let Err(r) = super::ack_allowed(&s, addr) {
        return *r;
    }
    let now = s.clock.now();
    let ob = match lookup(&s, &token, now).await {
        Ok(Some(ob)) => ob,
        Ok(None) => return s.not_found(),
        Err(r) => return *r,
    };
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return super::bad_form(&s, &e),
    };
    let Some(action) = form.get("action").and_then(|a| a.parse::<AckAction>().ok()) else {
        return super::bad_action(&s);
    };
    let ack = super::PageAck {
        key: ob.key.clone(),
        action,
        source: AckSource::Web,
        note: None,
    };
    let kq = match s.record_ack(ack, addr, &headers).await {
        Ok(Some(o)) if o.changed() && o.after == ObligationState::Done => "done",
        Ok(Some(o)) if o.changed() => "seen",
        Ok(Some(_)) => "same",
        Ok(None) => return s.not_found(),
        Err(page) => return page,
    };
    // POST, redirect, GET: the result is a page of its own, which a refresh reloads
    // without posting again.
    let to = format!("{}/a/{token}?kq={kq}", s.base());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, to),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response()
}
