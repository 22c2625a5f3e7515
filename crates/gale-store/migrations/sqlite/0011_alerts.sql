-- Alerts: the channels they go to (settings in clear, the secret part only
-- sealed, as a connection's) and the delivery outbox. One delivery per
-- channel and event key, however often the event is enqueued; a deliverer
-- claims one under a lease and its result is fenced on (claimer, attempts).
CREATE TABLE alert_channels (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('email', 'webhook', 'slack', 'command')),
    config      TEXT NOT NULL DEFAULT '{}',
    sealed      TEXT,
    key_id      TEXT,
    description TEXT,
    -- Claims of this channel's deliveries wait until then: what falls due
    -- meanwhile goes out together, as one digest.
    quiet_until INTEGER,
    updated_at  INTEGER NOT NULL,
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
CREATE TABLE alert_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    event_key   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    dag_id      TEXT,
    run_id      INTEGER,
    ti_id       INTEGER,
    payload     TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    claimed_by  TEXT,
    lease_until INTEGER,
    last_error  TEXT,
    sent_at     INTEGER,
    UNIQUE (channel, event_key)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_at);
CREATE INDEX alert_deliveries_by_run ON alert_deliveries (run_id, id);
-- The queues a worker serves, so any process can tell a queue nobody serves.
ALTER TABLE nodes ADD COLUMN queues TEXT NOT NULL DEFAULT '';
