//! `nhacviec run`: signals, logging and systemd around [`crate::daemon`].

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::LogFormat;
use crate::clock::{Clock, ClockKind};
use crate::daemon::{Daemon, Reloader};

/// The log's filter: `RUST_LOG` (`debug`, `info,nhacviec::engine=debug`: a level, or
/// targets with their levels), else `info,rusqlite_migration=warn`. Levels by target only,
/// without `EnvFilter`'s span and field filters: they need regular expressions, the largest
/// part of the daemon's memory at rest that logging would otherwise take.
fn log_filter() -> tracing_subscriber::filter::Targets {
    let default = || {
        tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("rusqlite_migration", tracing::Level::WARN)
    };
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => v.parse().unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG=`{v}` is not a filter ({e}); logging at info");
            default()
        }),
        _ => default(),
    }
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    tracing_subscriber::registry()
        .with(log_filter())
        .with(text)
        .with(json)
        .init();
}

/// The signals the daemon handles, registered as the very first thing it does, so a SIGTERM
/// during start-up is a clean stop and not the default death.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// Resolves on SIGTERM or SIGINT; SIGHUP asks for a reload.
    async fn stop(&mut self, reloader: Reloader) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    reloader.reload();
                }
            }
        }
    }

    /// Before the daemon runs: true if a stop signal is already waiting.
    fn stop_pending(&mut self) -> bool {
        use std::task::Poll;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        matches!(self.term.poll_recv(&mut cx), Poll::Ready(_))
            || matches!(self.int.poll_recv(&mut cx), Poll::Ready(_))
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub(super) fn run(path: &Path, format: LogFormat, clock: Arc<dyn Clock>) -> Result<ExitCode> {
    init_logging(format);
    // One thread for the engine: the daemon is idle almost always, and one thread wakes
    // least. The HTTP server has a thread of its own (see `crate::daemon`).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut signals = Signals::register()?;
        let kind = clock.kind();
        if kind != ClockKind::System {
            tracing::warn!(
                clock = %kind.describe(),
                "NHACVIEC_CLOCK is set: this daemon does NOT run on the real time; reminders leave when the set clock says so (for tests and rehearsals only)"
            );
        }
        let daemon = Daemon::open(path, clock)?;
        let listen = daemon.config().server.listen;
        let listener = std::net::TcpListener::bind(listen)
            .with_context(|| format!("cannot listen on {listen} (`server.listen`)"))?;
        let reloader = daemon.reloader();
        let stop_now = signals.stop_pending();
        notify(&[sd_notify::NotifyState::Ready]);
        let shutdown = async move {
            if !stop_now {
                signals.stop(reloader).await;
            }
        };
        daemon
            .run(listener, shutdown, |status| {
                let next = status
                    .next()
                    .map_or_else(|| "nothing planned".into(), |n| n.text);
                notify(&[
                    sd_notify::NotifyState::Watchdog,
                    sd_notify::NotifyState::Status(&format!("next: {next}")),
                ]);
            })
            .await?;
        notify(&[sd_notify::NotifyState::Stopping]);
        Ok(ExitCode::SUCCESS)
    })
}
