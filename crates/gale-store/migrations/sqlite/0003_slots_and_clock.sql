-- Every cron slot of a DAG, recorded once: run, skipped or missed.
CREATE TABLE schedule_slots (
    dag_id       TEXT NOT NULL,
    logical_date INTEGER NOT NULL,
    interval_end INTEGER NOT NULL,
    status       TEXT NOT NULL,
    run_id       INTEGER,
    recorded_at  INTEGER NOT NULL,
    PRIMARY KEY (dag_id, logical_date)
);
-- The node's clock minus the store's at its last heartbeat.
ALTER TABLE nodes ADD COLUMN clock_skew_us INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ti_running_by_worker ON task_instances (worker_id) WHERE state = 'running';
