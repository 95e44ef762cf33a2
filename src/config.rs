//! Runtime settings (django-cog's `COG_SETTINGS`).

use std::time::Duration;

/// What to do with ticks that passed while no scheduler ran (downtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissedTicks {
    /// Fire one catch-up run for the latest missed tick, like celery beat (the default).
    #[default]
    FireOnce,
    /// Fire nothing for ticks more than [`crate::Config::schedule_grace`] late.
    Skip,
}

/// Settings of a `CogRuntime`. Start from `Config::default()` and change what you need:
///
/// ```
/// let mut config = cog::Config::default();
/// config.auto_weight = false;
/// let config = config.overlap_failed(true);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Learn task weights from run durations when a run ends (default true).
    pub auto_weight: bool,
    /// How many of a task's last completed runs its learned weight averages (default 10).
    pub weight_sample_size: u32,
    /// Allow a launch (with `prevent_overlap`) after the last run failed (default false).
    pub overlap_failed: bool,
    /// How long a claimed task run stays owned without its worker renewing it (default 30 s).
    pub lease_duration: Duration,
    /// How often a worker renews the leases of its running task runs (default 10 s).
    pub heartbeat_interval: Duration,
    /// How often an idle worker looks for work it was not woken for (default 500 ms).
    pub poll_interval: Duration,
    /// First retry delay; doubles with each attempt (default 1 s).
    pub retry_backoff_base: Duration,
    /// Longest retry delay (default 5 min).
    pub retry_backoff_cap: Duration,
    /// How long `shutdown()` lets running cogs finish before giving their task runs back (default 30 s).
    pub shutdown_timeout: Duration,
    /// Longest an error handler may run before it is abandoned and recorded as timed out (default 60 s).
    pub error_handler_timeout: Duration,
    /// What the scheduler does with ticks missed during downtime (default: fire one catch-up run).
    pub missed_ticks: MissedTicks,
    /// With [`MissedTicks::Skip`], how late a tick may be and still fire (default 60 s).
    pub schedule_grace: Duration,
    /// Keep ended runs this long: the scheduler leader prunes older ones once an hour (see
    /// `CogRuntime::prune`). Default `None`: keep everything.
    pub retention: Option<Duration>,
    /// How many task runs a worker may claim ahead of its free slots (default 0). Claimed task
    /// runs wait in the worker, their leases renewed, and start in claim order (heaviest first)
    /// as slots free up. Larger claims cost the database far less per task, so for many short
    /// tasks a prefetch of a few times the concurrency multiplies throughput; for long tasks
    /// keep it 0, or prefetched task runs wait behind long ones while other workers idle.
    /// Task runs still waiting at shutdown are given back at once; a paused queue's task runs
    /// already prefetched still run. A worker that was idle first claims only its free slots,
    /// then fills the prefetch with the claims that follow.
    pub prefetch: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            auto_weight: true,
            weight_sample_size: 10,
            overlap_failed: false,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            poll_interval: Duration::from_millis(500),
            retry_backoff_base: Duration::from_secs(1),
            retry_backoff_cap: Duration::from_secs(300),
            shutdown_timeout: Duration::from_secs(30),
            error_handler_timeout: Duration::from_secs(60),
            missed_ticks: MissedTicks::FireOnce,
            schedule_grace: Duration::from_secs(60),
            retention: None,
            prefetch: 0,
        }
    }
}

impl Config {
    /// Sets [`Config::auto_weight`].
    pub fn auto_weight(mut self, on: bool) -> Self {
        self.auto_weight = on;
        self
    }

    /// Sets [`Config::weight_sample_size`].
    pub fn weight_sample_size(mut self, n: u32) -> Self {
        self.weight_sample_size = n;
        self
    }

    /// Sets [`Config::overlap_failed`].
    pub fn overlap_failed(mut self, on: bool) -> Self {
        self.overlap_failed = on;
        self
    }

    /// Sets [`Config::lease_duration`] and a heartbeat of a third of it.
    pub fn lease_duration(mut self, lease: Duration) -> Self {
        self.lease_duration = lease;
        self.heartbeat_interval = lease / 3;
        self
    }

    /// Sets [`Config::poll_interval`].
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`Config::retry_backoff_base`] and [`Config::retry_backoff_cap`].
    pub fn retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.retry_backoff_base = base;
        self.retry_backoff_cap = cap;
        self
    }

    /// Sets [`Config::shutdown_timeout`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets [`Config::prefetch`].
    pub fn prefetch(mut self, task_runs: usize) -> Self {
        self.prefetch = task_runs;
        self
    }

    /// Sets [`Config::missed_ticks`].
    pub fn missed_ticks(mut self, policy: MissedTicks) -> Self {
        self.missed_ticks = policy;
        self
    }

    /// Sets [`Config::schedule_grace`].
    pub fn schedule_grace(mut self, grace: Duration) -> Self {
        self.schedule_grace = grace;
        self
    }

    /// Sets [`Config::retention`]: `Some(d)` makes the scheduler leader delete, once an hour,
    /// the runs that ended more than `d` ago (with their stage runs, task runs and errors).
    pub fn retention(mut self, keep: Option<Duration>) -> Self {
        self.retention = keep;
        self
    }

    /// Checks the settings make sense together.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.lease_duration.is_zero() || self.heartbeat_interval.is_zero() || self.poll_interval.is_zero() {
            return Err("lease_duration, heartbeat_interval and poll_interval must be longer than zero".into());
        }
        if self.heartbeat_interval >= self.lease_duration {
            return Err(format!("heartbeat_interval ({:?}) must be shorter than lease_duration ({:?})", self.heartbeat_interval, self.lease_duration));
        }
        Ok(())
    }
}
