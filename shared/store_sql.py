"""The SQL the store sends, generic across SQLite and T-SQL (``?`` parameters).

Kept apart from ``shared.store`` so the statements can be read (and parsed by the T-SQL check)
in one place; what differs between the dialects lives in ``shared.sql_dialect``. Rows are read
by the column names (or aliases) these statements select.

Seeks on SQL Server: pyodbc binds a Python ``str`` as NVARCHAR, which outranks the CHAR(36)
``request_id`` column and would convert the column (CONVERT_IMPLICIT) and scan. Every request id
parameter is therefore written ``CAST(? AS VARCHAR(36))``: the parameter is converted,
never the column. (SQLite reads the same CAST as TEXT.) Why not UNIQUEIDENTIFIER: it would need a
cast of every parameter just the same, a rewrite of every key and foreign key of a deployed
database, and ids would come back upper-case; the binary-collated CHAR(36) keeps the id the same
text on both dialects, and the cast costs nothing.

Locking under READ_COMMITTED_SNAPSHOT (Azure SQL's default) and under plain READ COMMITTED:
every UPDATE finds its rows by a key seek, so it locks only the rows it changes, never a
concurrent upload's. ``COMPLETE_REQUEST``'s NOT EXISTS reads images by row version under RCSI;
that is safe because images only ever leave Pending, and the worker that finishes the last image
calls it after its own commit. The webhook claim is a plain INSERT on the primary key (a loser
gets a duplicate-key error) rather than MERGE ... HOLDLOCK, so it takes no key-range locks.
"""

from __future__ import annotations

# Status values are written literally in the SQL below; tests check they match the enums.


INSERT_REQUEST = (
    "INSERT INTO requests (request_id, status, webhook_url, idempotency_key, upload_sha256, products, images,"
    " created_at, updated_at, done_images, failed_images, skipped_images, repeated_images)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?)"
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
REQUEST_EXISTS = "SELECT request_id FROM requests WHERE request_id = CAST(? AS VARCHAR(36))"
# any_pending is one index seek (IX_images_request_status), not a count: the counts are kept on
# requests. It tells a finished request whose counts missed images finished by a build that did
# not keep them (the window between migration 0004 and the new deployment).
SELECT_REQUEST = (
    "SELECT status, webhook_url, products, images, created_at, updated_at, completed_at,"
    " fanout_completed_at, done_images, failed_images, skipped_images, repeated_images,"
    " CASE WHEN EXISTS (SELECT 1 FROM images i WHERE i.request_id = requests.request_id"
    " AND i.status = 'Pending') THEN 1 ELSE 0 END AS any_pending"
    " FROM requests WHERE request_id = CAST(? AS VARCHAR(36))"
)
# Once no image is Pending, no image of the request changes any more: a recount is final.
RECOUNT_IMAGES = (
    "UPDATE requests SET"
    " done_images = (SELECT COUNT(*) FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Done'),"
    " failed_images = (SELECT COUNT(*) FROM images i WHERE i.request_id = requests.request_id"
    " AND i.status = 'Failed'),"
    " skipped_images = (SELECT COUNT(*) FROM images i WHERE i.request_id = requests.request_id"
    " AND i.status = 'Skipped') WHERE request_id = CAST(? AS VARCHAR(36))"
)
SELECT_PENDING_RANGE = (
    "SELECT i.seq, i.input_url, r.images AS total FROM images i JOIN requests r ON r.request_id = i.request_id"
    " WHERE i.request_id = CAST(? AS VARCHAR(36)) AND i.seq >= ? AND i.seq < ? AND i.status = 'Pending'{}"
    " AND NOT EXISTS (SELECT 1 FROM image_aliases a WHERE a.request_id = i.request_id AND a.seq = i.seq)"
    " ORDER BY i.seq"
)
UNMARKED_ONLY = " AND i.enqueued_at IS NULL"
MARK_ENQUEUED_RANGE = (
    "UPDATE images SET enqueued_at = ? WHERE request_id = CAST(? AS VARCHAR(36)) AND seq >= ? AND seq < ?"
    " AND enqueued_at IS NULL"
)
# A seek on IX_images_unenqueued (filtered on enqueued_at IS NULL): no scan of a big request.
ANY_UNENQUEUED = "seq FROM images WHERE request_id = CAST(? AS VARCHAR(36)) AND enqueued_at IS NULL"
MARK_FANOUT_COMPLETE = (
    "UPDATE requests SET fanout_completed_at = ?, updated_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND fanout_completed_at IS NULL"
)
STALLED_FANOUTS = (
    "r.request_id, r.images FROM requests r WHERE r.fanout_completed_at IS NULL AND r.created_at < ?"
    " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.request_id = r.request_id AND i.enqueued_at >= ?)"
    " ORDER BY r.created_at"
)
SELECT_IMAGE_STATUS = "SELECT status, finished_at FROM images WHERE request_id = CAST(? AS VARCHAR(36)) AND seq = ?"
MARK_STARTED = (
    "UPDATE images SET started_at = COALESCE(started_at, ?), attempts = attempts + 1"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND seq = ? AND status = 'Pending'"
)
RECORD_DONE = (
    "UPDATE images SET status = 'Done', output_url = ?, error = NULL, bytes_in = ?, bytes_out = ?,"
    " width = ?, height = ?, format = ?, quality = ?, download_ms = ?, process_ms = ?, store_ms = ?,"
    " finished_at = ? WHERE request_id = CAST(? AS VARCHAR(36)) AND seq = ? AND status = 'Pending'"
)
RECORD_FAILED = (
    "UPDATE images SET status = 'Failed', error = ?, finished_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND seq = ? AND status = 'Pending'"
)
NOTE_RETRY = (
    "UPDATE images SET error = ?, next_attempt_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND seq = ? AND status = 'Pending'"
)
# Run in the same transaction as the image's change of status, so the counts are exact. It also
# answers the request's fan-in re-seed mark (``Dialect.returning``: OUTPUT / RETURNING), read
# under the row's write lock after the image was recorded, in the same round trip.
COUNT_FINISHED_IMAGE = (
    "UPDATE requests SET status = CASE WHEN status = 'Pending' THEN 'Processing' ELSE status END,"
    " done_images = done_images + ?, failed_images = failed_images + ?, updated_at = ?{output}"
    " WHERE request_id = CAST(? AS VARCHAR(36)){returning}"
)
SELECT_TERMINAL = "SELECT seq FROM images WHERE request_id = CAST(? AS VARCHAR(36)) AND status <> 'Pending'"
COMPLETE_REQUEST = (
    "UPDATE requests SET status = CASE WHEN status = 'Cancelling' THEN 'Cancelled' ELSE 'Completed' END,"
    " completed_at = ?, updated_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND status NOT IN ('Completed', 'Cancelled') AND NOT EXISTS"
    " (SELECT 1 FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Pending')"
)
SELECT_COMPLETED_AT = (
    "SELECT completed_at FROM requests WHERE request_id = CAST(? AS VARCHAR(36))"
    " AND status IN ('Completed', 'Cancelled')"
)
SELECT_IMAGES = (
    "SELECT i.seq, i.serial, p.name AS product_name, i.url_index, i.input_url, i.status, i.output_url,"
    " i.error, i.bytes_in, i.bytes_out, i.width, i.height, i.attempts, i.enqueued_at, i.started_at,"
    " i.finished_at, i.next_attempt_at"
    " FROM images i JOIN products p ON p.request_id = i.request_id AND p.serial = i.serial"
    " WHERE i.request_id = CAST(? AS VARCHAR(36)) ORDER BY i.seq"
)
INSERT_DELIVERY = (
    "INSERT INTO webhook_deliveries (request_id, attempt, delivery_id, attempted_at, url, status_code,"
    " error, succeeded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SELECT_DELIVERIES = (
    "SELECT attempt, delivery_id, attempted_at, url, status_code, error, succeeded"
    " FROM webhook_deliveries WHERE request_id = CAST(? AS VARCHAR(36)) ORDER BY attempt"
)
SELECT_DELIVERY = (
    "SELECT delivery_id, attempted_at, error FROM webhook_deliveries"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND attempt = ?"
)
MARK_FANIN_RESEED = "UPDATE requests SET fanin_reseed_at = ? WHERE request_id = CAST(? AS VARCHAR(36))"
FINISH_DELIVERY = (
    "UPDATE webhook_deliveries SET status_code = ?, error = ?, succeeded = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND attempt = ?"
)
RELEASE_DELIVERY_CLAIM = (
    "DELETE FROM webhook_deliveries WHERE request_id = CAST(? AS VARCHAR(36)) AND attempt = ? AND succeeded = 0"
    " AND status_code IS NULL"
)
TAKE_OVER_DELIVERY_CLAIM = (
    "UPDATE webhook_deliveries SET attempted_at = ? WHERE request_id = CAST(? AS VARCHAR(36)) AND attempt = ?"
    " AND succeeded = 0 AND status_code IS NULL AND error = ? AND attempted_at < ?"
)
SELECT_FANIN_RESEED = "SELECT fanin_reseed_at FROM requests WHERE request_id = CAST(? AS VARCHAR(36))"

# -- per-request options, repeated URLs, cancel (issue 13; migration 0005) --------------------------

INSERT_OPTIONS = (
    "INSERT INTO request_options (request_id, quality, size_target, format, max_dimension) VALUES (?, ?, ?, ?, ?)"
)
SELECT_OPTIONS = (
    "SELECT quality, size_target, format, max_dimension FROM request_options"
    " WHERE request_id = CAST(? AS VARCHAR(36))"
)
INSERT_ALIAS = "INSERT INTO image_aliases (request_id, seq, leader_seq) VALUES (?, ?, ?)"
# Everything processing one image message reads, in one statement: has_repeats is a seek on
# IX_image_aliases_leader; the re-seed mark is only used when the image is already terminal.
SELECT_IMAGE_STATE = (
    "SELECT i.status, a.leader_seq, o.quality, o.size_target, o.format, o.max_dimension, r.fanin_reseed_at,"
    " CASE WHEN EXISTS (SELECT 1 FROM image_aliases x WHERE x.request_id = i.request_id"
    " AND x.leader_seq = i.seq) THEN 1 ELSE 0 END AS has_repeats"
    " FROM images i JOIN requests r ON r.request_id = i.request_id"
    " LEFT JOIN image_aliases a ON a.request_id = i.request_id AND a.seq = i.seq"
    " LEFT JOIN request_options o ON o.request_id = i.request_id"
    " WHERE i.request_id = CAST(? AS VARCHAR(36)) AND i.seq = ?"
)
SELECT_ALIAS_SEQS = (
    "SELECT seq FROM image_aliases WHERE request_id = CAST(? AS VARCHAR(36)) AND leader_seq = ? ORDER BY seq"
)
# In the leader's transaction: its Pending aliases take its outcome (the counts follow the rowcount).
COPY_DONE_TO_ALIASES = (
    "UPDATE images SET status = 'Done', output_url = ?, error = NULL, bytes_in = ?, bytes_out = ?,"
    " width = ?, height = ?, format = ?, quality = ?, finished_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND status = 'Pending' AND seq IN"
    " (SELECT a.seq FROM image_aliases a WHERE a.request_id = CAST(? AS VARCHAR(36)) AND a.leader_seq = ?)"
)
COPY_FAILED_TO_ALIASES = (
    "UPDATE images SET status = 'Failed', error = ?, finished_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND status = 'Pending' AND seq IN"
    " (SELECT a.seq FROM image_aliases a WHERE a.request_id = CAST(? AS VARCHAR(36)) AND a.leader_seq = ?)"
)
MARK_CANCELLING = (
    "UPDATE requests SET status = 'Cancelling', updated_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND status IN ('Pending', 'Processing') AND EXISTS"
    " (SELECT 1 FROM images i WHERE i.request_id = requests.request_id AND i.status = 'Pending')"
)
# Unstarted images, except the aliases of a leader that has started (they finish with it).
SKIP_UNSTARTED = (
    "UPDATE images SET status = 'Skipped', error = 'cancelled before it started', finished_at = ?"
    " WHERE request_id = CAST(? AS VARCHAR(36)) AND status = 'Pending' AND started_at IS NULL AND NOT EXISTS"
    " (SELECT 1 FROM image_aliases a JOIN images l ON l.request_id = a.request_id AND l.seq = a.leader_seq"
    " WHERE a.request_id = images.request_id AND a.seq = images.seq AND l.started_at IS NOT NULL)"
)
COUNT_SKIPPED_IMAGES = (
    "UPDATE requests SET skipped_images = skipped_images + ?, updated_at = ? WHERE request_id = CAST(? AS VARCHAR(36))"
)
