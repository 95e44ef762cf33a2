//! The statements of a run's state machine inside its locked transaction: stage runs started
//! and completed, fan-in, the run ended, and `completed_at` written once nothing runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::start_claims::StartClaims;
use super::{Backend, Id, Sql};
use crate::entity::status::RunStatus;

/// The statuses a run or stage run still moves from.
const OPEN: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];
/// The statuses it ends in.
const ENDED: [RunStatus; 3] = [RunStatus::Completed, RunStatus::Failed, RunStatus::Canceled];

/// Inserts the stage run of stage `stage_id` in run `run_id`, `running`; returns its id, or
/// `None` when the run already has one (the unique index on `(pipeline_run_id, stage_id)`
/// makes a second start a no-op). Callers hold the run's lock.
pub(crate) async fn insert_stage_run(conn: &impl ConnectionTrait, run_id: i64, stage_id: i64, now: DateTime<Utc>) -> Result<Option<i64>, DbErr> {
    let b = Backend::of(conn)?;
    let insert = |sql: Sql| stage_run_insert(sql, run_id, stage_id, now, None);
    match b {
        Backend::Sqlite | Backend::Postgres => {
            Ok(insert(Sql::new(b, "")).push(" ON CONFLICT (pipeline_run_id, stage_id) DO NOTHING RETURNING id").one::<Id>(conn).await?.map(|r| r.id))
        }
        // No `ON CONFLICT DO NOTHING ... RETURNING` here: look first (under the run's lock no
        // other transaction adds a stage run to this run), the unique index still guarding.
        Backend::MySql => {
            let existing =
                Sql::new(b, "SELECT id FROM cog_stage_run WHERE pipeline_run_id = ").bind(run_id).push(" AND stage_id = ").bind(stage_id).ids(conn).await?;
            if !existing.is_empty() {
                return Ok(None);
            }
            insert(Sql::new(b, "")).insert(conn).await.map(Some)
        }
    }
}

/// Queues a task run for each enabled, current task of stage `stage_id` in `tasks`, in stage
/// run `stage_run_id`, claimable at once (`run_after` by the database's clock); returns how many.
pub(crate) async fn queue_task_runs(conn: &impl ConnectionTrait, stage_run_id: i64, stage_id: i64, tasks: TaskRange) -> Result<u64, DbErr> {
    task_runs_insert(Sql::new(Backend::of(conn)?, ""), &|sql| sql.bind(stage_run_id), "", stage_id, tasks).execute(conn).await
}

/// Task runs queued by a hand-off's stage start (an outcome's transaction, or a fill's last
/// chunk, starting a run's next stages), before the rest is queued after commit (see
/// `engine::fill`): a hand-off to a stage of 100,000 tasks waits for these only (on
/// PostgreSQL a task run's insert costs 15–30 µs when the machine is busy), and its
/// workers start while the rest is queued. Wide enough for the stages of most pipelines to
/// start whole, in the transaction whose chained claim takes them.
pub(crate) const START_CHUNK: usize = 500;

/// Task runs queued by a launch's stage start (and a buffered run's) of a stage of more than
/// [`SMALL_STAGE`] tasks: what the launching worker's chained claim starts at once, before the
/// rest is queued after commit. Measured on a fresh process and database (workload A, 1,000
/// tasks, PostgreSQL): the first task started 13–15 ms after `launch()` with [`START_CHUNK`]
/// (its insert alone took 12 ms), 5–7 ms with 32, 4–5.5 ms with 16; tasks per second the same
/// within noise. Again on 2026-12-05 (warm pools): 2.0–4.2 ms with 16, 3.7–4.6 with 64.
pub(crate) const LAUNCH_CHUNK: usize = 16;

/// The most tasks a launch's stage start (and a buffered run's) queues whole, in its own
/// transaction: a stage of more is started with [`LAUNCH_CHUNK`] of them and filled after
/// commit (`engine::fill`). A fill is a transaction of its own and about ten statements
/// whatever its size, where the task runs themselves cost 15–30 µs each: for 50 runs of
/// 40-task stages launched at once on 4 PostgreSQL processes (workload F), queueing the 24
/// after the first 16 in fills took a tenth of PostgreSQL's time (F: 9,051 / 8,871 / 12,557
/// → 11,771 / 13,227 / 13,844 tasks/s with every launch queueing up to 64, 2026-12-05). A
/// stage of more still starts with 16, so its first task is not held up.
pub(crate) const SMALL_STAGE: usize = 64;

/// The first chunk queued after a stage start; each next one is four times the last, up to
/// [`FILL_CHUNK`]: workers that ran a small first chunk find the next one queued soon
/// instead of waiting for a big insert (16, 128, 512, 2,048, 5,000, 5,000, ...).
pub(crate) const FIRST_FILL_CHUNK: usize = 128;

/// Most task runs queued per transaction after a stage start.
pub(crate) const FILL_CHUNK: usize = 5_000;

/// How a transition's stage starts queue, claim and announce their task runs.
#[derive(Clone, Copy)]
pub(crate) struct Starting<'a> {
    /// Task runs a stage start queues itself when the stage has more than `whole_up_to`
    /// tasks, or (`whole_up_to` = `first_chunk`) at least that many: the rest is queued after
    /// commit, and the stage run is marked as filling.
    pub(crate) first_chunk: usize,
    /// The most tasks a stage start queues all of (at least `first_chunk`).
    pub(crate) whole_up_to: usize,
    /// Whether the start tells other processes.
    pub(crate) announce: Announce,
    /// The worker that claims task runs as they are queued, if any (PostgreSQL; see
    /// [`super::start_claims`]).
    pub(crate) claim: Option<&'a dyn StartClaims>,
}

impl Starting<'static> {
    /// A launch's (or a buffered run's) first stages: whole up to [`SMALL_STAGE`] tasks, else
    /// [`LAUNCH_CHUNK`] of them; announced at once (a launch in cog's own transaction replaces
    /// that with `Announce::Later`: see `engine::launch`).
    pub(crate) const LAUNCH: Starting<'static> = Starting { first_chunk: LAUNCH_CHUNK, whole_up_to: SMALL_STAGE, announce: Announce::Now, claim: None };

    /// A hand-off's next stages: [`START_CHUNK`], announced as `announce` says.
    pub(crate) const fn hand_off(announce: Announce) -> Starting<'static> {
        Starting { first_chunk: START_CHUNK, whole_up_to: START_CHUNK, announce, claim: None }
    }
}

impl<'a> Starting<'a> {
    /// These starts, claiming for `claim` as they queue (see [`super::start_claims`]).
    pub(crate) fn claiming<'b>(self, claim: Option<&'b dyn StartClaims>) -> Starting<'b>
    where
        'a: 'b,
    {
        Starting { claim, ..self }
    }
}

impl std::fmt::Debug for Starting<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starting")
            .field("first_chunk", &self.first_chunk)
            .field("whole_up_to", &self.whole_up_to)
            .field("announce", &self.announce)
            .field("claim", &self.claim.map(|c| c.worker().to_owned()))
            .finish()
    }
}

/// Which of a stage's tasks (in id order) a statement queues task runs for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TaskRange {
    /// Only tasks with a greater id.
    pub(crate) after: Option<i64>,
    /// Only tasks with this id or a smaller one.
    pub(crate) through: Option<i64>,
    /// At most this many (the first ones).
    pub(crate) limit: Option<usize>,
    /// Only tasks up to the fill mark of the stage run the same statement inserted
    /// (`sr.fill_after`), when it has one: PostgreSQL's one-statement stage start.
    pub(crate) through_mark: bool,
}

/// `INSERT INTO cog_stage_run ... VALUES (...)`: the stage run of stage `stage_id` in run
/// `run_id`, `running` since `now`, appended to `sql`. With `starting`, its `fill_after` is
/// the stage's `first_chunk`-th enabled task (in id order) if the stage is to be filled: when
/// it has more than `whole_up_to` tasks or, where `whole_up_to` is `first_chunk` (a
/// hand-off), at least `first_chunk` — the last task whose task run the start queues.
fn stage_run_insert(sql: Sql, run_id: i64, stage_id: i64, now: DateTime<Utc>, starting: Option<Starting<'_>>) -> Sql {
    let sql = sql
        .push("INSERT INTO cog_stage_run (pipeline_run_id, stage_id, status, started_at")
        .push(if starting.is_some() { ", fill_after) VALUES (" } else { ") VALUES (" })
        .bind(run_id)
        .push(", ")
        .bind(stage_id)
        .push(", ")
        .bind(RunStatus::Running)
        .push(", ")
        .bind(now);
    match starting {
        Some(Starting { first_chunk, whole_up_to, .. }) if whole_up_to > first_chunk => {
            let sql = nth_task(sql.push(", CASE WHEN EXISTS ("), stage_id, whole_up_to).push(") THEN (");
            nth_task(sql, stage_id, first_chunk.saturating_sub(1)).push(") END)")
        }
        Some(Starting { first_chunk, .. }) => nth_task(sql.push(", ("), stage_id, first_chunk.saturating_sub(1)).push("))"),
        None => sql.push(")"),
    }
}

/// `SELECT t.id ...`: the enabled, current task of stage `stage_id` that has `n` before it in
/// id order (none when the stage has no more than `n`), appended to `sql`.
fn nth_task(sql: Sql, stage_id: i64, n: usize) -> Sql {
    sql.push("SELECT t.id FROM cog_task t JOIN cog_stage s ON s.id = t.stage_id WHERE ")
        .push(ENABLED_TASKS)
        .bind(stage_id)
        .push(" ORDER BY t.id LIMIT 1 OFFSET ")
        .bind(n as i64)
}

/// `INSERT INTO cog_task_run ... SELECT ...`: a queued task run, claimable at once (`run_after`
/// by the database's clock), for each enabled, current task of stage `stage_id`, appended to
/// `sql`. `stage_run` writes the stage run id's expression; `from` names what precedes the
/// tasks in `FROM` (a CTE holding the stage run), if anything.
fn task_runs_insert(sql: Sql, stage_run: &dyn Fn(Sql) -> Sql, from: &str, stage_id: i64, tasks: TaskRange) -> Sql {
    // MariaDB would otherwise read the queue first and then every task of the queue, and sort
    // them: a launch's first 16 task runs of a 100,000-task stage examined 200,000 rows (150 ms).
    // Joined in the written order, the tasks are read through `(stage_id, id)`, in order, up to
    // the limit.
    let select = if sql.backend() == Backend::MySql { " SELECT STRAIGHT_JOIN " } else { " SELECT " };
    let sql = stage_run(sql.push("INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, run_after)").push(select))
        .push(", t.id, ")
        .bind(RunStatus::Queued)
        .push(", q.name, t.weight, 0, ")
        .now();
    stage_tasks(sql, from, stage_id, tasks)
}

/// ` FROM ... WHERE ... ORDER BY t.id [LIMIT n]`: the enabled, current tasks `t` of stage
/// `stage_id` in `tasks`, each with its queue `q`, appended to `sql` (a `SELECT` of their
/// columns); `from` names what precedes them in `FROM`, if anything.
fn stage_tasks(sql: Sql, from: &str, stage_id: i64, tasks: TaskRange) -> Sql {
    let sql = sql
        .push(" FROM ")
        .push(from)
        .push("cog_task t JOIN cog_queue q ON q.id = t.queue_id JOIN cog_stage s ON s.id = t.stage_id WHERE ")
        .push(ENABLED_TASKS)
        .bind(stage_id);
    let sql = match tasks.after {
        Some(after) => sql.push(" AND t.id > ").bind(after),
        None => sql,
    };
    let sql = match tasks.through {
        Some(through) => sql.push(" AND t.id <= ").bind(through),
        None => sql,
    };
    // A scalar subquery, evaluated once: the bound is an index condition, so the walk of the
    // stage's tasks stops at the mark. Written as a condition on `sr`'s column, it filtered the
    // walk instead, which read every task of a 100,000-task stage looking for more (the first
    // task of workload E started 25-34 ms after launch instead of 3-4).
    let sql = if tasks.through_mark { sql.push(" AND t.id <= (SELECT COALESCE(fill_after, 9223372036854775807) FROM sr)") } else { sql };
    // Tasks read in id order: a chunk of a big stage is the next ids after the last one
    // queued. And where this read locks them — MySQL's `INSERT ... SELECT` share-locks the rows
    // it reads unless at READ COMMITTED (cog's own transactions are; a host's, in `launch_in`,
    // may not be) — in the order in which weight learning locks them: the two never deadlock.
    let sql = sql.push(" ORDER BY t.id");
    match tasks.limit {
        Some(limit) => sql.push(" LIMIT ").bind(limit as i64),
        None => sql,
    }
}

/// The condition on `cog_task t` joined with its `cog_stage s` of a stage's enabled, current
/// tasks, followed by the stage id.
const ENABLED_TASKS: &str = "t.enabled AND NOT t.archived AND s.enabled AND t.stage_id = ";

/// Whether a stage start tells the other processes about the task runs it queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Announce {
    /// In the start's own statement (`work`).
    Now,
    /// Not (PostgreSQL; elsewhere as `Now`): the transaction (an outcome's, or a launch in
    /// cog's own transaction) announces what its chained claim left queued (see
    /// [`queued_from`]; all of it when it claimed nothing), and a run that ends in it is
    /// announced (`ended:<id>`) by its caller after the commit, not in it (see
    /// `engine::advance`).
    Later,
}

/// A stage run [`start_stage_run`] created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StartedStage {
    pub(crate) stage_run_id: i64,
    /// How many task runs it wrote: queued, and claimed at start (see
    /// [`super::start_claims`]).
    pub(crate) queued: u64,
    /// Whether it queued a full first chunk and is marked as filling (`fill_after`: the last
    /// task queued; the rest is queued after commit, see `engine::fill`).
    pub(crate) filling: bool,
    /// The smallest id among those left queued, if they were not announced.
    pub(crate) unannounced_from: Option<i64>,
}

/// Starts stage `stage_id` in run `run_id`: its stage run ([`insert_stage_run`]) and the task
/// runs ([`queue_task_runs`]) of all its tasks when it has at most `starting.whole_up_to`,
/// else of its first `starting.first_chunk` — when there are that many, the stage run is
/// marked as filling — and, with `Announce::Now`, tells listening
/// processes about the new work (`work`, when any was left queued). Returns the new stage run
/// and what it queued, or `None` when the run already had the stage run. Callers hold the
/// run's lock.
///
/// On PostgreSQL this is one statement (a round trip per stage start instead of three or
/// four, on every launch and stage hand-off: the fill mark is the stage run's
/// `first_chunk`-th task, read in the insert's own snapshot, and the task runs are queued up
/// to it), which with `starting.claim` writes what the worker has room for `running` for it
/// (see [`super::start_claims`], and [`claimed_task_runs_insert`]), asking it for room first
/// and telling it what it took; elsewhere the statements one after the other, all queued.
pub(crate) async fn start_stage_run(
    conn: &impl ConnectionTrait,
    run_id: i64,
    stage_id: i64,
    now: DateTime<Utc>,
    starting: Starting<'_>,
) -> Result<Option<StartedStage>, DbErr> {
    let b = Backend::of(conn)?;
    match b {
        Backend::Postgres => {
            #[derive(FromQueryResult)]
            struct Started {
                id: i64,
                queued: i64,
                claimed: i64,
                ahead: bool,
                filling: bool,
                first: Option<i64>,
            }
            let room = starting.claim.map_or(0, |c| c.room());
            let claim = starting.claim.filter(|_| room > 0);
            let sql = stage_run_insert(Sql::new(b, "WITH sr AS ("), run_id, stage_id, now, Some(starting))
                .push(" ON CONFLICT (pipeline_run_id, stage_id) DO NOTHING RETURNING id, fill_after), ");
            // Up to the fill mark when the stage run has one (then `first_chunk` tasks), else
            // the whole stage (at most `whole_up_to` tasks).
            let tasks = TaskRange { after: None, through: None, limit: Some(starting.whole_up_to.max(starting.first_chunk)), through_mark: true };
            let sql = match claim {
                None => task_runs_insert(sql.push("tr AS ("), &|sql| sql.push("sr.id"), "sr, ", stage_id, tasks).push(" RETURNING id, status)"),
                Some(claim) => claimed_task_runs_insert(sql, claim, room, stage_id, tasks),
            };
            let sql = sql
                .push(" SELECT sr.id, (SELECT COUNT(*) FROM tr) AS queued, (SELECT COUNT(*) FROM tr WHERE status = ")
                .bind(RunStatus::Running)
                .push(if claim.is_some() { ") AS claimed, EXISTS (SELECT 1 FROM ahead) AS ahead" } else { ") AS claimed, false AS ahead" })
                .push(", sr.fill_after IS NOT NULL AS filling, ");
            let sql = match starting.announce {
                Announce::Now => sql
                    .push("NULL::bigint AS first, (SELECT COUNT(*) FROM (SELECT pg_notify(")
                    .bind(super::EVENTS_CHANNEL)
                    .push(", 'work') FROM (SELECT 1 FROM tr WHERE status = ")
                    .bind(RunStatus::Queued)
                    .push(" LIMIT 1) any_queued) told) AS told"),
                Announce::Later => sql.push("(SELECT MIN(id) FROM tr WHERE status = ").bind(RunStatus::Queued).push(") AS first"),
            };
            // A claiming start also reads what it claimed, with the definitions, one row each
            // (the start's own columns on every row; one row of them when it claimed none), in
            // no order (the chained claim puts what the starts took in claim order).
            let sql = match claim {
                Some(_) => super::claims::started_loaded(sql.push(", l.* FROM sr LEFT JOIN "), run_id, stage_id).push(" ON true"),
                None => sql.push(" FROM sr"),
            };
            let rows = conn.query_all_raw(sql.statement()).await?;
            let Some(first_row) = rows.first() else { return Ok(None) };
            let started = Started::from_query_result(first_row, "")?;
            if let Some(claim) = claim {
                let claimed = if started.claimed > 0 { super::claimed_rows::read(&rows)? } else { Vec::new() };
                claim.took(started.id, claimed, started.ahead);
            }
            Ok(Some(StartedStage { stage_run_id: started.id, queued: started.queued.max(0) as u64, filling: started.filling, unannounced_from: started.first }))
        }
        Backend::Sqlite | Backend::MySql => {
            let Some(stage_run_id) = insert_stage_run(conn, run_id, stage_id, now).await? else { return Ok(None) };
            let whole = starting.whole_up_to > starting.first_chunk && nth_task(Sql::new(b, ""), stage_id, starting.whole_up_to).ids(conn).await?.is_empty();
            let limit = if whole { starting.whole_up_to } else { starting.first_chunk };
            let queued = queue_task_runs(conn, stage_run_id, stage_id, TaskRange { limit: Some(limit), ..TaskRange::default() }).await?;
            let filling = !whole && queued as usize >= starting.first_chunk;
            if filling {
                mark_filling(conn, stage_run_id).await?;
            }
            if queued > 0 {
                super::notify(conn, "work").await?;
            }
            Ok(Some(StartedStage { stage_run_id, queued, filling, unannounced_from: None }))
        }
    }
}

/// The CTEs `running_queues`, `ahead` (see `claims::running_queues_and_ahead`), `new`, `picked`
/// and `tr` of a PostgreSQL stage start that claims for `claim` (see [`super::start_claims`]),
/// up to `room` task runs, appended to `sql` (which ends in `, ` after the CTE `sr`): the
/// stage's `tasks` (`new`), each to be claimed or not (`picked`), inserted `running` for the
/// worker or `queued` (`tr`, returning their ids and statuses).
///
/// A task is claimed when its queue is one of the worker's, not paused, it is heavier than
/// every due queued task run of those queues (a queued one of the same weight is older, so
/// first), and it is among the `room` heaviest of such tasks of the stage (then by id): those
/// come first in claim order, so a claim after the insert would have taken exactly them.
fn claimed_task_runs_insert(sql: Sql, claim: &dyn StartClaims, room: usize, stage_id: i64, tasks: TaskRange) -> Sql {
    // Queued and claimed at once: due (`run_after`) and claimed (`started_at`) now, by this
    // process's clock as a claim's `started_at` is (no queue lag, not a negative one).
    let claimed_at = super::now();
    let sql = super::claims::running_queues_and_ahead(sql, claim.queues());
    let sql = stage_tasks(sql.push(", new AS MATERIALIZED (SELECT t.id, q.name AS queue, t.weight"), "sr, ", stage_id, tasks).push(")");
    let sql = sql
        .push(", picked AS (SELECT n.id, n.queue, n.weight, n.first AND ROW_NUMBER() OVER (PARTITION BY n.first ORDER BY n.weight DESC, n.id) <= ")
        .bind(room as i64)
        .push(
            " AS claimed FROM (SELECT new.*, new.queue IN (SELECT name FROM running_queues) \
             AND new.weight > COALESCE((SELECT weight FROM ahead), '-Infinity') AS first FROM new) n)",
        );
    sql.push(
        ", tr AS (INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, run_after, worker, lease_until, started_at) \
         SELECT sr.id, p.id, CASE WHEN p.claimed THEN ",
    )
    .bind(RunStatus::Running)
    .push(" ELSE ")
    .bind(RunStatus::Queued)
    .push(" END, p.queue, p.weight, CASE WHEN p.claimed THEN 1 ELSE 0 END, CASE WHEN p.claimed THEN ")
    .bind(claimed_at)
    .push(" ELSE ")
    .now()
    .push(" END, CASE WHEN p.claimed THEN ")
    .bind(claim.worker())
    .push(" END, CASE WHEN p.claimed THEN ")
    .now_plus(claim.lease())
    .push(" END, CASE WHEN p.claimed THEN ")
    .bind(claimed_at)
    .push(" END FROM sr, picked p ORDER BY p.id RETURNING id, status, stage_run_id, task_id, queue, weight, attempt, started_at, run_after)")
}

/// Marks stage run `stage_run_id`, whose start queued a full first chunk, as still filling:
/// the rest of its tasks come after the last one queued, and nobody holds the job yet.
async fn mark_filling(conn: &impl ConnectionTrait, stage_run_id: i64) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "UPDATE cog_stage_run SET fill_after = (SELECT MAX(task_id) FROM cog_task_run WHERE stage_run_id = ")
        .bind(stage_run_id)
        .push("), fill_lease_until = NULL WHERE id = ")
        .bind(stage_run_id)
        .execute(conn)
        .await
}

/// Whether a task run with an id of at least `first` is queued (seen from this transaction,
/// its own claims included): after a transaction queued task runs from id `first` on without
/// announcing them and claimed some, whether any is left for other processes (a task run
/// queued by another transaction meanwhile counts too: announcing it again is harmless).
/// Walks the primary key from `first`, so it reads about as many rows as were queued.
pub(crate) async fn queued_from(conn: &impl ConnectionTrait, first: i64) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let sql = Sql::new(b, "SELECT id FROM cog_task_run WHERE id >= ").bind(first).push(" AND status = ").status(RunStatus::Queued).push(" ORDER BY id LIMIT 1");
    Ok(!sql.ids(conn).await?.is_empty())
}

/// Completes running stage run `stage_run_id` unconditionally (a stage with no task).
pub(crate) async fn complete_stage_run(conn: &impl ConnectionTrait, stage_run_id: i64, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Sql::new(Backend::of(conn)?, "UPDATE cog_stage_run SET status = ")
        .bind(RunStatus::Completed)
        .push(", completed_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(stage_run_id)
        .push(" AND status = ")
        .bind(RunStatus::Running)
        .execute(conn)
        .await
}

/// Completes running stage run `stage_run_id` if every one of its task runs exists (it is not
/// filling) and none is queued or running; returns its stage id when it did.
pub(crate) async fn complete_stage_run_if_done(conn: &impl ConnectionTrait, stage_run_id: i64, now: DateTime<Utc>) -> Result<Option<i64>, DbErr> {
    #[derive(FromQueryResult)]
    struct Stage {
        stage_id: i64,
    }
    let b = Backend::of(conn)?;
    let update = stage_run_done(Sql::new(b, ""), stage_run_id, now);
    match b {
        Backend::Sqlite | Backend::Postgres => Ok(update.push(" RETURNING stage_id").one::<Stage>(conn).await?.map(|r| r.stage_id)),
        Backend::MySql => {
            if update.execute(conn).await? == 0 {
                return Ok(None);
            }
            Ok(Sql::new(b, "SELECT stage_id FROM cog_stage_run WHERE id = ").bind(stage_run_id).one::<Stage>(conn).await?.map(|r| r.stage_id))
        }
    }
}

/// `sql` followed by `{column} IN ('queued', 'running') AND {column} = '<status>'`: the
/// condition of the open task runs' partial index (status, then stage run; migration
/// `m20261206_000013_lease_index_folded`) word for word, which SQLite needs to use a partial
/// index at all, and one status, which PostgreSQL keeps as the index's leading condition (it
/// drops a condition that the index's own implies: `status IN (…)` alone left a stage run's
/// lookup a walk of every entry).
pub(crate) fn open_task_runs_with_status(sql: Sql, column: &str, status: RunStatus) -> Sql {
    sql.push(column).push(" IN (").statuses(OPEN).push(") AND ").push(column).push(" = ").status(status)
}

/// `sql` followed by the update of [`complete_stage_run_if_done`] (without `RETURNING`).
fn stage_run_done(sql: Sql, stage_run_id: i64, now: DateTime<Utc>) -> Sql {
    let sql = sql
        .push("UPDATE cog_stage_run SET status = ")
        .bind(RunStatus::Completed)
        .push(", completed_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(stage_run_id)
        .push(" AND status = ")
        .bind(RunStatus::Running)
        .push(" AND fill_after IS NULL");
    // One probe of the open task runs' index per open status.
    OPEN.into_iter().fold(sql, |sql, status| {
        open_task_runs_with_status(sql.push(" AND NOT EXISTS (SELECT 1 FROM cog_task_run WHERE "), "status", status)
            .push(" AND stage_run_id = ")
            .bind(stage_run_id)
            .push(")")
    })
}

/// [`complete_stage_run_if_done`] for stage run `stage_run_id` of run `run_id` and, when it
/// completed it, the [`ready_successors`] of its stage (in definition order); `None` when it
/// did not complete. On PostgreSQL one statement (a round trip fewer at every stage's end;
/// the stage run's new status is not visible to the same statement, so its stage is taken
/// as completed explicitly); elsewhere the two.
pub(crate) async fn complete_stage_run_and_successors(
    conn: &impl ConnectionTrait,
    run_id: i64,
    stage_run_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Vec<i64>>, DbErr> {
    let b = Backend::of(conn)?;
    if b != Backend::Postgres {
        let Some(stage_id) = complete_stage_run_if_done(conn, stage_run_id, now).await? else { return Ok(None) };
        return Ok(Some(ready_successors(conn, run_id, stage_id).await?));
    }
    #[derive(FromQueryResult)]
    struct Row {
        successor: Option<i64>,
    }
    let sql = stage_run_done(Sql::new(b, "WITH done AS ("), stage_run_id, now)
        .push(" RETURNING stage_id) SELECT done.stage_id, n.id AS successor FROM done LEFT JOIN LATERAL (");
    let rows: Vec<Row> = successors(sql, run_id, &|sql| sql.push("done.stage_id")).push(") n ON TRUE ORDER BY n.position").all(conn).await?;
    // No row: the stage run did not complete; else one row per successor (one `NULL` if none).
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(rows.into_iter().filter_map(|r| r.successor).collect()))
}

/// The stages of run `run_id` that the completion of stage `completed` unblocks: successors
/// of it, not archived, not started yet, whose every prerequisite has a `completed` stage run.
pub(crate) async fn ready_successors(conn: &impl ConnectionTrait, run_id: i64, completed: i64) -> Result<Vec<i64>, DbErr> {
    successors(Sql::new(Backend::of(conn)?, ""), run_id, &|sql| sql.bind(completed)).push(" ORDER BY s.position").ids(conn).await
}

/// `sql` followed by the query of [`ready_successors`] (ids and positions, unordered), the
/// completed stage written by `completed`; that stage counts as completed whatever its stage
/// run's status reads.
fn successors(sql: Sql, run_id: i64, completed: &dyn Fn(Sql) -> Sql) -> Sql {
    let sql = sql.push(
        "SELECT s.id, s.position FROM cog_stage s WHERE NOT s.archived \
         AND s.id IN (SELECT p.stage_id FROM cog_stage_prerequisite p WHERE p.prerequisite_id = ",
    );
    let sql = completed(sql).push(") AND NOT EXISTS (SELECT 1 FROM cog_stage_prerequisite p WHERE p.stage_id = s.id AND p.prerequisite_id <> ");
    completed(sql)
        .push(" AND NOT EXISTS (SELECT 1 FROM cog_stage_run r WHERE r.pipeline_run_id = ")
        .bind(run_id)
        .push(" AND r.stage_id = p.prerequisite_id AND r.status = ")
        .bind(RunStatus::Completed)
        .push(")) AND NOT EXISTS (SELECT 1 FROM cog_stage_run r WHERE r.pipeline_run_id = ")
        .bind(run_id)
        .push(" AND r.stage_id = s.id)")
}

/// Whether run `run_id` has a stage run still queued or running.
pub(crate) async fn has_open_stage_runs(conn: &impl ConnectionTrait, run_id: i64) -> Result<bool, DbErr> {
    let open = Sql::new(Backend::of(conn)?, "SELECT id FROM cog_stage_run WHERE pipeline_run_id = ")
        .bind(run_id)
        .push(" AND status IN (")
        .bind_list(OPEN)
        .push(") LIMIT 1")
        .ids(conn)
        .await?;
    Ok(!open.is_empty())
}

/// Completes running run `run_id` (`completed_at` written); returns whether it did.
pub(crate) async fn complete_run(conn: &impl ConnectionTrait, run_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let n = Sql::new(Backend::of(conn)?, "UPDATE cog_pipeline_run SET status = ")
        .bind(RunStatus::Completed)
        .push(", completed_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(run_id)
        .push(" AND status = ")
        .bind(RunStatus::Running)
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Ends run `run_id` with `status` (failed or canceled) if it is still open; with
/// `failed_stage_run`, that stage run becomes `failed`; queued task runs and open stage runs
/// of the run become `canceled` (and the tasks not queued yet of a stage still filling are never
/// queued). `completed_at` is left to [`settle`]. Returns whether the run's status changed.
pub(crate) async fn end_run(
    conn: &impl ConnectionTrait,
    run_id: i64,
    status: RunStatus,
    failed_stage_run: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    let ended = Sql::new(b, "UPDATE cog_pipeline_run SET status = ")
        .bind(status)
        .push(" WHERE id = ")
        .bind(run_id)
        .push(" AND status IN (")
        .bind_list(OPEN)
        .push(")")
        .execute(conn)
        .await?;
    if let Some(stage_run_id) = failed_stage_run {
        Sql::new(b, "UPDATE cog_stage_run SET status = ")
            .bind(RunStatus::Failed)
            .push(", fill_after = NULL, fill_lease_until = NULL WHERE id = ")
            .bind(stage_run_id)
            .push(" AND status IN (")
            .bind_list(OPEN)
            .push(")")
            .execute(conn)
            .await?;
    }
    Sql::new(b, "UPDATE cog_task_run SET status = ")
        .bind(RunStatus::Canceled)
        .push(", completed_at = ")
        .bind(now)
        .push(" WHERE status = ")
        .status(RunStatus::Queued)
        .push(" AND stage_run_id IN (SELECT id FROM cog_stage_run WHERE pipeline_run_id = ")
        .bind(run_id)
        .push(")")
        .execute(conn)
        .await?;
    Sql::new(b, "UPDATE cog_stage_run SET status = ")
        .bind(RunStatus::Canceled)
        .push(", fill_after = NULL, fill_lease_until = NULL WHERE pipeline_run_id = ")
        .bind(run_id)
        .push(" AND status IN (")
        .bind_list(OPEN)
        .push(")")
        .execute(conn)
        .await?;
    Ok(ended > 0)
}

/// Writes `completed_at` (once) on the ended stage runs of run `run_id` and on the run itself
/// when they no longer have a running task run; returns whether the run's was written.
pub(crate) async fn settle(conn: &impl ConnectionTrait, run_id: i64, now: DateTime<Utc>) -> Result<bool, DbErr> {
    let b = Backend::of(conn)?;
    Sql::new(b, "UPDATE cog_stage_run SET completed_at = ")
        .bind(now)
        .push(" WHERE pipeline_run_id = ")
        .bind(run_id)
        .push(" AND completed_at IS NULL AND status IN (")
        .bind_list(ENDED)
        .push(") AND NOT EXISTS (SELECT 1 FROM cog_task_run t WHERE t.stage_run_id = cog_stage_run.id AND t.status = ")
        .status(RunStatus::Running)
        .push(")")
        .execute(conn)
        .await?;
    let ended = Sql::new(b, "UPDATE cog_pipeline_run SET completed_at = ")
        .bind(now)
        .push(" WHERE id = ")
        .bind(run_id)
        .push(" AND completed_at IS NULL AND status IN (")
        .bind_list(ENDED)
        .push(") AND NOT EXISTS (SELECT 1 FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id WHERE s.pipeline_run_id = ")
        .bind(run_id)
        .push(" AND t.status = ")
        .status(RunStatus::Running)
        .push(")")
        .execute(conn)
        .await?;
    Ok(ended > 0)
}
