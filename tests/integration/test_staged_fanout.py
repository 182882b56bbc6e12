"""The staged fan-out through the local host on real Azurite, Redis and SQLite.

A small leaf size and branching make a 100-image job fan out over several levels of range
messages; a redelivered range sends its images again; a host SIGKILLed in the middle of a fan-out
leaves the rest to the fan-out queue's redelivery, with no client action and no sweep.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator

import pytest

from devtools.apphost import AppStack
from devtools.http_servers import RecordedRequest, Reply, RunningServer, serve_in_thread
from devtools.samples import csv_for, photo_jpeg
from shared.queues import queue_client
from tests.integration.test_pipeline_faults import _deliveries, _outputs, _query, _settle, _wait

pytestmark = pytest.mark.integration

# 100 images, 5 a leaf, 3 sub-ranges a split: the root sends 5 and splits 95 into ranges of 32, 32
# and 31; each sends 5 and splits the rest into 3 of at most 9; each of those sends 5 and leaves
# one range of at most 4: four levels, 1 + 3 + 9 + 9 = 22 invocations.
TREE = {"FANOUT_LEAF_SIZE": "5", "FANOUT_BRANCHING": "3"}


@pytest.fixture()
def tiny_images() -> Iterator[RunningServer]:
    """Every path answers the same small JPEG, so a hundred images process in seconds."""
    reply = Reply(body=photo_jpeg(1, size=(64, 48)), headers={"Content-Type": "image/jpeg"})
    with serve_in_thread(lambda request: reply) as server:
        yield server


class HeldImages:
    """/held/<n>.jpg answers only once ``release()`` is called (counting arrivals); /img/<n>.jpg at once.

    Unlike the fault tests' gate, a held download never ends by itself while the test runs: an
    image held here is Pending until the test says otherwise, however slow the machine.
    """

    # Only a safety net for a test that dies without releasing; below the stack's read timeout.
    SAFETY_TIMEOUT_S = 240

    def __init__(self) -> None:
        self.server: RunningServer | None = None
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._arrived = 0

    def handle(self, request: RecordedRequest) -> Reply:
        kind, _, name = request.path.split("?", 1)[0].strip("/").partition("/")
        if kind not in {"img", "held"} or not name.endswith(".jpg") or not name[:-4].isdigit():
            return Reply(status=404)
        if kind == "held":
            with self._lock:
                self._arrived += 1
            self._released.wait(timeout=self.SAFETY_TIMEOUT_S)
        return Reply(body=photo_jpeg(int(name[:-4]), size=(64, 48)), headers={"Content-Type": "image/jpeg"})

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url(path)

    def arrived(self) -> int:
        with self._lock:
            return self._arrived

    def release(self) -> None:
        self._released.set()


@pytest.fixture()
def held_images() -> Iterator[HeldImages]:
    images = HeldImages()
    with serve_in_thread(images.handle) as server:
        images.server = server
        yield images
        images.release()


def _csv(server: RunningServer, products: int, urls: int, path: str = "/p") -> str:
    return csv_for([[server.url(f"{path}{p}/{i}.jpg") for i in range(urls)] for p in range(products)])


def _fanout_ranges(stack: AppStack, request_id: str) -> list[tuple[int, int, int, int]]:
    """(start, end, image messages, sub-ranges) of every fan-out invocation, from the host logs."""
    pattern = re.compile(
        rf"fan-out of request {request_id} \[(\d+), (\d+)\): (\d+) image messages, (\d+) sub-ranges"
    )
    return [
        (int(a), int(b), int(n), int(k)) for a, b, n, k in pattern.findall(stack.logs())
    ]


def _exactly_once(stack: AppStack, request_id: str, images: int) -> None:
    """Every image Done once in the database and on disk, one webhook delivery."""
    rows = _query(stack, "SELECT seq, status FROM images WHERE request_id = ? ORDER BY seq", request_id)
    assert rows == [(seq, "Done") for seq in range(images)]
    assert _outputs(stack, request_id) == [f"{seq:05d}.jpg" for seq in range(images)]
    assert [(a, s, ok) for a, _, s, _, ok in _deliveries(stack, request_id)] == [(1, 200, 1)]
    assert stack.logs().count(f"request {request_id} completed") == 1


def test_a_100_image_job_fans_out_as_a_tree_and_completes_once(make_stack, tiny_images, webhook) -> None:
    stack = make_stack(**TREE)
    response = stack.upload(_csv(tiny_images, 10, 10), webhook_url=webhook.url)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    _settle(stack, request_id, timeout_s=120)

    _exactly_once(stack, request_id, 100)
    assert len(webhook.deliveries) == 1
    ranges = _fanout_ranges(stack, request_id)
    assert ranges[0][:2] == (0, 100)  # the upload wrote one message for the whole request
    assert len(ranges) == 22 and all(images <= 5 and subs <= 3 for _, _, images, subs in ranges)
    assert sum(images for _, _, images, _ in ranges) == 100
    # Levels: a range is a child of the one whose tail it lies in; depth = nesting of the intervals.
    depth = max(sum(1 for s, e, _, _ in ranges if s <= start and end <= e) for start, end, _, _ in ranges)
    assert depth == 4
    assert _query(stack, "SELECT COUNT(*) FROM images WHERE enqueued_at IS NULL")[0][0] == 0
    assert _query(stack, "SELECT fanout_completed_at IS NOT NULL FROM requests")[0][0] == 1


def _done(stack: AppStack, request_id: str) -> int:
    return int(_query(stack, "SELECT COUNT(*) FROM images WHERE request_id = ? AND status = 'Done'", request_id)[0][0])


HELD = 3  # images 0-2 of 20 are held at the image server
# Threads a worker process, more than twice HELD: the held downloads (the originals, then the
# copy's) can never take every thread of a worker process, so no invocation the test waits for
# queues behind them. (The test used to hold 4 images with 4 threads a worker: when the host gave
# the copy to the worker holding all four, it waited there until the gate's own 15 s timeout let
# them finish, and the copy found one or more of them Done.)
THREADS = 8


def test_a_redelivered_range_message_sends_again_and_the_job_still_completes_once(
    make_stack, held_images: HeldImages, webhook
) -> None:
    stack = make_stack(
        FUNCTIONS_WORKER_PROCESS_COUNT="2", PYTHON_THREADPOOL_THREAD_COUNT=str(THREADS),
        OUTBOUND_READ_TIMEOUT_SECONDS="300",  # a held download must not time out and go Failed or retry
        **TREE,
    )  # fmt: skip
    held = held_images
    urls = [[held.url(f"/{'held' if n < HELD else 'img'}/{n}.jpg") for n in range(p * 4, p * 4 + 4)] for p in range(5)]
    response = stack.upload(csv_for(urls), webhook_url=webhook.url)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    # The original fan-out is over and every image but the held ones is Done: exactly images 0-2
    # are Pending, each with its original invocation still downloading.
    _wait(lambda: held.arrived() == HELD and _done(stack, request_id) == 20 - HELD, 60, "images 3-19 to finish")
    original = _fanout_ranges(stack, request_id)

    # A copy of the root range, as the queue would deliver it again after a lost delete.
    root = {"request_id": request_id, "start": 0, "end": 20}
    with queue_client(stack.env["AzureWebJobsStorage"], stack.env["FANOUT_QUEUE_NAME"]) as client:
        client.send_message(json.dumps(root))
    _wait(lambda: len(_fanout_ranges(stack, request_id)) == len(original) + 4, 60, "the copy to fan out")
    assert sorted(original) == [(0, 20, 5, 3), (5, 10, 5, 0), (10, 15, 5, 0), (15, 20, 5, 0)]
    # The copy ignores the enqueued marks: it sends every image still Pending (0-2) and no other.
    copy = _fanout_ranges(stack, request_id)[len(original) :]
    assert sorted(copy) == [(0, 20, HELD, 3), (5, 10, 0, 0), (10, 15, 0, 0), (15, 20, 0, 0)]
    # Its messages for 0-2 reach the image server while the originals are still held: they were
    # worked again, not skipped as finished.
    _wait(lambda: held.arrived() == 2 * HELD, 60, "the copy's image messages to be worked")
    held.release()
    _settle(stack, request_id, timeout_s=120)
    _exactly_once(stack, request_id, 20)  # the images worked twice still count once
    assert len(webhook.deliveries) == 1


def test_a_host_killed_mid_fan_out_is_resumed_by_the_queue_without_client_action(
    make_stack, tiny_images, webhook
) -> None:
    # One worker, leases that come back after 4 s instead of the default.
    stack = make_stack(FUNCTIONS_WORKER_PROCESS_COUNT="1", DEVHOST_QUEUE_VISIBILITY_SECONDS="4", **TREE)
    images = 200
    response = stack.upload(_csv(tiny_images, 20, 10), webhook_url=webhook.url)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]

    def marked() -> int:
        return int(_query(stack, "SELECT COUNT(enqueued_at) FROM images WHERE request_id = ?", request_id)[0][0])

    _wait(lambda: marked() > 0, 60, "the fan-out to start")
    # Hold SQLite's write lock so the fan-out stalls part-way, then kill the host right there.
    lock = sqlite3.connect(stack.env["SQLITE_PATH"], isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")
        at_kill = marked()
        stack.hosts[0].kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    if at_kill == images:
        pytest.skip("the fan-out finished before the kill could land")
    assert _query(stack, "SELECT fanout_completed_at IS NULL FROM requests")[0][0] == 1

    host = stack.start_host()
    stack.hosts.remove(host)
    stack.hosts.insert(0, host)  # the stack's client methods talk to hosts[0]
    _settle(stack, request_id, timeout_s=180)

    _exactly_once(stack, request_id, images)
    assert len(webhook.deliveries) == 1
    assert _query(stack, "SELECT COUNT(*) FROM requests")[0][0] == 1  # no client retry made anything
