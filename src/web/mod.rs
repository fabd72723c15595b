//! The HTTP server (axum): acknowledgement pages, the status page, health and metrics.
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and the
//! daemon binds `server.listen` before it reports ready. Pages are Vietnamese, need no
//! JavaScript and are rendered by minijinja with HTML escaping; they forbid framing and every
//! resource but their own inline styles. Request bodies are limited to 16 KiB. Nothing here
//! logs a path, so no ack token reaches the logs.
//!
//! Every error answer is such a page too, with its status (`error_pages`). Behind a
//! reverse proxy listed in `server.trusted_proxies`, a request's address is the client's
//! as the proxy reports it ([`guard::client_ip`]); from anyone else the forwarding
//! headers are ignored.
//!
//! A client may stay silent only `server.timeout_seconds` (headers, body, an idle kept-alive
//! connection), or leave its answers unread that long (`slow`), and at most
//! `server.max_connections` connections are served at once: the next ones wait in the
//! kernel's queue. Without both, a thousand idle sockets used up the process's file
//! descriptors and the listener stopped for everyone. One address may hold only a share of
//! them (a quarter, at least 16; [`guard::PerAddress`]), so one client cannot take them all.
//!
//! Every database call of a handler runs on the blocking pool (`AppState::db`), and the
//! store reads on a connection of its own: a write lock held for a while by another process
//! (a backup, an admin's `sqlite3`) holds up only the requests that must write, never
//! `/healthz` or the pages.

mod ack;
pub mod guard;
mod health;
mod slow;
mod status;
#[cfg(test)]
mod tests;
mod unit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, State};
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
    /// The per-address limit on ack POSTs (its limit is the config's in force; the `/status`
    /// password is the one in force too: [`crate::deliver::Applied::admin_password`]).
    pub ack_limit: Arc<guard::RateLimit>,
    /// The per-address throttle on failed `/status` logins.
    pub logins: Arc<guard::LoginThrottle>,
    /// The page templates, compiled at the first page served (an idle daemon that only
    /// answers `/healthz` never holds them).
    pub pages: Arc<std::sync::OnceLock<Environment<'static>>>,
}

/// The Content-Security-Policy of every page: nothing loaded, styles only inline (the pages'
/// `<style>` and `style=` attributes), forms posting to the page's own origin, no framing.
pub const PAGE_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

/// The headers of every page. Pages carry a unit's link in their address: keep them out of
/// caches and of the Referer of any link followed from them. They load nothing (no script,
/// image or font: their styles are inline), post only to themselves, and no other site may
/// frame them, so their buttons cannot be clicked through a disguise.
const PAGE_HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// The page when a page's template cannot render (a bug): written out by hand, so that even
/// then the answer is a Vietnamese page.
const UNRENDERED: &str = "<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Lỗi máy chủ</title>\n\
</head>\n<body>\n<h1>Lỗi máy chủ</h1>\n<p>Hệ thống gặp lỗi khi hiển thị trang. Vui lòng thử lại sau ít \
phút; nếu vẫn lỗi, hãy báo cho quản trị.</p>\n</body>\n</html>\n";

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
            Ok(html) => (status, PAGE_HEADERS, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(page = name, error = %e, "cannot render a page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    PAGE_HEADERS,
                    Html(UNRENDERED),
                )
                    .into_response()
            }
        }
    }

    /// The page of an error answer that came without one (axum's 405 and 400, tower-http's
    /// 413, a 500 after a panic, a plain 503): the one 404 page, or a message with what to
    /// do, in Vietnamese like every page.
    fn error_page(&self, status: StatusCode) -> Response {
        let (heading, text) = match status.as_u16() {
            404 => return self.not_found(),
            400 => (
                "Yêu cầu không hợp lệ",
                "Máy chủ không hiểu yêu cầu này. Vui lòng mở lại đường dẫn trong thư nhắc việc.",
            ),
            405 => (
                "Yêu cầu không hợp lệ",
                "Địa chỉ này không nhận kiểu yêu cầu đó. Vui lòng mở lại trang rồi dùng các nút trên trang.",
            ),
            408 => (
                "Yêu cầu không hợp lệ",
                "Yêu cầu gửi đến quá chậm. Vui lòng thử lại.",
            ),
            413 => ("Yêu cầu không hợp lệ", "Yêu cầu quá lớn."),
            429 => (
                "Quá nhiều yêu cầu",
                "Địa chỉ này đã gửi quá nhiều yêu cầu. Vui lòng thử lại sau ít phút.",
            ),
            503 => (
                "Hệ thống đang bận",
                "Không đọc được dữ liệu. Vui lòng thử lại sau ít phút.",
            ),
            500.. => (
                "Lỗi máy chủ",
                "Hệ thống gặp lỗi khi xử lý yêu cầu. Vui lòng thử lại sau ít phút; nếu vẫn lỗi, hãy báo cho quản trị.",
            ),
            _ => ("Yêu cầu không hợp lệ", "Vui lòng mở lại trang rồi thử lại."),
        };
        self.message(status, heading, text)
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
                // With what the file system says (full, read-only), as the engine's wakes do;
                // asking it may block on a failing disk, so on the blocking pool.
                let error = match e {
                    DbError::Store(e) => {
                        let store = self.store.clone();
                        tokio::task::spawn_blocking(move || store.explain(&e))
                            .await
                            .unwrap_or_else(|e| format!("database task failed: {e}"))
                    }
                    e @ DbError::Task(_) => e.to_string(),
                };
                tracing::error!(%error, obligation = %key, "acknowledgement not recorded");
                Err(self.message(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Chưa ghi nhận được",
                    "Hệ thống không ghi được xác nhận. Vui lòng thử lại sau ít phút.",
                ))
            }
        }
    }
}

/// The answer to an ack POST over the per-address limit, with the seconds until the next
/// one may pass.
fn rate_limited(s: &AppState, wait: u64) -> Response {
    let mut r = s.message(
        StatusCode::TOO_MANY_REQUESTS,
        "Quá nhiều yêu cầu",
        "Địa chỉ này đã gửi quá nhiều xác nhận trong một phút. Vui lòng thử lại sau.",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait.max(1)));
    r
}

/// Takes an ack POST from `addr` under the limit in force; `Err` with the answer if over it.
fn ack_allowed(s: &AppState, addr: SocketAddr) -> Result<(), Box<Response>> {
    let per_minute = s.current.config().server.ack_per_minute;
    s.ack_limit
        .allow(addr.ip(), per_minute)
        .map_err(|wait| Box::new(rate_limited(s, wait)))
}

/// The answer to an ack POST without a known action (not sent by the page's buttons).
fn bad_action(s: &AppState) -> Response {
    s.message(
        StatusCode::BAD_REQUEST,
        "Yêu cầu không hợp lệ",
        "Vui lòng dùng nút \"Đã nhận\" hoặc \"Đã hoàn thành / đã nộp\" trên trang.",
    )
}

/// A form that could not be read: too large, too slow, wrong type, not a form.
fn bad_form(s: &AppState, e: &axum::extract::rejection::FormRejection) -> Response {
    if body_timed_out(e) {
        return s.message(
            StatusCode::REQUEST_TIMEOUT,
            "Yêu cầu không hợp lệ",
            "Yêu cầu gửi đến quá chậm. Vui lòng thử lại.",
        );
    }
    let status = e.status();
    let text = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "Yêu cầu quá lớn."
    } else {
        "Vui lòng gửi bằng các nút trên trang."
    };
    s.message(status, "Yêu cầu không hợp lệ", text)
}

/// True if the body was cut off by the `server.timeout_seconds` deadline.
fn body_timed_out(e: &axum::extract::rejection::FormRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
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
    let routes = Router::new()
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
        .fallback(|State(s): State<AppState>| async move { s.not_found() });
    layered(routes, state)
}

/// `routes` with what every request goes through, from the outside in: the client's address
/// behind a trusted proxy ([`real_client`]), a page for every error answer
/// ([`error_pages`]), a 500 instead of a dropped connection when a handler panics, the body
/// deadline and the 16 KiB body limit.
pub(crate) fn layered(routes: Router<AppState>, state: AppState) -> Router {
    let timeout = timeout(&state.current.config().server);
    routes
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        // The whole body within the timeout of its head: a body that stops half-way, or
        // trickles, gets 408 and its connection is closed.
        .layer(tower_http::timeout::RequestBodyDeadlineLayer::new(timeout))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            error_pages,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            real_client,
        ))
        .with_state(state)
}

/// A handler that panicked (a bug): logged, and answered 500 (which [`error_pages`] turns
/// into a page) rather than a connection dropped without a word.
fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("HTTP: a request's handler panicked; answered 500");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// Every error answer is a Vietnamese page like the rest: one that came without a page
/// (axum's 405 and 400, tower-http's 413, a 500 after a panic, a plain-text 503) gets
/// [`AppState::error_page`] for its status, keeping the headers that tell the client what
/// to do (`Allow`, `Retry-After`, `WWW-Authenticate`). The answers of `/healthz` and
/// `/metrics` stay as they are: monitors read them, not people.
async fn error_pages(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let monitor = matches!(req.uri().path(), "/healthz" | "/metrics");
    let r = next.run(req).await;
    let status = r.status();
    let html = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    // A monitor's answers stay as they are (JSON, Prometheus text); a method those routes do
    // not take is a person's mistake like any other.
    let monitor = monitor && status != StatusCode::METHOD_NOT_ALLOWED;
    if monitor || html || !(status.is_client_error() || status.is_server_error()) {
        return r;
    }
    let mut page = s.error_page(status);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(v) = r.headers().get(&name) {
            page.headers_mut().insert(name, v.clone());
        }
    }
    page
}

/// Behind a reverse proxy listed in `server.trusted_proxies`, the request's address
/// (`ConnectInfo`) becomes the client's, as [`guard::client_ip`] reads it from the proxy's
/// headers: every handler, the ack limit, the login throttle and the ack ledger then see
/// the client rather than the proxy. From any other peer the headers are ignored. The list
/// is the config's in force, so a reload changes it.
async fn real_client(
    State(s): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let cfg = s.current.config();
    let trusted = &cfg.server.trusted_proxies;
    if !trusted.is_empty()
        && let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()
    {
        let ip = guard::client_ip(peer.ip(), req.headers(), trusted);
        if ip != peer.ip() {
            // The client's port is not known: 0.
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 0)));
        }
    }
    next.run(req).await
}

/// What bounds the server's connections, from `[server]` at start (but the trusted
/// proxies, read from the config in force at each connection).
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a client may stay silent: to send a request's head (hyper's header-read
    /// timeout, which also runs while a kept-alive connection waits for its next request),
    /// or its whole body; and how long a write may wait for it to read.
    pub timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Of those, at most this many from one address ([`guard::PerAddress::share`]).
    pub per_address: usize,
    /// The config in force, whose `server.trusted_proxies` have no share (a reverse proxy
    /// carries everyone's connections); a reload changes them for the next connection.
    pub current: Arc<Current>,
}

impl Limits {
    /// The limits the config in force sets.
    pub fn new(current: Arc<Current>) -> Limits {
        let cfg = current.config();
        let max_connections = usize::try_from(cfg.server.max_connections).unwrap_or(usize::MAX);
        Limits {
            timeout: timeout(&cfg.server),
            max_connections,
            per_address: guard::PerAddress::share(max_connections),
            current,
        }
    }

    /// True for a peer listed in `server.trusted_proxies` now.
    fn trusted(&self, peer: std::net::IpAddr) -> bool {
        let cfg = self.current.config();
        cfg.server.trusted_proxies.iter().any(|r| r.contains(peer))
    }
}

/// `server.timeout_seconds`.
fn timeout(server: &crate::config::Server) -> Duration {
    Duration::from_secs(server.timeout_seconds.into())
}

/// How long connections still open at shutdown get to finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// File descriptors the daemon needs besides its HTTP connections (the database, SMTP and
/// HTTP clients, the log): the open-file limit should leave at least this much room.
const OTHER_FILES: u64 = 64;

/// At most one log line per `every` for a condition that may repeat at every accept, and
/// how many were not logged in between.
struct Every {
    every: Duration,
    last: Option<tokio::time::Instant>,
    left_out: u64,
}

impl Every {
    fn new(every: Duration) -> Every {
        Every {
            every,
            last: None,
            left_out: 0,
        }
    }

    /// `Some(times not logged since the last line)` if a line may be written now.
    fn ready(&mut self) -> Option<u64> {
        let now = tokio::time::Instant::now();
        if self.last.is_some_and(|l| now < l + self.every) {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// Serves `router` on `listener` until `shutdown` completes, within `limits`: each
/// connection holds one of `max_connections` slots (without a free one the next connection
/// is not accepted: it waits in the kernel's queue, and is served once a slot frees), one
/// address holds at most its share of them (`limits.per_address`; a connection past it is
/// closed at once; a trusted proxy has no share: it carries everyone's), hyper
/// closes a connection whose request head does not arrive within the timeout, the router
/// cuts off a body that does not (see [`router`]), and a connection whose answer waits that
/// long for the client to read is closed. At shutdown no connection is accepted;
/// those open finish their request, for at most 5 s.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    warn_if_few_files(limits.max_connections);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = guard::PerAddress::default();
    let mut full = Every::new(Duration::from_secs(600));
    let mut greedy = Every::new(Duration::from_secs(600));
    let mut failing = Every::new(Duration::from_secs(60));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if let Some(not_logged) = full.ready() {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        not_logged,
                        "HTTP: at the connection limit (server.max_connections); \
                         new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // never closed
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // A client that gave up before its connection was accepted: nothing
                    // wrong here. Anything else (no file descriptor left) is logged, at most
                    // once a minute, and retried shortly.
                    if !is_connection_error(&e) {
                        if let Some(not_logged) = failing.ready() {
                            tracing::error!(
                                error = %e,
                                not_logged,
                                "HTTP: cannot accept a connection"
                            );
                        }
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                            () = &mut shutdown => break,
                        }
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let counted = if limits.trusted(addr.ip()) {
            None
        } else if let Some(counted) = open.open(addr.ip(), limits.per_address) {
            Some(counted)
        } else {
            // Closed at once: its slot goes to the next client.
            if let Some(not_logged) = greedy.ready() {
                tracing::warn!(
                    client = %addr.ip(),
                    per_address = limits.per_address,
                    not_logged,
                    "HTTP: one address holds its share of the connections (a quarter of \
                     server.max_connections, at least 16); its next ones are closed at once"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: axum::http::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(addr));
            // A router is always ready: `poll_ready` need not be awaited first.
            tower_service::Service::call(&mut router.clone(), req)
        });
        let stream = slow::WriteTimeout::new(stream, limits.timeout);
        let conn =
            graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Its error (the client went away, or was too slow) concerns only that client.
            let _ = conn.await;
            drop(counted);
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("HTTP: connections still open at shutdown were closed");
        }
    }
    Ok(())
}

/// An accept error that concerns one client only.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

/// Warns at start when the open-file limit leaves no room for `max_connections`: the
/// connections past it would fail to be accepted rather than wait.
fn warn_if_few_files(max_connections: usize) {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let want = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(OTHER_FILES);
    if let Some(current) = limit.current
        && current < want
    {
        tracing::warn!(
            open_files = current,
            max_connections,
            "HTTP: the open-file limit is below server.max_connections + {OTHER_FILES}: raise it (LimitNOFILE= under systemd) or lower server.max_connections"
        );
    }
}
