"""Every Store method against a real SQLite file, plus concurrent completion from threads and processes.

Tests whose name does not contain "sqlite" only use the ``store`` fixture, so
tests/sqlserver/ runs the very same functions against a live SQL Server.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared import store as store_module
from shared.errors import TransientFailure
from shared.models import DeliveryAttempt, ImageOutcome, ImageStatus, ProductRow, Recorded, RequestStatus
from shared.settings import Secret, Settings
from shared.sql_dialect import RetryPolicy, SQLiteDialect
from shared.sql_limits import INT_MAX, PRODUCT_NAME_UNITS, URL_UNITS, utf16_units
from shared.store import DuplicateRequest, Store

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    built = Store.for_sqlite(tmp_path / "db" / "imgpipe.sqlite3")
    built.ensure_schema()
    yield built
    built.close()


def new_id() -> str:
    return str(uuid.uuid4())


def products(count: int, urls_per_product: int = 2) -> list[ProductRow]:
    return [
        ProductRow(
            line=n + 1,
            serial=n,
            name=f"Product {n}",
            urls=tuple(f"https://example.com/{n}/{u}.jpg" for u in range(urls_per_product)),
        )
        for n in range(1, count + 1)
    ]


def outcome(seq: int) -> ImageOutcome:
    return ImageOutcome(
        output_url=f"https://out.example/{seq}.jpg", bytes_in=1000 + seq, bytes_out=400 + seq, width=640,
        height=480, format="JPEG", quality=50, download_ms=12, process_ms=34, store_ms=5,
    )  # fmt: skip


def created(store: Store, count: int = 2, urls: int = 2, key: str | None = None) -> str:
    request_id = new_id()
    store.create_request(request_id, products(count, urls), "https://hooks.example/done", key)
    return request_id


def test_schema_is_idempotent_and_request_is_stored(store: Store) -> None:
    store.ensure_schema()
    request_id = created(store, count=3, urls=2)
    record = store.get_request(request_id)
    assert record is not None
    assert (record.request_id, record.status, record.products, record.images) == (
        request_id, RequestStatus.PENDING, 3, 6,
    )  # fmt: skip
    assert (record.done, record.failed, record.webhook_url) == (0, 0, "https://hooks.example/done")
    assert record.created_at.tzinfo is not None and record.created_at.utcoffset() == timedelta(0)
    assert record.completed_at is None and record.fanout_completed_at is None


def test_unknown_request(store: Store) -> None:
    unknown = new_id()
    assert store.get_request(unknown) is None
    assert store.list_images(unknown) == []
    assert store.pending_tasks(unknown, 0, 10) == []
    assert store.image_status(unknown, 0) is None
    assert store.delivery_attempts(unknown) == []
    assert store.complete_request(unknown) is False


def test_images_are_numbered_in_input_order_with_their_product(store: Store) -> None:
    rows = [
        ProductRow(line=2, serial=7, name="Mug", urls=("https://a.example/1", "https://a.example/2")),
        ProductRow(line=3, serial=3, name="Cup", urls=("https://b.example/1",)),
    ]
    request_id = new_id()
    store.create_request(request_id, rows, None, None)
    images = store.list_images(request_id)
    assert [(i.seq, i.serial, i.product_name, i.url_index, i.input_url) for i in images] == [
        (0, 7, "Mug", 0, "https://a.example/1"),
        (1, 7, "Mug", 1, "https://a.example/2"),
        (2, 3, "Cup", 0, "https://b.example/1"),
    ]
    assert all(i.status is ImageStatus.PENDING and i.attempts == 0 and i.enqueued_at is None for i in images)
    assert store.get_request(request_id).webhook_url is None  # type: ignore[union-attr]


def test_pending_tasks_of_a_range_and_their_enqueue_marks(store: Store) -> None:
    request_id = created(store, count=60, urls=20)  # 1,200 images: several insert batches
    tasks = store.pending_tasks(request_id, 0, 1200)
    assert [t.seq for t in tasks] == list(range(1200))
    assert {t.total for t in tasks} == {1200}
    assert tasks[21].url == "https://example.com/2/1.jpg"
    assert [t.seq for t in store.pending_tasks(request_id, 100, 103)] == [100, 101, 102]
    store.record_failed(request_id, 101, "gone")
    assert [t.seq for t in store.pending_tasks(request_id, 100, 103)] == [100, 102]  # finished ones are not sent
    store.mark_enqueued_range(request_id, 0, 600)
    assert [t.seq for t in store.pending_tasks(request_id, 598, 602, unmarked_only=True)] == [600, 601]
    assert [t.seq for t in store.pending_tasks(request_id, 598, 602)] == [598, 599, 600, 601]
    first = store.list_images(request_id)[0].enqueued_at
    assert first is not None
    store.mark_enqueued_range(request_id, 0, 1)  # the first enqueue time is kept
    assert store.list_images(request_id)[0].enqueued_at == first


def test_duplicate_idempotency_key_names_the_existing_request(store: Store) -> None:
    key = f"key-{uuid.uuid4()}"
    first = created(store, key=key)
    assert store.find_by_idempotency_key(key) == first
    assert store.find_by_idempotency_key(f"other-{uuid.uuid4()}") is None
    second = new_id()
    with pytest.raises(DuplicateRequest) as caught:
        store.create_request(second, products(1), None, key)
    assert caught.value.request_id == first
    assert store.get_request(second) is None
    created(store)  # requests without a key never collide
    created(store)


def test_create_request_is_one_transaction(store: Store) -> None:
    request_id = new_id()
    rows = products(2)
    with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error, whichever driver
        store.create_request(request_id, [*rows, rows[0]], None, None)  # duplicate serial
    assert store.get_request(request_id) is None
    assert store.list_images(request_id) == []


def test_fanout_completion_and_stalled_fanouts(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    older, newer = created(store), created(store)
    after = datetime.now(UTC) + timedelta(hours=1)
    stalled = [request_id for request_id, _ in store.stalled_fanouts(after, limit=1000)]
    assert stalled.index(older) < stalled.index(newer)
    assert (older, 4) in store.stalled_fanouts(after, limit=1000)
    assert older not in [r for r, _ in store.stalled_fanouts(before, limit=1000)]
    # Taken before the progress, not after: on a loaded machine more than a millisecond can pass
    # between the two calls, and the request then looked stalled (failed once under make test).
    progressed = datetime.now(UTC) - timedelta(milliseconds=1)
    store.mark_enqueued_range(older, 0, 3)
    assert store.mark_fanout_complete_if_done(older) is False  # image 3 is still unsent
    assert older not in [r for r, _ in store.stalled_fanouts(progressed, limit=1000)]  # it made progress
    store.mark_enqueued_range(older, 3, 4)
    assert store.mark_fanout_complete_if_done(older) is True
    assert store.mark_fanout_complete_if_done(older) is False  # once
    marked = store.get_request(older)
    assert marked is not None and marked.fanout_completed_at is not None
    assert older not in [r for r, _ in store.stalled_fanouts(after, limit=1000)]
    assert newer in [r for r, _ in store.stalled_fanouts(after, limit=1000)]
    assert len(store.stalled_fanouts(after, limit=1)) == 1


def test_image_lifecycle(store: Store) -> None:
    request_id = created(store, count=2, urls=2)
    assert store.image_status(request_id, 0) is ImageStatus.PENDING
    assert store.image_status(request_id, 99) is None

    store.mark_started(request_id, 0)
    started = store.list_images(request_id)[0]
    store.mark_started(request_id, 0)
    again = store.list_images(request_id)[0]
    assert (started.attempts, again.attempts) == (1, 2)
    assert started.started_at is not None and again.started_at == started.started_at

    assert store.record_done(request_id, 0, outcome(0)).changed is True
    assert store.record_done(request_id, 0, outcome(0)).changed is False
    assert store.record_failed(request_id, 0, "late failure").changed is False
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.PROCESSING and record.done == 1

    assert store.record_failed(request_id, 1, "x" * 5000).changed is True
    assert store.record_done(request_id, 1, outcome(1)).changed is False
    assert store.terminal_seqs(request_id) == {0, 1}

    done, failed = store.list_images(request_id)[:2]
    assert (done.status, done.output_url, done.bytes_in, done.bytes_out, done.width, done.height) == (
        ImageStatus.DONE, "https://out.example/0.jpg", 1000, 400, 640, 480,
    )  # fmt: skip
    assert done.error is None and done.finished_at is not None
    assert failed.status is ImageStatus.FAILED and failed.output_url is None
    assert failed.error is not None and 0 < len(failed.error) <= store_module.MAX_ERROR_CHARS
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (1, 1)


def test_the_hot_path_answers_repeats_and_the_fanin_reseed_mark(store: Store) -> None:
    """image_state says whether later slots repeat the image and whether the request's fan-in is
    marked for a re-seed; record_* answer the mark from the transaction that recorded the image
    (OUTPUT / RETURNING on the counts' update), whether or not this call changed the image."""
    request_id = new_id()
    repeated = ProductRow(line=2, serial=1, name="Mug", urls=("https://x.example/a", "https://x.example/b",
                                                                "https://x.example/a"))  # fmt: skip
    store.create_request(request_id, [repeated], None, None)
    state = store.image_state(request_id, 0)
    assert state is not None and state.has_repeats and not state.fanin_reseed and state.leader_seq is None
    assert not store.image_state(request_id, 1).has_repeats  # type: ignore[union-attr]
    assert store.image_state(request_id, 2).leader_seq == 0  # type: ignore[union-attr]
    assert store.record_done(request_id, 1, outcome(1), has_repeats=False) == Recorded(True, False)
    store.mark_fanin_reseed(request_id)
    assert store.image_state(request_id, 1).fanin_reseed  # type: ignore[union-attr]
    assert store.record_done(request_id, 0, outcome(0)) == Recorded(True, True)
    assert store.record_failed(request_id, 0, "late") == Recorded(False, True)  # a redelivery reads it too
    assert store.terminal_seqs(request_id) == {0, 1, 2}  # the repeat took its leader's outcome
    record = store.get_request(request_id)
    assert record is not None and (record.done, record.failed) == (3, 0)


def test_complete_request_once_and_only_when_every_image_is_finished(store: Store) -> None:
    request_id = created(store, count=1, urls=2)
    store.record_done(request_id, 0, outcome(0))
    assert store.complete_request(request_id) is False  # seq 1 still Pending
    store.record_failed(request_id, 1, "404")
    assert store.complete_request(request_id) is True
    assert store.complete_request(request_id) is False
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.COMPLETED and record.completed_at is not None


def test_delivery_attempts_round_trip(store: Store) -> None:
    request_id = created(store)
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    url = "https://hooks.example/x"
    first = DeliveryAttempt(request_id, "d-1", 1, moment, url, 503, "server error", False)
    second = DeliveryAttempt(request_id, "d-1", 2, moment + timedelta(seconds=5), first.url, 200, None, True)
    store.record_delivery_attempt(second)
    store.record_delivery_attempt(first)
    store.record_delivery_attempt(DeliveryAttempt(request_id, "d-1", 1, moment, first.url, 200, None, True))
    assert store.delivery_attempts(request_id) == [first, second]  # a replayed attempt number is ignored


def test_values_at_the_column_limits_round_trip(store: Store) -> None:
    """NVARCHAR(n) counts UTF-16 code units: n/2 emoji fit exactly; an INT serial at its maximum."""
    emoji = "\N{GRINNING FACE}"
    request_id = new_id()
    name = emoji * (PRODUCT_NAME_UNITS // 2)
    url = "https://img.example/" + emoji * ((URL_UNITS - 20) // 2)
    store.create_request(request_id, [ProductRow(2, INT_MAX, name, (url,))], None, None)
    assert store.record_failed(request_id, 0, emoji * 5000).changed
    (image,) = store.list_images(request_id)
    assert (image.product_name, image.input_url, image.serial) == (name, url, INT_MAX)
    assert image.error is not None and utf16_units(image.error) == store_module.MAX_ERROR_CHARS


def test_idempotency_keys_are_compared_exactly(store: Store) -> None:
    first = created(store, key="Key-abc")
    assert store.find_by_idempotency_key("key-abc") is None  # SQL Server's default collation says equal
    second = created(store, key="KEY-ABC")
    assert first != second and store.find_by_idempotency_key("KEY-ABC") == second


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.stalled_fanouts(datetime(2024, 1, 1))


def test_threads_complete_images_concurrently(store: Store) -> None:
    request_id = created(store, count=10, urls=4)
    changed: list[list[int]] = [[] for _ in range(4)]
    completions: list[bool] = []
    barrier = threading.Barrier(4)

    def worker(index: int) -> None:
        barrier.wait()
        for seq in range(40):  # every thread races for every image
            finished = store.record_done(request_id, seq, outcome(seq)) if seq % 3 else (
                store.record_failed(request_id, seq, f"failed by {index}"))  # fmt: skip
            if finished.changed:
                changed[index].append(seq)
        completions.append(store.complete_request(request_id))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_changed = [seq for seqs in changed for seq in seqs]
    assert sorted(all_changed) == list(range(40))  # each image changed by exactly one thread
    assert completions.count(True) == 1
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.COMPLETED
    assert (record.done, record.failed) == (26, 14)


def test_threads_race_for_one_webhook_claim_and_one_wins(store: Store) -> None:
    """Each thread has its own connection: only one insert of an attempt number may win."""
    request_id = created(store)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claimant(index: int) -> None:
        attempt = DeliveryAttempt(request_id, "d-1", 1, datetime.now(UTC) + timedelta(microseconds=index),
                                  "https://hooks.example/", None, "sending", False)  # fmt: skip
        barrier.wait()
        results.append(store.record_delivery_attempt(attempt))

    threads = [threading.Thread(target=claimant, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert len(store.delivery_attempts(request_id)) == 1


WORKER_SCRIPT = """
import json, sys
from pathlib import Path
from shared.models import ImageOutcome
from shared.store import Store
store = Store.for_sqlite(Path(sys.argv[1]))
request_id, total = sys.argv[2], int(sys.argv[3])
changed = []
for seq in range(total):
    result = ImageOutcome(f"https://out.example/{seq}", 1, 1, 1, 1, "JPEG", 50, 0, 0, 0)
    if store.record_done(request_id, seq, result).changed:
        changed.append(seq)
print(json.dumps({"changed": changed, "completed": store.complete_request(request_id)}))
"""


def test_sqlite_processes_complete_images_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    store = Store.for_sqlite(path)
    store.ensure_schema()
    request_id = created(store, count=50, urls=4)
    command = [sys.executable, "-c", WORKER_SCRIPT, str(path), request_id, "200"]
    workers = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(worker.communicate(timeout=120)[0]) for worker in workers]
    assert all(worker.returncode == 0 for worker in workers)
    changed = sorted(seq for result in results for seq in result["changed"])
    assert changed == list(range(200))
    assert [result["completed"] for result in results].count(True) == 1
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.COMPLETED and record.done == 200
    store.close()


def test_sqlite_lock_held_too_long_raises_transient_failure(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    store = Store.for_sqlite(path, busy_timeout_s=0.01, retry_policy=RetryPolicy(0.001, 0.002, 0.01))
    store.ensure_schema()
    request_id = created(store)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(TransientFailure):
            store.record_done(request_id, 0, outcome(0))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.record_done(request_id, 0, outcome(0)).changed is True  # works again once the lock is gone
    store.close()


def test_sqlite_from_settings_makes_the_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "imgpipe.sqlite3"
    settings = Settings(storage_connection_string=Secret("UseDevelopmentStorage=true"), sqlite_path=path)
    store = Store.from_settings(settings)
    assert isinstance(store.dialect, SQLiteDialect)
    store.ensure_schema()
    assert path.exists()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_sqlite_store_reconnects_after_close(store: Store) -> None:
    request_id = created(store)
    store.close()
    assert store.get_request(request_id) is not None
