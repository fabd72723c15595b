//! `nhacviec run`: start the daemon.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::{LogFormat, load_today};
use crate::checked;
use crate::clock::{Clock, SystemClock};
use crate::config::Severity;
use crate::deliver::email::Mailer;
use crate::deliver::outbox::{Outbox, Parts};
use crate::engine::Engine;
use crate::store::Store;
use crate::token::{self, TokenKey};
use crate::web;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rusqlite_migration=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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

    /// Raises `stop` on SIGTERM or SIGINT; SIGHUP asks the engine to reload.
    async fn handle(mut self, engine: Arc<Engine>, stop: tokio::sync::watch::Sender<bool>) {
        loop {
            tokio::select! {
                _ = self.int.recv() => break,
                _ = self.term.recv() => break,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    engine.request_reload();
                }
            }
        }
        let _ = stop.send(true);
    }

    /// Before the engine runs: true if a stop signal is already waiting.
    fn stop_pending(&mut self) -> bool {
        use std::task::Poll;
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        matches!(self.term.poll_recv(&mut cx), Poll::Ready(_))
            || matches!(self.int.poll_recv(&mut cx), Poll::Ready(_))
    }
}

/// Resolves when the stop flag is raised.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Outside systemd (no NOTIFY_SOCKET) this does nothing.
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

pub(super) fn run(path: &Path, format: LogFormat) -> Result<ExitCode> {
    init_logging(format);
    // One thread: the daemon is idle almost always, and one thread wakes least.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let mut signals = Signals::register()?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let now = clock.now();
        let checked = checked::load(path, load_today(now));
        for d in &checked.diagnostics {
            match d.severity {
                Severity::Error => tracing::error!("{d}"),
                Severity::Warning => tracing::warn!("{d}"),
            }
        }
        let errors = checked.errors();
        let Some((cfg, templates)) = checked.ready else {
            bail!("the config has {errors} error(s); not started (`nhacviec check` lists them)");
        };
        let store = Arc::new(Store::open(&cfg.storage.path, now)?);
        let key_file = token::key_path(&cfg.storage.path);
        let key = TokenKey::load_or_create(&key_file).with_context(|| {
            format!("cannot read or create the token key {}", key_file.display())
        })?;
        let recovered = store.recover_sending(now)?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "messages cut off by a stop are sent again (same Message-ID)"
            );
        }
        let hash = crate::engine::file_hash(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        store.record_config(&hash, &path.display().to_string(), now)?;
        let mailer = Mailer::new(&cfg)?;
        let listener = tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .with_context(|| format!("cannot listen on {} (`server.listen`)", cfg.server.listen))?;
        let listen = listener.local_addr().unwrap_or(cfg.server.listen);
        let cfg = Arc::new(cfg);
        tracing::info!(
            config = %path.display(),
            units = cfg.units.len(),
            rules = cfg.rules.len(),
            transport = mailer.describe(),
            database = %cfg.storage.path.display(),
            listen = %listen,
            "nhacviec started"
        );
        let parts = Parts {
            config: cfg.clone(),
            templates: Arc::new(templates),
            mailer: Arc::new(mailer),
            key: key.clone(),
        };
        let outbox = Arc::new(Outbox::new(store.clone(), clock.clone(), parts));
        let (web_clock, web_key) = (clock.clone(), key.clone());
        let engine =
            Arc::new(Engine::new(store.clone(), outbox, clock, cfg, key).watch(path.to_path_buf()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(signals.stop_pending());
        let admin_password = match &engine.config().server.admin_password_file {
            Some(f) => Some(
                crate::config::Secret::File(f.clone())
                    .read()
                    .context("cannot read `server.admin_password_file`")?,
            ),
            None => None,
        };
        let app = web::router(web::AppState {
            store,
            engine: engine.clone(),
            clock: web_clock,
            key: web_key,
            admin_password,
            ack_limit: Arc::new(web::guard::RateLimit::new(
                engine.config().server.ack_per_minute,
            )),
            pages: Arc::new(web::pages()),
        });
        let server = tokio::spawn(web::serve(listener, app, stopped(stop_rx.clone())));
        tokio::spawn(signals.handle(engine.clone(), stop_tx));
        notify(&[sd_notify::NotifyState::Ready]);
        engine
            .run(stopped(stop_rx), |status| {
                let next = status.next().unwrap_or_else(|| "nothing planned".into());
                notify(&[
                    sd_notify::NotifyState::Watchdog,
                    sd_notify::NotifyState::Status(&format!("next: {next}")),
                ]);
            })
            .await;
        notify(&[sd_notify::NotifyState::Stopping]);
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "the HTTP server task failed"),
        }
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
