//! The scheduler: launches pipelines at their cron ticks, once per tick, from one runtime at
//! a time.
//!
//! Every enabled pipeline with a schedule is launched with `trigger = 'schedule'` at each tick
//! of its schedule in its time zone (see [`ticks`](self) for the daylight-saving rule). The run
//! records its tick in `cog_pipeline_run.scheduled_for` (unique per pipeline) and the pipeline
//! its last handled tick in `cog_pipeline.last_tick`, so no tick fires twice, whatever the
//! number of runtimes, restarts or retries. After downtime, [`MissedTicks`] decides.
//!
//! ```no_run
//! # async fn f() -> Result<(), cog::Error> {
//! use std::sync::Arc;
//! use cog::scheduler::ManualClock;
//! let clock = Arc::new(ManualClock::new("2026-11-24T02:59:00Z".parse().unwrap()));
//! let rt = cog::CogRuntime::builder().database_url("sqlite::memory:").clock(clock.clone()).build().await?;
//! clock.advance(chrono::Duration::minutes(1));
//! let pass = rt.run_scheduler_once().await?;   // fires the 03:00 ticks
//! # Ok(()) }
//! ```

mod clock;
pub(crate) mod expression;
mod leader;
mod state;
pub(crate) mod ticks;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;

/// Moved to the crate root with the other settings; kept here so `cog::scheduler::MissedTicks` still names it.
pub use crate::config::MissedTicks;
pub use clock::{Clock, ManualClock, SystemClock};
pub(crate) use state::Scheduler;

use crate::engine::launch::{LaunchRequest, launch};
use crate::entity::status::Trigger;
use crate::error::{Error, LaunchRefusal};
use crate::store::schedules;

/// What one scheduler pass did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct SchedulerPass {
    /// Whether this runtime held the scheduler lease (only the leader fires).
    pub leader: bool,
    /// Runs launched: pipeline, tick, run id.
    pub fired: Vec<(String, DateTime<Utc>, i64)>,
    /// Ticks refused by the overlap rules or a missing argument (counted in `cog_pipeline.refused_ticks`).
    pub refused: Vec<(String, DateTime<Utc>, LaunchRefusal)>,
    /// Ticks not fired because they were missed (counted in `cog_pipeline.skipped_ticks`).
    pub skipped: Vec<(String, DateTime<Utc>)>,
    /// The next tick of any pipeline, if one is scheduled.
    pub next_tick: Option<DateTime<Utc>>,
    /// What the leader's retention prune deleted in this pass (`Config::retention`); `None`
    /// when none was due.
    pub pruned: Option<crate::PruneReport>,
}

/// Most ticks counted when looking back over downtime.
const SCAN_LIMIT: usize = 100_000;

/// One pass: become (or stay) leader, then fire every due tick. Every pipeline is tried; when
/// one failed, the first failure is returned once all were tried (what the pass fired is in
/// the database and the log).
pub(crate) async fn pass(scheduler: &Scheduler) -> Result<SchedulerPass, Error> {
    let passed = run_pass(scheduler).await?;
    match passed.first_failure {
        Some(e) => Err(e),
        None => Ok(passed.report),
    }
}

/// What [`run_pass`] did, and what went wrong on the way.
struct Passed {
    report: SchedulerPass,
    /// Every failure of the pass, in words, for the loop's health: the side jobs' and the
    /// pipelines'.
    problems: Vec<String>,
    /// The first pipeline whose tick could not be fired, refused or skipped.
    first_failure: Option<Error>,
}

/// [`pass`], reporting its failures instead of stopping at the first: the leader's side jobs
/// and each pipeline's ticks each fail on their own (logged, and listed in `problems`), so one
/// pipeline whose tick cannot be written holds back none of the others.
async fn run_pass(scheduler: &Scheduler) -> Result<Passed, Error> {
    let mut report = SchedulerPass { leader: leader::acquire(&scheduler.db, &scheduler.holder).await?, ..Default::default() };
    let mut problems = Vec::new();
    let mut first_failure = None;
    if !report.leader {
        return Ok(Passed { report, problems, first_failure });
    }
    if let Err(e) = crate::metrics::refresh_queue_depths(&scheduler.db).await {
        tracing::warn!(error = %e, "could not refresh the queue depth gauges; retrying at the next pass");
        problems.push(format!("queue depth gauges: {e}"));
    }
    let now = scheduler.clock.now();
    report.pruned = match crate::control::prune::prune_if_due(&scheduler.db, scheduler.config.retention, &scheduler.holder, now).await {
        Ok(pruned) => pruned,
        Err(e) => {
            tracing::error!(error = %e, "pruning old history failed; retrying at a later pass");
            problems.push(format!("pruning: {e}"));
            None
        }
    };
    for row in schedules::scheduled(&scheduler.db).await? {
        let name = row.name.clone();
        match fire_due(scheduler, &mut report, row, now).await {
            Ok(next) => {
                report.next_tick = match (report.next_tick, next) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Err(e) => {
                tracing::warn!(pipeline = name.as_str(), error = %e, "could not fire the pipeline's schedule; the other pipelines' still fire, and it is tried again at the next pass");
                problems.push(format!("pipeline `{name}`: {e}"));
                first_failure.get_or_insert(e);
            }
        }
    }
    Ok(Passed { report, problems, first_failure })
}

/// Fires, refuses or skips the latest due tick of one scheduled pipeline, if one is due;
/// returns its next tick after now.
async fn fire_due(scheduler: &Scheduler, report: &mut SchedulerPass, row: schedules::Scheduled, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, Error> {
    let schedules::Scheduled { id, name, schedule: expr, timezone: tz, last_tick } = row;
    let (Ok(schedule), Some(tz)) = (crate::scheduler::expression::parse(&expr), crate::scheduler::expression::parse_timezone(&tz)) else {
        tracing::warn!(pipeline = name.as_str(), schedule = expr.as_str(), "stored schedule or time zone does not parse; skipping");
        return Ok(None);
    };
    let Some(base) = last_tick else {
        // Scheduled without a baseline (written by an older cog or by hand): start now.
        schedules::set_baseline(&scheduler.db, id, now).await?;
        return Ok(None);
    };
    let (count, latest) = ticks::latest_due(&schedule, tz, base, now, SCAN_LIMIT);
    if let Some(tick) = latest {
        handle_tick(scheduler, report, id, &name, tick, count, now).await?;
    }
    Ok(ticks::next_tick(&schedule, tz, now.max(latest.unwrap_or(base))))
}

/// Fires, refuses or skips the latest due tick of one pipeline (`due` ticks were due in all).
async fn handle_tick(
    scheduler: &Scheduler,
    report: &mut SchedulerPass,
    id: i64,
    name: &str,
    tick: DateTime<Utc>,
    due: usize,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let older = (due - 1) as i64;
    let late = (now - tick).to_std().unwrap_or(Duration::ZERO);
    if scheduler.config.missed_ticks == MissedTicks::Skip && late > scheduler.config.schedule_grace {
        tracing::info!(pipeline = name, tick = %tick, missed = due, "skipping missed schedule ticks");
        advance(scheduler, id, tick, 0, due as i64).await?;
        report.skipped.push((name.to_owned(), tick));
        return Ok(());
    }
    if older > 0 {
        tracing::info!(pipeline = name, tick = %tick, missed = older, "firing one catch-up run for missed schedule ticks");
    }
    let request = LaunchRequest {
        pipeline: name,
        arguments: &serde_json::json!({}),
        trigger: Trigger::Schedule,
        scheduled_for: Some(tick),
        overlap_failed: scheduler.config.overlap_failed,
        retry_of: None,
        learn_weights: scheduler.config.auto_weight.then_some(scheduler.config.weight_sample_size),
    };
    match launch(&scheduler.db, request, None).await.map_err(|e| crate::arguments::scheduled_refusal(name, e)) {
        Ok(launched) => {
            // Cogs of runs canceled by the launch (`Overlap::CancelRunning`) hear of it through
            // the notification (PostgreSQL), the cancel check (MySQL) or the lease heartbeat.
            scheduler.signals.apply(launched.all_effects());
            let run_id = launched.run_id;
            // In the report whatever follows: the run exists.
            report.fired.push((name.to_owned(), tick, run_id));
            if older > 0 {
                advance(scheduler, id, tick, 0, older).await?;
            }
        }
        Err(Error::LaunchRefused { reason: LaunchRefusal::TickAlreadyFired, .. }) => advance(scheduler, id, tick, 0, 0).await?,
        Err(Error::LaunchRefused { reason, .. }) => {
            tracing::info!(pipeline = name, tick = %tick, %reason, "scheduled launch refused");
            advance(scheduler, id, tick, 1, older).await?;
            report.refused.push((name.to_owned(), tick, reason));
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Moves `last_tick` forward to `tick` (never back) and adds to the tick counters.
async fn advance(scheduler: &Scheduler, id: i64, tick: DateTime<Utc>, refused: i64, skipped: i64) -> Result<(), DbErr> {
    schedules::advance_tick(&scheduler.db, id, tick, refused, skipped).await.map(|_| ())
}

/// Starts the scheduler's loop, supervised (restarted after a panic).
pub(crate) fn start(scheduler: &Arc<Scheduler>) {
    let s = Arc::clone(scheduler);
    let handle = crate::supervisor::supervise("scheduler", Arc::clone(&scheduler.health), scheduler.stop.clone(), move || scheduler_loop(Arc::clone(&s)));
    *scheduler.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
}

/// Stops the loop (a pass under way finishes first) and gives up the leader lease.
pub(crate) async fn stop(scheduler: &Scheduler) {
    scheduler.stop.cancel();
    let task = scheduler.task.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(task) = task
        && let Err(e) = task.await
    {
        tracing::error!(error = %e, "the scheduler's supervisor ended abnormally");
    }
    release_leadership(scheduler).await;
}

/// Runs passes until shutdown, sleeping until the next tick (at most a second, so schedule
/// changes made by other processes are seen quickly).
async fn scheduler_loop(scheduler: Arc<Scheduler>) {
    loop {
        scheduler.health.checkpoint("scheduler");
        let pause = match run_pass(&scheduler).await {
            Ok(Passed { report, problems, .. }) => {
                scheduler.health.pass("scheduler", if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) });
                report.next_tick.map_or(Duration::from_secs(1), |t| (t - scheduler.clock.now()).to_std().unwrap_or(Duration::ZERO)).min(Duration::from_secs(1))
            }
            Err(e) => {
                tracing::warn!(error = %e, "scheduler pass failed; retrying");
                scheduler.health.pass("scheduler", Err(e));
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = scheduler.stop.cancelled() => break,
            _ = scheduler.signals.schedules_changed.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Gives up the scheduler lease if this runtime holds it (on shutdown), so a standby takes
/// over at once instead of after the lease expires.
async fn release_leadership(scheduler: &Scheduler) {
    if let Err(e) = leader::release(&scheduler.db, &scheduler.holder).await {
        tracing::warn!(error = %e, "could not release the scheduler lease; it will expire");
    }
}
