-- Pools: slots shared by the attempts of every task that names the pool.
CREATE TABLE pools (
    name        TEXT PRIMARY KEY,
    slots       INTEGER NOT NULL CHECK (slots >= 0),
    description TEXT,
    updated_at  INTEGER NOT NULL
);
ALTER TABLE task_instances ADD COLUMN pool TEXT;
CREATE INDEX ti_active_by_pool ON task_instances (pool, state)
    WHERE state IN ('queued', 'running') AND pool IS NOT NULL;
