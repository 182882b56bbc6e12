"""The webhook deliveries part of the store: claims, take-overs and outcomes of each attempt.

A mixin of ``shared.store.Store`` (kept apart to keep each module to one screenful of concerns);
it uses the store's transaction helpers and dialect. See ``shared.store_sql`` for the statements.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from shared import store_sql as sql
from shared.database import Database, Row, rows_of
from shared.errors import MAX_ERROR_CHARS
from shared.models import DeliveryAttempt
from shared.sql_dialect import DBAPICursor, Dialect
from shared.sql_limits import truncate_utf16

Committed = Callable[[DBAPICursor], bool | None]


def first_row(rows: list[Row]) -> Row | None:
    return rows[0] if rows else None


def same_instant(dialect: Dialect, stored: Any, sent: Any) -> bool:
    """Whether a stored timestamp is the one this call sent (how a write recognises its own commit)."""
    return stored is not None and dialect.from_db(stored) == dialect.from_db(sent)


class DeliveryRecords:
    """Webhook delivery attempts, one row per (request, attempt number)."""

    dialect: Dialect
    _db: Database

    def _same_instant(self, stored: Any, sent: Any) -> bool:
        return same_instant(self.dialect, stored, sent)

    def record_delivery_attempt(self, attempt: DeliveryAttempt) -> bool:
        """Record (or claim) one attempt; True if this call inserted it, False if the number was taken.

        Claiming an attempt number before sending is what keeps two racing notifies from both
        posting: only the one whose insert wins may send. A plain INSERT on the primary key
        decides it (the loser's duplicate-key error means "taken"), with no range locks.
        """
        a = attempt
        attempted_at = self.dialect.to_db(a.attempted_at)
        error = truncate_utf16(a.error, MAX_ERROR_CHARS) if a.error is not None else None
        params = (a.request_id, a.attempt, a.delivery_id, attempted_at, a.url, a.status_code, error,
                  int(a.succeeded))  # fmt: skip

        def claimed_by_this_call(cursor: DBAPICursor) -> bool | None:
            cursor.execute(sql.SELECT_DELIVERY, (a.request_id, a.attempt))
            row = first_row(rows_of(cursor))
            ours = (
                row is not None
                and row["delivery_id"] == a.delivery_id
                and row["error"] == error
                and self._same_instant(row["attempted_at"], attempted_at)
            )
            return True if ours else None

        try:
            return self._db.update(sql.INSERT_DELIVERY, params, claimed_by_this_call)
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                return False
            raise

    def take_over_delivery_claim(self, request_id: str, attempt: int, marker: str, older_than: datetime) -> bool:
        """Claim an attempt whose sender died (unfinished since before ``older_than``); True if won."""
        now, cutoff = self.dialect.to_db(datetime.now(UTC)), self.dialect.to_db(older_than)

        def taken_over_by_this_call(cursor: DBAPICursor) -> bool | None:
            cursor.execute(sql.SELECT_DELIVERY, (request_id, attempt))
            row = first_row(rows_of(cursor))
            ours = row is not None and row["error"] == marker and self._same_instant(row["attempted_at"], now)
            return True if ours else None

        return self._db.update(
            sql.TAKE_OVER_DELIVERY_CLAIM, (now, request_id, attempt, marker, cutoff), taken_over_by_this_call
        )

    def release_delivery_claim(self, request_id: str, attempt: int) -> None:
        """Drop an attempt claimed but never sent (the sender failed before posting)."""
        self._db.update(sql.RELEASE_DELIVERY_CLAIM, (request_id, attempt), None)

    def finish_delivery_attempt(
        self, request_id: str, attempt: int, status_code: int | None, error: str | None, succeeded: bool
    ) -> None:
        """Fill in the outcome of an attempt claimed with ``record_delivery_attempt``."""
        error = truncate_utf16(error, MAX_ERROR_CHARS) if error is not None else None
        self._db.update(sql.FINISH_DELIVERY, (status_code, error, int(succeeded), request_id, attempt), None)

    def delivery_attempts(self, request_id: str) -> list[DeliveryAttempt]:
        attempts = []
        for row in self._db.fetch_all(sql.SELECT_DELIVERIES, (request_id,)):
            attempted_at = self.dialect.from_db(row["attempted_at"])
            assert attempted_at is not None  # NOT NULL column
            attempts.append(
                DeliveryAttempt(
                    request_id=request_id,
                    attempt=int(row["attempt"]),
                    delivery_id=str(row["delivery_id"]),
                    attempted_at=attempted_at,
                    url=row["url"],
                    status_code=row["status_code"],
                    error=row["error"],
                    succeeded=bool(row["succeeded"]),
                )
            )
        return attempts
