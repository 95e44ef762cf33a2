//! Launching a pipeline run: the overlap policy applied and the run's first stages started,
//! in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::Value;

use super::claim::{self, Chain, Starts};
use super::{Effects, advance, start};
use crate::entity::status::{RunStatus, Trigger};
use crate::error::{Error, LaunchRefusal};
use crate::spec::Overlap;
use crate::store::claims::Planner;
use crate::store::launches::{self, LaunchedPipeline, NewRun};
use crate::store::transitions::{Announce, Starting};
use crate::store::{self, lock_run, notify, now};

/// What asks for a launch.
#[derive(Debug, Clone)]
pub(crate) struct LaunchRequest<'a> {
    /// Pipeline name.
    pub(crate) pipeline: &'a str,
    /// Launch arguments (a JSON object).
    pub(crate) arguments: &'a Value,
    /// Manual, schedule or retry.
    pub(crate) trigger: Trigger,
    /// The schedule tick, for scheduled launches.
    pub(crate) scheduled_for: Option<DateTime<Utc>>,
    /// `Config::overlap_failed`.
    pub(crate) overlap_failed: bool,
    /// The run a retry retries.
    pub(crate) retry_of: Option<i64>,
    /// The weight sample size, to learn from runs a `CancelRunning` launch ends (`None`: off).
    pub(crate) learn_weights: Option<u32>,
}

/// What a launch did, for the caller to act on after commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Launched {
    /// The new run.
    pub(crate) run_id: i64,
    /// What starting it did (nothing when it was buffered).
    pub(crate) effects: Effects,
    /// Runs canceled by [`Overlap::CancelRunning`], with what canceling each did.
    pub(crate) canceled: Vec<(i64, Effects)>,
}

impl Launched {
    /// What the launch did, with what canceling each run did.
    pub(crate) fn all_effects(&self) -> Effects {
        self.canceled.iter().fold(self.effects, |all, (_, e)| all.merge(*e))
    }
}

/// Launch transactions the database rolled back as deadlock victims are run again up to this
/// many times in all (MySQL picks victims among concurrent launches and run ends).
const LAUNCH_TRIES: u32 = 10;

/// Creates a pipeline run in its own transaction; see [`launch_in`]. With `chain`, the
/// worker of the launching process claims in that transaction the task runs it queued (see
/// [`Chain`]): the run's first task starts without a wake-up and a claim transaction of its
/// own. A transaction the database rolled back whole (deadlock victim, serialization
/// failure) is run again.
pub(crate) async fn launch(db: &DatabaseConnection, request: LaunchRequest<'_>, mut chain: Option<&mut Chain<'_>>) -> Result<Launched, Error> {
    let mut tries = 1;
    loop {
        match launch_once(db, &request, chain.as_deref_mut()).await {
            Err(Error::Database(e)) if tries < LAUNCH_TRIES && store::errors::is_rolled_back(&e) => {
                tracing::debug!(pipeline = request.pipeline, error = %e, "launch rolled back by the database; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(5 << tries.min(5))).await;
                tries += 1;
            }
            result => return result,
        }
    }
}

/// One try of [`launch`].
async fn launch_once(db: &DatabaseConnection, request: &LaunchRequest<'_>, mut chain: Option<&mut Chain<'_>>) -> Result<Launched, Error> {
    let txn = store::begin(db).await?;
    // A claim's planner settings: index walks only, and the generic plans the warm-up made
    // (`store::warm`). With PostgreSQL's defaults, on a stage just defined (no table
    // statistics yet) the first chunk's insert was planned as a bitmap scan of all the
    // stage's tasks and a sort of them (the first task of a 100,000-task stage started 45 ms
    // after `launch()`), and each statement planned again at each of a connection's first
    // five launches (1.2 ms of the first launch's 7). Already there in the sessions of the
    // runtime's own pool for its transitions (`Planner::of`).
    Planner::of(db).take(&txn).await?;
    let starts = claim::starts(chain.as_deref_mut());
    let launched = launch_in(&txn, request, Starting { announce: Announce::Later, ..Starting::LAUNCH }.claiming(Starts::of(&starts))).await?;
    // Runs canceled to make room are counted in the metrics once the commit succeeded.
    let mut canceled = Vec::with_capacity(launched.canceled.len());
    for (run_id, effects) in &launched.canceled {
        canceled.push(crate::metrics::ended_run(&txn, *run_id, *effects).await?);
    }
    // Runs canceled to make room may have started runs buffered behind them, whose task runs
    // may come before what the launch's stage starts claimed.
    let chained = claim::chained(&txn, chain.as_deref_mut(), launched.all_effects(), Planner::AlreadySet, !launched.canceled.is_empty()).await?;
    // What its chained claim left of what it queued, other processes are told of after the
    // commit (so is the run's end, when it ended at once): a PostgreSQL transaction that
    // notifies commits under a lock that every notifying transaction of the server takes in
    // turn, WAL flush included, and launches that come together queued behind each other
    // there (50 at once: spread over 150 ms).
    let mut events = Vec::new();
    if claim::left_unclaimed(&txn, launched.effects.unannounced_from, &chained).await? {
        events.push("work".to_owned());
    }
    if launched.effects.run_ended {
        events.push(format!("ended:{}", launched.run_id));
    }
    // The runs canceled to make room learn last before the commit (see `learn_canceled`).
    learn_canceled(&txn, &launched, request.learn_weights).await?;
    super::commit(txn, launched.run_id, launched.effects).await?;
    claim::committed(chain, chained);
    store::notify_after_commit(db, events).await;
    for run in &canceled {
        crate::metrics::run_ended(run.as_ref());
    }
    tracing::info!(pipeline = request.pipeline, pipeline.run = launched.run_id, trigger = request.trigger.as_str(), "pipeline run launched");
    Ok(launched)
}

/// Creates a pipeline run inside `txn` by the pipeline's overlap policy, and starts its
/// stages without prerequisites unless it is buffered.
///
/// The pipeline row is locked first, so its definition holds still; launches that decide from
/// the pipeline's other runs (a policy other than `allow`, a schedule tick) are then decided
/// one after the other (`launches::lock_decisions`), and the others go on side by side. A
/// buffered launch also locks the active run, so a transition ending that run
/// either committed before (the launch then starts at once) or waits for the launch and then
/// finds the buffered run to start.
///
/// Its stages start as `starting` says: other processes are told of the task runs it queued
/// (and of the run's end, if it ends at once) in `txn` (`Announce::Now`: a host's transaction,
/// whose commit cog does not see) or by the caller after commit (`Announce::Later`), and with
/// `starting.claim` the launching worker claims as they start (see `store::start_claims`).
pub(crate) async fn launch_in(txn: &DatabaseTransaction, request: &LaunchRequest<'_>, starting: Starting<'_>) -> Result<Launched, Error> {
    let refuse = |reason| Error::LaunchRefused { pipeline: request.pipeline.to_owned(), reason };
    let Some(pipeline) = launches::lock_pipeline(txn, request.pipeline).await? else {
        return Err(Error::UnknownPipeline { name: request.pipeline.to_owned() });
    };
    if request.trigger == Trigger::Schedule && !pipeline.enabled {
        return Err(refuse(LaunchRefusal::Disabled));
    }
    if request.scheduled_for.is_some() || pipeline.overlap != Overlap::Allow {
        launches::lock_decisions(txn, pipeline.id).await?;
    }
    if let Some(tick) = request.scheduled_for
        && launches::tick_fired(txn, pipeline.id, tick).await?
    {
        return Err(refuse(LaunchRefusal::TickAlreadyFired));
    }
    crate::arguments::check_launch(txn, pipeline.id, request.arguments).await?;
    let now = now();
    let (buffered, canceled) = apply_policy(txn, request, pipeline, now).await?;
    let arguments = request.arguments.to_string();
    let run = NewRun {
        pipeline_id: pipeline.id,
        status: if buffered { RunStatus::Queued } else { RunStatus::Running },
        trigger: request.trigger,
        scheduled_for: request.scheduled_for,
        arguments: &arguments,
        retry_of: request.retry_of,
        now,
    };
    let run_id = launches::insert_run(txn, run).await?;
    if let Some(tick) = request.scheduled_for {
        launches::record_tick(txn, pipeline.id, tick).await?;
    }
    let effects = if buffered { Effects::default() } else { start::begin_run(txn, run_id, pipeline.id, request.retry_of, now, starting).await? };
    Ok(Launched { run_id, effects, canceled })
}

/// Learns the weights of the runs a [`Overlap::CancelRunning`] launch canceled that ended at
/// once (nothing of theirs still running), together by pipeline, in `txn`: the caller's last
/// step before it commits, as a run's end learns (`engine::finish`), so that the pipeline's
/// weights lock is taken after every run lock and task run row the transaction takes (a
/// launch that learned between canceling two runs could wait in a circle with a run's end that
/// waits for that lock), and nothing that follows runs without the claim's planner settings
/// that learning puts back to the session's.
pub(crate) async fn learn_canceled(txn: &DatabaseTransaction, launched: &Launched, learn: Option<u32>) -> Result<(), DbErr> {
    let ended: Vec<i64> = launched.canceled.iter().filter(|(_, e)| e.run_ended).map(|(run, _)| *run).collect();
    super::learn_ended_runs(txn, &ended, learn).await
}

/// The overlap checks of `pipeline`'s policy; returns whether the new run is buffered and
/// the runs canceled to make room for it.
async fn apply_policy(
    txn: &DatabaseTransaction,
    request: &LaunchRequest<'_>,
    pipeline: LaunchedPipeline,
    now: DateTime<Utc>,
) -> Result<(bool, Vec<(i64, Effects)>), Error> {
    let refuse = |reason| Error::LaunchRefused { pipeline: request.pipeline.to_owned(), reason };
    if pipeline.overlap == Overlap::Allow {
        return Ok((false, Vec::new()));
    }
    let launches::OverlapState { last, open } = launches::overlap_state(txn, pipeline.id).await?;
    if let Some(last) = last
        && last.status == RunStatus::Failed
        && !request.overlap_failed
        && request.retry_of != Some(last.id)
    {
        return Err(refuse(LaunchRefusal::LastRunFailed { run_id: last.id }));
    }
    match pipeline.overlap {
        Overlap::Allow => Ok((false, Vec::new())),
        Overlap::Skip => match open.first() {
            Some(run) => Err(refuse(LaunchRefusal::Overlap { run_id: run.id })),
            None => Ok((false, Vec::new())),
        },
        Overlap::BufferOne => {
            if let Some(queued) = open.iter().find(|r| r.status == RunStatus::Queued) {
                return Err(refuse(LaunchRefusal::AlreadyBuffered { run_id: queued.id }));
            }
            // Lock the active run: whoever ends it waits for this launch and then starts
            // the buffered run; if it ended meanwhile, the new run starts at once.
            let mut buffered = false;
            for run in &open {
                buffered |= lock_run(txn, run.id).await?.is_some_and(|s| !s.is_terminal());
            }
            Ok((buffered, Vec::new()))
        }
        Overlap::CancelRunning => {
            let mut canceled = Vec::new();
            // Oldest first: ending one may start a buffered newer one, canceled in turn.
            for run in &open {
                if lock_run(txn, run.id).await?.is_some_and(|s| !s.is_terminal()) {
                    let effects = advance::end_run(txn, run.id, RunStatus::Canceled, None, now).await?;
                    notify(txn, &format!("cancel:{}", run.id)).await?;
                    tracing::info!(pipeline.run = run.id, "pipeline run canceled by a launch (overlap policy cancel_running)");
                    canceled.push((run.id, effects));
                }
            }
            Ok((false, canceled))
        }
    }
}
