"""The images part of the store: what processing one image reads, starts and records.

A mixin of ``shared.store.Store`` like ``shared.store_deliveries``; the statements are in
``shared.store_sql``. This is the per-image hot path: in production every statement and every
commit is a round trip to SQL Server, so a normal image costs three transactions and four
statements (``image_state``, ``mark_started``, ``record_done``; tests/unit/test_store_round_trips.py).

Recording an image is a conditional update (only a Pending image changes), so a redelivered
message or a racing worker cannot finish an image twice; the request's counts change, and its
fan-in re-seed mark is read, in the same transaction. A slot whose URL repeats this image's
(an alias) takes its outcome in that transaction too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from shared import store_sql as sql
from shared.database import Database, Row, rows_of
from shared.errors import MAX_ERROR_CHARS
from shared.models import ImageOutcome, ImageRecord, ImageState, ImageStatus, Recorded
from shared.options import options_from_row
from shared.sql_dialect import DBAPICursor, Dialect
from shared.sql_limits import truncate_utf16
from shared.store_deliveries import first_row, same_instant


def _now() -> datetime:
    return datetime.now(UTC)


def _reseed_marked(row: Row | None) -> bool:
    return row is not None and row["fanin_reseed_at"] is not None


class ImageRecords:
    """Each image's state, its start, its outcome and its listing."""

    dialect: Dialect
    _db: Database

    def image_state(self, request_id: str, seq: int) -> ImageState | None:
        """In one read: the image's status, its leader if its URL repeats an earlier slot's, whether
        later slots repeat it, the request's options and its fan-in re-seed mark."""
        row = first_row(self._db.fetch_all(sql.SELECT_IMAGE_STATE, (request_id, seq)))
        if row is None:
            return None
        leader = int(row["leader_seq"]) if row["leader_seq"] is not None else None
        options = options_from_row(row["quality"], row["size_target"], row["format"], row["max_dimension"])
        return ImageState(ImageStatus(row["status"]), leader, options, has_repeats=bool(row["has_repeats"]),
                          fanin_reseed=_reseed_marked(row))  # fmt: skip

    def image_status(self, request_id: str, seq: int) -> ImageStatus | None:
        row = first_row(self._db.fetch_all(sql.SELECT_IMAGE_STATUS, (request_id, seq)))
        return ImageStatus(row["status"]) if row else None

    def mark_started(self, request_id: str, seq: int) -> bool:
        """Note an attempt on a Pending image; False if it is no longer Pending (e.g. skipped by a cancel)."""
        return self._db.update(sql.MARK_STARTED, (self.dialect.to_db(_now()), request_id, seq))

    def _finish_image(
        self, statement: str, params: Sequence[Any], request_id: str, seq: int, now: Any, status: ImageStatus,
        copy_to_aliases: tuple[str, Sequence[Any]] | None,
    ) -> Recorded:
        def reseed_marked(cursor: DBAPICursor) -> bool:
            cursor.execute(sql.SELECT_FANIN_RESEED, (request_id,))
            return _reseed_marked(first_row(rows_of(cursor)))

        def work(cursor: DBAPICursor) -> Recorded:
            cursor.execute(statement, params)
            if cursor.rowcount <= 0:  # already terminal: a redelivery or a racing worker finished it
                return Recorded(False, reseed_marked(cursor))
            slots = 1
            if copy_to_aliases is not None:
                cursor.execute(*copy_to_aliases)  # slots repeating this URL share its outcome
                slots += max(cursor.rowcount, 0)
            done, failed = (slots, 0) if status is ImageStatus.DONE else (0, slots)
            cursor.execute(self.dialect.returning(sql.COUNT_FINISHED_IMAGE, "fanin_reseed_at"),
                           (done, failed, now, request_id))  # fmt: skip
            return Recorded(True, _reseed_marked(first_row(rows_of(cursor))))

        def finished_by_this_call(cursor: DBAPICursor) -> Recorded | None:
            cursor.execute(sql.SELECT_IMAGE_STATUS, (request_id, seq))
            row = first_row(rows_of(cursor))
            ours = row is not None and row["status"] == status.value and same_instant(self.dialect,
                                                                                      row["finished_at"], now)
            return Recorded(True, reseed_marked(cursor)) if ours else None

        return self._db.run(work, write=True, committed=finished_by_this_call)

    def record_done(self, request_id: str, seq: int, outcome: ImageOutcome, *, has_repeats: bool = True) -> Recorded:
        """Record a compressed image if it is still Pending (``changed``: this call did).

        ``has_repeats=False`` (from ``image_state``) skips copying the outcome to repeats of its URL.
        """
        now = self.dialect.to_db(_now())
        o = outcome
        params = (o.output_url, o.bytes_in, o.bytes_out, o.width, o.height, o.format, o.quality,
                  o.download_ms, o.process_ms, o.store_ms, now, request_id, seq)  # fmt: skip
        aliases = (o.output_url, o.bytes_in, o.bytes_out, o.width, o.height, o.format, o.quality, now,
                   request_id, request_id, seq)  # fmt: skip
        copy = (sql.COPY_DONE_TO_ALIASES, aliases) if has_repeats else None
        return self._finish_image(sql.RECORD_DONE, params, request_id, seq, now, ImageStatus.DONE, copy)

    def record_failed(self, request_id: str, seq: int, error: str, *, has_repeats: bool = True) -> Recorded:
        """Record a failed image if it is still Pending (``changed``: this call did)."""
        now = self.dialect.to_db(_now())
        error = truncate_utf16(error, MAX_ERROR_CHARS)
        params = (error, now, request_id, seq)
        copy = (sql.COPY_FAILED_TO_ALIASES, (error, now, request_id, request_id, seq)) if has_repeats else None
        return self._finish_image(sql.RECORD_FAILED, params, request_id, seq, now, ImageStatus.FAILED, copy)

    def note_retry(self, request_id: str, seq: int, error: str, retry_at: datetime) -> bool:
        """Keep the last error of a still-Pending image and when its delayed retry is due."""
        params = (truncate_utf16(error, MAX_ERROR_CHARS), self.dialect.to_db(retry_at), request_id, seq)
        return self._db.update(sql.NOTE_RETRY, params)

    def terminal_seqs(self, request_id: str) -> set[int]:
        return {int(row["seq"]) for row in self._db.fetch_all(sql.SELECT_TERMINAL, (request_id,))}

    def list_images(self, request_id: str) -> list[ImageRecord]:
        from_db = self.dialect.from_db
        return [
            ImageRecord(
                request_id=request_id,
                seq=int(r["seq"]),
                serial=int(r["serial"]),
                product_name=r["product_name"],
                url_index=int(r["url_index"]),
                input_url=r["input_url"],
                status=ImageStatus(r["status"]),
                output_url=r["output_url"],
                error=r["error"],
                bytes_in=r["bytes_in"],
                bytes_out=r["bytes_out"],
                width=r["width"],
                height=r["height"],
                attempts=int(r["attempts"]),
                enqueued_at=from_db(r["enqueued_at"]),
                started_at=from_db(r["started_at"]),
                finished_at=from_db(r["finished_at"]),
                retry_at=from_db(r["next_attempt_at"]),
            )
            for r in self._db.fetch_all(sql.SELECT_IMAGES, (request_id,))
        ]
