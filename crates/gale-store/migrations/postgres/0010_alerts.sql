-- Alerts: the channels they go to (settings in clear, the secret part only
-- sealed, as a connection's) and the delivery outbox. One delivery per
-- channel and event key, however often the event is enqueued; a deliverer
-- claims one under a lease and its result is fenced on (claimer, attempts).
CREATE TABLE alert_channels (
    name        text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('email', 'webhook', 'slack', 'command')),
    config      text NOT NULL DEFAULT '{}',
    sealed      text,
    key_id      text,
    description text,
    -- Claims of this channel's deliveries wait until then: what falls due
    -- meanwhile goes out together, as one digest.
    quiet_until timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
CREATE TABLE alert_deliveries (
    id          bigserial PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    channel     text NOT NULL,
    event_key   text NOT NULL,
    kind        text NOT NULL,
    dag_id      text,
    run_id      bigint,
    ti_id       bigint,
    payload     text NOT NULL DEFAULT '{}',
    state       text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    claimed_by  text,
    lease_until timestamptz,
    last_error  text,
    sent_at     timestamptz,
    UNIQUE (channel, event_key)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_at);
CREATE INDEX alert_deliveries_by_run ON alert_deliveries (run_id, id);
-- The queues a worker serves, so any process can tell a queue nobody serves.
ALTER TABLE nodes ADD COLUMN queues text NOT NULL DEFAULT '';
