//! [`Worker`]: what the worker's loops share — the connection, settings, the task runs this
//! process executes, the outcome channel and the stop signals.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use sea_orm::DatabaseConnection;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::completions::Completion;
use crate::config::Config;
use crate::engine::claim::Claimed;
use crate::engine::finish::RetryPolicy;
use crate::health::HealthBoard;
use crate::signals::Signals;
use crate::store::Pools;

/// Outcomes waiting to be written, per unit of concurrency: a full channel makes finishing
/// cogs wait (back-pressure) instead of growing memory without bound.
const COMPLETIONS_PER_SLOT: usize = 4;

/// A task run this process is executing.
pub(crate) struct RunningTask {
    /// Shared with the attempt executing it (one copy of its names and arguments).
    pub(crate) claimed: Arc<Claimed>,
    pub(crate) cancel: CancellationToken,
    pub(crate) abort: Option<tokio::task::AbortHandle>,
    /// Its outcome was handed to the completion writer ([`Worker::handed`]).
    pub(crate) handed: bool,
}

/// The worker's state.
pub(crate) struct Worker {
    /// For its presence, leases and releases (`store::Pools::db`).
    pub(crate) db: DatabaseConnection,
    /// For its outcomes, claims and fills (`store::Pools::work`).
    pub(crate) work: DatabaseConnection,
    pub(crate) config: Config,
    pub(crate) queues: Vec<String>,
    pub(crate) concurrency: usize,
    pub(crate) worker_id: String,
    pub(crate) signals: Arc<Signals>,
    pub(crate) health: Arc<HealthBoard>,
    /// One per task run this process may execute at once (a cog and its error handler run
    /// under one).
    pub(crate) permits: Arc<Semaphore>,
    /// One per task run this process may hold claimed before its outcome is handed to the
    /// completion writer: the concurrency plus [`Config::prefetch`].
    pub(crate) claim_room: Arc<Semaphore>,
    /// Task runs executing in this process, by task run id.
    running: Mutex<HashMap<i64, RunningTask>>,
    /// How many of `running` have not handed their outcome to the completion writer yet, by
    /// stage run (entries at 0 removed). Changed only under `running`'s lock.
    unhanded: Mutex<HashMap<i64, usize>>,
    /// Runs recently canceled: a cog that registers after the cancel reached this process
    /// (claimed just before it) is told at once. Bounded; oldest forgotten first.
    canceled_runs: Mutex<VecDeque<i64>>,
    /// Runs this process saw end (its own writes ended them). Bounded; oldest forgotten first.
    ended_runs: Mutex<VecDeque<i64>>,
    /// Cancelled by `shutdown`: stop claiming work.
    pub(crate) stop_claiming: CancellationToken,
    /// Cancelled once running work has drained: stop renewing leases.
    pub(crate) stopped: CancellationToken,
    /// The executing task runs.
    pub(crate) tracker: TaskTracker,
    /// Task outcomes to write (see `worker::completions`).
    pub(crate) completions: mpsc::Sender<Completion>,
    /// The receiving end, taken by `start`.
    completions_rx: Mutex<Option<mpsc::Receiver<Completion>>>,
    /// This worker's `cog_worker` row once registered.
    pub(crate) worker_row: Mutex<Option<i64>>,
    /// Set once the worker and its cogs were first recorded (see `CogRuntime::ready`).
    pub(crate) registered: tokio::sync::watch::Sender<bool>,
    /// Set once the listener's first try to hear other processes is over: listening (on
    /// PostgreSQL), the change counter read once (MySQL), nothing to hear (SQLite), or failed
    /// (then polling). See `CogRuntime::ready`.
    pub(crate) hearing: tokio::sync::watch::Sender<bool>,
    /// The claim loop (joined first on shutdown, so no claim slips past it) and the others.
    loops: Mutex<Loops>,
    /// The stage hand-offs' transactions carried over their commits (see `store::Carried`);
    /// rolled back by the completion loop once [`crate::store::Carried::due`], and by `shutdown`.
    pub(crate) carried: crate::store::Carried,
}

/// The handles of the worker's loops: the claim loop, and the others.
type Loops = (Option<JoinHandle<()>>, Vec<JoinHandle<()>>);

impl Worker {
    /// A worker that has not started.
    pub(crate) fn new(
        Pools { db, work }: Pools,
        config: Config,
        queues: Vec<String>,
        concurrency: usize,
        worker_id: String,
        signals: Arc<Signals>,
        health: Arc<HealthBoard>,
    ) -> Self {
        let room = concurrency.saturating_add(config.prefetch);
        let (completions, rx) = mpsc::channel(room.saturating_mul(COMPLETIONS_PER_SLOT).max(64));
        let carried = crate::store::Carried::for_pool(&work);
        Worker {
            db,
            work,
            config,
            queues,
            concurrency,
            worker_id,
            signals,
            health,
            permits: Arc::new(Semaphore::new(concurrency)),
            claim_room: Arc::new(Semaphore::new(room)),
            running: Mutex::new(HashMap::new()),
            unhanded: Mutex::new(HashMap::new()),
            canceled_runs: Mutex::new(VecDeque::new()),
            ended_runs: Mutex::new(VecDeque::new()),
            stop_claiming: CancellationToken::new(),
            stopped: CancellationToken::new(),
            tracker: TaskTracker::new(),
            completions,
            completions_rx: Mutex::new(Some(rx)),
            worker_row: Mutex::new(None),
            registered: tokio::sync::watch::Sender::new(false),
            hearing: tokio::sync::watch::Sender::new(false),
            loops: Mutex::new((None, Vec::new())),
            carried,
        }
    }

    /// Whether the successes of several runs are written in one transaction: on PostgreSQL
    /// (`engine::finish::finish_runs`, which writes them before taking the runs' locks; on
    /// MySQL such early writes deadlock, and SQLite writes one transaction at a time anyway).
    pub(crate) fn writes_runs_together(&self) -> bool {
        matches!(crate::store::Backend::of(&self.db), Ok(crate::store::Backend::Postgres))
    }

    /// Whether the worker has started and not begun to shut down: its loops write what it
    /// runs, so task runs may be claimed for it.
    pub(crate) fn is_claiming(&self) -> bool {
        !self.stop_claiming.is_cancelled() && self.loops.lock().unwrap_or_else(|e| e.into_inner()).0.is_some()
    }

    /// Whether no task runs here: every slot is free (and so nothing prefetched waits for
    /// one). Claim room is not looked at: the claim loop holds some of it during each of its
    /// passes, idle or not.
    pub(crate) fn is_idle(&self) -> bool {
        self.permits.available_permits() == self.concurrency
    }

    /// Who this worker claims as.
    pub(crate) fn claimant(&self) -> crate::engine::claim::Claimant<'_> {
        crate::engine::claim::Claimant { worker: &self.worker_id, queues: &self.queues, lease: self.config.lease_duration }
    }

    /// The sample size to learn weights with when a run ends, or `None` if learning is off.
    pub(crate) fn learn_weights(&self) -> Option<u32> {
        self.config.auto_weight.then_some(self.config.weight_sample_size)
    }

    /// How failed attempts are retried and whether a run's end learns weights.
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy { base: self.config.retry_backoff_base, cap: self.config.retry_backoff_cap, learn_weights: self.learn_weights() }
    }

    /// Takes the completion channel's receiving end (once).
    pub(super) fn take_completions_rx(&self) -> Option<mpsc::Receiver<Completion>> {
        self.completions_rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Keeps the handles of the started loops.
    pub(super) fn set_loops(&self, claim: JoinHandle<()>, others: Vec<JoinHandle<()>>) {
        *self.loops.lock().unwrap_or_else(|e| e.into_inner()) = (Some(claim), others);
    }

    /// Takes the handles of the loops (on shutdown).
    pub(super) fn take_loops(&self) -> Loops {
        std::mem::take(&mut *self.loops.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Starts tracking `task` as running here; its cog is told at once if its run was
    /// canceled since it was claimed.
    pub(crate) fn track(&self, task: RunningTask) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if self.canceled_runs.lock().unwrap_or_else(|e| e.into_inner()).contains(&task.claimed.pipeline_run_id) {
            task.cancel.cancel();
        }
        if !task.handed {
            *self.unhanded.lock().unwrap_or_else(|e| e.into_inner()).entry(task.claimed.stage_run_id).or_default() += 1;
        }
        if let Some(replaced) = running.insert(task.claimed.task_run_id, task) {
            self.forget_unhanded(&replaced);
        }
    }

    /// Notes that attempt `attempt` of task run `task_run_id` handed its outcome to the
    /// completion writer (see [`Self::others_unhanded`]).
    pub(crate) fn handed(&self, task_run_id: i64, attempt: i32) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = running.get_mut(&task_run_id).filter(|t| t.claimed.attempt == attempt && !t.handed) {
            task.handed = true;
            let stage_run_id = task.claimed.stage_run_id;
            self.decrement_unhanded(stage_run_id);
        }
    }

    /// Whether a task run of stage run `stage_run_id` is executing here and has not handed its
    /// outcome to the completion writer: its outcome is still to come.
    pub(crate) fn others_unhanded(&self, stage_run_id: i64) -> bool {
        self.unhanded.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&stage_run_id)
    }

    /// `task` is no longer tracked: it no longer counts as unhanded.
    fn forget_unhanded(&self, task: &RunningTask) {
        if !task.handed {
            self.decrement_unhanded(task.claimed.stage_run_id);
        }
    }

    fn decrement_unhanded(&self, stage_run_id: i64) {
        let mut unhanded = self.unhanded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = unhanded.get_mut(&stage_run_id) {
            *n -= 1;
            if *n == 0 {
                unhanded.remove(&stage_run_id);
            }
        }
    }

    /// Records how to stop the cog of attempt `attempt` of task run `task_run_id`.
    pub(crate) fn set_abort(&self, task_run_id: i64, attempt: i32, abort: tokio::task::AbortHandle) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get_mut(&task_run_id) {
            Some(task) if task.claimed.attempt == attempt => task.abort = Some(abort),
            // Given back meanwhile (shutdown): stop the cog at once.
            _ => abort.abort(),
        }
    }

    /// Records that the listener's first try to hear other processes is over (see
    /// `hearing`); after the first call, each one is a no-op that wakes nobody.
    pub(crate) fn tried_hearing(&self) {
        self.hearing.send_if_modified(|tried| !std::mem::replace(tried, true));
    }

    /// Whether attempt `attempt` of task run `task_run_id` is tracked here (not given back).
    pub(crate) fn is_tracked(&self, task_run_id: i64, attempt: i32) -> bool {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).get(&task_run_id).is_some_and(|t| t.claimed.attempt == attempt)
    }

    /// Stops tracking attempt `attempt` of task run `task_run_id` (its outcome is recorded or
    /// given up). A later attempt of the same task run claimed by this process stays tracked.
    pub(crate) fn untrack(&self, task_run_id: i64, attempt: i32) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.get(&task_run_id).is_some_and(|t| t.claimed.attempt == attempt)
            && let Some(task) = running.remove(&task_run_id)
        {
            self.forget_unhanded(&task);
        }
    }

    /// The ids of the task runs running here.
    pub(crate) fn running_ids(&self) -> Vec<i64> {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().copied().collect()
    }

    /// Whether any task run is running here.
    pub(crate) fn is_busy(&self) -> bool {
        !self.running.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// Stops tracking every running task run and returns them (shutdown past its deadline).
    pub(super) fn drain_running(&self) -> Vec<RunningTask> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.unhanded.lock().unwrap_or_else(|e| e.into_inner()).clear();
        running.drain().map(|(_, t)| t).collect()
    }

    /// Notes that run `run_id` ended by a write of this process: task runs of it that were
    /// prefetched and have not started never start.
    pub(crate) fn note_ended(&self, run_id: i64) {
        remember(&self.ended_runs, run_id);
    }

    /// Whether this process saw run `run_id` end or be canceled.
    pub(crate) fn saw_end(&self, run_id: i64) -> bool {
        self.ended_runs.lock().unwrap_or_else(|e| e.into_inner()).contains(&run_id)
            || self.canceled_runs.lock().unwrap_or_else(|e| e.into_inner()).contains(&run_id)
    }

    /// Tells the cogs of run `run_id` running in this process that it was canceled.
    pub(crate) fn cancel_running(&self, run_id: i64) {
        remember(&self.canceled_runs, run_id);
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for task in running.values().filter(|t| t.claimed.pipeline_run_id == run_id) {
            task.cancel.cancel();
        }
    }
}

/// Adds `run_id` to a bounded list of run ids (1,024; the oldest forgotten first).
fn remember(runs: &Mutex<VecDeque<i64>>, run_id: i64) {
    let mut runs = runs.lock().unwrap_or_else(|e| e.into_inner());
    if !runs.contains(&run_id) {
        if runs.len() >= 1024 {
            runs.pop_front();
        }
        runs.push_back(run_id);
    }
}
