//! Claiming queued task runs, giving claims back, and reading what a worker needs to run them.

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};

use super::claimed_rows;

use super::{Backend, Sql};
use crate::entity::status::RunStatus;

/// A task run claimed by (or being finished for) a worker, with its definition; read off a
/// result set by `claimed_rows`.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) task_run_id: i64,
    pub(crate) attempt: i32,
    pub(crate) stage_run_id: i64,
    pub(crate) pipeline_run_id: i64,
    pub(crate) task_id: i64,
    pub(crate) task_name: String,
    pub(crate) stage_name: String,
    pub(crate) pipeline_name: String,
    pub(crate) cog: String,
    pub(crate) error_handler: Option<String>,
    pub(crate) arguments: String,
    pub(crate) launch_arguments: String,
    pub(crate) critical: bool,
    pub(crate) max_retries: i32,
    pub(crate) timeout_ms: Option<i64>,
    /// When it was claimed (the row's `started_at`). The attempt's own start, when its cog is
    /// called, travels with its outcome (`worker::completions::Completion::started_at`).
    pub(crate) started_at: Option<DateTime<Utc>>,
    /// The queue it was claimed from.
    pub(crate) queue: String,
    /// When it became due (queued, or its retry's back-off ended): the start of its queue lag.
    pub(crate) run_after: DateTime<Utc>,
    /// Its weight when queued: claims take the heaviest first.
    pub(crate) weight: f64,
}

/// Sorts `claimed` in claim order: heaviest first, then oldest (lowest id) first.
pub(crate) fn in_claim_order(claimed: &mut [Claimed]) {
    claimed.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.task_run_id.cmp(&b.task_run_id)));
}

#[cfg(test)]
impl Claimed {
    /// A claimed task run for unit tests: attempt 1 of task run `task_run_id` in stage run
    /// `stage_run_id` of run `pipeline_run_id`, of a critical task without retries.
    pub(crate) fn for_test(task_run_id: i64, stage_run_id: i64, pipeline_run_id: i64) -> Claimed {
        Claimed {
            task_run_id,
            attempt: 1,
            stage_run_id,
            pipeline_run_id,
            task_id: 1,
            task_name: "t".into(),
            stage_name: "s".into(),
            pipeline_name: "p".into(),
            cog: "c".into(),
            error_handler: None,
            arguments: "{}".into(),
            launch_arguments: "{}".into(),
            critical: true,
            max_retries: 0,
            timeout_ms: None,
            started_at: None,
            queue: "default".into(),
            run_after: chrono::Utc::now(),
            weight: 1.0,
        }
    }
}

/// Marks up to `limit` queued task runs of `queues` whose `run_after` has passed as running
/// for `worker` with a lease of `lease`, heaviest first; returns their ids, in claim order.
/// Run it in a transaction. `run_after` and the lease follow the database's clock (see
/// [`Sql::now_plus`]); `started_at` is `now`, this process's.
///
/// The ids are picked exactly once. PostgreSQL may plan `id IN (SELECT ... LIMIT n FOR UPDATE
/// SKIP LOCKED)` as a nested-loop semi-join that rescans the subquery per outer row, each
/// rescan skipping rows locked meanwhile and returning new ones, so one claim took many times
/// its limit: there a MATERIALIZED CTE is evaluated once, whatever the plan. SQLite has one
/// writer at a time and evaluates an uncorrelated IN-subquery once. MySQL has no
/// `UPDATE ... RETURNING`: the ids are selected (and locked, skipping rows locked by other
/// claims), then updated, in the caller's transaction.
///
/// A paused queue is never claimed from, and a claim never overlaps a pause: PostgreSQL and
/// MySQL hold the claimed queues' `cog_queue` rows in share mode until the claim commits
/// (re-reading `paused` once a pause in progress commits), so `pause_queue` waits for the
/// claims that read the queue as running and no claim after it sees the queue running;
/// SQLite reads `paused` inside its one write transaction.
pub(crate) async fn claim(
    conn: &impl ConnectionTrait,
    worker: &str,
    queues: &[String],
    limit: usize,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Vec<i64>, DbErr> {
    let b = Backend::of(conn)?;
    let parts = ClaimParts { worker, queues, limit, now, lease };
    let set = |sql: Sql| parts.set(sql);
    let pick = |sql: Sql, columns: &str, queue_filter: &dyn Fn(Sql) -> Sql| parts.pick(sql, columns, queue_filter);
    let listed = |sql: Sql| parts.listed(sql);
    match b {
        Backend::Postgres => pg_claim(conn, &parts, "SELECT id FROM claimed", Planner::Set).await?.ids(conn).await,
        Backend::Sqlite => {
            // One ordered index scan per queue, as on PostgreSQL (`queue IN (...)` would sort
            // every queued row of the queues at each claim).
            let mut sql = set(Sql::new(b, "UPDATE cog_task_run SET status = ")).push(" FROM (SELECT id FROM (");
            for (i, queue) in queues.iter().enumerate() {
                sql = pick(sql.push(if i == 0 { "SELECT id, weight FROM (" } else { " UNION ALL SELECT id, weight FROM (" }), "id, weight", &|s| {
                    s.push("queue = ")
                        .bind(queue.as_str())
                        .push(" AND EXISTS (SELECT 1 FROM cog_queue WHERE name = ")
                        .bind(queue.as_str())
                        .push(" AND NOT paused)")
                })
                .push(")");
            }
            // Joined on the primary key: `WHERE status = .. AND id IN (..)` made SQLite walk
            // every queued row through the status index to find the picked ones.
            sql.push(") ORDER BY weight DESC, id LIMIT ")
                .bind(limit as i64)
                .push(") AS picked WHERE cog_task_run.id = picked.id AND cog_task_run.status = ")
                .bind(RunStatus::Queued)
                .push(" RETURNING id")
                .ids(conn)
                .await
        }
        Backend::MySql => {
            #[derive(FromQueryResult)]
            struct Name {
                name: String,
            }
            let running: Vec<String> = listed(Sql::new(b, "SELECT name FROM cog_queue WHERE "))
                .push(" LOCK IN SHARE MODE")
                .all::<Name>(conn)
                .await?
                .into_iter()
                .map(|r| r.name)
                .collect();
            if running.is_empty() {
                return Ok(Vec::new());
            }
            let ids = pick(Sql::new(b, ""), "id", &|s| s.push("queue IN (").bind_list(running.iter().map(String::as_str)).push(")"))
                .push(" FOR UPDATE SKIP LOCKED")
                .ids(conn)
                .await?;
            if !ids.is_empty() {
                set(Sql::new(b, "UPDATE cog_task_run SET status = "))
                    .push(" WHERE status = ")
                    .bind(RunStatus::Queued)
                    .push(" AND id IN (")
                    .bind_list(ids.iter().copied())
                    .push(")")
                    .execute(conn)
                    .await?;
            }
            Ok(ids)
        }
    }
}

/// The pieces of a claim statement.
struct ClaimParts<'a> {
    worker: &'a str,
    queues: &'a [String],
    limit: usize,
    now: DateTime<Utc>,
    lease: Duration,
}

impl<'a> ClaimParts<'a> {
    /// The parts of a read of the first due queued task run of `queues` in claim order, which
    /// claims nothing (no worker, lease or time of claim).
    fn first_of(queues: &'a [String]) -> ClaimParts<'a> {
        ClaimParts { worker: "", queues, limit: 1, now: super::now(), lease: Duration::ZERO }
    }

    /// `running, attempt + 1, worker, lease, started_at`: the values a claimed row is set to,
    /// after `... SET status = `.
    fn set(&self, sql: Sql) -> Sql {
        sql.bind(RunStatus::Running)
            .push(", attempt = attempt + 1, worker = ")
            .bind(self.worker)
            .push(", lease_until = ")
            .now_plus(self.lease)
            .push(", started_at = ")
            .bind(self.now)
    }

    /// `SELECT columns` of the due queued task runs matching `queue_filter`, heaviest first, at
    /// most the limit.
    fn pick(&self, sql: Sql, columns: &str, queue_filter: &dyn Fn(Sql) -> Sql) -> Sql {
        let sql = sql
            .push("SELECT ")
            .push(columns)
            .push(" FROM cog_task_run WHERE status = ")
            .status(RunStatus::Queued)
            .push(" AND run_after <= ")
            .now()
            .push(" AND ");
        queue_filter(sql).push(" ORDER BY weight DESC, id LIMIT ").bind(self.limit as i64)
    }

    /// The condition on `cog_queue` rows of the worker's queues that are not paused.
    fn listed(&self, sql: Sql) -> Sql {
        sql.push("name IN (").bind_list(self.queues.iter().map(String::as_str)).push(") AND NOT paused")
    }

    /// PostgreSQL's CTE `running_queues`: the names of the worker's queues that are not
    /// paused, their rows held in share mode until commit (see [`claim`]).
    fn running_queues(&self, sql: Sql) -> Sql {
        self.listed(sql.push("running_queues AS MATERIALIZED (SELECT name FROM cog_queue WHERE ")).push(" FOR SHARE)")
    }

    /// PostgreSQL's CTE `name`: `columns` (of `c`: `id`, `weight`) of the first due queued task
    /// runs of `running_queues` in claim order (heaviest first, then oldest), at most the
    /// limit, each queue's read with `lock`; one ordered index scan per queue (`queue =
    /// ANY(...)` would make PostgreSQL read and sort every queued row of the queues).
    fn first_queued(&self, sql: Sql, name: &str, columns: &str, lock: &str) -> Sql {
        let sql = sql.push(name).push(" AS MATERIALIZED (SELECT ").push(columns).push(" FROM running_queues q CROSS JOIN LATERAL (");
        self.pick(sql, "id, weight", &|s| s.push("queue = q.name")).push(lock).push(") c ORDER BY c.weight DESC, c.id LIMIT ").bind(self.limit as i64).push(")")
    }
}

/// PostgreSQL's CTEs `running_queues` (see [`claim`]) and `ahead`: the weight of the first due
/// queued task run of the worker's queues `queues` in claim order (the heaviest; no row when
/// none is queued), read without locking it: what a claim at a stage start
/// (`store::start_claims`) must outweigh. Appended to `sql`, which ends in `WITH ` or `, `.
pub(super) fn running_queues_and_ahead(sql: Sql, queues: &[String]) -> Sql {
    let parts = ClaimParts::first_of(queues);
    parts.first_queued(parts.running_queues(sql).push(", "), "ahead", "c.weight", "")
}

/// Whether a due queued task run of the worker's queues `queues` comes before `last` (a
/// `(weight, id)`) in claim order: heavier, or as heavy and older. Read without locking it.
/// For a transaction whose stage starts claimed at start and then queued more (see
/// `store::start_claims`): what they claimed must still be the first in claim order.
pub(crate) async fn outranked(conn: &impl ConnectionTrait, queues: &[String], last: (f64, i64)) -> Result<bool, DbErr> {
    #[derive(FromQueryResult)]
    struct Outranked {
        outranked: bool,
    }
    let parts = ClaimParts::first_of(queues);
    let sql = parts.first_queued(parts.running_queues(Sql::new(Backend::of(conn)?, "WITH ")).push(", "), "top", "c.weight, c.id", "");
    let row = sql
        .push(" SELECT EXISTS (SELECT 1 FROM top WHERE top.weight > ")
        .bind(last.0)
        .push(" OR (top.weight = ")
        .bind(last.0)
        .push(" AND top.id < ")
        .bind(last.1)
        .push(")) AS outranked")
        .one::<Outranked>(conn)
        .await?;
    Ok(row.is_some_and(|r| r.outranked))
}

/// Appends to `sql` the read of what a claiming PostgreSQL stage start of stage `stage_id` in
/// run `run_id` claimed (the `running` rows of its CTE `tr`, see
/// `transitions::start_stage_run`), with their definitions, as the subquery `l` with a
/// [`Claimed`]'s columns. Read by the start's own statement: a second statement after it had
/// cost every hand-off a round trip and another walk of the index to the rows it had just
/// written (see `store::start_claims`). What the stage run leads to (the run with its launch
/// arguments, the pipeline's and the stage's names) is looked up once (`r`), not once per
/// task run (see [`PG_LOADED`]).
pub(super) fn started_loaded(sql: Sql, run_id: i64, stage_id: i64) -> Sql {
    sql.push(
        "(WITH r AS MATERIALIZED (SELECT pr.id AS pipeline_run_id, pr.arguments AS launch_arguments, p.name AS pipeline_name, s.name AS stage_name \
         FROM cog_pipeline_run pr JOIN cog_pipeline p ON p.id = pr.pipeline_id JOIN cog_stage s ON s.id = ",
    )
    .bind(stage_id)
    .push(" WHERE pr.id = ")
    .bind(run_id)
    .push(
        ") SELECT tr.id AS task_run_id, tr.attempt, tr.stage_run_id, r.pipeline_run_id, t.id AS task_id, t.name AS task_name, r.stage_name, \
         r.pipeline_name, c.name AS cog, h.name AS error_handler, t.arguments, r.launch_arguments, t.critical, t.max_retries, t.timeout_ms, \
         tr.started_at, tr.queue, tr.run_after, tr.weight FROM tr CROSS JOIN r JOIN cog_task t ON t.id = tr.task_id JOIN cog_cog c ON c.id = t.cog_id \
         LEFT JOIN cog_error_handler h ON h.id = t.error_handler_id WHERE tr.status = ",
    )
    .status(RunStatus::Running)
    .push(") l")
}

/// The planner settings of a PostgreSQL claim's transaction (see [`pg_claim`]), and of an
/// outcome's ([`set_planner`]): name and value of each. The sessions of the pool a runtime
/// opens for its transitions start with them (`store::connect::Pools::work`).
pub(crate) const PLANNER: [(&str, &str); 3] = [("enable_bitmapscan", "off"), ("enable_seqscan", "off"), ("plan_cache_mode", "force_generic_plan")];

/// One statement setting [`PLANNER`]'s settings, in its order, to `values` for the rest of the
/// transaction.
fn set_local(values: [&str; 3]) -> String {
    PLANNER.iter().zip(values).map(|((name, _), value)| format!("SET LOCAL {name} = {value}")).collect::<Vec<_>>().join("; ")
}

/// [`PLANNER`]'s settings for the rest of the transaction, as one statement.
pub(super) static CLAIM_SETTINGS: LazyLock<String> = LazyLock::new(|| set_local(PLANNER.map(|(_, value)| value)));

/// [`PLANNER`]'s settings with plans made for each statement's values (PostgreSQL's default
/// plan cache mode, `auto`: not the session's, which is `force_generic_plan` in the sessions
/// of a runtime's own pool for its transitions), as one statement.
static CUSTOM_PLANS: LazyLock<String> = LazyLock::new(|| set_local(["off", "off", "auto"]));

/// PostgreSQL's own defaults for [`PLANNER`]'s settings, as one statement.
static SERVER_PLANNER: LazyLock<String> = LazyLock::new(|| set_local(["on", "on", "auto"]));

/// For the rest of transaction `conn` (PostgreSQL), PostgreSQL's own defaults for the claim's
/// planner settings ([`PLANNER`]), whatever its session has: for a statement whose best plan
/// depends on its values (a big outcome write, see `engine::finish::finish_runs`) in a
/// transaction of the pool whose sessions have the claim's.
pub(crate) async fn server_planner(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if Backend::of(conn)? == Backend::Postgres {
        conn.execute_unprepared(&SERVER_PLANNER).await?;
    }
    Ok(())
}

/// For the rest of transaction `conn` (PostgreSQL), statements are planned for their values
/// again (plan cache mode `auto`; [`set_planner`] forces generic plans), still through
/// indexes only. For weight learning at a run's end (see `engine::learn_if_ended`), and for a
/// fill chunk: its insert then walks the stage's tasks in id order and stops at the chunk's
/// size, where a stage just defined had it scan and sort all of them.
pub(crate) async fn custom_plans(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if Backend::of(conn)? == Backend::Postgres {
        conn.execute_unprepared(&CUSTOM_PLANS).await?;
    }
    Ok(())
}

/// Whether a claim sets its planner settings itself or finds them set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planner {
    /// The claim sets them (in a transaction of its own, or one that has not).
    Set,
    /// The transaction already has them ([`set_planner`]), or its session does
    /// ([`Planner::of`]): one round trip fewer.
    AlreadySet,
}

impl Planner {
    /// [`Planner::AlreadySet`] when the sessions of pool `db` start with [`PLANNER`]'s settings
    /// (the pool a runtime opens on PostgreSQL for its transitions, `store::connect::Pools`, or
    /// a host's pool opened so): its transactions have them without a statement, a round trip
    /// fewer for each (workload B's hand-off p50 1.19 → 1.06 ms in twelve pairs on a 2-core
    /// machine, 2026-12-05). [`Planner::Set`] otherwise (SQLite and MySQL have none to set).
    pub(crate) fn of(db: &DatabaseConnection) -> Planner {
        if db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return Planner::Set;
        }
        let options = db.get_postgres_connection_pool().connect_options();
        let has = |(name, value): &(&str, &str)| options.get_options().is_some_and(|o| o.contains(&format!("-c {name}={value}")));
        if PLANNER.iter().all(has) { Planner::AlreadySet } else { Planner::Set }
    }

    /// Gives transaction `txn` the planner settings (see [`set_planner`]) unless they are
    /// [`Planner::AlreadySet`].
    pub(crate) async fn take(self, txn: &impl ConnectionTrait) -> Result<(), DbErr> {
        match self {
            Planner::Set => set_planner(txn).await,
            Planner::AlreadySet => Ok(()),
        }
    }
}

/// Gives transaction `conn` a claim's planner settings (see [`pg_claim`]), on PostgreSQL,
/// until it ends. An outcome's transaction takes them first thing: its statements look rows
/// up by key through indexes, so their plans depend on no parameter value and are made once
/// per connection (generic) instead of at each of a connection's first five runs, which
/// had made a stage hand-off on a fresh connection 0.5–0.9 ms slower; and the claim it may
/// chain finds them set.
pub(crate) async fn set_planner(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    if Backend::of(conn)? == Backend::Postgres {
        conn.execute_unprepared(&CLAIM_SETTINGS).await?;
    }
    Ok(())
}

/// PostgreSQL's claim (see [`claim`]) as the CTE `claimed` (the claimed rows as updated: id,
/// attempt, stage_run_id, task_id, weight, started_at, queue, run_after) followed by `then`,
/// the query that reads it (which may begin with more CTEs: `, name AS (...) SELECT ...`).
/// Sets the transaction's planner settings first, unless `planner` says they are set.
async fn pg_claim(conn: &impl ConnectionTrait, parts: &ClaimParts<'_>, then: &str, planner: Planner) -> Result<Sql, DbErr> {
    let b = Backend::Postgres;
    // The claim must walk the claim index in its order and stop at the limit. Right after a
    // big launch the table's statistics still say "few queued rows" (nothing analyzed it yet),
    // and the planner then reads every queued row with a bitmap scan and sorts them on disk:
    // 100 ms per claim at 70,000 queued rows instead of 2 ms. With those two off, the plan
    // depends on no parameter: it is planned once per connection (generic) rather than
    // again at each of a connection's first claims (PostgreSQL's default plans a prepared
    // statement anew for its first five runs: 2.7 ms each, 40 % of all planning with 50 runs
    // of 200 tasks on 4 processes). The settings last only until this transaction ends.
    if planner == Planner::Set {
        conn.execute_unprepared(&CLAIM_SETTINGS).await?;
    }
    // One ordered index scan per queue, then the heaviest overall.
    let sql = parts.running_queues(Sql::new(b, "WITH "));
    let sql = parts.first_queued(sql.push(", "), "picked", "c.id", " FOR UPDATE SKIP LOCKED").push(", claimed AS (UPDATE cog_task_run SET status = ");
    let sql = parts.set(sql).push(" FROM picked WHERE cog_task_run.id = picked.id AND cog_task_run.status = ").bind(RunStatus::Queued).push(
        " RETURNING cog_task_run.id, cog_task_run.attempt, cog_task_run.stage_run_id, cog_task_run.task_id, cog_task_run.weight, \
             cog_task_run.started_at, cog_task_run.queue, cog_task_run.run_after) ",
    );
    Ok(sql.push(then))
}

/// Claims as [`claim`] does and reads the claimed task runs with their definitions, heaviest
/// first: on PostgreSQL in one statement (the update's returned rows joined to the
/// definitions), elsewhere a claim then a [`load`].
pub(crate) async fn claim_and_load(
    conn: &impl ConnectionTrait,
    worker: &str,
    queues: &[String],
    limit: usize,
    now: DateTime<Utc>,
    lease: Duration,
    planner: Planner,
) -> Result<Vec<Claimed>, DbErr> {
    let b = Backend::of(conn)?;
    if b != Backend::Postgres {
        let ids = claim(conn, worker, queues, limit, now, lease).await?;
        let mut claimed = load(conn, &ids).await?;
        claimed.sort_by_key(|c| ids.iter().position(|id| *id == c.task_run_id));
        return Ok(claimed);
    }
    let sql = pg_claim(conn, &ClaimParts { worker, queues, limit, now, lease }, PG_LOADED, planner).await?;
    claimed_rows::read(&conn.query_all_raw(sql.statement()).await?)
}

/// PostgreSQL's read of the claimed task runs (the CTE `claimed`, see [`pg_claim`]) with their
/// definitions, heaviest first. What a task run's stage run leads to (its pipeline run with
/// the launch arguments, the pipeline's and the stage's names) is looked up once per stage
/// run of the claim (`runs`) instead of once per task run: a claim's task runs share a few
/// stage runs, and those four lookups per row had taken a fifth of a claim (40 task runs of
/// one stage run: 1.33–1.45 ms a claim, 1.14–1.17 with `runs`, 2026-12-05). A task's stage is
/// its stage run's (a stage run queues its own stage's tasks, and a task never changes stage).
const PG_LOADED: &str = ", runs AS MATERIALIZED (SELECT sr.id, sr.pipeline_run_id, pr.arguments AS launch_arguments, p.name AS pipeline_name, \
     s.name AS stage_name FROM cog_stage_run sr JOIN cog_pipeline_run pr ON pr.id = sr.pipeline_run_id JOIN cog_pipeline p ON p.id = pr.pipeline_id \
     JOIN cog_stage s ON s.id = sr.stage_id WHERE sr.id IN (SELECT DISTINCT stage_run_id FROM claimed)) \
     SELECT tr.id AS task_run_id, tr.attempt, tr.stage_run_id, r.pipeline_run_id, t.id AS task_id, t.name AS task_name, r.stage_name, \
     r.pipeline_name, c.name AS cog, h.name AS error_handler, t.arguments, r.launch_arguments, t.critical, t.max_retries, t.timeout_ms, \
     tr.started_at, tr.queue, tr.run_after, tr.weight FROM claimed tr JOIN runs r ON r.id = tr.stage_run_id JOIN cog_task t ON t.id = tr.task_id \
     JOIN cog_cog c ON c.id = t.cog_id LEFT JOIN cog_error_handler h ON h.id = t.error_handler_id ORDER BY tr.weight DESC, tr.id";

/// The columns of a [`Claimed`], read from task runs `tr` joined by [`DEFINITIONS`].
const LOADED_COLUMNS: &str = "SELECT tr.id AS task_run_id, tr.attempt, tr.stage_run_id, sr.pipeline_run_id, t.id AS task_id, t.name AS task_name, \
     s.name AS stage_name, p.name AS pipeline_name, c.name AS cog, h.name AS error_handler, t.arguments, \
     pr.arguments AS launch_arguments, t.critical, t.max_retries, t.timeout_ms, tr.started_at, tr.queue, tr.run_after, tr.weight";

/// The joins from task runs `tr` to their definitions.
const DEFINITIONS: &str = " JOIN cog_stage_run sr ON sr.id = tr.stage_run_id \
     JOIN cog_pipeline_run pr ON pr.id = sr.pipeline_run_id \
     JOIN cog_pipeline p ON p.id = pr.pipeline_id \
     JOIN cog_task t ON t.id = tr.task_id \
     JOIN cog_stage s ON s.id = t.stage_id \
     JOIN cog_cog c ON c.id = t.cog_id \
     LEFT JOIN cog_error_handler h ON h.id = t.error_handler_id";

/// Undoes the claim of task runs `ids` made in this transaction: queued again, attempt as before.
pub(crate) async fn unclaim(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    Sql::new(Backend::of(conn)?, "UPDATE cog_task_run SET status = ")
        .bind(RunStatus::Queued)
        .push(", attempt = attempt - 1, worker = NULL, lease_until = NULL, started_at = NULL WHERE status = ")
        .bind(RunStatus::Running)
        .push(" AND ")
        .in_ids("id", ids)
        .execute(conn)
        .await
}

/// Reads task runs `ids` with their definitions (in no particular order).
pub(crate) async fn load(conn: &impl ConnectionTrait, ids: &[i64]) -> Result<Vec<Claimed>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = Sql::new(Backend::of(conn)?, LOADED_COLUMNS).push(" FROM cog_task_run tr").push(DEFINITIONS).push(" WHERE ").in_ids("tr.id", ids);
    claimed_rows::read(&conn.query_all_raw(sql.statement()).await?)
}

/// Ids of running task runs whose lease has expired (their worker died or hung), by the
/// database's clock, oldest lease first, at most `limit`. Reads the `running` entries of the
/// open task runs' partial index (see `transitions::open_task_runs_with_status`).
pub(crate) async fn expired(conn: &impl ConnectionTrait, limit: usize) -> Result<Vec<i64>, DbErr> {
    super::transitions::open_task_runs_with_status(Sql::new(Backend::of(conn)?, "SELECT id FROM cog_task_run WHERE "), "status", RunStatus::Running)
        .push(" AND lease_until < ")
        .now()
        .push(" ORDER BY lease_until LIMIT ")
        .bind(limit as i64)
        .ids(conn)
        .await
}

/// [`next_due`] for an idle worker: on PostgreSQL in a transaction of its own with the claim's
/// planner settings ([`set_planner`]), so that it runs on the generic plan the warm-up made
/// (`store::warm`) instead of being planned anew. Outside a transaction PostgreSQL plans a
/// prepared statement for its values at each of a connection's first five runs: 1.0–1.1 ms each
/// for this one, 105 plans for 112 looks in workload F on 4 processes (`pg_stat_statements`,
/// 2026-12-05), a tenth of PostgreSQL's time there. The three round trips the transaction adds
/// cost a few hundredths of that. On a pool whose sessions have those settings
/// ([`Planner::of`]) the statement alone, outside a transaction.
pub(crate) async fn next_due_planned(db: &DatabaseConnection, queues: &[String]) -> Result<Option<DateTime<Utc>>, DbErr> {
    if Backend::of(db)? != Backend::Postgres || Planner::of(db) == Planner::AlreadySet {
        return next_due(db, queues).await;
    }
    let txn = sea_orm::TransactionTrait::begin(db).await?;
    set_planner(&txn).await?;
    let due = next_due(&txn, queues).await?;
    txn.commit().await?;
    Ok(due)
}

/// The earliest `run_after` of the task runs queued on `queues` that are not paused (when an
/// idle worker should look again), if any is queued.
///
/// Only a retry's back-off puts `run_after` in the future, and a retried task run has run
/// before (`attempt > 0`); a task run queued by a stage start or a fill (`attempt = 0`) is due
/// at once. So on SQLite and PostgreSQL this reads the earliest retry off the small partial
/// index of those (`cog_task_run_retries`) and any one task run of attempt 0 (due: a claim may
/// have skipped it while another held it), instead of every queued task run: 0.73–0.83 →
/// 0.13–0.14 ms with 2,000 queued (`pgbench`, one client, 2026-12-05; workload F asks after
/// about one claim in three). MySQL/MariaDB, without partial indexes, reads every queued task
/// run as before.
pub(crate) async fn next_due(conn: &impl ConnectionTrait, queues: &[String]) -> Result<Option<DateTime<Utc>>, DbErr> {
    #[derive(FromQueryResult)]
    struct Due {
        due: Option<DateTime<Utc>>,
    }
    let b = Backend::of(conn)?;
    let running_queues = |sql: Sql| sql.push(" FROM cog_queue q WHERE q.name IN (").bind_list(queues.iter().map(String::as_str)).push(") AND NOT q.paused");
    let sql = match b {
        Backend::MySql => Sql::new(b, "SELECT MIN(run_after) AS due FROM cog_task_run WHERE status = ")
            .status(RunStatus::Queued)
            .push(" AND queue IN (SELECT name FROM cog_queue WHERE name IN (")
            .bind_list(queues.iter().map(String::as_str))
            .push(") AND NOT paused)"),
        // Per queue, each a subquery that reads its index in order and stops at its first row
        // (given `queue IN (...)`, PostgreSQL read the table itself to find an attempt 0).
        Backend::Sqlite | Backend::Postgres => {
            let retries = Sql::new(b, "SELECT MIN(due) AS due FROM (SELECT (SELECT MIN(run_after) FROM cog_task_run WHERE status = ")
                .status(RunStatus::Queued)
                .push(" AND attempt > 0 AND queue = q.name) AS due");
            let fresh = running_queues(retries)
                .push(" UNION ALL SELECT (SELECT run_after FROM cog_task_run WHERE status = ")
                .status(RunStatus::Queued)
                .push(" AND attempt = 0 AND queue = q.name ORDER BY weight DESC, id LIMIT 1)");
            running_queues(fresh).push(") d")
        }
    };
    let row = sql.one::<Due>(conn).await?;
    Ok(row.and_then(|r| r.due))
}
