//! `nhacviec run`: start the daemon.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::{LogFormat, load_today};
use crate::checked;
use crate::clock::{Clock, SystemClock};
use crate::config::Severity;
use crate::deliver::email::Mailer;
use crate::deliver::outbox::{Outbox, Parts};
use crate::engine::Engine;
use crate::store::Store;
use crate::token::{self, TokenKey};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) fn run(path: &Path, format: LogFormat) -> Result<ExitCode> {
    init_logging(format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
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
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let hash: String = Sha256::digest(&text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        store.record_config(&hash, &path.display().to_string(), now)?;
        let mailer = Mailer::new(&cfg)?;
        let cfg = Arc::new(cfg);
        tracing::info!(
            config = %path.display(),
            units = cfg.units.len(),
            rules = cfg.rules.len(),
            transport = mailer.describe(),
            database = %cfg.storage.path.display(),
            "nhacviec started"
        );
        let parts = Parts {
            config: cfg.clone(),
            templates: Arc::new(templates),
            mailer: Arc::new(mailer),
            key: key.clone(),
        };
        let outbox = Arc::new(Outbox::new(store.clone(), clock.clone(), parts));
        let engine = Engine::new(store, outbox, clock, cfg, key);
        engine.run(shutdown_signal()).await;
        Ok(ExitCode::SUCCESS)
    })
}
