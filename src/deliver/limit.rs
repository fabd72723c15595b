//! A rate limit: sends spaced an interval apart, in real time (not the daemon's clock: the
//! limit protects a real server). The outbox keeps one per channel (`max_per_minute`); the
//! Telegram sender one per chat (Telegram's per-chat limits).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces sends an interval apart.
#[derive(Debug)]
pub struct Limiter {
    /// (the next free slot, the interval in force).
    state: Mutex<(Instant, Duration)>,
}

impl Limiter {
    /// A limit of one send per `interval`.
    pub fn new(interval: Duration) -> Limiter {
        Limiter {
            state: Mutex::new((Instant::now(), interval)),
        }
    }

    /// The interval from now on (a reload changed `max_per_minute`).
    pub async fn set_interval(&self, interval: Duration) {
        self.state.lock().await.1 = interval;
    }

    /// Waits for the next free slot and takes it.
    pub async fn wait(&self) {
        let now = Instant::now();
        let at = {
            let mut state = self.state.lock().await;
            let (next, interval) = *state;
            let at = next.max(now);
            state.0 = at + interval;
            at
        };
        // Not even a timer when no wait is needed: an idle wake stays one wake.
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_an_interval_apart_and_the_interval_can_change() {
        let l = Limiter::new(Duration::from_secs(3));
        let t0 = Instant::now();
        l.wait().await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "the first slot is free");
        l.wait().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        l.set_interval(Duration::ZERO).await;
        l.wait().await;
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(6),
            "the slot taken before stands"
        );
        l.wait().await;
        assert_eq!(t0.elapsed(), Duration::from_secs(6), "then no interval");
    }
}
