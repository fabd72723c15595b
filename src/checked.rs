//! Everything `check` validates, in one place: the config and the templates it uses.
//!
//! `check`, `run` at start and every reload call [`load`], so a config that `check` accepts
//! is exactly one the daemon applies.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

use crate::config::{self, Config, Diagnostic, Severity};
use crate::deliver::templates::Templates;

/// A config with its templates, or the reasons it cannot be used.
#[derive(Debug)]
pub struct Checked {
    /// The config and templates, when there was no error.
    pub ready: Option<(Config, Templates)>,
    /// Every error and warning, config first, then templates.
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    /// How many errors.
    pub fn errors(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }
}

/// The date the config's time-relative warnings use (a coming year with no official
/// calendar schedule): today in Vietnam, before the config's own time zone is known.
pub fn today(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .date_naive()
}

/// Loads and validates the config at `path` and its templates.
pub fn load(path: &Path, today: NaiveDate) -> Checked {
    let loaded = config::load(path, today);
    let mut diagnostics = loaded.diagnostics;
    let Some(cfg) = loaded.config else {
        return Checked {
            ready: None,
            diagnostics,
        };
    };
    let (templates, problems) = Templates::load(cfg.templates_dir.as_deref());
    diagnostics.extend(problems);
    // Each ZNS template's parameters, rendered on sample data as the email templates are.
    let mut zalo_ok = true;
    if let (Some(t), Some(_)) = (&templates, &cfg.channels.zalo) {
        for &kind in config::ZALO_KINDS {
            let ctx = crate::deliver::templates::sample_of(kind);
            if let Err(e) = crate::deliver::zalo::payload(&cfg, t, kind, &ctx) {
                zalo_ok = false;
                diagnostics.push(Diagnostic {
                    severity: Severity::Error,
                    file: path.to_path_buf(),
                    position: None,
                    message: e.to_string(),
                });
            }
        }
    }
    Checked {
        ready: templates.filter(|_| zalo_ok).map(|t| (cfg, t)),
        diagnostics,
    }
}
