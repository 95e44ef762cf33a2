//! Ending one attempt of a task run: completed, queued again for a retry, or failed, and
//! whatever that means for its stage and pipeline run. Fenced by attempt number.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use serde_json::Value;

use super::claim::{self, Chain, ChainedClaim, Claimed, Starts};
use super::{Effects, advance};
use crate::entity::status::RunStatus;
use crate::error::{TaskError, TaskErrorKind};
use crate::store::claims::{self, Planner};
use crate::store::outcomes::{self, FailedAttempt};
use crate::store::{self, Backend, Carried, lock_run, notify, now, transitions};

/// How an attempt ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The cog returned this value.
    Success(Value),
    /// The attempt failed.
    Failure(TaskError),
}

/// What [`finish`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finished {
    /// The task run is `completed`.
    Completed,
    /// The attempt failed and another one is queued.
    Retrying,
    /// The task run is `failed`.
    Failed,
    /// The attempt no longer owned the task run (its lease was taken over, or it was released):
    /// nothing was written.
    Stale,
}

/// Retry back-off: `base * 2^(attempt-1)`, at most `cap`.
pub(crate) fn backoff(base: Duration, cap: Duration, attempt: i32) -> Duration {
    let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
    base.saturating_mul(1u32 << exponent).min(cap)
}

/// Retry settings for [`finish`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
    /// Learn task weights (with this sample size) when the run ends; `None`: don't.
    pub(crate) learn_weights: Option<u32>,
}

/// One attempt's end, to record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending<'a> {
    pub(crate) task: &'a Claimed,
    /// When the attempt started: its cog's call in the worker that ran it, or (an outcome
    /// written for another process, the lease sweep's) the task run's claim. A success's
    /// duration counts from it (`None`: none is written).
    pub(crate) started_at: Option<DateTime<Utc>>,
    pub(crate) outcome: &'a Outcome,
    /// How the task's error handler failed on this failure, recorded after the failure's row.
    pub(crate) handler_error: Option<&'a TaskError>,
}

/// Records how attempt `task.attempt` of `task` ended and moves its run forward; the attempt
/// counts as started at `task.started_at` (its claim).
pub(crate) async fn finish(db: &DatabaseConnection, task: &Claimed, outcome: &Outcome, retry: RetryPolicy) -> Result<(Finished, Effects), DbErr> {
    let (finished, effects) = finish_batch(db, &[Ending { task, started_at: task.started_at, outcome, handler_error: None }], retry, None, None).await?;
    Ok((finished[0], effects))
}

/// Records the ends of several attempts of task runs of **one** pipeline run in one
/// transaction (one lock, one commit), then moves the run forward once; with `chain`, claims
/// in it what it queued (see [`Chain`]). Returns what happened to each, in order. On
/// PostgreSQL a batch of successes is [`finish_runs`]'s (in a transaction of `carried`, when
/// given).
pub(crate) async fn finish_batch(
    db: &DatabaseConnection,
    items: &[Ending<'_>],
    retry: RetryPolicy,
    mut chain: Option<&mut Chain<'_>>,
    carried: Option<&Carried>,
) -> Result<(Vec<Finished>, Effects), DbErr> {
    let Some(first) = items.first() else { return Ok((Vec::new(), Effects::default())) };
    let run_id = first.task.pipeline_run_id;
    debug_assert!(items.iter().all(|e| e.task.pipeline_run_id == run_id), "a batch holds task runs of one pipeline run");
    if Backend::of(db)? == Backend::Postgres && all_successes(items) {
        let (mut finished, mut effects) = finish_runs(db, &[items.to_vec()], retry, chain, carried).await?;
        return Ok((finished.pop().unwrap_or_default(), effects.pop().unwrap_or_default()));
    }
    // Failures (rare) may end the run: the run's lock first. (So do successes on MySQL and
    // SQLite: MySQL's locking reads of the rows written early would deadlock with another
    // batch's.)
    tracing::trace!(target: "cog::handoff", step = "write_began");
    let txn = store::begin(db).await?;
    tracing::trace!(target: "cog::handoff", step = "begun");
    let now = now();
    let Some(run_status) = lock_run(&txn, run_id).await? else {
        return Ok((vec![Finished::Stale; items.len()], Effects::default()));
    };
    let mut run_going = run_status == RunStatus::Running;
    let mut effects = Effects::default();
    let mut finished = Vec::with_capacity(items.len());
    let mut touched_stage_runs: Vec<i64> = Vec::new();
    // Successes first, a statement per 50 of them; then failures one by one (they are rare).
    let completed = record_successes(&txn, items, now).await?;
    Planner::of(db).take(&txn).await?;
    for &Ending { task, outcome, handler_error, .. } in items {
        let result = match outcome {
            Outcome::Success(_) if completed.contains(&task.task_run_id) => Finished::Completed,
            Outcome::Success(_) => Finished::Stale,
            Outcome::Failure(error) => record_failure(&txn, task, error, handler_error, run_going, retry, now).await?,
        };
        match result {
            Finished::Stale => {}
            Finished::Retrying => effects.queued_work = true,
            Finished::Failed if task.critical && run_going => {
                effects = effects.merge(advance::end_run(&txn, run_id, RunStatus::Failed, Some(task.stage_run_id), now).await?);
                run_going = false;
            }
            _ => {
                if !touched_stage_runs.contains(&task.stage_run_id) {
                    touched_stage_runs.push(task.stage_run_id);
                }
            }
        }
        finished.push(result);
    }
    tracing::trace!(target: "cog::handoff", step = "outcomes_written");
    let announce = if chain.is_some() { transitions::Announce::Later } else { transitions::Announce::Now };
    if run_going {
        let starts = claim::starts(chain.as_deref_mut());
        let starting = transitions::Starting::hand_off(announce).claiming(Starts::of(&starts));
        effects = effects.merge(advance_stage_runs(&txn, run_id, touched_stage_runs, starting, now).await?);
    } else {
        effects = effects.merge(advance::settle(&txn, run_id, now).await?);
    }
    tracing::trace!(target: "cog::handoff", step = "stages_started");
    let retried = finished.contains(&Finished::Retrying);
    let chained = claim::chained(&txn, chain.as_deref_mut(), effects, Planner::AlreadySet, retried).await?;
    effects = announce_left(&txn, effects, &chained, retried).await?;
    // Last before the commit: the weights lock is held from here to the commit (see
    // `finish_runs`).
    super::learn_if_ended(&txn, run_id, effects, retry.learn_weights).await?;
    super::commit(txn, run_id, effects).await?;
    tracing::trace!(target: "cog::handoff", step = "committed");
    crate::metrics::recorded(items.iter().map(|e| (e.task, e.started_at)), &finished, store::now());
    tracing::trace!(target: "cog::handoff", step = "dispatching");
    claim::committed(chain, chained);
    // A run that ended by going forward under `Announce::Later` was not announced at commit:
    // it is now, once the chained claim's task runs are on their way.
    if run_going && effects.run_ended && announce == transitions::Announce::Later {
        store::notify_after_commit(db, vec![format!("ended:{run_id}")]).await;
    }
    Ok((finished, effects))
}

/// Whether every attempt of `items` succeeded.
fn all_successes(items: &[Ending<'_>]) -> bool {
    items.iter().all(|e| matches!(e.outcome, Outcome::Success(_)))
}

/// Records the successful ends of attempts of **several** pipeline runs (PostgreSQL) in one
/// transaction, then moves each run forward; with `chain`, claims once, at the end, in the same
/// transaction (see [`Chain`]). Each of `runs` holds successes of one run, a different run each.
/// Returns what happened to each attempt and each run's effects, in the order of `runs`.
/// With `carried` (the writer's, see `store::Carried`), the transaction may be one carried
/// over the previous write's commit, and its own commit may carry the next.
///
/// Per run this is what [`finish_batch`] does, in one transaction for all: a worker running
/// many small runs at once (workload F: 50 runs of 5 stages of 40 tasks) had written each
/// run's outcomes in a transaction of its own, with the run's claim; with up to 4 runs per
/// transaction, one process ran F 17–44 % faster and four 21–28 % (three pairs each,
/// 2026-12-05).
///
/// The successes are written first, before any run's lock, so that batches of one run from
/// several processes write in parallel and queue only for the short rest (the runs' locks
/// are taken by the successes' own statement, once they are written, in id order:
/// `outcomes::complete_and_lock_runs`). That is safe
/// because whatever is decided under a run's lock (stage done, run settled) is read after the
/// lock is granted, at READ COMMITTED: of two batches, the one locking last sees the other's
/// rows committed. The weights locks of the runs that ended (see `store::lock_weights_of`)
/// are taken in the order of their keys, only after every run's lock: two such transactions
/// never wait for each other in a circle. (A run's end may
/// start a run buffered behind it, whose lock it takes then, after higher ids: a buffered run
/// is queued, so no task outcome of it is in another such transaction.) A run whose row is
/// gone has its successes written and nothing moved forward.
pub(crate) async fn finish_runs(
    db: &DatabaseConnection,
    runs: &[Vec<Ending<'_>>],
    retry: RetryPolicy,
    mut chain: Option<&mut Chain<'_>>,
    carried: Option<&Carried>,
) -> Result<(Vec<Vec<Finished>>, Vec<Effects>), DbErr> {
    let all: Vec<Ending<'_>> = runs.iter().flatten().copied().collect();
    debug_assert!(all_successes(&all), "finish_runs records successes only");
    debug_assert!(runs.iter().all(|r| !r.is_empty() && r.iter().all(|e| e.task.pipeline_run_id == r[0].task.pipeline_run_id)));
    // Each step of the write is a trace event of target `cog::handoff` (as in `finish_batch`,
    // and a cog's call and return in `worker::execute`): where a stage hand-off's time goes.
    tracing::trace!(target: "cog::handoff", step = "write_began");
    let txn = match carried {
        Some(carried) => carried.begin(db).await?,
        None => store::begin(db).await?,
    };
    tracing::trace!(target: "cog::handoff", step = "begun");
    let now = now();
    // Runs written together wait for each other's locks: one whose lock another transaction
    // holds for long (a host's transaction launching a run that cancels it, say) would hold
    // back the others. Past `JOINT_LOCK_WAIT` the transaction fails instead, and the caller
    // writes each run's outcomes on its own.
    let joint = runs.len() > 1;
    if joint {
        store::limit_lock_waits(&txn, Some(JOINT_LOCK_WAIT)).await?;
    }
    // Generic plans through indexes for the transition's statements, the chained claim's
    // included (see `claims::set_planner`): taken before the successes' write when it is
    // small (a hand-off's), after it otherwise — that write's best plan depends on how many
    // outcomes it writes (with the generic plan, workload E's writes of ~200 outcomes took
    // twice as long, 14 ms instead of 7). On a pool whose sessions have the settings
    // (`Planner::of`), a small write needs nothing, and a big one is planned as elsewhere,
    // with the server's defaults (a round trip more than elsewhere, for a write of 9 or more).
    let planner = Planner::of(db);
    let planner_first = all.len() <= GENERIC_WRITE_MOST;
    if planner_first {
        planner.take(&txn).await?;
    } else if planner == Planner::AlreadySet {
        claims::server_planner(&txn).await?;
    }
    let run_of = |i: usize| runs[i][0].task.pipeline_run_id;
    // The successes and the runs' locks, in id order, are one statement.
    let mut run_ids: Vec<i64> = (0..runs.len()).map(run_of).collect();
    run_ids.sort_unstable();
    let written = outcomes::complete_and_lock_runs(&txn, &successes_of(&all, now), now, &run_ids).await?;
    tracing::trace!(target: "cog::handoff", step = "outcomes_written");
    let statuses: Vec<Option<RunStatus>> = (0..runs.len()).map(|i| written.status_of(run_of(i))).collect();
    let completed = written.completed;
    if !planner_first {
        claims::set_planner(&txn).await?;
    }
    if joint {
        // The weights locks are waited for as long as it takes (see `learn_if_ended`).
        store::limit_lock_waits(&txn, None).await?;
    }
    let announce = if chain.is_some() { transitions::Announce::Later } else { transitions::Announce::Now };
    let starts = claim::starts(chain.as_deref_mut());
    let starting = transitions::Starting::hand_off(announce).claiming(Starts::of(&starts));
    let mut finished = Vec::with_capacity(runs.len());
    let mut effects = vec![Effects::default(); runs.len()];
    for (i, items) in runs.iter().enumerate() {
        let mut touched: Vec<i64> = Vec::new();
        let results = items
            .iter()
            .map(|e| {
                if !completed.contains(&e.task.task_run_id) {
                    return Finished::Stale;
                }
                if !touched.contains(&e.task.stage_run_id) {
                    touched.push(e.task.stage_run_id);
                }
                Finished::Completed
            })
            .collect();
        effects[i] = match statuses[i] {
            Some(RunStatus::Running) => advance_stage_runs(&txn, run_of(i), touched, starting, now).await?,
            Some(_) => advance::settle(&txn, run_of(i), now).await?,
            None => Effects::default(),
        };
        finished.push(results);
    }
    tracing::trace!(target: "cog::handoff", step = "stages_started");
    let ended: Vec<i64> = (0..runs.len()).filter(|&i| effects[i].run_ended).map(run_of).collect();
    let merged = effects.iter().fold(Effects::default(), |all, e| all.merge(*e));
    let chained = claim::chained(&txn, chain.as_deref_mut(), merged, Planner::AlreadySet, false).await?;
    // Whether anybody is to be woken for the task runs queued here is decided for all of them.
    let woken = announce_left(&txn, merged, &chained, false).await?.queued_work;
    for e in &mut effects {
        e.unannounced_from = None;
        e.queued_work &= woken;
    }
    let mut counted = Vec::with_capacity(runs.len());
    for (i, e) in effects.iter().enumerate() {
        counted.push(crate::metrics::ended_run(&txn, run_of(i), *e).await?);
    }
    // Last before the commit: a pipeline's weights lock is held until the commit, and the
    // ends of its runs take it one after the other (50 runs of one pipeline ending within
    // 0.3 s in workload F waited 15-48 ms each for it), so it is held for the learning alone,
    // not for the chained claim too.
    super::learn_ended_runs(&txn, &ended, retry.learn_weights).await?;
    match carried {
        // Carried over the commit only where a stage started: its task runs' outcomes come
        // next, soon (a hand-off's). A write that only recorded outcomes (most of a big
        // stage's) commits as before: carried there, one process of workload E ran at 24,800
        // tasks/s in half its runs instead of 30,700 (its writes, begun at once, took smaller
        // batches, 2026-12-06).
        Some(carried) if merged.queued_work => carried.commit(txn).await?,
        _ => txn.commit().await?,
    }
    tracing::trace!(target: "cog::handoff", step = "committed");
    for run in &counted {
        crate::metrics::run_ended(run.as_ref());
    }
    let flat: Vec<Finished> = finished.iter().flatten().copied().collect();
    crate::metrics::recorded(all.iter().map(|e| (e.task, e.started_at)), &flat, store::now());
    tracing::trace!(target: "cog::handoff", step = "dispatching");
    claim::committed(chain, chained);
    // The runs that ended going forward under `Announce::Later` were not announced at commit:
    // they are now, once the chained claim's task runs are on their way.
    if announce == transitions::Announce::Later {
        let ended = (0..runs.len()).filter(|&i| statuses[i] == Some(RunStatus::Running) && effects[i].run_ended).map(|i| format!("ended:{}", run_of(i)));
        store::notify_after_commit(db, ended.collect()).await;
    }
    Ok((finished, effects))
}

/// Moves run `run_id` (locked, running) forward after task runs of stage runs `touched`
/// completed: each of those stage runs that is done completes, and the stages that unblocks
/// start as `starting` says (a hand-off's, announced and claimed as it says).
async fn advance_stage_runs(
    txn: &DatabaseTransaction,
    run_id: i64,
    touched: Vec<i64>,
    starting: transitions::Starting<'_>,
    now: DateTime<Utc>,
) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    for stage_run_id in touched {
        if let Some(successors) = transitions::complete_stage_run_and_successors(txn, run_id, stage_run_id, now).await? {
            tracing::trace!(target: "cog::handoff", step = "stage_ended");
            effects = effects.merge(advance::start_stages_after(txn, run_id, successors, Vec::new(), now, starting).await?);
        }
    }
    Ok(effects)
}

/// Announces the task runs this transaction's stage starts queued unannounced
/// (`effects.unannounced_from`) if its chained claim (`chained`) left any of them queued.
/// When it left none, nobody is woken, here either (`queued_work` cleared) — unless other work
/// was queued too: a retry (`retried`), or a buffered run started by the run's end. So too when
/// the stage starts claimed all they queued themselves (nothing unannounced, and no claim of
/// queued task runs needed after them): a claim loop woken for it would find nothing.
async fn announce_left(txn: &DatabaseTransaction, mut effects: Effects, chained: &ChainedClaim, retried: bool) -> Result<Effects, DbErr> {
    let nothing_else = !retried && !effects.run_ended && !effects.other_run_ended;
    let Some(first) = effects.unannounced_from.take() else {
        if nothing_else && chained.started_claimed {
            effects.queued_work = false;
        }
        return Ok(effects);
    };
    if claim::left_unclaimed(txn, Some(first), chained).await? {
        notify(txn, "work").await?;
    } else if nothing_else {
        effects.queued_work = false;
    }
    Ok(effects)
}

/// Longest a transaction writing several runs' outcomes ([`finish_runs`]) waits for a lock on
/// a task run or a run before it fails (and each run's outcomes are written on their own).
/// Far above the usual waits for a run's lock under load (under a millisecond on average with
/// 50 runs on four processes; a run end learning weights holds it for tens of milliseconds).
pub(crate) const JOINT_LOCK_WAIT: Duration = Duration::from_millis(250);

/// Most outcomes in a batch whose successes are written under the generic plan.
const GENERIC_WRITE_MOST: usize = 8;

/// Rows per multi-row statement on SQLite and MySQL (larger statements were slower on
/// SQLite); PostgreSQL takes a batch's results as arrays, in one statement.
const ROWS_PER_STATEMENT: usize = 50;

/// Marks the successful attempts among `items` `completed` with their results, fenced by
/// attempt number; returns the ids of the task runs it completed.
async fn record_successes(txn: &DatabaseTransaction, items: &[Ending<'_>], now: DateTime<Utc>) -> Result<Vec<i64>, DbErr> {
    let successes = successes_of(items, now);
    let mut completed = Vec::with_capacity(successes.len());
    let per_statement = if Backend::of(txn)? == Backend::Postgres { successes.len().max(1) } else { ROWS_PER_STATEMENT };
    for chunk in successes.chunks(per_statement) {
        completed.extend(outcomes::complete_many(txn, chunk, now).await?);
    }
    Ok(completed)
}

/// The successful attempts among `items`, as written at `now`.
fn successes_of(items: &[Ending<'_>], now: DateTime<Utc>) -> Vec<outcomes::Success> {
    items
        .iter()
        .filter_map(|&Ending { task, started_at, outcome, .. }| match outcome {
            Outcome::Success(value) => Some(outcomes::Success {
                task_run_id: task.task_run_id,
                attempt: task.attempt,
                duration_ms: started_at.map(|s| (now - s).num_milliseconds().max(0)).unwrap_or(0),
                result: value.to_string(),
            }),
            Outcome::Failure(_) => None,
        })
        .collect()
}

/// Writes one failed attempt on its task run, fenced by attempt number: queued again for a
/// retry (when retries are left and the run goes on), or `failed`; and its `cog_error` row,
/// followed by the error handler's, if the handler failed.
async fn record_failure(
    txn: &DatabaseTransaction,
    task: &Claimed,
    error: &TaskError,
    handler_error: Option<&TaskError>,
    run_going: bool,
    retry: RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Finished, DbErr> {
    let retry_left = error.kind.retryable() && task.attempt <= task.max_retries && run_going;
    // A takeover is written only if the lease is still expired now: a worker that renewed it
    // in the meantime keeps its task run.
    let takeover = error.kind == TaskErrorKind::LeaseExpired;
    let how = if retry_left { FailedAttempt::Retry { after: backoff(retry.base, retry.cap, task.attempt) } } else { FailedAttempt::Fail { now } };
    if !outcomes::fail_attempt(txn, task.task_run_id, task.attempt, how, &error.to_string(), takeover).await? {
        return Ok(Finished::Stale);
    }
    record_error(txn, task.task_run_id, task.attempt, error, now).await?;
    if let Some(handler_error) = handler_error {
        record_error(txn, task.task_run_id, task.attempt, handler_error, now).await?;
    }
    if retry_left {
        notify(txn, "work").await?;
        return Ok(Finished::Retrying);
    }
    Ok(Finished::Failed)
}

/// Writes a `cog_error` row for one failed attempt.
pub(crate) async fn record_error(conn: &impl ConnectionTrait, task_run_id: i64, attempt: i32, error: &TaskError, now: DateTime<Utc>) -> Result<(), DbErr> {
    let row = outcomes::ErrorRow {
        task_run_id,
        attempt,
        error_type: &error.error_type,
        message: &error.message,
        backtrace: error.backtrace.as_deref(),
        created_at: now,
    };
    outcomes::insert_error(conn, row).await
}

/// Gives a claimed task run back without counting it as a failure (graceful shutdown past
/// its deadline): queued again if its run goes on, `canceled` otherwise.
pub(crate) async fn release(db: &DatabaseConnection, task: &Claimed, learn_weights: Option<u32>) -> Result<Effects, DbErr> {
    let txn = store::begin(db).await?;
    let Some(run_status) = lock_run(&txn, task.pipeline_run_id).await? else { return Ok(Effects::default()) };
    let now = now();
    let effects = if run_status == RunStatus::Running {
        outcomes::give_back(&txn, task.task_run_id, task.attempt, true, now).await?;
        notify(&txn, "work").await?;
        Effects { queued_work: true, ..Effects::default() }
    } else {
        outcomes::give_back(&txn, task.task_run_id, task.attempt, false, now).await?;
        advance::settle(&txn, task.pipeline_run_id, now).await?
    };
    super::learn_if_ended(&txn, task.pipeline_run_id, effects, learn_weights).await?;
    super::commit(txn, task.pipeline_run_id, effects).await?;
    Ok(effects)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{Database, Statement, TransactionTrait};

    /// Outcomes of two runs written together, one run locked by another session: the joint
    /// transaction gives up after [`JOINT_LOCK_WAIT`] instead of waiting for the lock (so that
    /// the worker writes each run's outcomes on its own, and the other run goes on). On
    /// PostgreSQL (skipped without `COG_TEST_POSTGRES_URL`).
    #[tokio::test]
    async fn runs_written_together_do_not_wait_long_for_a_locked_run() {
        let Some((db, url)) = crate::store::test_database::postgres("joint", "joint-write test").await else { return };
        db.execute_unprepared(
            "INSERT INTO cog_pipeline (id, name, enabled, timezone, prevent_overlap, created_at, updated_at) VALUES (1, 'p', true, 'UTC', false, now(), now()); \
             INSERT INTO cog_pipeline_run (id, pipeline_id, status, \"trigger\", arguments, created_at) VALUES (1, 1, 'running', 'manual', '{}', now()), (2, 1, 'running', 'manual', '{}', now())",
        )
        .await
        .unwrap();
        let other = Database::connect(url.as_str()).await.unwrap();
        let blocker = other.begin().await.unwrap();
        blocker.execute_raw(Statement::from_string(sea_orm::DbBackend::Postgres, "SELECT id FROM cog_pipeline_run WHERE id = 2 FOR UPDATE")).await.unwrap();
        let (a, b) = (Claimed::for_test(11, 21, 1), Claimed::for_test(12, 22, 2));
        let outcome = Outcome::Success(Value::Null);
        let ending = |task| Ending { task, started_at: Some(now()), outcome: &outcome, handler_error: None };
        let retry = RetryPolicy { base: Duration::from_millis(10), cap: Duration::from_millis(100), learn_weights: None };
        // A guard against a hang, not a measurement: the blocker holds its lock throughout.
        let written = tokio::time::timeout(Duration::from_secs(30), finish_runs(&db, &[vec![ending(&a)], vec![ending(&b)]], retry, None, None)).await;
        let error = written.expect("the joint transaction waited for the locked run").expect_err("the locked run cannot be written together");
        assert!(error.to_string().contains("lock timeout"), "{error}");
        // Alone, the other run is written at once.
        let (finished, _) = finish_batch(&db, &[ending(&a)], retry, None, None).await.unwrap();
        assert_eq!(finished, [Finished::Stale], "no such task run: nothing written, nothing waited for");
        blocker.rollback().await.unwrap();
        db.close().await.unwrap();
        other.close().await.unwrap();
        crate::store::test_database::drop(&url).await;
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(backoff(base, cap, 1), Duration::from_secs(1));
        assert_eq!(backoff(base, cap, 2), Duration::from_secs(2));
        assert_eq!(backoff(base, cap, 4), Duration::from_secs(8));
        assert_eq!(backoff(base, cap, 5), Duration::from_secs(10));
        assert_eq!(backoff(base, cap, 500), Duration::from_secs(10));
    }
}
