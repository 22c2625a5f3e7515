-- Gale metadata store, PostgreSQL schema version 1.
-- Every time is a timestamptz set from the database's clock (now()), so leases
-- never depend on a node's own clock.

CREATE TABLE dags (
    dag_id            text PRIMARY KEY,
    file              text NOT NULL,
    version_hash      text NOT NULL,
    paused            boolean NOT NULL DEFAULT false,
    active            boolean NOT NULL DEFAULT true,
    schedule          text,
    timezone          text NOT NULL DEFAULT 'UTC',
    max_active_runs   integer NOT NULL DEFAULT 1,
    description       text,
    tags              jsonb NOT NULL DEFAULT '[]',
    -- End of the last data interval a scheduled run (or a passed-over slot) covered.
    last_interval_end timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

CREATE TABLE dag_versions (
    dag_id       text NOT NULL,
    version_hash text NOT NULL,
    file         text NOT NULL,
    source       text NOT NULL,
    -- The parsed DAG as JSON text (not jsonb: task order is kept as written).
    spec         text NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (dag_id, version_hash)
);

CREATE TABLE import_errors (
    file       text PRIMARY KEY,
    dag_id     text,
    errors     jsonb NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id         text NOT NULL,
    run_key        text NOT NULL,
    run_type       text NOT NULL,
    version_hash   text NOT NULL,
    logical_date   timestamptz NOT NULL,
    interval_start timestamptz NOT NULL,
    interval_end   timestamptz NOT NULL,
    conf           jsonb NOT NULL DEFAULT '{}',
    state          text NOT NULL,
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    ended_at       timestamptz,
    UNIQUE (dag_id, run_key)
);
-- One run per schedule slot, whoever creates it and however often.
CREATE UNIQUE INDEX runs_one_per_slot ON runs (dag_id, logical_date)
    WHERE run_type IN ('scheduled', 'backfill');
CREATE INDEX runs_by_state ON runs (state, dag_id, logical_date);
CREATE INDEX runs_by_dag ON runs (dag_id, id DESC);

CREATE TABLE task_instances (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint NOT NULL REFERENCES runs (id),
    dag_id       text NOT NULL,
    task_id      text NOT NULL,
    state        text NOT NULL,
    try_number   integer NOT NULL DEFAULT 0,
    max_tries    integer NOT NULL,
    queue        text NOT NULL,
    priority     integer NOT NULL DEFAULT 0,
    worker_id    text,
    heartbeat_at timestamptz,
    queued_at    timestamptz,
    started_at   timestamptz,
    ended_at     timestamptz,
    retry_at     timestamptz,
    outputs      jsonb,
    updated_at   timestamptz NOT NULL,
    UNIQUE (run_id, task_id)
);
CREATE INDEX ti_queued ON task_instances (queue, priority DESC, id) WHERE state = 'queued';
CREATE INDEX ti_running ON task_instances (heartbeat_at) WHERE state = 'running';
CREATE INDEX ti_running_by_worker ON task_instances (worker_id) WHERE state = 'running';
CREATE INDEX ti_active_by_dag ON task_instances (dag_id, state) WHERE state IN ('queued', 'running');
-- Lets the scheduler count a run's task instances by state without reading them.
CREATE INDEX ti_by_run_state ON task_instances (run_id, state);

CREATE TABLE attempts (
    ti_id      bigint NOT NULL REFERENCES task_instances (id),
    try_number integer NOT NULL,
    run_id     bigint NOT NULL,
    task_id    text NOT NULL,
    worker_id  text NOT NULL,
    host       text,
    pid        bigint,
    state      text NOT NULL,
    exit_code  integer,
    message    text,
    command    text,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz,
    PRIMARY KEY (ti_id, try_number)
);

CREATE TABLE logs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ti_id      bigint NOT NULL,
    try_number integer NOT NULL,
    ts         timestamptz NOT NULL,
    stream     text NOT NULL,
    line       text NOT NULL
);
CREATE INDEX logs_by_attempt ON logs (ti_id, try_number, id);

CREATE TABLE nodes (
    node_id       text PRIMARY KEY,
    host          text NOT NULL,
    pid           bigint NOT NULL,
    roles         text NOT NULL,
    version       text NOT NULL,
    state         text NOT NULL,
    started_at    timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    -- The node's clock minus the database's at its last heartbeat.
    clock_skew_us bigint NOT NULL DEFAULT 0
);

-- Every cron slot of a DAG, recorded once: run, skipped or missed.
CREATE TABLE schedule_slots (
    dag_id       text NOT NULL,
    logical_date timestamptz NOT NULL,
    interval_end timestamptz NOT NULL,
    status       text NOT NULL,
    run_id       bigint,
    recorded_at  timestamptz NOT NULL,
    PRIMARY KEY (dag_id, logical_date)
);
