-- Where each DAG version came from (JSON: a folder's processor, a push and
-- who pushed, or a git source's commit); '' for versions stored before.
ALTER TABLE dag_versions ADD COLUMN origin TEXT NOT NULL DEFAULT '';

-- The git repositories schedulers follow, and the commit whose DAGs are
-- stored: a follower stores a commit only over an older one.
CREATE TABLE dag_sources (
    name                 TEXT PRIMARY KEY,
    url                  TEXT NOT NULL,
    reference            TEXT NOT NULL,
    path                 TEXT NOT NULL,
    commit_id            TEXT,
    committed_at         INTEGER,
    applied_at           INTEGER,
    applied_by           TEXT,
    refresh_requested_at INTEGER,
    created_at           INTEGER NOT NULL
);
