//! A rate limit: sends spaced an interval apart, in real time (not the daemon's clock: the
//! limit protects a real server). The outbox keeps one per channel (`max_per_minute`); the
//! Telegram sender one per chat (Telegram's per-chat limits).

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Spaces sends an interval apart.
#[derive(Debug)]
pub struct Limiter {
    /// (the last slot taken, the interval in force).
    state: Mutex<(Option<Instant>, Duration)>,
}

impl Limiter {
    /// A limit of one send per `interval`.
    pub fn new(interval: Duration) -> Limiter {
        Limiter {
            state: Mutex::new((None, interval)),
        }
    }

    /// The interval from now on (a reload changed `max_per_minute`): the next slot is this
    /// long after the last one taken.
    pub async fn set_interval(&self, interval: Duration) {
        self.state.lock().await.1 = interval;
    }

    /// Waits for the next free slot and takes it.
    pub async fn wait(&self) {
        self.wait_before(None).await;
    }

    /// Takes the next free slot if it comes no later than `deadline`, waiting for it;
    /// false, and nothing taken, if it comes later.
    pub async fn wait_before(&self, deadline: Option<Instant>) -> bool {
        let now = Instant::now();
        let at = {
            let mut state = self.state.lock().await;
            let (last, interval) = *state;
            let at = last.map_or(now, |l| (l + interval).max(now));
            if deadline.is_some_and(|d| at > d) {
                return false;
            }
            state.0 = Some(at);
            at
        };
        // Not even a timer when no wait is needed: an idle wake stays one wake.
        if at > now {
            tokio::time::sleep_until(at).await;
        }
        true
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
        l.set_interval(Duration::from_secs(60)).await;
        assert!(
            !l.wait_before(Some(t0 + Duration::from_secs(62))).await,
            "the next slot, at 63 s, is past the deadline"
        );
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(3),
            "and nothing was waited"
        );
        l.set_interval(Duration::from_secs(1)).await;
        assert!(l.wait_before(Some(t0 + Duration::from_secs(62))).await);
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(4),
            "a new interval counts from the last slot taken"
        );
    }
}
