"""Store support for per-request options, repeated URLs and cancel, against a real SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.models import ImageOutcome, ImageStatus, ProductRow, RequestStatus
from shared.options import CompressionOptions, OutputFormat
from shared.store import Store

LOGO, A, B = "https://x.example/logo.png", "https://x.example/a.jpg", "https://x.example/b.jpg"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    built = Store.for_sqlite(tmp_path / "imgpipe.sqlite3")
    built.ensure_schema()
    yield built
    built.close()


def outcome(url: str) -> ImageOutcome:
    return ImageOutcome(url, 1000, 400, 64, 48, "JPEG", 50, 1, 1, 1)


def create(store: Store, *rows: tuple[str, ...], options: CompressionOptions | None = None) -> str:
    request_id = str(uuid.uuid4())
    products = [ProductRow(line=i + 2, serial=i + 1, name=f"P{i}", urls=urls) for i, urls in enumerate(rows)]
    store.create_request(request_id, products, None, None, options=options)
    return request_id


def test_options_are_stored_and_read_with_the_image_state(store: Store) -> None:
    options = CompressionOptions(quality=70, size_target=0.3, format=OutputFormat.WEBP, max_dimension=900)
    request_id = create(store, (A,), options=options)
    assert store.request_options(request_id) == options
    state = store.image_state(request_id, 0)
    assert state is not None and state.options == options and state.leader_seq is None
    plain = create(store, (A,))
    assert store.request_options(plain) == CompressionOptions()
    assert store.image_state(plain, 0).options == CompressionOptions()  # type: ignore[union-attr]


def test_repeats_become_aliases_and_share_the_leaders_outcome(store: Store) -> None:
    request_id = create(store, (LOGO, A), (B, LOGO), (LOGO, A))  # seqs 0..5
    record = store.get_request(request_id)
    assert record is not None and (record.images, record.repeats) == (6, 3)
    assert store.alias_seqs(request_id, 0) == [3, 4]
    assert store.alias_seqs(request_id, 1) == [5]
    assert store.image_state(request_id, 4).leader_seq == 0  # type: ignore[union-attr]
    assert [t.seq for t in store.pending_tasks(request_id, 0, 6)] == [0, 1, 2]  # aliases are not fanned out
    store.mark_enqueued_range(request_id, 0, 6)  # a range marks its aliases too, so the fan-out can complete
    assert store.mark_fanout_complete_if_done(request_id) is True

    assert store.record_done(request_id, 0, outcome("https://o/0.jpg")).changed
    assert store.record_failed(request_id, 1, "HTTP 404").changed
    by_seq = {image.seq: image for image in store.list_images(request_id)}
    assert [by_seq[s].status for s in (0, 3, 4)] == [ImageStatus.DONE] * 3
    assert {by_seq[s].output_url for s in (0, 3, 4)} == {"https://o/0.jpg"}
    assert by_seq[5].status is ImageStatus.FAILED and by_seq[5].error == "HTTP 404"
    assert by_seq[2].status is ImageStatus.PENDING
    assert store.terminal_seqs(request_id) == {0, 1, 3, 4, 5}
    assert not store.record_done(request_id, 0, outcome("https://o/other.jpg")).changed  # a redelivery changes nothing


def test_cancel_skips_unstarted_images_once_and_leaves_started_ones(store: Store) -> None:
    request_id = create(store, (A, B), (LOGO, A))  # seq 3 is an alias of the started seq 0
    assert store.mark_started(request_id, 0)
    assert store.cancel_request(request_id)
    assert not store.cancel_request(request_id)  # only once
    statuses = {image.seq: image.status for image in store.list_images(request_id)}
    assert statuses == {0: ImageStatus.PENDING, 1: ImageStatus.SKIPPED, 2: ImageStatus.SKIPPED,
                        3: ImageStatus.PENDING}
    assert not store.mark_started(request_id, 1)  # a skipped image is never worked
    record = store.get_request(request_id)
    assert record is not None and record.status is RequestStatus.CANCELLING and record.skipped == 2
    assert not store.complete_request(request_id)  # started images still pending

    store.record_done(request_id, 0, outcome("https://o/0.jpg"))
    assert store.complete_request(request_id)
    assert not store.complete_request(request_id)
    closed = store.get_request(request_id)
    assert closed is not None and closed.status is RequestStatus.CANCELLED and closed.finished_images == 4


def test_a_finished_request_cannot_be_cancelled(store: Store) -> None:
    request_id = create(store, (A,))
    store.record_done(request_id, 0, outcome("https://o/0.jpg"))
    assert not store.cancel_request(request_id)  # nothing pending, even before it is closed
    assert store.complete_request(request_id)
    assert not store.cancel_request(request_id)
    assert store.get_request(request_id).status is RequestStatus.COMPLETED  # type: ignore[union-attr]
