"""The pipeline under faults, through the local host on real Azurite, Redis and SQLite.

Duplicated and racing messages, Redis losing its state, a webhook that fails, refuses or hangs,
and a host killed half-way through a fan-out. Each test waits for the pipeline to settle (both
queues empty, every started invocation finished) before it counts anything, so "exactly once"
is checked on a quiet system rather than at a lucky moment.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from devtools.apphost import AppStack, HostProcess
from devtools.http_servers import RecordedRequest, Reply, RunningServer, serve_in_thread
from devtools.samples import csv_for, photo_jpeg
from shared.fanin import completion_keys
from shared.queues import encode, queue_client

pytestmark = pytest.mark.integration

QUEUE_FUNCTIONS = ("process_queue", "notify_queue")


# --- observing the stack ----------------------------------------------------------------------------


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _db(stack: AppStack) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{stack.env['SQLITE_PATH']}?mode=ro", uri=True, timeout=10)


def _query(stack: AppStack, sql: str, *params: object) -> list[tuple[Any, ...]]:
    db = _db(stack)
    try:
        return list(db.execute(sql, params).fetchall())
    finally:
        db.close()


def _executed(stack: AppStack, function: str) -> int:
    return stack.logs().count(f"Executed 'Functions.{function}'")


def _queue_length(stack: AppStack, setting: str) -> int:
    """Messages in the queue, visible or not (a delayed retry or a leased message counts)."""
    with queue_client(stack.env["AzureWebJobsStorage"], stack.env[setting]) as client:
        return int(client.get_queue_properties().approximate_message_count)


def _settled(stack: AppStack) -> bool:
    # A killed host's log ends with invocations that never finished: only live hosts count.
    logs = "".join(h.log_path.read_text() for h in stack.hosts if h.proc is not None and h.proc.poll() is None)
    for function in QUEUE_FUNCTIONS:
        if logs.count(f"Executing 'Functions.{function}'") != logs.count(f"Executed 'Functions.{function}'"):
            return False
    return _queue_length(stack, "IMAGE_QUEUE_NAME") == 0 and _queue_length(stack, "NOTIFY_QUEUE_NAME") == 0


def _settle(stack: AppStack, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The status document once the request is Completed and nothing is left to run."""
    _wait(
        lambda: stack.status(request_id).json()["status"] == "Completed" and _settled(stack),
        timeout_s,
        f"request {request_id} to complete and the queues to drain",
    )
    document: dict[str, Any] = stack.status(request_id, include="images").json()
    return document


def _deliveries(stack: AppStack, request_id: str) -> list[tuple[int, str, int | None, str | None, int]]:
    return [
        (int(attempt), str(delivery_id), status, error, int(succeeded))
        for attempt, delivery_id, status, error, succeeded in _query(
            stack,
            "SELECT attempt, delivery_id, status_code, error, succeeded FROM webhook_deliveries"
            " WHERE request_id = ? ORDER BY attempt",
            request_id,
        )
    ]


def _outputs(stack: AppStack, request_id: str) -> list[str]:
    """Finished output files (a host killed mid-write may leave a hidden ``.<name>.<hex>.tmp``)."""
    folder = Path(stack.env["OUTPUT_DIR"]) / request_id
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def _send_image_message(stack: AppStack, request_id: str, seq: int, url: str, total: int) -> None:
    """The same JSON body the fan-out sends, on the stack's own image queue."""
    body = {"request_id": request_id, "seq": seq, "url": url, "total": total}
    with queue_client(stack.env["AzureWebJobsStorage"], stack.env["IMAGE_QUEUE_NAME"]) as client:
        client.send_message(encode(body))


# --- an image server whose answers the test releases ------------------------------------------------


class GatedImages:
    """/img/<n>.jpg answers at once; /gated/<n>.jpg waits until ``release()`` (counting arrivals)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self._lock = threading.Lock()
        self.arrived: list[str] = []
        self.server: RunningServer | None = None

    def handle(self, request: RecordedRequest) -> Reply:
        path = request.path.split("?", 1)[0]
        kind, _, name = path.strip("/").partition("/")
        if kind not in {"img", "gated"} or not name.endswith(".jpg") or not name[:-4].isdigit():
            return Reply(status=404)
        if kind == "gated":
            with self._lock:
                self.arrived.append(path)
            self.gate.wait(timeout=15)  # below the app's 20 s read timeout
        return Reply(body=photo_jpeg(int(name[:-4])), headers={"Content-Type": "image/jpeg"})

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url(path)

    def waiting(self) -> int:
        with self._lock:
            return len(self.arrived)

    def release(self) -> None:
        self.gate.set()


@pytest.fixture()
def gated() -> Iterator[GatedImages]:
    images = GatedImages()
    with serve_in_thread(images.handle) as server:
        images.server = server
        yield images
        images.release()


def _upload(stack: AppStack, urls: list[list[str]], webhook_url: str | None = None) -> str:
    response = stack.upload(csv_for(urls), webhook_url=webhook_url)
    assert response.status_code == 202, response.text
    return str(response.json()["request_id"])


# --- 1. duplicated messages ----------------------------------------------------------------------------


def test_duplicate_of_the_firing_image_message_counts_once(stack, image_server, webhook, redis_server) -> None:
    urls = [image_server.url(f"/img/{i}.jpg") for i in range(3)]
    request_id = _upload(stack, [urls], webhook.url)
    _settle(stack, request_id)
    fired = redis.Redis.from_url(redis_server.url).get(completion_keys(request_id)[2])
    assert fired is not None
    seq = int(fired)  # the copy most likely to do harm: its invocation may fire the notify again
    processed = _executed(stack, "process_queue")
    fetched = len(image_server.requests)

    _send_image_message(stack, request_id, seq, urls[seq], len(urls))
    _wait(lambda: _executed(stack, "process_queue") == processed + 1, 30, "the duplicate to be processed")
    document = _settle(stack, request_id)

    assert (document["status"], document["done"], document["failed"]) == ("Completed", 3, 0)
    assert [r["attempts"] for r in document["results"]] == [1, 1, 1]
    assert len(image_server.requests) == fetched  # the duplicate found the image finished: no download
    assert _outputs(stack, request_id) == ["00000.jpg", "00001.jpg", "00002.jpg"]
    assert len(webhook.deliveries) == 1 and len(webhook.accepted) == 1
    assert [(a, s, ok) for a, _, s, _, ok in _deliveries(stack, request_id)] == [(1, 200, 1)]
    assert stack.logs().count(f"request {request_id} completed") == 1


def _duplicate_in_flight(stack: AppStack, gated: GatedImages, webhook_url: str) -> str:
    """Image 1 and a copy of its message both reach the image server before either finishes."""
    urls = [gated.url("/img/0.jpg"), gated.url("/gated/1.jpg")]
    request_id = _upload(stack, [urls], webhook_url)
    _wait(lambda: gated.waiting() == 1, 30, "the original to reach the image server")
    _send_image_message(stack, request_id, 1, urls[1], len(urls))
    _wait(lambda: gated.waiting() == 2, 30, "the duplicate to reach the image server too")
    # Image 0 is counted first, so one of the two copies of image 1 is the request's last image.
    counted = redis.Redis.from_url(stack.env["REDIS_URL"])
    _wait(lambda: counted.sismember(completion_keys(request_id)[0], 0), 30, "image 0 to be counted")
    gated.release()
    return request_id


def test_duplicate_while_the_original_is_in_flight_completes_once(stack, gated, webhook) -> None:
    request_id = _duplicate_in_flight(stack, gated, webhook.url)
    document = _settle(stack, request_id)

    assert (document["status"], document["done"], document["failed"]) == ("Completed", 2, 0)
    assert _outputs(stack, request_id) == ["00000.jpg", "00001.jpg"]  # the copy overwrote, not added
    assert stack.logs().count(f"request {request_id} completed") == 1
    assert len(webhook.accepted) == 1  # whatever was posted carried one delivery id
    assert webhook.rejected == []


def test_duplicate_while_the_original_is_in_flight_posts_the_webhook_once(stack, gated, webhook) -> None:
    # A receiver that takes 2.5 s to answer 200 keeps the first delivery unrecorded long enough for
    # the second notify message (written ~10 ms after the first) to be picked up: deterministic.
    webhook.script = ["hang"]
    webhook.hang_s = 2.5
    request_id = _duplicate_in_flight(stack, gated, webhook.url)
    _settle(stack, request_id)

    assert webhook.server is not None
    posts = [r for r in webhook.server.requests if r.method == "POST"]
    recorded = _deliveries(stack, request_id)
    assert len(recorded) == len(posts)  # every POST that was sent is recorded
    assert len(posts) == 1


# --- 2. racing last images --------------------------------------------------------------------------------


def test_images_finishing_together_on_two_hosts_fire_one_notify(make_stack, gated, webhook) -> None:
    stack = make_stack(hosts=2)
    count = 6
    request_id = _upload(stack, [[gated.url(f"/gated/{i}.jpg") for i in range(count)]], webhook.url)
    _wait(lambda: gated.waiting() == count, 30, f"all {count} images to be in flight at once")
    gated.release()
    document = _settle(stack, request_id)

    assert (document["status"], document["done"]) == ("Completed", count)
    assert _executed(stack, "notify_queue") == 1
    assert stack.logs().count(f"request {request_id}: last image finished, notifying") == 1
    assert len(_deliveries(stack, request_id)) == 1 and len(webhook.deliveries) == 1
    assert stack.logs().count(f"request {request_id} completed") == 1


# --- 3. Redis losing its state mid-job ---------------------------------------------------------------------


def _redis_loses_state_mid_job(
    stack: AppStack, gated: GatedImages, webhook_url: str, lose: Callable[[str], None]
) -> str:
    """Two images finish, two are held; Redis loses everything; then the held two finish."""
    urls = [gated.url("/img/0.jpg"), gated.url("/img/1.jpg"), gated.url("/gated/2.jpg"), gated.url("/gated/3.jpg")]
    request_id = _upload(stack, [urls[:2], urls[2:]], webhook_url)
    counted = redis.Redis.from_url(stack.env["REDIS_URL"])
    done_key = completion_keys(request_id)[0]
    _wait(
        lambda: gated.waiting() == 2 and counted.scard(done_key) == 2,
        30,
        "two images counted in Redis and two in flight",
    )
    counted.close()
    lose(request_id)
    gated.release()
    return request_id


def test_redis_flushed_mid_job_still_completes_once(stack, gated, webhook, redis_server) -> None:
    client = redis.Redis.from_url(redis_server.url)

    request_id = _redis_loses_state_mid_job(stack, gated, webhook.url, lambda _: client.flushall())
    document = _settle(stack, request_id)

    assert (document["status"], document["done"], document["failed"]) == ("Completed", 4, 0)
    seedings = stack.logs().count(f"Seeding fan-in of request {request_id}")
    assert seedings >= 2  # once at the start, again after the flush: the database refilled Redis
    assert _executed(stack, "notify_queue") == 1
    assert len(webhook.deliveries) == 1 and len(_deliveries(stack, request_id)) == 1


def test_redis_restarted_mid_job_still_completes_once(stack, gated, webhook, redis_server) -> None:
    request_id = _redis_loses_state_mid_job(stack, gated, webhook.url, lambda _: redis_server.restart())
    document = _settle(stack, request_id)

    assert (document["status"], document["done"], document["failed"]) == ("Completed", 4, 0)
    assert stack.logs().count(f"Seeding fan-in of request {request_id}") >= 2
    assert stack.logs().count(f"request {request_id}: last image finished, notifying") >= 1
    assert len(webhook.deliveries) == 1 and len(_deliveries(stack, request_id)) == 1
    assert stack.logs().count(f"request {request_id} completed") == 1


# --- 4. webhook failures ---------------------------------------------------------------------------------


def test_webhook_500_then_200_is_delivered_once_with_both_attempts_recorded(stack, image_server, webhook) -> None:
    webhook.script = [500]
    request_id = _upload(stack, [[image_server.url("/img/1.jpg")]], webhook.url)
    document = _settle(stack, request_id)

    summary = document["webhook"]
    assert summary["delivered"] is True and summary["attempts"] == 2 and summary["last_status_code"] == 200
    attempts = _deliveries(stack, request_id)
    assert [(a, s, ok) for a, _, s, _, ok in attempts] == [(1, 500, 0), (2, 200, 1)]
    assert len({delivery_id for _, delivery_id, _, _, _ in attempts}) == 1  # stable across retries
    assert webhook.attempts == 2 and len(webhook.deliveries) == 1
    assert webhook.deliveries == [attempts[0][1]]


def test_webhook_404_is_given_up_after_one_recorded_attempt(stack, image_server, webhook) -> None:
    webhook.script = [404]
    request_id = _upload(stack, [[image_server.url("/img/1.jpg")]], webhook.url)
    document = _settle(stack, request_id)

    summary = document["webhook"]
    assert summary["delivered"] is False and summary["attempts"] == 1
    assert summary["last_status_code"] == 404 and "404" in summary["last_error"]
    assert [(a, s, ok) for a, _, s, _, ok in _deliveries(stack, request_id)] == [(1, 404, 0)]
    assert webhook.attempts == 1 and webhook.deliveries == []
    assert _executed(stack, "notify_queue") == 1


def test_webhook_that_hangs_times_out_and_is_retried(make_stack, image_server, webhook) -> None:
    stack = make_stack(WEBHOOK_TIMEOUT_SECONDS="1")
    webhook.script = ["hang"]
    webhook.hang_s = 3.0
    request_id = _upload(stack, [[image_server.url("/img/1.jpg")]], webhook.url)
    document = _settle(stack, request_id)

    attempts = _deliveries(stack, request_id)
    assert [(a, s, ok) for a, _, s, _, ok in attempts] == [(1, None, 0), (2, 200, 1)]
    assert "timed out" in (attempts[0][3] or "")
    assert document["webhook"]["delivered"] is True and document["webhook"]["attempts"] == 2
    assert webhook.attempts == 2 and len(webhook.deliveries) == 1


# --- 5. a host killed half-way through a fan-out ----------------------------------------------------------

# 1,000 images: the sender marks sends in batches of 500, so the first mark leaves ~500 unmarked.
# (More only slows the test: on a loaded 2-core machine Azurite sends ~60-500 messages a second.)
FANOUT_PRODUCTS = 50
FANOUT_URLS_PER_PRODUCT = 20


@pytest.fixture()
def tiny_images() -> Iterator[RunningServer]:
    """Every path answers the same small JPEG, so a thousand images process in seconds."""
    jpeg = photo_jpeg(1, size=(64, 48))
    reply = Reply(body=jpeg, headers={"Content-Type": "image/jpeg"})
    with serve_in_thread(lambda request: reply) as server:
        yield server


def _big_csv(server: RunningServer) -> str:
    return csv_for(
        [[server.url(f"/p{p}/{i}.jpg") for i in range(FANOUT_URLS_PER_PRODUCT)] for p in range(FANOUT_PRODUCTS)]
    )


def _fanout_state(stack: AppStack) -> tuple[str, int, int, bool] | None:
    rows = _query(
        stack,
        "SELECT r.request_id, r.images, (SELECT COUNT(i.enqueued_at) FROM images i"
        " WHERE i.request_id = r.request_id), r.fanout_completed_at IS NOT NULL FROM requests r",
    )
    if not rows:
        return None
    request_id, images, enqueued, finished = rows[0]
    return str(request_id), int(images), int(enqueued), bool(finished)


def _kill_mid_fanout(stack: AppStack, csv_text: str, key: str) -> tuple[str, int, int]:
    """Upload, then SIGKILL the host while the fan-out is part-way; returns (request_id, images, enqueued).

    To make the kill land mid-way every time, the test takes SQLite's write lock as soon as the
    first batch of sends is marked: the fan-out then waits on its next mark (as it would on a slow
    database) with the rest unmarked, and is killed right there.
    """
    outcome: list[object] = []

    def upload() -> None:
        try:
            outcome.append(stack.upload(csv_text, headers={"Idempotency-Key": key}))
        except requests.RequestException as exc:
            outcome.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    _wait(
        lambda: bool(outcome) or ((state := _fanout_state(stack)) is not None and state[2] > 0),
        60,
        "the first batch of the fan-out to be marked",
    )
    lock = sqlite3.connect(stack.env["SQLITE_PATH"], isolation_level=None, timeout=30)
    try:
        lock.execute("BEGIN IMMEDIATE")
        state = _fanout_state(stack)
        stack.hosts[0].kill()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    uploader.join(timeout=30)
    assert state is not None, f"the upload ended before anything was stored: {outcome}"
    request_id, images, enqueued, finished = state
    if finished or enqueued == images:
        pytest.skip(f"the fan-out finished ({enqueued}/{images} marked) before the kill could land")
    assert 0 < enqueued < images
    assert outcome and isinstance(outcome[0], requests.RequestException), outcome  # the client saw the crash
    return request_id, images, enqueued


def _unenqueued(stack: AppStack, request_id: str) -> int:
    return int(
        _query(stack, "SELECT COUNT(*) FROM images WHERE request_id = ? AND enqueued_at IS NULL", request_id)[0][0]
    )


def _new_host(stack: AppStack) -> HostProcess:
    host = stack.start_host()
    stack.hosts.remove(host)
    stack.hosts.insert(0, host)  # the stack's client methods talk to hosts[0]
    return host


# Messages the killed host had leased come back after this many seconds instead of ten minutes.
FANOUT_STACK = {"FUNCTIONS_WORKER_PROCESS_COUNT": "1", "DEVHOST_QUEUE_VISIBILITY_SECONDS": "4"}


def test_interrupted_fanout_is_resumed_by_retrying_the_upload_with_its_key(make_stack, tiny_images) -> None:
    stack = make_stack(**FANOUT_STACK)
    key = f"retry-{uuid.uuid4()}"
    csv_text = _big_csv(tiny_images)
    request_id, images, enqueued = _kill_mid_fanout(stack, csv_text, key)
    assert images == FANOUT_PRODUCTS * FANOUT_URLS_PER_PRODUCT
    assert _unenqueued(stack, request_id) == images - enqueued

    _new_host(stack)
    retry = stack.upload(csv_text, headers={"Idempotency-Key": key})
    assert retry.status_code == 202, retry.text
    assert retry.json()["request_id"] == request_id and retry.json()["images"] == images
    assert _unenqueued(stack, request_id) == 0  # the retry sent the rest before answering
    assert _query(stack, "SELECT COUNT(*) FROM requests")[0][0] == 1

    document = _settle(stack, request_id, timeout_s=120)
    assert (document["done"], document["failed"]) == (images, 0)
    assert _outputs(stack, request_id) == [f"{seq:05d}.jpg" for seq in range(images)]


def test_interrupted_fanout_is_resumed_by_a_status_query_once_stale(make_stack, tiny_images) -> None:
    stack = make_stack(FANOUT_STALE_AFTER_SECONDS="1", **FANOUT_STACK)
    request_id, images, enqueued = _kill_mid_fanout(stack, _big_csv(tiny_images), f"stale-{uuid.uuid4()}")

    _new_host(stack)
    _wait(lambda: stack.status(request_id).status_code == 200, 30, "a status answer")
    _wait(lambda: _unenqueued(stack, request_id) == 0, 30, "the status query to resume the fan-out")
    assert _query(stack, "SELECT fanout_completed_at IS NOT NULL FROM requests")[0][0] == 1

    document = _settle(stack, request_id, timeout_s=120)
    assert (document["done"], document["failed"]) == (images, 0)
    assert _outputs(stack, request_id) == [f"{seq:05d}.jpg" for seq in range(images)]
