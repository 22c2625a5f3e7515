-- What the admin pages show and backfill cancelling needs: when a user last
-- logged in, when an API token was last used (written at most once a minute
-- per token), and when a backfill was cancelled.
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
ALTER TABLE backfills ADD COLUMN cancelled_at INTEGER;
