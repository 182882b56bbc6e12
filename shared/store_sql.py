"""The SQL the store sends, generic across SQLite and T-SQL (``?`` parameters).

Kept apart from ``shared.store`` so the statements can be read (and parsed by the T-SQL check)
in one place; what differs between the dialects lives in ``shared.sql_dialect``.
"""

from __future__ import annotations

# Status values are written literally in the SQL below; tests check they match the enums.

INSERT_REQUEST = (
    "INSERT INTO requests (request_id, status, webhook_url, idempotency_key, products, images,"
    " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_PRODUCT = "INSERT INTO products (request_id, serial, line, name) VALUES (?, ?, ?, ?)"
INSERT_IMAGE = (
    "INSERT INTO images (request_id, seq, serial, url_index, input_url, status, attempts)"
    " VALUES (?, ?, ?, ?, ?, 'Pending', 0)"
)
SELECT_BY_KEY = "SELECT request_id FROM requests WHERE idempotency_key = ?"
SELECT_REQUEST = (
    "SELECT r.status, r.webhook_url, r.products, r.images, r.created_at, r.updated_at,"
    " r.completed_at, r.fanout_completed_at,"
    " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.status = 'Done'),"
    " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.status = 'Failed'),"
    " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.status = 'Skipped'),"
    " (SELECT COUNT(*) FROM image_aliases a WHERE a.request_id = r.request_id)"
    " FROM requests r WHERE r.request_id = ?"
)
SELECT_UNENQUEUED = (
    "SELECT i.seq, i.input_url, r.images FROM images i JOIN requests r ON r.request_id = i.request_id"
    " WHERE i.request_id = ? AND i.enqueued_at IS NULL AND i.status = 'Pending'"
    " AND NOT EXISTS (SELECT 1 FROM image_aliases a WHERE a.request_id = i.request_id AND a.seq = i.seq)"
    " ORDER BY i.seq"
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
    " WHERE request_id = ? AND seq = ? AND status = 'Pending'"
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
MARK_PROCESSING = (
    "UPDATE requests SET status = 'Processing', updated_at = ? WHERE request_id = ? AND status = 'Pending'"
)
SELECT_TERMINAL = "SELECT seq FROM images WHERE request_id = ? AND status <> 'Pending'"
COMPLETE_REQUEST = (
    "UPDATE requests SET status = CASE WHEN status = 'Cancelling' THEN 'Cancelled' ELSE 'Completed' END,"
    " completed_at = ?, updated_at = ?"
    " WHERE request_id = ? AND status NOT IN ('Completed', 'Cancelled') AND NOT EXISTS"
    " (SELECT 1 FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Pending')"
)
SELECT_IMAGES = (
    "SELECT i.seq, i.serial, p.name, i.url_index, i.input_url, i.status, i.output_url, i.error,"
    " i.bytes_in, i.bytes_out, i.width, i.height, i.attempts, i.enqueued_at, i.started_at, i.finished_at"
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

# -- per-request options, repeated URLs, cancel ---------------------------------------------------

INSERT_OPTIONS = (
    "INSERT INTO request_options (request_id, quality, size_target, format, max_dimension) VALUES (?, ?, ?, ?, ?)"
)
SELECT_OPTIONS = "SELECT quality, size_target, format, max_dimension FROM request_options WHERE request_id = ?"
INSERT_ALIAS = "INSERT INTO image_aliases (request_id, seq, leader_seq) VALUES (?, ?, ?)"
SELECT_IMAGE_STATE = (
    "SELECT i.status, a.leader_seq, o.quality, o.size_target, o.format, o.max_dimension FROM images i"
    " LEFT JOIN image_aliases a ON a.request_id = i.request_id AND a.seq = i.seq"
    " LEFT JOIN request_options o ON o.request_id = i.request_id"
    " WHERE i.request_id = ? AND i.seq = ?"
)
SELECT_ALIAS_SEQS = "SELECT seq FROM image_aliases WHERE request_id = ? AND leader_seq = ? ORDER BY seq"
COPY_DONE_TO_ALIASES = (
    "UPDATE images SET status = 'Done', output_url = ?, error = NULL, bytes_in = ?, bytes_out = ?,"
    " width = ?, height = ?, format = ?, quality = ?, finished_at = ?"
    " WHERE request_id = ? AND status = 'Pending' AND seq IN"
    " (SELECT a.seq FROM image_aliases a WHERE a.request_id = ? AND a.leader_seq = ?)"
)
COPY_FAILED_TO_ALIASES = (
    "UPDATE images SET status = 'Failed', error = ?, finished_at = ?"
    " WHERE request_id = ? AND status = 'Pending' AND seq IN"
    " (SELECT a.seq FROM image_aliases a WHERE a.request_id = ? AND a.leader_seq = ?)"
)
MARK_CANCELLING = (
    "UPDATE requests SET status = 'Cancelling', updated_at = ?"
    " WHERE request_id = ? AND status IN ('Pending', 'Processing') AND EXISTS"
    " (SELECT 1 FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Pending')"
)
# Unstarted images, except the aliases of a leader that has started (they finish with it).
SKIP_UNSTARTED = (
    "UPDATE images SET status = 'Skipped', error = 'cancelled before it started', finished_at = ?"
    " WHERE request_id = ? AND status = 'Pending' AND started_at IS NULL AND NOT EXISTS"
    " (SELECT 1 FROM image_aliases a JOIN images l ON l.request_id = a.request_id AND l.seq = a.leader_seq"
    " WHERE a.request_id = images.request_id AND a.seq = images.seq AND l.started_at IS NOT NULL)"
)
