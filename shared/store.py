"""The database: requests, their products and images, and webhook delivery attempts.

One ``Store`` works over any DB-API connection factory plus a ``Dialect`` (SQLite by default,
SQL Server through pyodbc in production). The SQL here is generic with ``?`` parameters; what
differs between the two lives in ``shared.sql_dialect``.

Concurrency: connections, transactions and retries of transient errors are ``shared.database``'s.
State changes are conditional updates, so a redelivered message or a racing worker cannot finish
an image or complete a request twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from shared import store_sql as sql
from shared.database import SQLITE_BUSY_TIMEOUT_S, Database, sqlite_connector, sqlserver_connector
from shared.errors import MAX_ERROR_CHARS, DuplicateRequest
from shared.models import (
    DeliveryAttempt,
    ImageOutcome,
    ImageRecord,
    ImageStatus,
    ImageTask,
    ProductRow,
    RequestRecord,
    RequestStatus,
)
from shared.settings import Settings
from shared.sql_dialect import DBAPIConnection, DBAPICursor, Dialect

logger = logging.getLogger(__name__)

T = TypeVar("T")

BULK_ROWS = 1000  # rows per executemany call: bounds the parameter lists held in memory
IN_LIST_SIZE = 500  # seqs per "IN (...)" (SQL Server allows 2,100 parameters a statement)
__all__ = ["MAX_ERROR_CHARS", "DuplicateRequest", "Store"]  # re-exported for callers of the old names


def _now() -> datetime:
    return datetime.now(UTC)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Store:
    """The database of imgpipe; safe to share between threads (one connection each)."""

    def __init__(self, connect: Callable[[], DBAPIConnection], dialect: Dialect) -> None:
        self._db = Database(connect, dialect)
        self.dialect = dialect
        self._run = self._db.run
        self._fetch_all = self._db.fetch_all
        self._update = self._db.update
        self._connection = self._db.connection

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """SQL Server when a connection string is set, else SQLite at ``settings.sqlite_path``."""
        if settings.sqlserver_connection_string:
            return cls.for_sqlserver(str(settings.sqlserver_connection_string))
        return cls.for_sqlite(settings.sqlite_path)

    @classmethod
    def for_sqlite(cls, path: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> Store:
        return cls(*sqlite_connector(path, busy_timeout_s))

    @classmethod
    def for_sqlserver(cls, connection_string: str) -> Store:
        return cls(*sqlserver_connector(connection_string))

    def ensure_schema(self) -> None:
        """Create whatever tables and indexes are missing (safe to run from many processes)."""
        for statement in self.dialect.schema_statements():
            try:
                self._update(statement, ())
            except Exception as exc:
                if not self.dialect.is_already_exists(exc):
                    raise

    def close(self) -> None:
        self._db.close()

    # -- requests ----------------------------------------------------------------------------------

    def create_request(
        self,
        request_id: str,
        products: Sequence[ProductRow],
        webhook_url: str | None,
        idempotency_key: str | None,
    ) -> None:
        """Store a request with its products and Pending images (seq 0..m-1 in input order).

        Raises ``DuplicateRequest`` (with the existing request id) if the idempotency key is taken.
        """
        now = self.dialect.to_db(_now())
        image_count = sum(len(product.urls) for product in products)
        request_row = (
            request_id,
            "Pending",
            webhook_url,
            idempotency_key,
            len(products),
            image_count,
            now,
            now,
        )

        def image_rows() -> Iterator[tuple[Any, ...]]:
            seq = 0
            for product in products:
                for url_index, url in enumerate(product.urls):
                    yield (request_id, seq, product.serial, url_index, url)
                    seq += 1

        def work(cursor: DBAPICursor) -> None:
            if idempotency_key is not None:
                cursor.execute(sql.SELECT_BY_KEY, (idempotency_key,))
                existing = cursor.fetchone()
                if existing is not None:
                    raise DuplicateRequest(str(existing[0]).strip())
            cursor.execute(sql.INSERT_REQUEST, request_row)
            self.dialect.prepare_bulk(cursor, self._connection())
            product_rows = ((request_id, p.serial, p.line, p.name) for p in products)
            for chunk in _chunks(product_rows, BULK_ROWS):
                cursor.executemany(sql.INSERT_PRODUCT, chunk)
            for chunk in _chunks(image_rows(), BULK_ROWS):
                cursor.executemany(sql.INSERT_IMAGE, chunk)

        try:
            self._run(work, write=True)
        except Exception as exc:
            if idempotency_key is None or not self.dialect.is_unique_violation(exc):
                raise
            existing_id = self.find_by_idempotency_key(idempotency_key)  # a racing insert won
            if existing_id is None:
                raise
            raise DuplicateRequest(existing_id) from exc

    def find_by_idempotency_key(self, key: str) -> str | None:
        rows = self._fetch_all(sql.SELECT_BY_KEY, (key,))
        return str(rows[0][0]).strip() if rows else None

    def get_request(self, request_id: str) -> RequestRecord | None:
        rows = self._fetch_all(sql.SELECT_REQUEST, (request_id,))
        if not rows:
            return None
        row, from_db = rows[0], self.dialect.from_db
        created_at, updated_at = from_db(row[4]), from_db(row[5])
        assert created_at is not None and updated_at is not None  # NOT NULL columns
        # fmt: off
        return RequestRecord(
            request_id=request_id, status=RequestStatus(row[0]), webhook_url=row[1], products=int(row[2]),
            images=int(row[3]), done=int(row[8]), failed=int(row[9]), created_at=created_at,
            updated_at=updated_at, completed_at=from_db(row[6]), fanout_completed_at=from_db(row[7]),
        )
        # fmt: on

    def unenqueued_tasks(self, request_id: str) -> list[ImageTask]:
        rows = self._fetch_all(sql.SELECT_UNENQUEUED, (request_id,))
        return [ImageTask(request_id, int(seq), str(url), int(total)) for seq, url, total in rows]

    def mark_enqueued(self, request_id: str, seqs: Sequence[int]) -> None:
        now = self.dialect.to_db(_now())

        def work(cursor: DBAPICursor) -> None:
            for chunk in _chunks(sorted(set(seqs)), IN_LIST_SIZE):
                marks = ", ".join("?" for _ in chunk)
                cursor.execute(sql.MARK_ENQUEUED.format(marks), (now, request_id, *chunk))

        if seqs:
            self._run(work, write=True)

    def mark_fanout_complete(self, request_id: str) -> None:
        now = self.dialect.to_db(_now())
        self._update(sql.MARK_FANOUT_COMPLETE, (now, now, request_id))

    def stale_fanouts(self, older_than: datetime, limit: int = 100) -> list[str]:
        """Requests created before ``older_than`` whose fan-out never finished, oldest first."""
        statement = self.dialect.select_first(limit, sql.STALE_FANOUTS)
        return [str(row[0]).strip() for row in self._fetch_all(statement, (self.dialect.to_db(older_than),))]

    def complete_request(self, request_id: str) -> bool:
        """Mark the request Completed; True for exactly one caller, and only once no image is Pending."""
        now = self.dialect.to_db(_now())
        return self._update(sql.COMPLETE_REQUEST, (now, now, request_id))

    def mark_fanin_reseed(self, request_id: str) -> None:
        """Note that images finished while Redis was unreachable, so its count must be rebuilt."""
        self._update(sql.MARK_FANIN_RESEED, (self.dialect.to_db(_now()), request_id))

    def fanin_reseed_needed(self, request_id: str) -> bool:
        rows = self._fetch_all(sql.SELECT_FANIN_RESEED, (request_id,))
        return bool(rows) and rows[0][0] is not None

    # -- images --------------------------------------------------------------------------------------

    def image_status(self, request_id: str, seq: int) -> ImageStatus | None:
        rows = self._fetch_all(sql.SELECT_IMAGE_STATUS, (request_id, seq))
        return ImageStatus(rows[0][0]) if rows else None

    def mark_started(self, request_id: str, seq: int) -> None:
        self._update(sql.MARK_STARTED, (self.dialect.to_db(_now()), request_id, seq))

    def _finish_image(self, statement: str, params: Sequence[Any], request_id: str, now: Any) -> bool:
        def work(cursor: DBAPICursor) -> bool:
            cursor.execute(statement, params)
            if cursor.rowcount <= 0:
                return False  # already terminal: a redelivery or a racing worker finished it
            cursor.execute(sql.MARK_PROCESSING, (now, request_id))
            return True

        return self._run(work, write=True)

    def record_done(self, request_id: str, seq: int, outcome: ImageOutcome) -> bool:
        """Record a compressed image if it is still Pending; True if this call changed it."""
        now = self.dialect.to_db(_now())
        o = outcome
        params = (o.output_url, o.bytes_in, o.bytes_out, o.width, o.height, o.format, o.quality,
                  o.download_ms, o.process_ms, o.store_ms, now, request_id, seq)  # fmt: skip
        return self._finish_image(sql.RECORD_DONE, params, request_id, now)

    def record_failed(self, request_id: str, seq: int, error: str) -> bool:
        """Record a failed image if it is still Pending; True if this call changed it."""
        now = self.dialect.to_db(_now())
        params = (error[:MAX_ERROR_CHARS], now, request_id, seq)
        return self._finish_image(sql.RECORD_FAILED, params, request_id, now)

    def terminal_seqs(self, request_id: str) -> set[int]:
        return {int(row[0]) for row in self._fetch_all(sql.SELECT_TERMINAL, (request_id,))}

    def list_images(self, request_id: str) -> list[ImageRecord]:
        from_db = self.dialect.from_db
        # fmt: off
        return [
            ImageRecord(
                request_id=request_id, seq=int(r[0]), serial=int(r[1]), product_name=r[2],
                url_index=int(r[3]), input_url=r[4], status=ImageStatus(r[5]), output_url=r[6], error=r[7],
                bytes_in=r[8], bytes_out=r[9], width=r[10], height=r[11], attempts=int(r[12]),
                enqueued_at=from_db(r[13]), started_at=from_db(r[14]), finished_at=from_db(r[15]),
            )
            for r in self._fetch_all(sql.SELECT_IMAGES, (request_id,))
        ]
        # fmt: on

    # -- webhook deliveries ------------------------------------------------------------------------

    def record_delivery_attempt(self, attempt: DeliveryAttempt) -> bool:
        """Record (or claim) one attempt; True if this call inserted it, False if the number was taken.

        Claiming an attempt number before sending is what keeps two racing notifies from both
        posting: only the one whose insert wins may send.
        """
        statement = self.dialect.insert_if_absent(
            "webhook_deliveries", sql.DELIVERY_COLUMNS, ("request_id", "attempt")
        )
        error = attempt.error[:MAX_ERROR_CHARS] if attempt.error is not None else None
        a = attempt
        params = (a.request_id, a.attempt, a.delivery_id, self.dialect.to_db(a.attempted_at), a.url,
                  a.status_code, error, int(a.succeeded))  # fmt: skip
        return self._update(statement, params)

    def take_over_delivery_claim(self, request_id: str, attempt: int, marker: str, older_than: datetime) -> bool:
        """Claim an attempt whose sender died (unfinished since before ``older_than``); True if won."""
        now, cutoff = self.dialect.to_db(_now()), self.dialect.to_db(older_than)
        return self._update(sql.TAKE_OVER_DELIVERY_CLAIM, (now, request_id, attempt, marker, cutoff))

    def release_delivery_claim(self, request_id: str, attempt: int) -> None:
        """Drop an attempt claimed but never sent (the sender failed before posting)."""
        self._update(sql.RELEASE_DELIVERY_CLAIM, (request_id, attempt))

    def finish_delivery_attempt(
        self, request_id: str, attempt: int, status_code: int | None, error: str | None, succeeded: bool
    ) -> None:
        """Fill in the outcome of an attempt claimed with ``record_delivery_attempt``."""
        error = error[:MAX_ERROR_CHARS] if error is not None else None
        self._update(sql.FINISH_DELIVERY, (status_code, error, int(succeeded), request_id, attempt))

    def delivery_attempts(self, request_id: str) -> list[DeliveryAttempt]:
        attempts = []
        for row in self._fetch_all(sql.SELECT_DELIVERIES, (request_id,)):
            attempted_at = self.dialect.from_db(row[3])
            assert attempted_at is not None  # NOT NULL column
            # fmt: off
            attempts.append(DeliveryAttempt(
                request_id=request_id, attempt=int(row[1]), delivery_id=str(row[2]),
                attempted_at=attempted_at, url=row[4], status_code=row[5], error=row[6],
                succeeded=bool(row[7]),
            ))
            # fmt: on
        return attempts
