"""The database: requests, their products and images, and webhook delivery attempts.

One ``Store`` works over any DB-API connection factory plus a ``Dialect`` (SQLite by default,
SQL Server through pyodbc in production). The SQL (``shared.store_sql``) is generic with ``?``
parameters; what differs between the two lives in ``shared.sql_dialect``.

This module builds the store and keeps requests (create, look up, complete); each other concern
is a mixin of its own: ``store_images`` (the per-image hot path: state, start, outcome),
``store_fanout`` (the staged fan-out's ranges and marks), ``store_features`` (options, repeated
URLs, cancel) and ``store_deliveries`` (webhook claims).

Concurrency: connections, transactions and retries of transient errors are ``shared.database``'s.
State changes are conditional updates, so a redelivered message or a racing worker cannot finish
an image or complete a request twice. Every write whose answer matters (a stored request, a
finished image, a completion, a webhook claim) also says how to recognise its own committed
result, so a retry after a lost commit acknowledgement answers as the first attempt did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from shared import migrate
from shared import store_sql as sql
from shared.database import SQLITE_BUSY_TIMEOUT_S, Database, rows_of, sqlite_connector, sqlserver_connector
from shared.errors import MAX_ERROR_CHARS, DuplicateRequest
from shared.idempotency import KeyedRequest
from shared.models import (
    ProductRow,
    RequestRecord,
    RequestStatus,
)
from shared.options import CompressionOptions
from shared.settings import Settings
from shared.sql_dialect import (
    SQLSERVER_RETRY_BUDGET_S,
    SQLSERVER_STATEMENT_TIMEOUT_S,
    DBAPIConnection,
    DBAPICursor,
    Dialect,
    RetryPolicy,
    SQLiteDialect,
)
from shared.store_deliveries import DeliveryRecords, first_row
from shared.store_fanout import FanoutRanges
from shared.store_features import RequestFeatures, aliases_of
from shared.store_images import ImageRecords

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


class Store(ImageRecords, FanoutRanges, DeliveryRecords, RequestFeatures):
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
            return cls.for_sqlserver(
                str(settings.sqlserver_connection_string),
                statement_timeout_s=settings.sqlserver_statement_timeout_s,
                retry_budget_s=settings.sqlserver_retry_budget_s,
            )
        return cls.for_sqlite(settings.sqlite_path)

    @classmethod
    def for_sqlite(
        cls, path: Path, busy_timeout_s: float = SQLITE_BUSY_TIMEOUT_S, retry_policy: RetryPolicy | None = None
    ) -> Store:
        return cls(*sqlite_connector(path, busy_timeout_s, retry_policy))

    @classmethod
    def for_sqlserver(
        cls,
        connection_string: str,
        statement_timeout_s: int = SQLSERVER_STATEMENT_TIMEOUT_S,
        retry_budget_s: float = SQLSERVER_RETRY_BUDGET_S,
    ) -> Store:
        return cls(*sqlserver_connector(connection_string, statement_timeout_s, retry_budget_s))

    def ensure_schema(self) -> None:
        """Make sure the schema is current before use (safe to run from many processes).

        SQLite (local, embedded) applies its missing migrations itself. SQL Server is only
        checked: the app's identity needs no DDL rights, and a database behind this build raises
        ``ConfigError`` naming the command that upgrades it (``python -m shared.migrate``).
        """
        if isinstance(self.dialect, SQLiteDialect):
            migrate.migrate(self._db)
        else:
            migrate.require_current(self._db)

    def migrate(self) -> list[int]:
        """Apply every missing migration (needs DDL rights); the versions applied."""
        return migrate.migrate(self._db)

    def close(self) -> None:
        self._db.close()

    # -- requests ----------------------------------------------------------------------------------

    def create_request(
        self,
        request_id: str,
        products: Sequence[ProductRow],
        webhook_url: str | None,
        idempotency_key: str | None,
        *,
        upload_sha256: str | None = None,
        release_key_older_than: datetime | None = None,
        options: CompressionOptions | None = None,
    ) -> None:
        """Store a request with its products and Pending images (seq 0..m-1 in input order).

        Raises ``DuplicateRequest`` (with the existing request id) if the idempotency key is taken.
        A request holding the key since before ``release_key_older_than`` (an expired key) gives it
        up in the same transaction, so this one takes it. A URL that repeats an earlier one of the
        request becomes an alias of that first slot (its leader); ``options`` other than the
        defaults are stored with it.
        """
        now = self.dialect.to_db(_now())
        image_count = sum(len(product.urls) for product in products)
        aliases = aliases_of(request_id, products)
        request_row = (
            request_id,
            "Pending",
            webhook_url,
            idempotency_key,
            upload_sha256,
            len(products),
            image_count,
            now,
            now,
            len(aliases),
        )

        def image_rows() -> Iterator[tuple[Any, ...]]:
            seq = 0
            for product in products:
                for url_index, url in enumerate(product.urls):
                    yield (request_id, seq, product.serial, url_index, url)
                    seq += 1

        def stored_already(cursor: DBAPICursor) -> bool | None:
            # request ids are fresh per upload: a row under this id is this call's own, committed
            # by an attempt whose acknowledgement was lost.
            cursor.execute(sql.REQUEST_EXISTS, (request_id,))
            return True if rows_of(cursor) else None

        def work(cursor: DBAPICursor) -> bool:
            if idempotency_key is not None and release_key_older_than is not None:
                cursor.execute(sql.RELEASE_EXPIRED_KEY, (idempotency_key, self.dialect.to_db(release_key_older_than)))
            if idempotency_key is not None:
                cursor.execute(sql.SELECT_BY_KEY, (idempotency_key,))
                existing = first_row(rows_of(cursor))
                if existing is not None:
                    raise DuplicateRequest(str(existing["request_id"]).strip())
            cursor.execute(sql.INSERT_REQUEST, request_row)
            self.dialect.prepare_bulk(cursor, self._connection())
            product_rows = ((request_id, p.serial, p.line, p.name) for p in products)
            for chunk in _chunks(product_rows, BULK_ROWS):
                cursor.executemany(sql.INSERT_PRODUCT, chunk)
            for chunk in _chunks(image_rows(), BULK_ROWS):
                cursor.executemany(sql.INSERT_IMAGE, chunk)
            for alias_chunk in _chunks(aliases, BULK_ROWS):
                cursor.executemany(sql.INSERT_ALIAS, alias_chunk)
            if options is not None and not options.is_default:
                o = options
                cursor.execute(sql.INSERT_OPTIONS, (request_id, o.quality, o.size_target, o.format.value,
                                                    o.max_dimension))
            return True

        try:
            self._run(work, write=True, committed=stored_already)
        except Exception as exc:
            if idempotency_key is None or not self.dialect.is_unique_violation(exc):
                raise
            existing_id = self.find_by_idempotency_key(idempotency_key)  # a racing insert won
            if existing_id is None:
                raise
            if existing_id == request_id:
                return
            raise DuplicateRequest(existing_id) from exc

    def find_by_idempotency_key(self, key: str) -> str | None:
        row = first_row(self._fetch_all(sql.SELECT_BY_KEY, (key,)))
        return str(row["request_id"]).strip() if row else None

    def find_keyed_request(self, key: str) -> KeyedRequest | None:
        """The request an idempotency key (as stored: scoped) names, with its upload's fingerprint."""
        row = first_row(self._fetch_all(sql.SELECT_KEYED, (key,)))
        if row is None:
            return None
        created_at = self.dialect.from_db(row["created_at"])
        assert created_at is not None  # NOT NULL column
        upload_sha256 = str(row["upload_sha256"]).strip() if row["upload_sha256"] is not None else None
        return KeyedRequest(str(row["request_id"]).strip(), upload_sha256, created_at)

    def get_request(self, request_id: str) -> RequestRecord | None:
        row = first_row(self._fetch_all(sql.SELECT_REQUEST, (request_id,)))
        if row is None:
            return None
        finished = int(row["done_images"]) + int(row["failed_images"]) + int(row["skipped_images"])
        if not row["any_pending"] and finished != int(row["images"]):
            logger.warning("request %s: image counts were behind its images; recounting once", request_id)
            self._update(sql.RECOUNT_IMAGES, (request_id,))
            row = first_row(self._fetch_all(sql.SELECT_REQUEST, (request_id,)))
            assert row is not None  # requests are never deleted
        from_db = self.dialect.from_db
        created_at, updated_at = from_db(row["created_at"]), from_db(row["updated_at"])
        assert created_at is not None and updated_at is not None  # NOT NULL columns
        return RequestRecord(
            request_id=request_id,
            status=RequestStatus(row["status"]),
            webhook_url=row["webhook_url"],
            products=int(row["products"]),
            images=int(row["images"]),
            done=int(row["done_images"]),
            failed=int(row["failed_images"]),
            created_at=created_at,
            updated_at=updated_at,
            completed_at=from_db(row["completed_at"]),
            fanout_completed_at=from_db(row["fanout_completed_at"]),
            skipped=int(row["skipped_images"]),
            repeats=int(row["repeated_images"]),
        )

    def complete_request(self, request_id: str) -> bool:
        """Mark the request Completed; True for exactly one caller, and only once no image is Pending."""
        now = self.dialect.to_db(_now())

        def completed_by_this_call(cursor: DBAPICursor) -> bool | None:
            cursor.execute(sql.SELECT_COMPLETED_AT, (request_id,))
            row = first_row(rows_of(cursor))
            return True if row is not None and self._same_instant(row["completed_at"], now) else None

        return self._update(sql.COMPLETE_REQUEST, (now, now, request_id), completed_by_this_call)

    def mark_fanin_reseed(self, request_id: str) -> None:
        """Note that images finished while Redis was unreachable, so its count must be rebuilt."""
        self._update(sql.MARK_FANIN_RESEED, (self.dialect.to_db(_now()), request_id))

    def fanin_reseed_needed(self, request_id: str) -> bool:
        row = first_row(self._fetch_all(sql.SELECT_FANIN_RESEED, (request_id,)))
        return row is not None and row["fanin_reseed_at"] is not None
