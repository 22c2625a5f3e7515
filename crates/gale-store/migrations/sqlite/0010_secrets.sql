-- Variables and connections. A secret variable's value, and a connection's
-- password and extra, are kept only sealed (ciphertext, and the id of the key
-- it was sealed under); the keys are never in the database.
CREATE TABLE variables (
    name        TEXT PRIMARY KEY,
    value       TEXT,
    sealed      TEXT,
    key_id      TEXT,
    is_json     INTEGER NOT NULL DEFAULT 0,
    secret      INTEGER NOT NULL DEFAULT 0,
    description TEXT,
    updated_at  INTEGER NOT NULL,
    CHECK ((secret = 1 AND value IS NULL AND sealed IS NOT NULL AND key_id IS NOT NULL)
        OR (secret = 0 AND value IS NOT NULL AND sealed IS NULL AND key_id IS NULL))
);
CREATE TABLE connections (
    name        TEXT PRIMARY KEY,
    conn_type   TEXT NOT NULL,
    host        TEXT,
    port        INTEGER,
    login       TEXT,
    schema_name TEXT,
    sealed      TEXT,
    key_id      TEXT,
    description TEXT,
    updated_at  INTEGER NOT NULL,
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
