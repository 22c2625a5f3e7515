-- The calendar's read: a DAG's runs by logical date, counted per day and state,
-- from the index alone (it covers all three columns).
CREATE INDEX IF NOT EXISTS runs_by_dag_date ON runs (dag_id, logical_date, state);
