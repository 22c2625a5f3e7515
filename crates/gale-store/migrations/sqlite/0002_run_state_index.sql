-- Lets the scheduler count a run's task instances by state without reading them.
CREATE INDEX ti_by_run_state ON task_instances (run_id, state);
