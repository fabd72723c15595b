//! Each unit's own page and calendar feed, behind a secret link per unit.
//!
//! - `GET /u/{token}`: the unit's open obligations (soonest first) with the two ack buttons,
//!   then what it finished in the last 12 months; a header with the unit and the
//!   coordinator to contact. No JavaScript.
//! - `POST /u/{token}` (`obligation`, `action`): the same acknowledgement as `/a/{token}`
//!   (same ledger, source `web`), for one of this unit's obligations only; then a redirect
//!   (303) to the page, so a refresh does not post again.
//! - `GET /u/{token}.ics`: the unit's deadlines from 90 days back to 12 months ahead as an
//!   iCalendar feed (the coordinator's holds every unit's), with an `ETag` answered by 304.
//!
//! The token is derived from the unit id and its generation
//! ([`crate::token::TokenKey::unit_token`]); `nhacviec links --rotate` bumps the
//! generation, and the old link gets the same 404 as a forged one. Units that left the
//! config have no page.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::AppState;
use crate::config::Config;
use crate::deliver::context;
use crate::ics;
use crate::plan::{self, Period, StepKind};
use crate::present;
use crate::state::{AckAction, AckSource, ObligationState};
use crate::store::Obligation;
use crate::token::{self, TokenKey};

/// How far back the page and the feed look for obligations still open.
const OPEN_SINCE: Duration = Duration::days(400);
/// The done list: what was finished in the last 12 months.
const DONE_FOR: Duration = Duration::days(365);
/// How far back the feed goes.
const FEED_BACK: Duration = Duration::days(90);
/// How far ahead the page and the feed go.
const AHEAD: Duration = Duration::days(366);
/// How often a calendar client should fetch the feed again.
const FEED_REFRESH: Duration = Duration::hours(6);

/// The unit whose page token `tok` is, at its generation in force, with the config it was
/// found in (its index is into that config's `units`: a reload meanwhile may have removed or
/// moved units, so the handler keeps to this one); `None` for a malformed, forged, rotated or
/// removed unit's token.
async fn unit_of(s: &AppState, tok: &str) -> Result<Option<(Arc<Config>, usize)>, Box<Response>> {
    if !token::well_formed(tok) {
        return Ok(None);
    }
    let generations = match s.db(|store| store.unit_generations()).await {
        Ok(g) => g,
        Err(e) => return Err(Box::new(s.busy("unit lookup failed", &e))),
    };
    let cfg = s.current.config();
    let given = token::hash(tok);
    let found = cfg
        .units
        .iter()
        .position(|u| token::hash(&context::unit_token(&s.key, &generations, &u.id)) == given);
    Ok(found.map(|u| (cfg, u)))
}

/// `GET /u/{token}` and `GET /u/{token}.ics`.
pub(super) async fn get(
    State(s): State<AppState>,
    Path(tok): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (tok, feed) = match tok.strip_suffix(".ics") {
        Some(t) => (t.to_string(), true),
        None => (tok, false),
    };
    let (cfg, u) = match unit_of(&s, &tok).await {
        Ok(Some(found)) => found,
        Ok(None) => return s.not_found(),
        Err(r) => return *r,
    };
    if feed {
        unit_feed(&s, &cfg, u, &tok, &headers).await
    } else {
        page(&s, &cfg, u, &tok, q.get("kq").map(String::as_str)).await
    }
}

/// What a finished POST says on the page it redirects to (`?kq=`), here and on the ack
/// page.
pub(super) fn result_text(kq: &str) -> Option<&'static str> {
    Some(match kq {
        "done" => "Đã ghi nhận: đơn vị đã hoàn thành. Hệ thống sẽ không gửi thêm nhắc nhở.",
        "seen" => "Đã ghi nhận: đơn vị đã nhận nhiệm vụ. Hệ thống vẫn nhắc khi đến hạn.",
        "same" => "Trạng thái này đã được ghi nhận trước đó.",
        _ => return None,
    })
}

/// "còn 3 ngày làm việc", "hôm nay là hạn làm việc cuối", "quá hạn 2 ngày làm việc".
fn time_left(cfg: &Config, ob: &Obligation, now: DateTime<Utc>) -> String {
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    let cal = &cfg.calendar;
    if now >= ob.deadline {
        match present::working_days_between(cal, ob.last_day, today) {
            0 => "Quá hạn".to_string(),
            n => format!("Quá hạn {n} ngày làm việc"),
        }
    } else if today < ob.last_day {
        format!(
            "Còn {} ngày làm việc",
            present::working_days_between(cal, today, ob.last_day)
        )
    } else if today == ob.last_day {
        "Hôm nay là hạn làm việc cuối".to_string()
    } else {
        "Đã qua hạn làm việc cuối".to_string()
    }
}

fn item(cfg: &Config, ob: &Obligation, now: DateTime<Utc>) -> Value {
    let mut v = super::ack::page_data(cfg, ob, now);
    v["key"] = json!(ob.key);
    v["anchor"] = json!(anchor(&ob.key));
    v["left"] = json!(time_left(cfg, ob, now));
    v["can_seen"] = json!(ob.state == ObligationState::Pending);
    v
}

async fn page(s: &AppState, cfg: &Config, u: usize, tok: &str, kq: Option<&str>) -> Response {
    let now = s.clock.now();
    let unit = cfg.units[u].id.clone();
    let rows = match s
        .db(move |store| store.unit_obligations(Some(&unit), now - OPEN_SINCE))
        .await
    {
        Ok(r) => r,
        Err(e) => return s.busy("unit page read failed", &e),
    };
    let open: Vec<Value> = rows
        .iter()
        .filter(|o| o.state != ObligationState::Done && o.deadline <= now + AHEAD)
        .map(|o| item(cfg, o, now))
        .collect();
    let mut done: Vec<&Obligation> = rows
        .iter()
        .filter(|o| o.done_at.is_some_and(|t| t >= now - DONE_FOR))
        .collect();
    done.sort_by_key(|o| std::cmp::Reverse(o.done_at));
    let done: Vec<Value> = done.iter().map(|o| item(cfg, o, now)).collect();
    let coordinator = cfg
        .organization
        .coordinator
        .filter(|&c| c != u)
        .map(|c| json!({"name": cfg.units[c].name, "email": cfg.units[c].email}));
    let feed = format!("{}.ics", context::unit_url(cfg, tok));
    let data = json!({
        "unit": cfg.units[u].name,
        "coordinator": coordinator,
        "is_coordinator": cfg.organization.coordinator == Some(u),
        "open": open,
        "done": done,
        "feed_url": feed,
        "webcal_url": feed.replacen("https://", "webcal://", 1),
        "result": kq.and_then(result_text),
        "today": present::date_with_weekday(now.with_timezone(&cfg.organization.timezone).date_naive()),
    });
    s.render(StatusCode::OK, "unit.html.j2", data)
}

/// `POST /u/{token}` with `obligation=RULE/PERIOD/UNIT` and `action=seen|done`.
pub(super) async fn post(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(tok): Path<String>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    if let Err(r) = super::ack_allowed(&s, addr) {
        return *r;
    }
    let (cfg, u) = match unit_of(&s, &tok).await {
        Ok(Some(found)) => found,
        Ok(None) => return s.not_found(),
        Err(r) => return *r,
    };
    let form = match form {
        Ok(Form(f)) => f,
        Err(e) => return super::bad_form(&s, &e),
    };
    let action = form.get("action").and_then(|a| a.parse::<AckAction>().ok());
    let (Some(action), Some(key)) = (action, form.get("obligation").cloned()) else {
        return super::bad_action(&s);
    };
    // Only this unit's own obligations.
    let unit = cfg.units[u].id.clone();
    let lookup = key.clone();
    match s.db(move |store| store.obligation_by_key(&lookup)).await {
        Ok(Some(ob)) if ob.unit == unit => {}
        Ok(_) => return s.not_found(),
        Err(e) => return s.busy("unit page ack lookup failed", &e),
    }
    let ack = super::PageAck {
        key,
        action,
        source: AckSource::Web,
        note: Some("trang đơn vị"),
    };
    let kq = match s.record_ack(ack, addr, &headers).await {
        Ok(Some(o)) if o.changed() && o.after == ObligationState::Done => "done",
        Ok(Some(o)) if o.changed() => "seen",
        Ok(Some(_)) => "same",
        Ok(None) => return s.not_found(),
        Err(page) => return page,
    };
    let to = format!("{}/u/{tok}?kq={kq}", s.base());
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, to),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

/// The host named in `public_url`, for the events' UIDs.
fn host(cfg: &Config) -> String {
    reqwest::Url::parse(&cfg.organization.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "nhacviec.invalid".to_string())
}

/// Who a feed is for: one unit (the coordinator follows every unit), or the admin.
#[derive(Debug, Clone, Copy)]
pub(super) enum Reader<'a> {
    /// The unit (index into `config.units`) and its page's URL.
    Unit(usize, &'a str),
    /// The admin's all-units feed (`/status.ics`).
    Admin,
}

/// The anchor of an obligation on its unit's page: its key with dots (`rule.period.unit`).
fn anchor(key: &str) -> String {
    key.replace('/', ".")
}

/// The events of `rows` for `reader`: its own obligations link to their place on the
/// unit's page (where its buttons are), other units' (the coordinator's and the admin's
/// feeds) to the read-only view.
///
/// A feed leaves the building (Google's and Microsoft's servers fetch it, calendars get
/// shared), so it carries no ack token: an ack link depends only on the key file and the
/// obligation, and rotating the unit's link could not revoke a year of them. The page link
/// is revoked with the feed's own.
pub(super) fn feed(
    cfg: &Config,
    key: &TokenKey,
    rows: &[Obligation],
    reader: Reader,
    now: DateTime<Utc>,
) -> ics::Feed {
    let host = host(cfg);
    let own = |ob: &Obligation| match reader {
        Reader::Unit(u, _) => cfg.units[u].id == ob.unit,
        Reader::Admin => false,
    };
    let many = match reader {
        Reader::Unit(u, _) => cfg.organization.coordinator == Some(u),
        Reader::Admin => true,
    };
    let tz = cfg.organization.timezone;
    let mut alarms: HashMap<(&str, &str), Option<DateTime<Utc>>> = HashMap::new();
    let events = rows
        .iter()
        .filter(|ob| ob.deadline >= now - FEED_BACK && ob.deadline <= now + AHEAD)
        .map(|ob| {
            let done = ob.state == ObligationState::Done;
            let mut summary = format!(
                "{}{}",
                if done {
                    "✓ Đã hoàn thành: "
                } else {
                    "Hạn: "
                },
                ob.title
            );
            if !ob.once() {
                summary = format!("{summary} {}", ob.period_label);
            }
            if many {
                summary = format!("{summary} – {}", cfg.unit_name(&ob.unit));
            }
            let url = match reader {
                Reader::Unit(_, page) if own(ob) => format!("{page}#{}", anchor(&ob.key)),
                _ => context::view_url(cfg, &key.token(&ob.key)),
            };
            let rule = cfg.rule_index(&ob.rule).map(|r| &cfg.rules[r]);
            let mut lines = vec![
                format!(
                    "Thời hạn: {}",
                    present::deadline_words(
                        ob.deadline.with_timezone(&tz),
                        ob.due_day,
                        Some(ob.last_day)
                    )
                ),
                format!("Đơn vị thực hiện: {}", cfg.unit_name(&ob.unit)),
            ];
            if let Some(to) = rule.and_then(|r| r.submit_to) {
                lines.push(format!("Nơi gửi: {}", cfg.units[to].name));
            }
            if let Some(reference) = rule.and_then(|r| r.reference.as_deref()) {
                lines.push(format!("Căn cứ: {reference}"));
            }
            if let Some(t) = ob.done_at.filter(|_| done) {
                lines.push(format!(
                    "Đã hoàn thành lúc {}",
                    present::moment_words(t.with_timezone(&tz))
                ));
            }
            lines.push(if own(ob) {
                format!("Xác nhận \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" trên trang của đơn vị: {url}")
            } else {
                format!("Xem tình hình: {url}")
            });
            // No alarm for what is done, nor one already past (a client subscribing would
            // pop every missed one at once).
            let alarm = if done {
                None
            } else {
                alarms
                    .entry((&ob.rule, &ob.period))
                    .or_insert_with(|| first_before(cfg, &ob.rule, &ob.period))
                    .filter(|at| *at > now)
            };
            let stamp = [Some(ob.recorded_at), ob.seen_at, ob.done_at]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(ob.recorded_at);
            ics::Event {
                uid: format!("{}.{}.{}@{host}", ob.rule, ob.period, ob.unit),
                stamp,
                day: ob.last_day,
                summary,
                description: lines.join("\n"),
                url,
                alarm,
            }
        })
        .collect();
    let name = match reader {
        Reader::Unit(u, _) => format!("Nhắc việc – {}", cfg.units[u].name),
        Reader::Admin => format!("Nhắc việc – {}", cfg.organization.name),
    };
    ics::Feed {
        name,
        timezone: tz.name().to_string(),
        refresh: FEED_REFRESH,
        events,
    }
}

/// The instant of the policy's first `before` step of `rule/period` in the config in
/// force, if the rule and the step exist.
fn first_before(cfg: &Config, rule: &str, period: &str) -> Option<DateTime<Utc>> {
    let ri = cfg.rule_index(rule)?;
    let p = Period::parse(cfg.rules[ri].period, period)?;
    plan::occurrence(cfg, ri, p)?
        .steps
        .iter()
        .find(|s| s.name.kind == StepKind::Before)
        .map(|s| s.at.with_timezone(&Utc))
}

/// The feed as an HTTP answer: `ETag` from its bytes, `Last-Modified` from its latest
/// change, 304 when the client's `If-None-Match` matches.
pub(super) fn feed_response(f: &ics::Feed, headers: &HeaderMap) -> Response {
    let body = f.write();
    let digest = Sha256::digest(body.as_bytes());
    let etag: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{etag}\"");
    let modified = f
        .events
        .iter()
        .map(|e| e.stamp)
        .max()
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/calendar; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = modified.and_then(|m| HeaderValue::from_str(&m).ok()) {
        h.insert(header::LAST_MODIFIED, v);
    }
    // A secret link: private caches only, and always revalidated.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn unit_feed(
    s: &AppState,
    cfg: &Config,
    u: usize,
    tok: &str,
    headers: &HeaderMap,
) -> Response {
    let now = s.clock.now();
    // The coordinator follows every unit.
    let unit = (cfg.organization.coordinator != Some(u)).then(|| cfg.units[u].id.clone());
    let rows = match s
        .db(move |store| store.unit_obligations(unit.as_deref(), now - FEED_BACK))
        .await
    {
        Ok(r) => r,
        Err(e) => return s.busy("unit feed read failed", &e),
    };
    let page = context::unit_url(cfg, tok);
    let reader = Reader::Unit(u, &page);
    feed_response(&feed(cfg, &s.key, &rows, reader, now), headers)
}

/// The admin's feed of every unit (`GET /status.ics`, behind the status page's login).
pub(super) async fn admin_feed(s: &AppState, headers: &HeaderMap) -> Response {
    let now = s.clock.now();
    let cfg = s.current.config();
    let rows = match s
        .db(move |store| store.unit_obligations(None, now - FEED_BACK))
        .await
    {
        Ok(r) => r,
        Err(e) => return s.busy("status feed read failed", &e),
    };
    feed_response(&feed(&cfg, &s.key, &rows, Reader::Admin, now), headers)
}
