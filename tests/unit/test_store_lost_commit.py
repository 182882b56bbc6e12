"""Retries after a lost commit acknowledgement: the transaction committed, then the connection
failed before the client heard so. The retry must recognise its own committed work.

The fake: a real SQLite connection whose commit() commits and then raises a communication error
(once per armed call), with a dialect that counts that error as transient, as SQL Server's
08S01 "communication link failure" is.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.database import sqlite_connector
from shared.models import DeliveryAttempt, ImageOutcome, ProductRow, RequestStatus
from shared.sql_dialect import DBAPIConnection, RetryPolicy, SQLiteDialect
from shared.store import Store


class LinkLost(Exception):
    """What the driver raises when the connection drops during commit."""


class LossyDialect(SQLiteDialect):
    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, LinkLost) or super().is_transient(exc)


class AckLosingConnection:
    """A real sqlite3 connection; while ``armed``, the next commit commits and then raises."""

    armed = 0

    def __init__(self, real: sqlite3.Connection) -> None:
        self._real = real

    def cursor(self) -> Any:
        return self._real.cursor()

    def commit(self) -> None:
        self._real.execute("COMMIT") if self._real.in_transaction else None
        if AckLosingConnection.armed:
            AckLosingConnection.armed -= 1
            raise LinkLost("08S01 communication link failure after COMMIT")

    def rollback(self) -> None:
        if self._real.in_transaction:
            self._real.execute("ROLLBACK")

    def close(self) -> None:
        self._real.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    connect, dialect = sqlite_connector(tmp_path / "lossy.sqlite3")

    def lossy_connect() -> DBAPIConnection:
        return AckLosingConnection(connect())  # type: ignore[arg-type]

    AckLosingConnection.armed = 0
    built = Store(lossy_connect, LossyDialect(dialect.busy_timeout_ms, RetryPolicy(0.001, 0.001, 1.0)))  # type: ignore[attr-defined]
    built.ensure_schema()
    yield built
    built.close()


def lose_next_commit() -> None:
    AckLosingConnection.armed = 1


def new_request(store: Store, key: str | None = None, images: int = 2) -> str:
    request_id = str(uuid.uuid4())
    urls = tuple(f"https://example.com/{n}.jpg" for n in range(images))
    store.create_request(request_id, [ProductRow(2, 1, "Mug", urls)], "https://hooks.example/", key)
    return request_id


OUTCOME = ImageOutcome("https://out.example/0.jpg", 10, 5, 1, 1, "JPEG", 50, 1, 1, 1)


def test_create_request_with_a_key_recognises_its_own_stored_request(store: Store) -> None:
    lose_next_commit()
    request_id = new_request(store, key="k-lost")  # without the check: DuplicateRequest(itself)
    assert store.find_by_idempotency_key("k-lost") == request_id
    record = store.get_request(request_id)
    assert record is not None and record.images == 2


def test_create_request_without_a_key_recognises_its_own_stored_request(store: Store) -> None:
    lose_next_commit()
    request_id = new_request(store)  # without the check: a primary-key violation on the re-insert
    assert len(store.list_images(request_id)) == 2


def test_record_done_answers_true_once_and_counts_once(store: Store) -> None:
    request_id = new_request(store)
    lose_next_commit()
    assert store.record_done(request_id, 0, OUTCOME).changed is True  # the image was finished by this call
    assert store.record_done(request_id, 0, OUTCOME).changed is False  # a real redelivery still sees it done
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (1, 0)


def test_record_failed_after_a_lost_commit(store: Store) -> None:
    request_id = new_request(store)
    lose_next_commit()
    assert store.record_failed(request_id, 1, "404").changed is True
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (0, 1)


def test_complete_request_after_a_lost_commit_is_still_this_callers(store: Store) -> None:
    request_id = new_request(store, images=1)
    store.record_done(request_id, 0, OUTCOME)
    lose_next_commit()
    assert store.complete_request(request_id) is True  # else nobody would send the webhook
    assert store.complete_request(request_id) is False
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.COMPLETED


def claim(request_id: str, at: datetime) -> DeliveryAttempt:
    return DeliveryAttempt(request_id, "d-1", 1, at, "https://hooks.example/", None, "sending", False)


def test_webhook_claim_after_a_lost_commit_is_still_won(store: Store) -> None:
    request_id = new_request(store)
    now = datetime.now(UTC)
    lose_next_commit()
    assert store.record_delivery_attempt(claim(request_id, now)) is True  # else the webhook is never sent
    assert store.record_delivery_attempt(claim(request_id, now + timedelta(milliseconds=1))) is False


def test_a_rival_claim_is_not_mistaken_for_our_own(store: Store) -> None:
    request_id = new_request(store)
    first = datetime.now(UTC)
    assert store.record_delivery_attempt(claim(request_id, first)) is True
    lose_next_commit()  # armed, but this insert fails before any commit: nothing to recognise
    assert store.record_delivery_attempt(claim(request_id, first + timedelta(seconds=1))) is False


def test_take_over_after_a_lost_commit_is_still_won(store: Store) -> None:
    request_id = new_request(store)
    old = datetime.now(UTC) - timedelta(hours=1)
    store.record_delivery_attempt(claim(request_id, old))
    lose_next_commit()
    assert store.take_over_delivery_claim(request_id, 1, "sending", datetime.now(UTC) - timedelta(minutes=5))
    attempts = store.delivery_attempts(request_id)
    assert len(attempts) == 1 and attempts[0].attempted_at > old
