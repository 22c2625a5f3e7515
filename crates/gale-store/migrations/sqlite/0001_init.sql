-- Gale metadata store, SQLite schema version 1.
-- Every time column holds microseconds since the Unix epoch (UTC).

CREATE TABLE dags (
    dag_id            TEXT PRIMARY KEY,
    file              TEXT NOT NULL,
    version_hash      TEXT NOT NULL,
    paused            INTEGER NOT NULL DEFAULT 0,
    active            INTEGER NOT NULL DEFAULT 1,
    schedule          TEXT,
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    max_active_runs   INTEGER NOT NULL DEFAULT 1,
    description       TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    -- End of the last data interval a scheduled run was created for.
    last_interval_end INTEGER,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
);

CREATE TABLE dag_versions (
    dag_id       TEXT NOT NULL,
    version_hash TEXT NOT NULL,
    file         TEXT NOT NULL,
    source       TEXT NOT NULL,
    spec         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (dag_id, version_hash)
);

CREATE TABLE import_errors (
    file       TEXT PRIMARY KEY,
    dag_id     TEXT,
    errors     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id         TEXT NOT NULL,
    run_key        TEXT NOT NULL,
    run_type       TEXT NOT NULL,
    version_hash   TEXT NOT NULL,
    logical_date   INTEGER NOT NULL,
    interval_start INTEGER NOT NULL,
    interval_end   INTEGER NOT NULL,
    conf           TEXT NOT NULL DEFAULT '{}',
    state          TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    ended_at       INTEGER,
    UNIQUE (dag_id, run_key)
);
-- One run per schedule slot, whoever creates it and however often.
CREATE UNIQUE INDEX runs_one_per_slot ON runs (dag_id, logical_date)
    WHERE run_type IN ('scheduled', 'backfill');
CREATE INDEX runs_by_state ON runs (state, dag_id, logical_date);
CREATE INDEX runs_by_dag ON runs (dag_id, id DESC);

CREATE TABLE task_instances (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    dag_id       TEXT NOT NULL,
    task_id      TEXT NOT NULL,
    state        TEXT NOT NULL,
    try_number   INTEGER NOT NULL DEFAULT 0,
    max_tries    INTEGER NOT NULL,
    queue        TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0,
    worker_id    TEXT,
    heartbeat_at INTEGER,
    queued_at    INTEGER,
    started_at   INTEGER,
    ended_at     INTEGER,
    retry_at     INTEGER,
    outputs      TEXT,
    updated_at   INTEGER NOT NULL,
    UNIQUE (run_id, task_id)
);
CREATE INDEX ti_queued ON task_instances (queue, priority DESC, id) WHERE state = 'queued';
CREATE INDEX ti_running ON task_instances (heartbeat_at) WHERE state = 'running';
CREATE INDEX ti_active_by_dag ON task_instances (dag_id, state) WHERE state IN ('queued', 'running');

CREATE TABLE attempts (
    ti_id      INTEGER NOT NULL REFERENCES task_instances (id),
    try_number INTEGER NOT NULL,
    run_id     INTEGER NOT NULL,
    task_id    TEXT NOT NULL,
    worker_id  TEXT NOT NULL,
    host       TEXT,
    pid        INTEGER,
    state      TEXT NOT NULL,
    exit_code  INTEGER,
    message    TEXT,
    command    TEXT,
    started_at INTEGER NOT NULL,
    ended_at   INTEGER,
    PRIMARY KEY (ti_id, try_number)
);

CREATE TABLE logs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ti_id      INTEGER NOT NULL,
    try_number INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    stream     TEXT NOT NULL,
    line       TEXT NOT NULL
);
CREATE INDEX logs_by_attempt ON logs (ti_id, try_number, id);

CREATE TABLE nodes (
    node_id      TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    roles        TEXT NOT NULL,
    version      TEXT NOT NULL,
    state        TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
