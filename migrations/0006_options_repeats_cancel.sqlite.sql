-- Issue 13: per-request compression options, repeated URLs compressed once, cancel.
-- A request's options (NULL: the service's setting); a request without a row uses the settings.
CREATE TABLE IF NOT EXISTS request_options (
    request_id TEXT NOT NULL PRIMARY KEY REFERENCES requests (request_id),
    quality INTEGER,
    size_target REAL,
    format TEXT,
    max_dimension INTEGER
);
-- A slot whose URL repeats an earlier slot of its request (the leader): only the leader is
-- fetched and compressed; its outcome is copied to its aliases in the same transaction.
CREATE TABLE IF NOT EXISTS image_aliases (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    leader_seq INTEGER NOT NULL,
    PRIMARY KEY (request_id, seq)
);
CREATE INDEX IF NOT EXISTS ix_image_aliases_leader ON image_aliases (request_id, leader_seq);
-- Kept like done_images and failed_images: images skipped by a cancel, and slots that repeat a URL.
-- SQLite has no ADD COLUMN IF NOT EXISTS: the runner treats "duplicate column" as already done.
ALTER TABLE requests ADD COLUMN skipped_images INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN repeated_images INTEGER NOT NULL DEFAULT 0;
