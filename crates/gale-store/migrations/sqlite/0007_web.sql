-- Unfinished task instances by state, for metrics and the cluster page (a
-- long history of finished ones is never counted).
CREATE INDEX ti_unfinished ON task_instances (state, queue)
    WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry');

-- People and scripts who use the web UI and API, their sessions and API tokens
-- (secrets are stored only as SHA-256 hashes; passwords as argon2id PHC strings),
-- and backfills.
CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id_hash    TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    user_name   TEXT NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);

CREATE TABLE backfills (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id     TEXT NOT NULL,
    from_date  INTEGER NOT NULL,
    to_date    INTEGER NOT NULL,
    created_by TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX backfills_by_dag ON backfills (dag_id, id DESC);
