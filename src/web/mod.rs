//! The HTTP server (axum): acknowledgement pages, the status page, health and metrics
//! (DESIGN §8).
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and the
//! daemon binds `server.listen` before it reports ready. Pages are Vietnamese, need no
//! JavaScript and are rendered by minijinja with HTML escaping. Request bodies are limited to
//! 16 KiB. Nothing here logs a path, so no ack token reaches the logs.

mod ack;
pub mod guard;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use minijinja::{AutoEscape, Environment};
use serde_json::{Value, json};

use crate::clock::Clock;
use crate::engine::Engine;
use crate::store::Store;
use crate::token::TokenKey;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<Store>,
    /// The engine: its config, its status, and a waker for acks.
    pub engine: Arc<Engine>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The key ack tokens and CSRF tokens are derived from.
    pub key: TokenKey,
    /// The `/status` password; `None` turns the page off.
    pub admin_password: Option<String>,
    /// The per-address limit on ack POSTs.
    pub ack_limit: Arc<guard::RateLimit>,
    /// The page templates.
    pub pages: Arc<Environment<'static>>,
}

/// The page templates, compiled in.
pub fn pages() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, text) in [
        ("_layout.html.j2", include_str!("pages/_layout.html.j2")),
        ("ack.html.j2", include_str!("pages/ack.html.j2")),
        ("not_found.html.j2", include_str!("pages/not_found.html.j2")),
        ("message.html.j2", include_str!("pages/message.html.j2")),
        ("status.html.j2", include_str!("pages/status.html.j2")),
    ] {
        if let Err(e) = env.add_template(name, text) {
            // The pages are part of the binary and tested; this cannot happen in a release.
            tracing::error!(template = name, error = %e, "a page template does not parse");
        }
    }
    env
}

impl AppState {
    /// Renders a page; an error becomes a plain 500.
    fn render(&self, status: StatusCode, name: &str, mut ctx: Value) -> Response {
        let org = self.engine.config().organization.name.clone();
        if let Some(m) = ctx.as_object_mut() {
            m.insert("org".into(), Value::String(org));
        }
        match self
            .pages
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

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/a/{token}", get(ack::page).post(ack::post))
        .route("/status", get(status::page))
        .route("/status.csv", get(status::csv))
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

/// `GET /healthz`: 200 with the database, the last engine wake and the outbox, or 503 if the
/// database does not answer.
async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.store.ping();
    let counts = s.store.outbox_counts();
    let status = s.engine.status();
    let last_wake = status.last_wake().map(|t| t.to_rfc3339());
    match (db, counts) {
        (Ok(()), Ok(c)) => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "ok",
                "database": "ok",
                "last_wake": last_wake,
                "next": status.next(),
                "outbox": {"pending": c.pending, "sending": c.sending, "failed": c.failed},
            })),
        )
            .into_response(),
        (Err(e), _) | (_, Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                json!({"status": "error", "database": e.to_string(), "last_wake": last_wake}),
            ),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn metrics(State(s): State<AppState>) -> Response {
    use std::fmt::Write as _;
    let (Ok(by_channel), Ok(acks), Ok(counts)) = (
        s.store.counts_by_channel(),
        s.store.ack_counts(),
        s.store.outbox_counts(),
    ) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "database error\n").into_response();
    };
    let mut out = String::new();
    for (name, status, help) in [
        (
            "nhacviec_messages_sent_total",
            "sent",
            "Messages delivered, by channel.",
        ),
        (
            "nhacviec_messages_failed_total",
            "failed",
            "Messages given up on, by channel.",
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut any = false;
        for (channel, st, n) in &by_channel {
            if st == status {
                any = true;
                let _ = writeln!(out, "{name}{{channel=\"{channel}\"}} {n}");
            }
        }
        if !any {
            let _ = writeln!(out, "{name}{{channel=\"email\"}} 0");
        }
    }
    let _ = writeln!(
        out,
        "# HELP nhacviec_outbox_depth Messages waiting to be sent (pending or sending).\n# TYPE nhacviec_outbox_depth gauge\nnhacviec_outbox_depth {}",
        counts.pending + counts.sending
    );
    let _ = writeln!(
        out,
        "# HELP nhacviec_acks_total Acknowledgements recorded, by action.\n# TYPE nhacviec_acks_total counter"
    );
    for action in ["seen", "done"] {
        let n = acks
            .iter()
            .find(|(a, _)| a == action)
            .map_or(0, |(_, n)| *n);
        let _ = writeln!(out, "nhacviec_acks_total{{action=\"{action}\"}} {n}");
    }
    if let Some(t) = s.engine.status().last_wake() {
        let _ = writeln!(
            out,
            "# HELP nhacviec_last_wake_seconds When the engine last woke (Unix time).\n# TYPE nhacviec_last_wake_seconds gauge\nnhacviec_last_wake_seconds {}",
            t.timestamp()
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
