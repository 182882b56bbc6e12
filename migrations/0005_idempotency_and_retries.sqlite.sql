-- Idempotency keys bound to their upload, and images waiting for a delayed retry (issue 11).
-- SQLite has no ADD COLUMN IF NOT EXISTS: the runner treats "duplicate column" as already done.
ALTER TABLE requests ADD COLUMN upload_sha256 TEXT;
ALTER TABLE images ADD COLUMN next_attempt_at TEXT;
