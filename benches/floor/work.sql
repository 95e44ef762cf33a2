-- One pgbench iteration: a worker's claim of 250 task runs (cog's claim statement, without its
-- join to the definitions) and the outcome write of the 250 (cog's, with the run's lock), each
-- in its own transaction, as cog commits them.
BEGIN;
SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; SET LOCAL plan_cache_mode = force_generic_plan;
WITH running_queues AS MATERIALIZED (SELECT name FROM cog_queue WHERE name IN ('default') AND NOT paused FOR SHARE), picked AS MATERIALIZED (SELECT c.id FROM running_queues q CROSS JOIN LATERAL (SELECT id, weight FROM cog_task_run WHERE status = 'queued' AND run_after <= now() AND queue = q.name ORDER BY weight DESC, id LIMIT 250 FOR UPDATE SKIP LOCKED) c ORDER BY c.weight DESC, c.id LIMIT 250), claimed AS (UPDATE cog_task_run SET status = 'running', attempt = attempt + 1, worker = 'floor:client_id', lease_until = now() + interval '30 s', started_at = now() FROM picked WHERE cog_task_run.id = picked.id AND cog_task_run.status = 'queued' RETURNING cog_task_run.id) SELECT array_agg(id)::text AS ids FROM claimed \gset
COMMIT;
BEGIN;
WITH v (id, attempt, duration_ms, result) AS (SELECT i, 1, 0::bigint, 'null' FROM unnest(':ids'::bigint[]) i) UPDATE cog_task_run SET status = 'completed', completed_at = now(), duration_ms = v.duration_ms, result = v.result, error = NULL, lease_until = NULL FROM v WHERE cog_task_run.id = v.id AND cog_task_run.attempt = v.attempt AND cog_task_run.status = 'running' RETURNING cog_task_run.id;
SELECT status FROM cog_pipeline_run WHERE id = 1 FOR UPDATE;
COMMIT;
