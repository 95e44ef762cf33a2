//! Recording task outcomes in batches, one pipeline run per batch: each batch writes the
//! outcomes of one run in a single transaction — on PostgreSQL the successes of up to
//! [`MAX_RUNS_PER_WRITE`] runs' batches together, one transaction for them all, and when that
//! fails (a lock held for longer than `finish::JOINT_LOCK_WAIT`, say) each run's on its own,
//! side by side. One run's trouble holds back the runs written with it for at most that long,
//! and while a run's batch commits, its next one gathers.
//! Under load this turns a commit per task into a commit per batch; when idle a batch is one
//! outcome.
//!
//! A run's successes wait (at most [`HOLD`]) while task runs of their stage runs are still
//! executing in this process: the stage cannot end before those do, so writing the first
//! outcomes early only costs a transaction more (measured on workload F, 50 runs of 5 stages
//! × 40 tasks on 4 processes: 42 % of the outcome batches held 1–9 outcomes, the stage's
//! first finishers, written while its other 30-odd tasks finished). A failure is written at
//! once (it may end the run and keeps its slot until written).
//!
//! A transient error (connection lost, deadlock, ...) is retried for up to a lease length
//! (after that another process may reclaim the task runs). A permanent one is narrowed down:
//! the batch is written outcome by outcome, and an outcome that still cannot be written fails
//! its attempt instead (with the reason), so one bad outcome fails only its own attempt.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Worker;
use crate::engine::Effects;
use crate::engine::claim::Claimed;
use crate::engine::finish::{self, Finished, Outcome};
use crate::error::{TaskError, TaskErrorKind};
use crate::store::errors::{is_rolled_back, is_transient};

/// Most outcomes written by one transaction.
const MAX_BATCH: usize = 512;

/// Most outcomes received and not yet being written. Past it the loop stops receiving, so the
/// bounded channel behind it fills and finished cogs wait for their slots: memory stays flat
/// when outcomes come faster than they can be written (measured before this bound: 400 MB and
/// a quadratic copy of the backlog while a run's writes waited on its lock).
const MAX_PENDING: usize = 8 * MAX_BATCH;

/// Most transactions writing outcomes that one process runs at once. More runs wait,
/// gathering bigger batches: transactions beyond what the database's cores can run add
/// only waiting, and each needs a pooled connection. Measured with 50 runs of one pipeline
/// on 4 processes: a writer per run opened 37 more connections mid-run, each a cold
/// PostgreSQL backend to start and plan for; 8 writers instead of 4 made F 10 % slower. Where
/// one transaction writes the successes of several runs (PostgreSQL), [`JOINT_WRITERS`].
///
/// A write inside weight learning (a run's end: it waits for its pipeline's weights lock,
/// which the other runs' ends hold one after the other) does not count, up to as many more
/// (`engine::learning_now`): measured on F (50 runs of one pipeline ending within a second,
/// each learning 13 ms under the lock) on 4 processes, 0.5–13 % more tasks per second in six
/// pairs of runs, and the longest run shorter in each (1.26–1.48 → 1.12–1.37 s).
const MAX_WRITERS: usize = 4;

/// [`MAX_WRITERS`] where one transaction writes the successes of several runs (PostgreSQL,
/// [`MAX_RUNS_PER_WRITE`]), for the stage hand-offs, which wait for the whole transaction that
/// holds them: with 4 runs per transaction and 4 writers, F on one process ran 14,680 / 15,492
/// tasks/s but its hand-offs took 29 / 34 ms (p50), against 12,703–14,455 at 9 ms with 2; on
/// four processes 10,851 / 11,038 at 28 ms, against 10,203–12,125 at 25–31 ms (2026-12-05).
/// (MySQL, which writes each run's outcomes on its own, ran F 10–19 % slower on one process
/// with 2 writers than with 4.)
const JOINT_WRITERS: usize = 2;

/// Most runs whose successes one transaction writes (PostgreSQL: see `finish::finish_runs`).
/// More make fewer transactions but longer ones, and a stage's hand-off waits for the whole
/// transaction that holds it (its next stage's task runs are claimed at its end). Measured on
/// F (2026-12-05, runs per transaction with two writers): with 16, one process ran 14,810 /
/// 15,827 tasks/s but its hand-offs took 42 / 39 ms (p50; 5.9 / 4.4 ms with one run each),
/// four processes' 52 / 53 ms (p99 145 ms); with 4, one process ran 12,703–14,455 tasks/s at
/// 9 ms, four 10,203–12,125 at 25–31 ms (p99 93–139 ms); with 2, the hand-offs of one run each
/// but hardly more tasks per second.
const MAX_RUNS_PER_WRITE: usize = 4;

/// Longest a run's successes wait for outcomes of their stage runs still to come from this
/// process (see the module's note); then they are written anyway, so a slow sibling delays
/// the others' visibility by at most this.
const HOLD: Duration = Duration::from_millis(3);

/// One attempt's end, waiting to be written.
pub(crate) struct Completion {
    /// Shared with the worker's record of what runs (no copy of its names and arguments).
    pub(crate) task: Arc<Claimed>,
    /// When the attempt started (its cog was called): a success's duration counts from it.
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) outcome: Outcome,
    /// The task's error handler failed on this failure: recorded after the failure's own row.
    pub(crate) handler_error: Option<TaskError>,
    /// What was written; `None` if it could not be written before the lease ran out.
    pub(crate) reply: oneshot::Sender<Option<Finished>>,
}

/// Writes completions until the runtime has stopped and every batch under way is written.
/// The receiver is shared so that a restarted loop (after a panic) goes on with it.
pub(crate) async fn completion_loop(worker: Arc<Worker>, rx: Arc<Mutex<mpsc::Receiver<Completion>>>) {
    let mut rx = rx.lock().await;
    let mut pending = Pending::default();
    let mut writing = Writing(JoinSet::new());
    let mut run_of_write: HashMap<tokio::task::Id, Vec<i64>> = HashMap::new();
    let mut busy: HashSet<i64> = HashSet::new();
    let mut stopping = false;
    // When the earliest held run is to be written anyway, if one is held.
    let mut held_until: Option<Instant> = None;
    loop {
        if pending.is_empty() && writing.is_empty() {
            // Only between batches: a panic here (a test's) loses no outcome.
            worker.health.checkpoint("completions");
        }
        // The transactions carried over the writes' commits are rolled back when due.
        let carried_due = worker.carried.due();
        tokio::select! {
            () = tokio::time::sleep_until(held_until.unwrap_or_else(Instant::now)), if held_until.is_some() => {}
            received = rx.recv(), if !stopping && pending.len < MAX_PENDING => match received {
                Some(first) => {
                    pending.push(first);
                    for _ in 1..MAX_BATCH {
                        let Ok(c) = rx.try_recv() else { break };
                        pending.push(c);
                    }
                }
                None => stopping = true,
            },
            Some(done) = writing.join_next_with_id(), if !writing.is_empty() => {
                let id = match &done {
                    Ok((id, ())) => *id,
                    Err(e) => e.id(),
                };
                for run in run_of_write.remove(&id).unwrap_or_default() {
                    busy.remove(&run);
                }
                if let Err(e) = done
                    && e.is_panic()
                {
                    let message = crate::signals::panic_message(e.into_panic().as_ref());
                    tracing::error!(panic = %message, "writing task outcomes panicked; those task runs' leases will expire");
                    worker.health.pass("completions", Err(format!("writing outcomes panicked: {message}")));
                }
            }
            _ = worker.stopped.cancelled(), if !stopping => stopping = true,
            () = tokio::time::sleep_until(carried_due.unwrap_or_else(Instant::now)), if carried_due.is_some() => worker.carried.expire(),
        }
        held_until = None;
        let writers = if worker.writes_runs_together() { JOINT_WRITERS } else { MAX_WRITERS };
        while writing.len() < writers + crate::engine::learning_now().min(writing.len()).min(writers) {
            // Not while shutting down: what runs still is draining, and its outcomes go out
            // as they come.
            let draining = stopping || worker.stop_claiming.is_cancelled();
            let hold = |c: &Completion| !draining && worker.others_unhanded(c.task.stage_run_id);
            let (batch, held) = pending.take_batch(&busy, &hold, false, MAX_BATCH, Instant::now());
            held_until = held;
            let Some((run, group)) = batch else { break };
            busy.insert(run);
            let mut runs = vec![run];
            let mut groups = vec![group];
            // Other runs' successes join a batch of successes, up to a batch's size in all.
            if worker.writes_runs_together() && all_successes(&groups[0]) {
                let mut total = groups[0].len();
                while runs.len() < MAX_RUNS_PER_WRITE && total < MAX_BATCH {
                    let (more, _) = pending.take_batch(&busy, &hold, true, MAX_BATCH - total, Instant::now());
                    let Some((run, group)) = more else { break };
                    busy.insert(run);
                    total += group.len();
                    runs.push(run);
                    groups.push(group);
                }
            }
            let handle = if groups.len() == 1 {
                writing.spawn(write_group(Arc::clone(&worker), groups.pop().unwrap_or_default()))
            } else {
                writing.spawn(write_runs(Arc::clone(&worker), groups))
            };
            run_of_write.insert(handle.id(), runs);
        }
        if stopping && writing.is_empty() && pending.is_empty() {
            return;
        }
    }
}

/// The writes under way in [`completion_loop`]. Should the loop end otherwise than by
/// draining them (a panic of its own: it is restarted), they are detached, not aborted: each
/// finishes its transaction and what follows its commit (its task runs' answers, the signals,
/// the hand-over of the task runs it claimed), where an abort after the commit would leave
/// those claimed task runs unstarted until their leases ran out.
struct Writing(JoinSet<()>);

impl std::ops::Deref for Writing {
    type Target = JoinSet<()>;
    fn deref(&self) -> &JoinSet<()> {
        &self.0
    }
}

impl std::ops::DerefMut for Writing {
    fn deref_mut(&mut self) -> &mut JoinSet<()> {
        &mut self.0
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            tracing::error!(writes = self.0.len(), "the outcome writer stopped with writes under way; they finish on their own");
            self.0.detach_all();
        }
    }
}

/// Outcomes received and not yet being written, by run, the runs in the order their first
/// waiting outcome arrived (so that with every writer busy, no run waits behind later ones).
#[derive(Default)]
struct Pending {
    by_run: HashMap<i64, Waiting>,
    runs: VecDeque<i64>,
    len: usize,
}

/// One run's outcomes waiting to be written.
struct Waiting {
    /// When the first of them arrived.
    since: Instant,
    completions: VecDeque<Completion>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, c: Completion) {
        let run = c.task.pipeline_run_id;
        // A run's entry goes when its last waiting outcome is taken: a new one starts its wait.
        let waiting = self.by_run.entry(run).or_insert_with(|| Waiting { since: Instant::now(), completions: VecDeque::new() });
        if waiting.completions.is_empty() {
            self.runs.push_back(run);
        }
        waiting.completions.push_back(c);
        self.len += 1;
    }

    /// The next batch (at most `most` outcomes) of the run that has waited longest, is not
    /// `busy` and is not held — a run is held, for at most [`HOLD`] since its first waiting
    /// outcome arrived, while all its waiting outcomes are successes and `hold` says of one
    /// that more of its stage run's are to come — and, with `successes_only`, whose waiting
    /// outcomes are all successes. A run with more left goes to the back of the line. Also
    /// returns when the earliest run passed over as held is due, if one was.
    fn take_batch(
        &mut self,
        busy: &HashSet<i64>,
        hold: &dyn Fn(&Completion) -> bool,
        successes_only: bool,
        most: usize,
        now: Instant,
    ) -> (Option<(i64, Vec<Completion>)>, Option<Instant>) {
        let mut held_until: Option<Instant> = None;
        let by_run = &self.by_run;
        let at = self.runs.iter().position(|run| {
            if busy.contains(run) {
                return false;
            }
            let Some(waiting) = by_run.get(run) else { return true };
            let successes = waiting.completions.iter().all(|c| matches!(c.outcome, Outcome::Success(_)));
            if successes_only && !successes {
                return false;
            }
            let due = waiting.since + HOLD;
            let held = now < due && successes && waiting.completions.iter().any(hold);
            if held {
                held_until = Some(held_until.map_or(due, |h| h.min(due)));
            }
            !held
        });
        let Some(run) = at.and_then(|at| self.runs.remove(at)) else { return (None, held_until) };
        let Some(waiting) = self.by_run.get_mut(&run) else { return (None, held_until) };
        let group: Vec<Completion> = waiting.completions.drain(..waiting.completions.len().min(most.max(1))).collect();
        if waiting.completions.is_empty() {
            self.by_run.remove(&run);
        } else {
            self.runs.push_back(run);
        }
        self.len -= group.len();
        (Some((run, group)), held_until)
    }
}

/// Whether every outcome of `group` is a success.
fn all_successes(group: &[Completion]) -> bool {
    group.iter().all(|c| matches!(c.outcome, Outcome::Success(_)))
}

/// Writes the successes of several pipeline runs (a group each) in one transaction and answers
/// each; when that fails, writes each run's on its own.
async fn write_runs(worker: Arc<Worker>, groups: Vec<Vec<Completion>>) {
    let written = {
        let items: Vec<Vec<finish::Ending<'_>>> = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|c| finish::Ending { task: &c.task, started_at: Some(c.started_at), outcome: &c.outcome, handler_error: c.handler_error.as_ref() })
                    .collect()
            })
            .collect();
        // What the chained claim takes starts right at the commit, before the outcomes are
        // answered (see `write`).
        let room = super::ChainRoom::new(&worker, super::Chained::Outcome);
        let mut chain = crate::engine::claim::Chain::new(worker.claimant(), &room);
        let written = finish::finish_runs(&worker.work, &items, worker.retry_policy(), Some(&mut chain), Some(&worker.carried)).await;
        match written {
            Ok((finished, effects)) => {
                for (g, e) in groups.iter().zip(&effects) {
                    if e.run_ended {
                        worker.note_ended(g[0].task.pipeline_run_id);
                    }
                }
                for (g, e) in groups.iter().zip(&effects) {
                    tell(&worker, g[0].task.pipeline_run_id, *e);
                }
                worker.health.pass::<&str>("completions", Ok(()));
                Some(finished)
            }
            Err(e) => {
                tracing::warn!(error = %e, runs = groups.len(), "could not record the task outcomes of several runs together; writing each run's on its own");
                None
            }
        }
    };
    match written {
        Some(finished) => {
            for (group, finished) in groups.into_iter().zip(finished) {
                for (c, f) in group.into_iter().zip(finished) {
                    let _ = c.reply.send(Some(f));
                }
            }
        }
        // Side by side, as they would have been written without joining them.
        None => {
            futures::future::join_all(groups.into_iter().map(|group| write_group(Arc::clone(&worker), group))).await;
        }
    }
}

/// Wakes whoever the committed transition of run `run_id` (with `effects`) concerns; when only
/// this run ended, its waiters alone read again.
fn tell(worker: &Worker, run_id: i64, effects: Effects) {
    if effects.run_ended && !effects.other_run_ended {
        worker.signals.ended(Some(run_id));
        worker.signals.apply(Effects { run_ended: false, ..effects });
    } else {
        worker.signals.apply(effects);
    }
}

/// Writes the completions of one pipeline run and answers each.
async fn write_group(worker: Arc<Worker>, group: Vec<Completion>) {
    let answers = match write(&worker, &group).await {
        Ok(finished) => finished.into_iter().map(Some).collect(),
        Err(e) if !is_transient(&e) && group.len() > 1 => {
            tracing::warn!(error = %e, outcomes = group.len(), "a batch of task outcomes was refused; writing them one by one");
            let mut answers = Vec::with_capacity(group.len());
            for c in &group {
                answers.push(write_alone(&worker, c).await);
            }
            answers
        }
        Err(e) if !is_transient(&e) => vec![write_refused(&worker, &group[0], &e).await],
        Err(_) => vec![None; group.len()],
    };
    for (c, answer) in group.into_iter().zip(answers) {
        // The attempt may have stopped waiting (its runtime shut down); nothing to tell then.
        let _ = c.reply.send(answer);
    }
}

/// Writes one completion on its own (after its batch was refused).
async fn write_alone(worker: &Arc<Worker>, c: &Completion) -> Option<Finished> {
    match write(worker, std::slice::from_ref(c)).await {
        Ok(finished) => Some(finished[0]),
        Err(e) if !is_transient(&e) => write_refused(worker, c, &e).await,
        Err(_) => None,
    }
}

/// The database refused to record `c`'s outcome (`e`, permanent): the attempt fails instead,
/// with the reason. If even that is refused, the lease expires and the reclaim decides.
async fn write_refused(worker: &Arc<Worker>, c: &Completion, e: &DbErr) -> Option<Finished> {
    let task = &c.task;
    tracing::error!(task.run = task.task_run_id, attempt = task.attempt, error = %e, "the database refused to record this task outcome; failing the attempt instead");
    let error = TaskError {
        kind: TaskErrorKind::Result,
        error_type: "outcome_refused".to_owned(),
        message: format!("the database refused to record the outcome of task `{}` (attempt {}): {e}", task.task_name, task.attempt),
        backtrace: None,
    };
    let failed = Completion {
        task: Arc::clone(task),
        started_at: c.started_at,
        outcome: Outcome::Failure(error),
        handler_error: c.handler_error.clone(),
        reply: oneshot::channel().0,
    };
    match write(worker, std::slice::from_ref(&failed)).await {
        Ok(finished) => Some(finished[0]),
        Err(e) => {
            tracing::error!(task.run = task.task_run_id, error = %e, "could not record the failure either; the lease will expire and the task run be retried or failed");
            worker.health.pass("completions", Err(e));
            None
        }
    }
}

/// Writes `group` (one pipeline run) in one transaction, retrying transient errors for up to
/// a lease length; wakes whoever the transition concerns.
async fn write(worker: &Arc<Worker>, group: &[Completion]) -> Result<Vec<Finished>, DbErr> {
    let policy = worker.retry_policy();
    let items: Vec<finish::Ending<'_>> = group
        .iter()
        .map(|c| finish::Ending { task: &c.task, started_at: Some(c.started_at), outcome: &c.outcome, handler_error: c.handler_error.as_ref() })
        .collect();
    let run_id = group[0].task.pipeline_run_id;
    let give_up = tokio::time::Instant::now() + worker.config.lease_duration;
    let mut tries = 0;
    loop {
        // What the chained claim takes starts right at the commit, before the outcomes are
        // answered: a shutdown waiting for these task runs also waits for the ones their
        // transaction claimed.
        let room = super::ChainRoom::new(worker, super::Chained::Outcome);
        let mut chain = crate::engine::claim::Chain::new(worker.claimant(), &room);
        let written = finish::finish_batch(&worker.work, &items, policy, Some(&mut chain), Some(&worker.carried)).await;
        match written {
            Ok((finished, effects)) => {
                // A critical failure ended the run (it settles once its running task runs
                // end): task runs of it prefetched here must not start from now on, before
                // the failure's slot is given back.
                let failed = group.iter().zip(&finished).any(|(c, f)| c.task.critical && *f == finish::Finished::Failed);
                if effects.run_ended || failed {
                    worker.note_ended(run_id);
                }
                tell(worker, run_id, effects);
                worker.health.pass::<&str>("completions", Ok(()));
                return Ok(finished);
            }
            Err(e) if is_transient(&e) && tokio::time::Instant::now() < give_up => {
                tries += 1;
                // A deadlock victim may go again at once (the other transaction is through):
                // short pauses. Anything else (a lost connection, say) backs off further.
                let cap = if is_rolled_back(&e) { Duration::from_millis(200) } else { Duration::from_secs(5) };
                let base = if is_rolled_back(&e) { Duration::from_millis(5) } else { Duration::from_millis(50) };
                let pause = finish::backoff(base, cap, tries);
                tracing::warn!(error = %e, pipeline.run = run_id, outcomes = items.len(), retry_in = ?pause, "could not record task outcomes; retrying");
                worker.health.pass("completions", Err(&e));
                // The claim room reserved for the chained claim goes back during the pause:
                // the claim loop and other writers' chained claims may use it meanwhile.
                room.give_back();
                tokio::time::sleep(pause).await;
            }
            Err(e) => {
                if is_transient(&e) {
                    tracing::error!(error = %e, pipeline.run = run_id, "could not record task outcomes; their leases will expire and the task runs be retried or failed");
                }
                worker.health.pass("completions", Err(&e));
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(run: i64, stage_run: i64, outcome: Outcome) -> Completion {
        let task = Arc::new(Claimed::for_test(1, stage_run, run));
        Completion { task, started_at: crate::store::now(), outcome, handler_error: None, reply: oneshot::channel().0 }
    }

    fn success(run: i64, stage_run: i64) -> Completion {
        completion(run, stage_run, Outcome::Success(serde_json::Value::Null))
    }

    #[tokio::test]
    async fn successes_wait_for_their_stage_runs_siblings_at_most_the_hold() {
        let mut pending = Pending::default();
        pending.push(success(1, 10));
        let since = pending.by_run[&1].since;
        let siblings_to_come = |c: &Completion| c.task.stage_run_id == 10;
        let (batch, held_until) = pending.take_batch(&HashSet::new(), &siblings_to_come, false, MAX_BATCH, since);
        assert!(batch.is_none(), "held while a sibling is still to come");
        assert_eq!(held_until, Some(since + HOLD));
        let (batch, held_until) = pending.take_batch(&HashSet::new(), &siblings_to_come, false, MAX_BATCH, since + HOLD);
        assert_eq!(batch.map(|(run, group)| (run, group.len())), Some((1, 1)), "written once the hold is over");
        assert_eq!(held_until, None);
        assert!(pending.is_empty());
    }

    #[tokio::test]
    async fn a_run_with_no_sibling_to_come_or_with_a_failure_is_written_at_once() {
        let mut pending = Pending::default();
        pending.push(success(1, 10));
        pending.push(success(2, 20));
        pending.push(completion(
            2,
            20,
            Outcome::Failure(TaskError { kind: TaskErrorKind::Returned, error_type: "boom".into(), message: "it failed".into(), backtrace: None }),
        ));
        pending.push(success(3, 30));
        let now = Instant::now();
        let to_come = |c: &Completion| c.task.stage_run_id != 30;
        // Run 1 is held; run 2 has a failure: written, with its success.
        let (batch, held_until) = pending.take_batch(&HashSet::new(), &to_come, false, MAX_BATCH, now);
        assert_eq!(batch.map(|(run, group)| (run, group.len())), Some((2, 2)));
        assert!(held_until.is_some(), "run 1 was passed over as held");
        // Run 3's stage run has nothing more to come; a busy run is passed over without a hold.
        let (batch, _) = pending.take_batch(&HashSet::new(), &to_come, false, MAX_BATCH, now);
        assert_eq!(batch.map(|(run, _)| run), Some(3));
        let (batch, held_until) = pending.take_batch(&HashSet::from([1]), &to_come, false, MAX_BATCH, now);
        assert!(batch.is_none());
        assert_eq!(held_until, None, "a busy run is woken for when its write ends, not by the hold");
    }

    #[tokio::test]
    async fn runs_joining_a_batch_of_successes_bring_successes_only() {
        let mut pending = Pending::default();
        pending.push(success(1, 10));
        pending.push(completion(
            2,
            20,
            Outcome::Failure(TaskError { kind: TaskErrorKind::Returned, error_type: "boom".into(), message: "it failed".into(), backtrace: None }),
        ));
        pending.push(success(3, 30));
        let nothing_to_come = |_: &Completion| false;
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, MAX_BATCH, Instant::now());
        assert_eq!(batch.map(|(run, _)| run), Some(1));
        // Run 2 waited longer than run 3, but its batch holds a failure: passed over.
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, MAX_BATCH, Instant::now());
        assert_eq!(batch.map(|(run, _)| run), Some(3));
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, MAX_BATCH, Instant::now());
        assert!(batch.is_none(), "only run 2, with its failure, is left");
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, false, MAX_BATCH, Instant::now());
        assert_eq!(batch.map(|(run, group)| (run, group.len())), Some((2, 1)), "taken by a batch of its own");
    }

    #[tokio::test]
    async fn a_run_joining_a_batch_brings_no_more_than_the_room_left() {
        let mut pending = Pending::default();
        for _ in 0..3 {
            pending.push(success(1, 10));
        }
        pending.push(success(2, 20));
        let nothing_to_come = |_: &Completion| false;
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, 2, Instant::now());
        assert_eq!(batch.map(|(run, group)| (run, group.len())), Some((1, 2)));
        // The rest of run 1 goes to the back of the line.
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, 2, Instant::now());
        assert_eq!(batch.map(|(run, _)| run), Some(2));
        let (batch, _) = pending.take_batch(&HashSet::new(), &nothing_to_come, true, 2, Instant::now());
        assert_eq!(batch.map(|(run, group)| (run, group.len())), Some((1, 1)));
        assert!(pending.is_empty());
    }
}
