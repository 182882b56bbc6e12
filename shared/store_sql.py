"""The SQL the store sends, generic across SQLite and T-SQL (``?`` parameters).

Kept apart from ``shared.store`` so the statements can be read (and parsed by the T-SQL check)
in one place; what differs between the dialects lives in ``shared.sql_dialect``.
"""

from __future__ import annotations

# Status values are written literally in the SQL below; tests check they match the enums.

INSERT_REQUEST = (
    "INSERT INTO requests (request_id, status, webhook_url, idempotency_key, upload_sha256, products, images,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_PRODUCT = "INSERT INTO products (request_id, serial, line, name) VALUES (?, ?, ?, ?)"
INSERT_IMAGE = (
    "INSERT INTO images (request_id, seq, serial, url_index, input_url, status, attempts)"
    " VALUES (?, ?, ?, ?, ?, 'Pending', 0)"
)
SELECT_BY_KEY = "SELECT request_id FROM requests WHERE idempotency_key = ?"
SELECT_KEYED = "SELECT request_id, upload_sha256, created_at FROM requests WHERE idempotency_key = ?"
# An expired key is taken off its old request, so a new upload may use it (the unique index).
RELEASE_EXPIRED_KEY = "UPDATE requests SET idempotency_key = NULL WHERE idempotency_key = ? AND created_at < ?"
SELECT_REQUEST = (
    "SELECT r.status, r.webhook_url, r.products, r.images, r.created_at, r.updated_at,"
    " r.completed_at, r.fanout_completed_at,"
    " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.status = 'Done'),"
    " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.status = 'Failed')"
    " FROM requests r WHERE r.request_id = ?"
)
SELECT_UNENQUEUED = (
    "SELECT i.seq, i.input_url, r.images FROM images i JOIN requests r ON r.request_id = i.request_id"
    " WHERE i.request_id = ? AND i.enqueued_at IS NULL ORDER BY i.seq"
)
MARK_ENQUEUED = (
    "UPDATE images SET enqueued_at = ? WHERE request_id = ? AND enqueued_at IS NULL AND seq IN ({})"
)
MARK_FANOUT_COMPLETE = (
    "UPDATE requests SET fanout_completed_at = ?, updated_at = ?"
    " WHERE request_id = ? AND fanout_completed_at IS NULL"
)
STALE_FANOUTS = (
    "request_id FROM requests WHERE fanout_completed_at IS NULL AND created_at < ? ORDER BY created_at"
)
SELECT_IMAGE_STATUS = "SELECT status FROM images WHERE request_id = ? AND seq = ?"
MARK_STARTED = (
    "UPDATE images SET started_at = COALESCE(started_at, ?), attempts = attempts + 1"
    " WHERE request_id = ? AND seq = ?"
)
RECORD_DONE = (
    "UPDATE images SET status = 'Done', output_url = ?, error = NULL, bytes_in = ?, bytes_out = ?,"
    " width = ?, height = ?, format = ?, quality = ?, download_ms = ?, process_ms = ?, store_ms = ?,"
    " finished_at = ? WHERE request_id = ? AND seq = ? AND status = 'Pending'"
)
RECORD_FAILED = (
    "UPDATE images SET status = 'Failed', error = ?, finished_at = ?"
    " WHERE request_id = ? AND seq = ? AND status = 'Pending'"
)
NOTE_RETRY = (
    "UPDATE images SET error = ?, next_attempt_at = ? WHERE request_id = ? AND seq = ? AND status = 'Pending'"
)
MARK_PROCESSING = (
    "UPDATE requests SET status = 'Processing', updated_at = ? WHERE request_id = ? AND status = 'Pending'"
)
SELECT_TERMINAL = "SELECT seq FROM images WHERE request_id = ? AND status <> 'Pending'"
COMPLETE_REQUEST = (
    "UPDATE requests SET status = 'Completed', completed_at = ?, updated_at = ?"
    " WHERE request_id = ? AND status <> 'Completed' AND NOT EXISTS"
    " (SELECT 1 FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Pending')"
)
SELECT_IMAGES = (
    "SELECT i.seq, i.serial, p.name, i.url_index, i.input_url, i.status, i.output_url, i.error,"
    " i.bytes_in, i.bytes_out, i.width, i.height, i.attempts, i.enqueued_at, i.started_at, i.finished_at,"
    " i.next_attempt_at"
    " FROM images i JOIN products p ON p.request_id = i.request_id AND p.serial = i.serial"
    " WHERE i.request_id = ? ORDER BY i.seq"
)
DELIVERY_COLUMNS = ("request_id", "attempt", "delivery_id", "attempted_at", "url", "status_code", "error",
                    "succeeded")  # fmt: skip
SELECT_DELIVERIES = (
    "SELECT request_id, attempt, delivery_id, attempted_at, url, status_code, error, succeeded"
    " FROM webhook_deliveries WHERE request_id = ? ORDER BY attempt"
)
MARK_FANIN_RESEED = "UPDATE requests SET fanin_reseed_at = ? WHERE request_id = ?"
SELECT_FANIN_RESEED = "SELECT fanin_reseed_at FROM requests WHERE request_id = ?"
FINISH_DELIVERY = (
    "UPDATE webhook_deliveries SET status_code = ?, error = ?, succeeded = ? WHERE request_id = ? AND attempt = ?"
)
RELEASE_DELIVERY_CLAIM = (
    "DELETE FROM webhook_deliveries WHERE request_id = ? AND attempt = ? AND succeeded = 0 AND status_code IS NULL"
)
TAKE_OVER_DELIVERY_CLAIM = (
    "UPDATE webhook_deliveries SET attempted_at = ? WHERE request_id = ? AND attempt = ? AND succeeded = 0"
    " AND status_code IS NULL AND error = ? AND attempted_at < ?"
)
