//! Moving a running pipeline run forward inside a locked transaction: starting stages,
//! fan-in to successors, completing the run, and writing `completed_at` once nothing runs.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr};

use super::Effects;
use crate::db::{execute, notify, query_all, query_one};

/// Starts stage `stage_id` in run `run_id`: one stage run (never two: the unique index on
/// `(pipeline_run_id, stage_id)` turns a second start into a no-op) and a queued task run for
/// each enabled task. Returns whether it started, and whether it completed at once (no task).
async fn start_stage(conn: &impl ConnectionTrait, run_id: i64, stage_id: i64, now: DateTime<Utc>) -> Result<(bool, bool), DbErr> {
    let inserted = query_one(
        conn,
        "INSERT INTO cog_stage_run (pipeline_run_id, stage_id, status, started_at) VALUES ($1, $2, 'running', $3) \
         ON CONFLICT (pipeline_run_id, stage_id) DO NOTHING RETURNING id",
        [run_id.into(), stage_id.into(), now.into()],
    )
    .await?;
    let Some(row) = inserted else { return Ok((false, false)) };
    let stage_run_id: i64 = row.try_get_by_index(0)?;
    let tasks = execute(
        conn,
        "INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, run_after) \
         SELECT $1, t.id, 'queued', q.name, t.weight, 0, $2 FROM cog_task t \
         JOIN cog_queue q ON q.id = t.queue_id JOIN cog_stage s ON s.id = t.stage_id \
         WHERE t.stage_id = $3 AND t.enabled AND NOT t.archived AND s.enabled",
        [stage_run_id.into(), now.into(), stage_id.into()],
    )
    .await?;
    if tasks > 0 {
        notify(conn, "work").await?;
        return Ok((true, false));
    }
    execute(conn, "UPDATE cog_stage_run SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'running'", [now.into(), stage_run_id.into()])
        .await?;
    Ok((true, true))
}

/// Starts every stage of `stages` (and, through fan-in, whatever their completion unblocks),
/// then completes the run if nothing is left running.
pub(crate) async fn start_stages(conn: &impl ConnectionTrait, run_id: i64, stages: Vec<i64>, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    let mut completed = Vec::new();
    for stage_id in stages {
        let (started, done) = start_stage(conn, run_id, stage_id, now).await?;
        effects.queued_work |= started && !done;
        if done {
            completed.push(stage_id);
        }
    }
    stages_completed(conn, run_id, completed, now).await.map(|e| effects.merge(e))
}

/// Called after the stage runs of `completed` (stage ids) became `completed`: starts each
/// successor whose prerequisites have all completed, repeatedly, then completes the run if
/// no stage run is left running.
pub(crate) async fn stages_completed(conn: &impl ConnectionTrait, run_id: i64, mut completed: Vec<i64>, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    let mut effects = Effects::default();
    while let Some(stage_id) = completed.pop() {
        let ready = query_all(
            conn,
            "SELECT s.id FROM cog_stage s WHERE NOT s.archived \
             AND s.id IN (SELECT p.stage_id FROM cog_stage_prerequisite p WHERE p.prerequisite_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM cog_stage_prerequisite p WHERE p.stage_id = s.id AND NOT EXISTS \
                 (SELECT 1 FROM cog_stage_run r WHERE r.pipeline_run_id = $2 AND r.stage_id = p.prerequisite_id AND r.status = 'completed')) \
             AND NOT EXISTS (SELECT 1 FROM cog_stage_run r WHERE r.pipeline_run_id = $2 AND r.stage_id = s.id) \
             ORDER BY s.position",
            [stage_id.into(), run_id.into()],
        )
        .await?;
        for row in ready {
            let successor: i64 = row.try_get_by_index(0)?;
            let (started, done) = start_stage(conn, run_id, successor, now).await?;
            effects.queued_work |= started && !done;
            if done {
                completed.push(successor);
            }
        }
    }
    let open = query_one(conn, "SELECT 1 FROM cog_stage_run WHERE pipeline_run_id = $1 AND status IN ('queued', 'running') LIMIT 1", [run_id.into()]).await?;
    if open.is_none() {
        let ended = execute(
            conn,
            "UPDATE cog_pipeline_run SET status = 'completed', completed_at = $1 WHERE id = $2 AND status = 'running'",
            [now.into(), run_id.into()],
        )
        .await?;
        if ended > 0 {
            notify(conn, &format!("ended:{run_id}")).await?;
            effects.run_ended = true;
        }
    }
    Ok(effects)
}

/// Ends a run that can no longer succeed (`status` = `failed` or `canceled`): its queued task
/// runs become `canceled`, its open stage runs `canceled` (except `failed_stage_run`, which
/// becomes `failed`), then [`settle`] writes `completed_at` where nothing runs any more.
pub(crate) async fn end_run(
    conn: &impl ConnectionTrait,
    run_id: i64,
    status: &str,
    failed_stage_run: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Effects, DbErr> {
    execute(conn, "UPDATE cog_pipeline_run SET status = $1 WHERE id = $2 AND status IN ('queued', 'running')", [status.into(), run_id.into()]).await?;
    if let Some(stage_run_id) = failed_stage_run {
        execute(conn, "UPDATE cog_stage_run SET status = 'failed' WHERE id = $1 AND status IN ('queued', 'running')", [stage_run_id.into()]).await?;
    }
    execute(
        conn,
        "UPDATE cog_task_run SET status = 'canceled', completed_at = $1 \
         WHERE status = 'queued' AND stage_run_id IN (SELECT id FROM cog_stage_run WHERE pipeline_run_id = $2)",
        [now.into(), run_id.into()],
    )
    .await?;
    execute(conn, "UPDATE cog_stage_run SET status = 'canceled' WHERE pipeline_run_id = $1 AND status IN ('queued', 'running')", [run_id.into()]).await?;
    settle(conn, run_id, now).await
}

/// Writes `completed_at` (once) on the ended stage runs and the ended pipeline run that no
/// longer have a running task run.
pub(crate) async fn settle(conn: &impl ConnectionTrait, run_id: i64, now: DateTime<Utc>) -> Result<Effects, DbErr> {
    execute(
        conn,
        "UPDATE cog_stage_run SET completed_at = $1 WHERE pipeline_run_id = $2 AND completed_at IS NULL \
         AND status IN ('completed', 'failed', 'canceled') \
         AND NOT EXISTS (SELECT 1 FROM cog_task_run t WHERE t.stage_run_id = cog_stage_run.id AND t.status = 'running')",
        [now.into(), run_id.into()],
    )
    .await?;
    let ended = execute(
        conn,
        "UPDATE cog_pipeline_run SET completed_at = $1 WHERE id = $2 AND completed_at IS NULL \
         AND status IN ('completed', 'failed', 'canceled') \
         AND NOT EXISTS (SELECT 1 FROM cog_task_run t JOIN cog_stage_run s ON s.id = t.stage_run_id \
                         WHERE s.pipeline_run_id = $2 AND t.status = 'running')",
        [now.into(), run_id.into()],
    )
    .await?;
    if ended > 0 {
        notify(conn, &format!("ended:{run_id}")).await?;
    }
    Ok(Effects { queued_work: false, run_ended: ended > 0 })
}
