//! The HTTP server (axum): health and metrics now; ack pages and the status page join the
//! same router (DESIGN §8).
//!
//! [`serve`] takes a bound listener and a shutdown future, so tests bind port 0 and the
//! daemon binds `server.listen` before it reports ready.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::engine::Status;
use crate::store::Store;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store (read here).
    pub store: Arc<Store>,
    /// The engine's last wake and next step.
    pub status: Arc<Status>,
}

/// The router with every route.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(16 * 1024))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// `GET /healthz`: 200 with the database, the last engine wake and the outbox, or 503 if the
/// database does not answer.
async fn healthz(State(s): State<AppState>) -> Response {
    let db = s.store.ping();
    let counts = s.store.outbox_counts();
    let last_wake = s.status.last_wake().map(|t| t.to_rfc3339());
    match (db, counts) {
        (Ok(()), Ok(c)) => (
            StatusCode::OK,
            axum::Json(json!({
                "status": "ok",
                "database": "ok",
                "last_wake": last_wake,
                "next": s.status.next(),
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
    if let Some(t) = s.status.last_wake() {
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
