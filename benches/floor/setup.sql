-- The E floor's starting state: one running stage run of 100,000 queued task runs, in a
-- database holding cog's schema (`run.sh` applies it) and nothing else.
TRUNCATE cog_error, cog_task_run, cog_stage_run, cog_pipeline_run, cog_task, cog_stage_prerequisite, cog_stage, cog_pipeline, cog_worker_cog, cog_cog RESTART IDENTITY;
INSERT INTO cog_cog (name, module, present, updated_at) VALUES ('floor_noop', 'floor', true, now());
INSERT INTO cog_pipeline (name, enabled, timezone, prevent_overlap, created_at, updated_at) VALUES ('floor', true, 'UTC', false, now(), now());
INSERT INTO cog_stage (pipeline_id, name, enabled, archived, position) VALUES (1, 's0', true, false, 0);
INSERT INTO cog_task (stage_id, name, cog_id, arguments, queue_id, weight, critical, enabled, archived, max_retries, position)
  SELECT 1, 't' || g, 1, '{}', (SELECT id FROM cog_queue WHERE name = 'default'), 1, true, true, false, 0, g FROM generate_series(1, 100000) g;
INSERT INTO cog_pipeline_run (pipeline_id, status, "trigger", created_at, started_at, arguments) VALUES (1, 'running', 'manual', now(), now(), '{}');
INSERT INTO cog_stage_run (pipeline_run_id, stage_id, status, started_at) VALUES (1, 1, 'running', now());
\timing on
-- The stage's task runs, as a launch queues them (one statement here; cog queues them in chunks).
INSERT INTO cog_task_run (stage_run_id, task_id, status, queue, weight, attempt, run_after)
  SELECT 1, t.id, 'queued', 'default', t.weight, 0, now() FROM cog_task t ORDER BY t.id;
