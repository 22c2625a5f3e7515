-- A scheduler reads the DAGs that changed since it last looked (a new
-- version, a pause, a file gone), not every DAG, several times a second.
CREATE INDEX IF NOT EXISTS dags_by_change ON dags (updated_at);
