//! The HTTP server (axum): acknowledgement pages, the status page, health and metrics.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and the
//! daemon binds `server.listen` before it reports ready. Pages are Vietnamese, need no
//! JavaScript and are rendered by minijinja with HTML escaping. Request bodies are limited to
//! 16 KiB. Nothing here logs a path, so no ack token reaches the logs.
//!
//! Every database call of a handler runs on the blocking pool (`AppState::db`), and the
//! store reads on a connection of its own: a write lock held for a while by another process
//! (a backup, an admin's `sqlite3`) holds up only the requests that must write, never
//! `/healthz` or the pages.

mod ack;
pub mod guard;
mod health;
mod status;
#[cfg(test)]
mod tests;
mod unit;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{AutoEscape, Environment};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::deliver::Current;
use crate::engine::Status;
use crate::store::{Store, StoreError};
use crate::token::TokenKey;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<Store>,
    /// The config in force.
    pub current: Arc<Current>,
    /// The engine's status (last wake, next step).
    pub status: Arc<Status>,
    /// Wakes the engine (after an ack that changed something).
    pub waker: Arc<Notify>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The key ack tokens and CSRF tokens are derived from.
    pub key: TokenKey,
    /// The `/status` password; `None` turns the page off.
    pub admin_password: Option<String>,
    /// The per-address limit on ack POSTs.
    pub ack_limit: Arc<guard::RateLimit>,
    /// The page templates, compiled at the first page served (an idle daemon that only
    /// answers `/healthz` never holds them).
    pub pages: Arc<std::sync::OnceLock<Environment<'static>>>,
}

/// The page templates, compiled in.
pub fn pages() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, text) in [
        ("_layout.html.j2", include_str!("pages/_layout.html.j2")),
        ("ack.html.j2", include_str!("pages/ack.html.j2")),
        ("view.html.j2", include_str!("pages/view.html.j2")),
        ("not_found.html.j2", include_str!("pages/not_found.html.j2")),
        ("message.html.j2", include_str!("pages/message.html.j2")),
        ("status.html.j2", include_str!("pages/status.html.j2")),
        ("unit.html.j2", include_str!("pages/unit.html.j2")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // The pages are part of the binary and tested; this cannot happen in a release.
            tracing::error!(template = name, error = %e, "a page template does not parse");
        }
    }
    env
}

/// Why a handler's database call failed.
#[derive(Debug)]
enum DbError {
    /// The store said no (locked for longer than its busy timeout, a full disk).
    Store(StoreError),
    /// The blocking task did not finish (the runtime is shutting down, or it panicked).
    Task(tokio::task::JoinError),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Store(e) => e.fmt(f),
            DbError::Task(e) => write!(f, "database task failed: {e}"),
        }
    }
}

impl AppState {
    /// Runs a database call on the blocking pool, so that a call waiting for a lock never
    /// holds up the other requests.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, DbError> {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&store)).await {
            Ok(r) => r.map_err(DbError::Store),
            Err(e) => Err(DbError::Task(e)),
        }
    }

    /// The path `public_url` puts the daemon under behind a reverse proxy (`/dong-hai` for
    /// `https://host/dong-hai`; empty at the root): the links and redirects the pages make
    /// to the daemon's own routes start with it.
    fn base(&self) -> String {
        base_path(&self.current.config().organization.public_url)
    }

    /// Renders a page; an error becomes a plain 500.
    fn render(&self, status: StatusCode, name: &str, mut ctx: Value) -> Response {
        let org = self.current.config().organization.name.clone();
        let base = self.base();
        if let Some(m) = ctx.as_object_mut() {
            m.insert("org".into(), Value::String(org));
            m.insert("base".into(), Value::String(base));
        }
        match self
            .pages
            .get_or_init(pages)
            .get_template(name)
            .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        {
            // Pages carry a unit's link in their address: keep them out of caches and of the
            // Referer of any link followed from them.
            Ok(html) => (
                status,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::REFERRER_POLICY, "no-referrer"),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                Html(html),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "cannot render a page");
                (StatusCode::INTERNAL_SERVER_ERROR, "lỗi máy chủ\n").into_response()
            }
        }
    }

    /// The one 404 page: unknown, expired and tampered links all get it.
    fn not_found(&self) -> Response {
        self.render(StatusCode::NOT_FOUND, "not_found.html.j2", json!({}))
    }

    fn message(&self, status: StatusCode, heading: &str, text: &str) -> Response {
        self.render(
            status,
            "message.html.j2",
            json!({"heading": heading, "text": text}),
        )
    }

    /// The page for a database that did not answer: try again in a few minutes.
    fn busy(&self, what: &str, e: &DbError) -> Response {
        tracing::error!(error = %e, "{what}");
        self.message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Hệ thống đang bận",
            "Không đọc được dữ liệu. Vui lòng thử lại sau ít phút.",
        )
    }
}

/// An acknowledgement made on a page: the unit's link, or the admin's status page.
struct PageAck {
    key: String,
    action: crate::state::AckAction,
    source: crate::state::AckSource,
    note: Option<&'static str>,
}

impl AppState {
    /// Records an acknowledgement made on a page, with the request's address and user agent,
    /// and wakes the engine when it changed something. `Ok(None)` if there is no such
    /// obligation; `Err` with the page to show if it could not be recorded.
    async fn record_ack(
        &self,
        ack: PageAck,
        addr: SocketAddr,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<crate::store::AckOutcome>, Response> {
        let now = self.clock.now();
        let user_agent = user_agent(headers);
        let ip = addr.ip().to_string();
        let cfg = self.current.config();
        let (key, source) = (ack.key.clone(), ack.source);
        let outcome = self
            .db(move |store| {
                let new = crate::store::NewAck {
                    action: ack.action,
                    at: now,
                    source: ack.source,
                    ip: Some(&ip),
                    user_agent: user_agent.as_deref(),
                    note: ack.note,
                };
                crate::deliver::notices::record_ack(store, &cfg, &ack.key, &new)
            })
            .await;
        match outcome {
            Ok(o) => {
                if let Some(o) = o.filter(|o| o.changed()) {
                    let action = o.after;
                    match source {
                        crate::state::AckSource::Status => {
                            tracing::info!(obligation = %key, "marked done from the status page");
                        }
                        _ => {
                            tracing::info!(obligation = %key, %action, "acknowledged from the web")
                        }
                    }
                    self.waker.notify_one();
                }
                Ok(o)
            }
            Err(e) => {
                tracing::error!(error = %e, obligation = %key, "acknowledgement not recorded");
                Err(self.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Chưa ghi nhận được",
                    "Hệ thống không ghi được xác nhận. Vui lòng thử lại sau ít phút.",
                ))
            }
        }
    }
}

/// The answer to an ack POST over the per-address limit.
fn rate_limited(s: &AppState) -> Response {
    s.message(
        StatusCode::TOO_MANY_REQUESTS,
        "Quá nhiều yêu cầu",
        "Địa chỉ này đã gửi quá nhiều xác nhận trong một phút. Vui lòng thử lại sau.",
    )
}

/// The answer to an ack POST without a known action (not sent by the page's buttons).
fn bad_action(s: &AppState) -> Response {
    s.message(
        StatusCode::BAD_REQUEST,
        "Yêu cầu không hợp lệ",
        "Vui lòng dùng nút \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" trên trang.",
    )
}

/// A form that could not be read: too large, wrong type, not a form.
fn bad_form(s: &AppState, e: &axum::extract::rejection::FormRejection) -> Response {
    let status = e.status();
    let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "Yêu cầu quá lớn."
    } else {
        "Vui lòng gửi bằng các nút trên trang."
    };
    s.message(status, "Yêu cầu không hợp lệ", text)
}

/// The client's user agent, shortened to what the ledger keeps.
fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect())
}

/// The path of `public_url`, without its trailing slash: "" for `http://127.0.0.1:8080`,
/// "/dong-hai" for `https://nhacviec.example.vn/dong-hai/`.
pub fn base_path(public_url: &str) -> String {
    reqwest::Url::parse(public_url)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/a/{token}", get(ack::page).post(ack::post))
        .route("/v/{hash}", get(ack::view))
        .route("/status", get(status::page))
        .route("/status.csv", get(status::csv))
        .route("/status.ics", get(status::feed))
        .route("/u/{token}", get(unit::get).post(unit::post))
        .route(
            "/status/ack",
            post(status::mark_done).get(status::back_to_status),
        )
        .fallback(|State(s): State<AppState>| async move { s.not_found() })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
