-- Set when images finish while Redis is unreachable, so the fan-in count is rebuilt.
-- SQLite has no ADD COLUMN IF NOT EXISTS: the runner treats "duplicate column" as already done.
ALTER TABLE requests ADD COLUMN fanin_reseed_at TEXT;
