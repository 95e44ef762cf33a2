//! The time the scheduler reads: the system clock, or a manual one for tests.

use std::sync::Mutex;

use chrono::{DateTime, SubsecRound, Utc};

/// Where the scheduler reads the current time. Leases and run timestamps always use the
/// system clock; only schedule ticks follow this one.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that moves only when told to: drive schedules in tests without waiting.
///
/// ```
/// use std::sync::Arc;
/// use cog::scheduler::{Clock, ManualClock};
/// let clock = Arc::new(ManualClock::new("2026-11-24T02:59:59Z".parse().unwrap()));
/// clock.advance(chrono::Duration::seconds(1));
/// assert_eq!(clock.now().to_rfc3339(), "2026-11-24T03:00:00+00:00");
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { now: Mutex::new(now) }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward (or back, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}
