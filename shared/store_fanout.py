"""The staged fan-out's part of the store: which images a range sends, and its progress marks.

A mixin of ``shared.store.Store`` like ``shared.store_deliveries``; the statements are in
``shared.store_sql``. The marks (``images.enqueued_at``, ``requests.fanout_completed_at``) are
progress evidence for ``shared.fanout``'s sweep, not guards: a range redelivered after its marks
sends again, and the image's own conditional updates keep that harmless.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared import store_sql as sql
from shared.database import Database
from shared.models import ImageTask
from shared.sql_dialect import Dialect


class FanoutRanges:
    """Pending images by range, and the fan-out's progress marks."""

    dialect: Dialect
    _db: Database

    def pending_tasks(self, request_id: str, start: int, end: int, *, unmarked_only: bool = False) -> list[ImageTask]:
        """The Pending images with ``start <= seq < end`` (only those never enqueued, if asked)."""
        statement = sql.SELECT_PENDING_RANGE.format(sql.UNMARKED_ONLY if unmarked_only else "")
        rows = self._db.fetch_all(statement, (request_id, start, end))
        return [ImageTask(request_id, int(r["seq"]), str(r["input_url"]), int(r["total"])) for r in rows]

    def mark_enqueued_range(self, request_id: str, start: int, end: int) -> None:
        """Note when the images ``start <= seq < end`` were first handed to the image queue."""
        self._db.update(sql.MARK_ENQUEUED_RANGE, (self.dialect.to_db(datetime.now(UTC)), request_id, start, end))

    def mark_fanout_complete_if_done(self, request_id: str) -> bool:
        """Mark the fan-out complete once no image is left unmarked; True if this call marked it.

        Run after the caller's own marks are committed, so of several racing fan-out invocations
        the one committing last sees every mark.
        """
        if self._db.fetch_all(self.dialect.select_first(1, sql.ANY_UNENQUEUED), (request_id,)):
            return False
        now = self.dialect.to_db(datetime.now(UTC))
        return self._db.update(sql.MARK_FANOUT_COMPLETE, (now, now, request_id))

    def stalled_fanouts(self, older_than: datetime, limit: int = 100) -> list[tuple[str, int]]:
        """Requests (id, images) created before ``older_than`` whose fan-out is unfinished and has
        marked no image since then, oldest first."""
        statement = self.dialect.select_first(limit, sql.STALLED_FANOUTS)
        cutoff = self.dialect.to_db(older_than)
        rows = self._db.fetch_all(statement, (cutoff, cutoff))
        return [(str(row["request_id"]).strip(), int(row["images"])) for row in rows]
