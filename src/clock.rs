//! The only place that reads the wall clock, and the only way the daemon sleeps.
//!
//! Everything else takes `now` as an argument or asks a [`Clock`], so that pure code
//! (calendar, plan) is tested with fixed instants and the daemon with an injected clock:
//!
//! - [`SystemClock`]: the wall clock; what `nhacviec` uses unless told otherwise.
//! - [`SetClock`]: set to an instant and running from there, optionally N times faster, on
//!   tokio's time. `NHACVIEC_CLOCK="2025-07-04T07:59:58+07:00@x600"` selects it for every
//!   command ([`from_env`]), so tests start the real binary just before the step they need
//!   and an admin rehearses a config ("what will the next month send?"). Under tokio's
//!   paused time (`#[tokio::test(start_paused = true)]`) it is the paused-tokio clock: a
//!   simulated year passes in milliseconds.
//! - [`ManualClock`]: stands still until a test moves it; a sleep on it ends when the test
//!   moves the clock past its instant.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, Utc};

/// A sleep on a [`Clock`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A source of the current instant, and of sleeps measured by it.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Resolves once [`Clock::now`] has reached `t` (at once if it has). The daemon's engine
    /// sleeps only through this, never on tokio's timers directly.
    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_>;

    /// Which clock this is, for the log, `/healthz` and the status page.
    fn kind(&self) -> ClockKind {
        ClockKind::System
    }
}

/// Which clock a [`Clock`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockKind {
    /// The wall clock.
    System,
    /// Set to `start` when the process started, running `speed` times real speed.
    Set {
        /// The instant it was set to.
        start: DateTime<Utc>,
        /// How many times faster than real time.
        speed: u32,
    },
    /// Moved by hand (tests).
    Manual,
}

impl ClockKind {
    /// "system", or "set to 2025-07-04T00:59:58Z at start, running 600× real speed".
    pub fn describe(self) -> String {
        match self {
            ClockKind::System => "system".into(),
            ClockKind::Manual => "manual (tests)".into(),
            ClockKind::Set { start, speed } => {
                let at = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if speed == 1 {
                    format!("set to {at} at start, running at real speed")
                } else {
                    format!("set to {at} at start, running {speed}× real speed")
                }
            }
        }
    }
}

/// How long ago, on the system's wall clock, a file was last modified (zero for a time in
/// the future, `None` when the file system does not say). File times are wall-clock times
/// whatever clock the engine runs on, so this reads the real clock: the one other place.
pub fn modified_ago(meta: &std::fs::Metadata) -> Option<std::time::Duration> {
    let modified = meta.modified().ok()?;
    Some(
        std::time::SystemTime::now()
            .duration_since(modified)
            .unwrap_or_default(),
    )
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// On Linux, a kernel timer on the wall clock (a `timerfd`, `CLOCK_REALTIME`, absolute)
    /// registered with the runtime: the thread blocks once and wakes at `t`. tokio's own timer
    /// wheel parks in steps for a long sleep (a one-minute sleep is three waits: 57 s, 2.6 s
    /// and 27 ms, measured with strace), and an idle daemon sleeps a minute at a time, so the
    /// kernel timer is a third of its wake-ups. Elsewhere, or if the timer cannot be made,
    /// tokio's sleep.
    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_> {
        Box::pin(async move {
            #[cfg(target_os = "linux")]
            match wall_timer::sleep_until(t).await {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "no kernel timer; tokio's instead"),
            }
            // A wall clock that steps while we sleep is noticed at the next wake: the engine
            // never sleeps longer than a minute.
            let wait = (t - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
        })
    }
}

/// A one-shot kernel timer on the wall clock, waited for through the runtime's reactor.
#[cfg(target_os = "linux")]
mod wall_timer {
    use chrono::{DateTime, Utc};
    use rustix::time::{
        Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
        timerfd_settime,
    };
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// Resolves once the wall clock has reached `t` (at once if it has).
    pub(super) async fn sleep_until(t: DateTime<Utc>) -> std::io::Result<()> {
        if t <= Utc::now() {
            return Ok(());
        }
        let fd = timerfd_create(
            TimerfdClockId::Realtime,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let at = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: t.timestamp(),
                tv_nsec: t.timestamp_subsec_nanos().into(),
            },
        };
        // CANCEL_ON_SET: a step of the wall clock (NTP, a VM resumed, an admin's `date -s`)
        // ends the wait at once, so the engine looks at the new time now, not when the old
        // target comes round (an hour late after a step back of an hour).
        timerfd_settime(
            &fd,
            TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
            &at,
        )?;
        // SAFETY: the `AsyncFd` owns the `OwnedFd`, so the descriptor stays open and the
        // same for as long as it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        loop {
            let mut ready = fd.readable().await?;
            // The count of expirations: readable once the timer has fired.
            match rustix::io::read(fd.get_ref(), &mut [0u8; 8]) {
                // ECANCELED: the wall clock was set while we waited.
                Ok(_) | Err(rustix::io::Errno::CANCELED) => return Ok(()),
                Err(rustix::io::Errno::AGAIN) => ready.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A clock set to an instant at its creation, running from there at `speed` times the speed
/// of tokio's clock (real time, or paused time in tests).
#[derive(Debug, Clone)]
pub struct SetClock {
    start: DateTime<Utc>,
    origin: tokio::time::Instant,
    speed: u32,
}

/// The fastest a [`SetClock`] may run: a year in under a minute.
pub const MAX_SPEED: u32 = 1_000_000;

impl SetClock {
    /// A clock showing `start` now, and `start + speed × elapsed` later.
    pub fn new(start: DateTime<Utc>, speed: u32) -> SetClock {
        SetClock {
            start,
            origin: tokio::time::Instant::now(),
            speed: speed.clamp(1, MAX_SPEED),
        }
    }
}

impl Clock for SetClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.elapsed() * self.speed;
        self.start + Duration::from_std(elapsed).unwrap_or(Duration::MAX)
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_> {
        let left = (t - self.now()).to_std().unwrap_or_default();
        // Rounded up, so that it never ends before `t` on this clock.
        let nanos = left.as_nanos().div_ceil(u128::from(self.speed));
        let real = std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Box::pin(tokio::time::sleep(real))
    }

    fn kind(&self) -> ClockKind {
        ClockKind::Set {
            start: self.start,
            speed: self.speed,
        }
    }
}

/// A clock that stands still until told to move: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(tokio::sync::watch::Sender<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: DateTime<Utc>) -> ManualClock {
        ManualClock(tokio::sync::watch::Sender::new(t))
    }

    /// Moves it to `t`; sleeps until `t` or earlier end.
    pub fn set(&self, t: DateTime<Utc>) {
        self.0.send_replace(t);
    }

    /// Moves it forward by `d`.
    pub fn advance(&self, d: Duration) {
        self.0.send_modify(|t| *t += d);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.borrow()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> Sleep<'_> {
        let mut rx = self.0.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which outlives this borrow of it.
            let _ = rx.wait_for(|now| *now >= t).await;
        })
    }

    fn kind(&self) -> ClockKind {
        ClockKind::Manual
    }
}

/// The environment variable that sets the clock of every command.
pub const ENV: &str = "NHACVIEC_CLOCK";

/// Why `NHACVIEC_CLOCK` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ENV}=`{value}` {problem}: write an instant with its offset, optionally followed by a speed, e.g. {ENV}=\"2025-07-04T07:59:58+07:00\" or \"2025-07-04T07:59:58+07:00@x600\""
)]
pub struct ClockError {
    /// What the variable held.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads the value of `NHACVIEC_CLOCK`: `INSTANT[@xN]`.
pub fn parse(value: &str) -> Result<SetClock, ClockError> {
    let err = |problem: String| ClockError {
        value: value.to_string(),
        problem,
    };
    let (instant, speed) = match value.trim().split_once('@') {
        Some((i, s)) => (i, Some(s)),
        None => (value.trim(), None),
    };
    let start = DateTime::parse_from_rfc3339(instant)
        .map_err(|e| err(format!("is not an instant ({e})")))?
        .with_timezone(&Utc);
    let speed = match speed {
        None => 1,
        Some(s) => s
            .strip_prefix('x')
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=MAX_SPEED).contains(n))
            .ok_or_else(|| {
                err(format!(
                    "has a speed `@{s}` that is not x1 to x{MAX_SPEED} (write e.g. @x600)"
                ))
            })?,
    };
    Ok(SetClock::new(start, speed))
}

/// The clock the environment selects: [`SetClock`] when `NHACVIEC_CLOCK` is set (and not
/// empty), else the [`SystemClock`].
pub fn from_env() -> Result<std::sync::Arc<dyn Clock>, ClockError> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => Ok(std::sync::Arc::new(parse(&v)?)),
        _ => Ok(std::sync::Arc::new(SystemClock)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_variable_is_an_instant_and_a_speed() {
        let c = parse("2025-07-04T07:59:58+07:00").unwrap();
        let set = |start, speed| ClockKind::Set { start, speed };
        assert_eq!(c.kind(), set(at("2025-07-04T00:59:58Z"), 1));
        let c = parse(" 2025-07-04T07:59:58+07:00@x600 ").unwrap();
        assert_eq!(c.kind(), set(at("2025-07-04T00:59:58Z"), 600));
        assert_eq!(
            c.kind().describe(),
            "set to 2025-07-04T00:59:58Z at start, running 600× real speed"
        );
        for bad in [
            "2025-07-04",
            "2025-07-04T07:59:58",
            "tomorrow",
            "2025-07-04T07:59:58+07:00@600",
            "2025-07-04T07:59:58+07:00@x0",
            "2025-07-04T07:59:58+07:00@x2000000",
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("NHACVIEC_CLOCK=`{bad}`")), "{e}");
            assert!(e.contains("2025-07-04T07:59:58+07:00@x600"), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_set_clock_runs_from_its_instant_at_its_speed() {
        let start = at("2025-10-02T00:29:00Z");
        let c = SetClock::new(start, 600);
        assert_eq!(c.now(), start);
        tokio::time::advance(std::time::Duration::from_millis(100)).await;
        assert_eq!(c.now(), start + Duration::seconds(60));
        // A sleep of an hour on it takes 6 s of tokio's time, and not a nanosecond less.
        let t0 = tokio::time::Instant::now();
        let target = c.now() + Duration::hours(1);
        c.sleep_until(target).await;
        assert_eq!(t0.elapsed(), std::time::Duration::from_secs(6));
        assert!(c.now() >= target);
        // An instant already past does not sleep.
        let t0 = tokio::time::Instant::now();
        c.sleep_until(start).await;
        assert_eq!(t0.elapsed(), std::time::Duration::ZERO);
    }

    #[tokio::test]
    async fn the_system_clock_sleeps_until_its_instant_and_not_a_moment_less() {
        let c = SystemClock;
        let target = Utc::now() + Duration::milliseconds(50);
        c.sleep_until(target).await;
        assert!(Utc::now() >= target, "woken early");
    }

    #[tokio::test]
    async fn a_manual_clock_wakes_sleepers_when_moved_past_their_instant() {
        let start = at("2025-10-02T00:29:00Z");
        let c = std::sync::Arc::new(ManualClock::new(start));
        let sleeper = {
            let c = c.clone();
            tokio::spawn(async move { c.sleep_until(start + Duration::minutes(5)).await })
        };
        c.advance(Duration::minutes(4));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woken before its instant");
        c.set(start + Duration::minutes(5));
        sleeper.await.unwrap();
        assert_eq!(c.now(), start + Duration::minutes(5));
    }
}
