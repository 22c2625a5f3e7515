-- Unfinished task instances by state, for metrics and the cluster page (a
-- long history of finished ones is never counted).
CREATE INDEX ti_unfinished ON task_instances (state, queue)
    WHERE state IN ('none', 'scheduled', 'queued', 'running', 'up_for_retry');

-- People and scripts who use the web UI and API, their sessions and API tokens
-- (secrets are stored only as SHA-256 hashes; passwords as argon2id PHC strings),
-- and backfills.
CREATE TABLE users (
    name          text PRIMARY KEY,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
    id_hash    text PRIMARY KEY,
    user_name  text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_name);

CREATE TABLE api_tokens (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    user_name   text NOT NULL REFERENCES users (name) ON DELETE CASCADE,
    secret_hash text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_name);

CREATE TABLE backfills (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dag_id     text NOT NULL,
    from_date  timestamptz NOT NULL,
    to_date    timestamptz NOT NULL,
    created_by text,
    created_at timestamptz NOT NULL
);
CREATE INDEX backfills_by_dag ON backfills (dag_id, id DESC);
