-- Where each DAG version came from (JSON: a folder's processor, a push and
-- who pushed, or a git source's commit); '' for versions stored before.
ALTER TABLE dag_versions ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT '';

-- The git repositories schedulers follow, and the commit whose DAGs are
-- stored: a follower stores a commit only over an older one.
CREATE TABLE IF NOT EXISTS dag_sources (
    name                 text PRIMARY KEY,
    url                  text NOT NULL,
    reference            text NOT NULL,
    path                 text NOT NULL,
    commit_id            text,
    committed_at         timestamptz,
    applied_at           timestamptz,
    applied_by           text,
    refresh_requested_at timestamptz,
    created_at           timestamptz NOT NULL
);
