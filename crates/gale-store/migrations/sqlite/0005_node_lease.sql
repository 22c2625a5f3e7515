-- The attempt lease a worker fences itself by: a reaper never ends that worker's
-- attempts sooner, whatever its own setting.
ALTER TABLE nodes ADD COLUMN attempt_lease_ms INTEGER NOT NULL DEFAULT 0;
