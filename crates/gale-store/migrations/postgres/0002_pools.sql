-- Pools: slots shared by the attempts of every task that names the pool.
CREATE TABLE pools (
    name        text PRIMARY KEY,
    slots       integer NOT NULL CHECK (slots >= 0),
    description text,
    updated_at  timestamptz NOT NULL
);
ALTER TABLE task_instances ADD COLUMN pool text;
CREATE INDEX ti_active_by_pool ON task_instances (pool, state)
    WHERE state IN ('queued', 'running') AND pool IS NOT NULL;
