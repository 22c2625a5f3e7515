-- The audit log: one row per state-changing action someone took (through the
-- API, the UI or the command line) and per login, with who, from where, on
-- what, and whether it worked. Bounded: each insert deletes the rows more than
-- AUDIT_KEEP ids older (AUTOINCREMENT: ids are never reused, so they keep
-- their order).
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    origin  TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure'))
);
CREATE INDEX audit_by_actor ON audit_log (actor, id);
CREATE INDEX audit_by_action ON audit_log (action, id);
