-- Leaner writes on the hot path. Fewer indexes on task_instances: every
-- change of a task's state writes a new entry into each index that covers the
-- new row, so each index costs every transition.
--
-- Queued rows are found through the unfinished-rows index, now ordered for the
-- claim (a queue's queued rows by priority, then age), which makes ti_queued
-- redundant.
DROP INDEX ti_queued;
DROP INDEX ti_unfinished;
CREATE INDEX ti_unfinished ON task_instances (state, queue, priority DESC, id)
    WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry');
-- The reaper reads the running rows (as many as the cluster runs at once)
-- through ti_running_by_worker or ti_unfinished. Without heartbeat_at in an
-- index, a lease renewal changes no indexed column and is a HOT update.
DROP INDEX ti_running;
-- An attempt row is only ever inserted with the task instance it belongs to in
-- the same statement (the claim), so its foreign key could never fail; checking
-- it cost a lookup and a row lock per attempt (half of a claim's time).
ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_ti_id_fkey;
