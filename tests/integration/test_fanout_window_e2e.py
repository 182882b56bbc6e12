"""The fan-out window through the local host on real Azurite, Redis and SQLite.

A window of 20 images and a leaf of 5: a 120-image request never has more than 25 images handed
out and unfinished (read from the database's marks, not sampled), later requests interleave with
it, a cancel stops its waiting range, the sweep leaves it alone while it finishes images, and a
waiting range that is lost is made good by a sweep restart.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from devtools.apphost import AppStack
from devtools.http_servers import Reply
from devtools.image_server import ImageServer
from devtools.samples import csv_for, photo_jpeg
from shared import fanout
from shared.fanout import FanoutRange
from shared.queues import queue_client
from shared.store import Store
from tests.integration.test_pipeline_faults import (
    _deliveries,
    _outputs,
    _query,
    _queue_length,
    _settle,
    _settled,
    _wait,
)

pytestmark = pytest.mark.integration

WINDOW, LEAF = 20, 5
WINDOWED = {"FANOUT_WINDOW": str(WINDOW), "FANOUT_LEAF_SIZE": str(LEAF), "FANOUT_BRANCHING": "3"}
IMAGES = 120


def _slow_urls(images: ImageServer, count: int, tag: str, delay_s: float = 0.1) -> list[list[str]]:
    """``count`` photos answering after ``delay_s``, so a fan-out without a window outruns processing."""
    urls = []
    for index in range(count):
        path = f"/slow-{tag}/{index}.jpg"
        images.route(path, Reply(body=photo_jpeg(index, size=(64, 48)), delay_s=delay_s,
                                 headers={"Content-Type": "image/jpeg"}))  # fmt: skip
        urls.append(images.url(path))
    return [urls[start : start + 10] for start in range(0, count, 10)]


def _upload(stack: AppStack, products: list[list[str]], webhook_url: str | None = None) -> str:
    response = stack.upload(csv_for(products), webhook_url=webhook_url)
    assert response.status_code == 202, response.text
    return str(response.json()["request_id"])


def _finished(stack: AppStack, request_id: str) -> int:
    row = _query(stack, "SELECT done_images + failed_images + skipped_images FROM requests WHERE request_id = ?",
                 request_id)  # fmt: skip
    return int(row[0][0])


def _most_out_and_unfinished(stack: AppStack, request_id: str) -> int:
    """The most images handed out and not yet finished at any moment an image was handed out."""
    rows = _query(stack, "SELECT enqueued_at, finished_at FROM images WHERE request_id = ?", request_id)
    marks = sorted(enqueued for enqueued, _ in rows if enqueued is not None)
    finishes = sorted(finished for _, finished in rows if finished is not None)
    most, done = 0, 0
    for count, moment in enumerate(marks, start=1):
        while done < len(finishes) and finishes[done] <= moment:
            done += 1
        most = max(most, count - done)
    return most


def _images_sent(stack: AppStack, request_id: str) -> int:
    pattern = re.compile(rf"fan-out of request {request_id} \[\d+, \d+\): (\d+) image messages")
    return sum(int(n) for n in pattern.findall(stack.logs()))


def _exactly_once(stack: AppStack, request_id: str, images: int, attempts: bool = True) -> None:
    rows = _query(stack, "SELECT seq, status, attempts FROM images WHERE request_id = ? ORDER BY seq", request_id)
    assert [row[:2] for row in rows] == [(seq, "Done") for seq in range(images)]
    if attempts:  # and worked once: no image message was sent twice
        assert [row[2] for row in rows] == [1] * images
    assert _outputs(stack, request_id) == [f"{seq:05d}.jpg" for seq in range(images)]
    assert [(a, s, ok) for a, _, s, _, ok in _deliveries(stack, request_id)] == [(1, 200, 1)]


@pytest.fixture()
def stack(make_stack) -> AppStack:  # type: ignore[no-untyped-def]
    built: AppStack = make_stack(**WINDOWED)
    return built


def test_a_windowed_request_never_has_more_than_window_plus_leaf_out(stack, image_server, webhook) -> None:
    request_id = _upload(stack, _slow_urls(image_server, IMAGES, "a"), webhook.url)
    _settle(stack, request_id, timeout_s=180)

    _exactly_once(stack, request_id, IMAGES)
    assert len(webhook.deliveries) == 1
    assert _images_sent(stack, request_id) == IMAGES  # each image message sent once
    most = _most_out_and_unfinished(stack, request_id)
    assert most <= WINDOW + LEAF, most  # without the window, the whole fan-out outruns processing
    assert "waits for the window" in stack.logs()
    assert _query(stack, "SELECT fanout_completed_at IS NOT NULL FROM requests")[0][0] == 1


def test_a_request_posted_after_a_big_one_is_not_held_behind_all_of_it(stack, image_server, webhook) -> None:
    big = _upload(stack, _slow_urls(image_server, IMAGES, "big"), webhook.url)
    _wait(lambda: _finished(stack, big) >= 1, 60, "the big request to start")
    small = _upload(stack, _slow_urls(image_server, 10, "small"), webhook.url)
    _settle(stack, big, timeout_s=180)
    assert stack.status(small).json()["status"] == "Completed"

    small_done = _query(stack, "SELECT MAX(finished_at) FROM images WHERE request_id = ?", small)[0][0]
    big_after = _query(stack, "SELECT COUNT(*) FROM images WHERE request_id = ? AND finished_at > ?", big,
                       small_done)[0][0]  # fmt: skip
    # The small one waits behind at most the big one's window (25), not its ~110 queued images.
    assert big_after >= 40, big_after
    _exactly_once(stack, big, IMAGES)
    _exactly_once(stack, small, 10)


def test_a_cancel_stops_the_waiting_range_and_the_request_ends_cancelled(stack, image_server, webhook) -> None:
    request_id = _upload(stack, _slow_urls(image_server, IMAGES, "c"), webhook.url)
    _wait(lambda: _finished(stack, request_id) >= 30, 90, "30 images to finish")
    response = requests.delete(f"{stack.base_url}/requests/{request_id}", timeout=30)
    assert response.status_code in (200, 202), response.text

    payload = webhook.wait_for_delivery()
    assert payload["status"] == "Cancelled"
    _wait(lambda: _settled_after_cancel(stack, request_id), 90, "the cancelled request's queues to drain")
    document = stack.status(request_id).json()
    assert document["status"] == "Cancelled" and document["skipped"] > 0
    assert document["done"] + document["failed"] + document["skipped"] == IMAGES
    # Without the window every image message was out long before 30 images had finished.
    assert _images_sent(stack, request_id) < IMAGES - WINDOW
    assert f"request {request_id} [" in stack.logs() and "stops: the request was cancelled" in stack.logs()
    assert _query(stack, "SELECT fanout_completed_at IS NOT NULL FROM requests")[0][0] == 1
    assert len(webhook.deliveries) == 1


def _settled_after_cancel(stack: AppStack, request_id: str) -> bool:
    return stack.status(request_id).json()["status"] == "Cancelled" and _settled(stack)


@pytest.fixture()
def app_store(stack: AppStack) -> Iterator[Store]:
    """The stack's own database, as the sweep function sees it."""
    store = Store.for_sqlite(Path(stack.env["SQLITE_PATH"]))
    yield store
    store.close()


def test_the_sweep_leaves_a_windowed_request_that_finishes_images(stack, image_server, webhook, app_store) -> None:
    """Caught in the act: images finished after the last one handed out, the fan-out unfinished."""
    request_id = _upload(stack, _slow_urls(image_server, IMAGES, "s", delay_s=0.3), webhook.url)

    def finishing_since_last_mark() -> str | None:
        (last_mark, last_finish, open_fanout), = _query(
            stack, "SELECT (SELECT MAX(enqueued_at) FROM images WHERE request_id = ?),"
            " (SELECT MAX(finished_at) FROM images WHERE request_id = ?),"
            " (SELECT fanout_completed_at IS NULL FROM requests WHERE request_id = ?)",
            request_id, request_id, request_id,
        )  # fmt: skip
        return last_mark if open_fanout and last_finish and last_mark and last_finish > last_mark else None

    _wait(lambda: finishing_since_last_mark() is not None, 120, "an image to finish after the last mark")
    last_mark = finishing_since_last_mark()
    assert last_mark is not None
    # A sweep whose cutoff falls just after the last image handed out: nothing handed out since,
    # but an image finished since, so the request is progressing (the old sweep restarted it).
    cutoff = datetime.fromisoformat(last_mark).replace(tzinfo=UTC) + timedelta(microseconds=1)
    assert fanout.sweep(app_store, stale_after_s=10.0, now=cutoff + timedelta(seconds=10)) == []
    _settle(stack, request_id, timeout_s=240)
    _exactly_once(stack, request_id, IMAGES)


def test_a_lost_waiting_range_is_made_good_by_a_sweep_restart(stack, image_server, webhook, app_store) -> None:
    request_id = _upload(stack, _slow_urls(image_server, IMAGES, "l"), webhook.url)

    def only_the_tail_waits() -> bool:  # no range running, one message queued: the delayed tail
        logs = stack.logs()
        idle = logs.count("Executing 'Functions.fanout_queue'") == logs.count("Executed 'Functions.fanout_queue'")
        return "waits for the window" in logs and idle and _queue_length(stack, "FANOUT_QUEUE_NAME") == 1

    _wait(only_the_tail_waits, 60, "the fan-out to rest with one range waiting for the window")
    with queue_client(stack.env["AzureWebJobsStorage"], stack.env["FANOUT_QUEUE_NAME"]) as client:
        client.clear_messages()  # the waiting range is lost (as if gone to poison)
    _wait(lambda: _settled(stack), 120, "every image handed out to finish, the rest never to come")
    if stack.status(request_id).json()["status"] == "Completed":
        pytest.skip("the waiting range ran before it could be removed")

    restarts = fanout.sweep(app_store, stale_after_s=0.0)
    assert [FanoutRange.from_message(m).request_id for m in restarts] == [request_id]
    with queue_client(stack.env["AzureWebJobsStorage"], stack.env["FANOUT_QUEUE_NAME"]) as client:
        client.send_message(restarts[0])  # what fanout_sweep's output binding writes
    _settle(stack, request_id, timeout_s=180)
    _exactly_once(stack, request_id, IMAGES)
    assert len(webhook.deliveries) == 1
