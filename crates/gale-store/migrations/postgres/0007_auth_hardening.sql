-- Sessions end after an idle time as well as at their absolute expiry: each
-- records when it was last used (refreshed as it is used).
ALTER TABLE sessions ADD COLUMN last_used_at timestamptz;
UPDATE sessions SET last_used_at = created_at;
ALTER TABLE sessions ALTER COLUMN last_used_at SET NOT NULL;

-- API tokens have a lifetime: those made without one expire 90 days from this
-- upgrade.
UPDATE api_tokens SET expires_at = now() + interval '90 days' WHERE expires_at IS NULL;
