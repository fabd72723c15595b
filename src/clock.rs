//! The only place that reads the wall clock.
//!
//! Everything else takes `now` as an argument, so that pure code (calendar, plan) is tested
//! with fixed instants and the daemon is tested with an injected clock.

use chrono::{DateTime, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
