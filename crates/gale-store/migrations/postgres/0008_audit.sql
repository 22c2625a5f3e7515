-- The audit log: one row per state-changing action someone took (through the
-- API, the UI or the command line) and per login, with who, from where, on
-- what, and whether it worked. Bounded: each insert deletes the rows more than
-- AUDIT_KEEP ids older. The detail is JSON kept as text (jsonb cannot hold
-- every string a failed request may carry).
CREATE TABLE audit_log (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    origin  text NOT NULL,
    action  text NOT NULL,
    target  text NOT NULL,
    detail  text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('success', 'failure'))
);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
CREATE INDEX audit_by_action ON audit_log (action, id);
