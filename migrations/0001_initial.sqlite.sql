-- The schema as first released (before fanin_reseed_at). Guarded, so a database made by an
-- older build's ensure_schema is adopted as it is.
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT NOT NULL PRIMARY KEY,
    status TEXT NOT NULL,
    webhook_url TEXT,
    idempotency_key TEXT,
    products INTEGER NOT NULL,
    images INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT,
    fanout_completed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_requests_idempotency_key
    ON requests (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS ix_requests_fanout_pending
    ON requests (created_at) WHERE fanout_completed_at IS NULL;
CREATE TABLE IF NOT EXISTS products (
    request_id TEXT NOT NULL REFERENCES requests (request_id),
    serial INTEGER NOT NULL,
    line INTEGER NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (request_id, serial)
);
CREATE TABLE IF NOT EXISTS images (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    serial INTEGER NOT NULL,
    url_index INTEGER NOT NULL,
    input_url TEXT NOT NULL,
    status TEXT NOT NULL,
    output_url TEXT,
    error TEXT,
    bytes_in INTEGER,
    bytes_out INTEGER,
    width INTEGER,
    height INTEGER,
    format TEXT,
    quality INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at TEXT,
    started_at TEXT,
    finished_at TEXT,
    download_ms INTEGER,
    process_ms INTEGER,
    store_ms INTEGER,
    PRIMARY KEY (request_id, seq),
    FOREIGN KEY (request_id, serial) REFERENCES products (request_id, serial)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    request_id TEXT NOT NULL REFERENCES requests (request_id),
    attempt INTEGER NOT NULL,
    delivery_id TEXT NOT NULL,
    attempted_at TEXT NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    succeeded INTEGER NOT NULL,
    PRIMARY KEY (request_id, attempt)
);
