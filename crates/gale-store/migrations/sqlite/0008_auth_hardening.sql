-- Sessions end after an idle time as well as at their absolute expiry: each
-- records when it was last used (refreshed as it is used).
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_used_at = created_at;

-- API tokens have a lifetime: those made without one expire 90 days from this
-- upgrade.
UPDATE api_tokens
SET expires_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000000 + 90 * 86400 * 1000000
WHERE expires_at IS NULL;
