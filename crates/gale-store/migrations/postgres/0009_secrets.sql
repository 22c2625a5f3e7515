-- Variables and connections. A secret variable's value, and a connection's
-- password and extra, are kept only sealed (ciphertext, and the id of the key
-- it was sealed under); the keys are never in the database.
CREATE TABLE variables (
    name        text PRIMARY KEY,
    value       text,
    sealed      text,
    key_id      text,
    is_json     boolean NOT NULL DEFAULT false,
    secret      boolean NOT NULL DEFAULT false,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((secret AND value IS NULL AND sealed IS NOT NULL AND key_id IS NOT NULL)
        OR (NOT secret AND value IS NOT NULL AND sealed IS NULL AND key_id IS NULL))
);
CREATE TABLE connections (
    name        text PRIMARY KEY,
    conn_type   text NOT NULL,
    host        text,
    port        integer,
    login       text,
    schema_name text,
    sealed      text,
    key_id      text,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
