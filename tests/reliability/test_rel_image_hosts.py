"""Image hosts that fail for a while, or for good (issue 11, finding 9).

A real loopback image server that refuses connections (nothing listens on its port yet) or
answers 500 for a few seconds, then recovers; and one that never comes up. The retry schedule is
shortened (``IMAGE_RETRY_DELAYS_SECONDS``) so the whole schedule runs in seconds: the outage is
longer than the host's back-to-back redeliveries (which used to fail every image within a second)
and shorter than the schedule, the same relation as a one-minute outage against the production
schedule of 10 s, 30 s, 2 min, 5 min.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from devtools.http_servers import RecordedRequest, Reply, serve_in_thread
from devtools.image_server import ImageServer
from tests.reliability.checker import query, settle_and_check, wait_until
from tests.reliability.jobs import upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

IMAGES = 10
SCHEDULE = "1,2,4,8"  # 15 s in all; 5 attempts per image
ATTEMPTS = 5
SCHEDULE_TOTAL_S = 15
OUTAGE_S = 5.0
FAST_FAILURE = {"IMAGE_RETRY_DELAYS_SECONDS": SCHEDULE, "OUTBOUND_CONNECT_TIMEOUT_SECONDS": "2"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _urls(port: int) -> list[str]:
    return [f"http://127.0.0.1:{port}/img/{index}.jpg" for index in range(IMAGES)]


@contextmanager
def _photos_on(port: int) -> Iterator[None]:
    with serve_in_thread(ImageServer().handle, port=port):
        yield


def _images(stack, request_id: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return query(stack, "SELECT seq, status, attempts, error FROM images WHERE request_id = ? ORDER BY seq",
                 (request_id,))  # fmt: skip


def _seconds_between(start: object, end: object) -> float:
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()


def _every_image_failed_once(stack, request_id: str) -> bool:  # type: ignore[no-untyped-def]
    return all(row[3] for row in _images(stack, request_id))


def test_image_host_refusing_connections_for_a_while(make_stack, webhook, campaign) -> None:
    """Image host refuses connections for 5 s, then recovers"""
    stack = make_stack(**FAST_FAILURE)
    port = _free_port()
    started = time.monotonic()
    request_id = upload_job(stack, _urls(port), webhook.url)
    assert wait_until(lambda: _every_image_failed_once(stack, request_id), 30), _images(stack, request_id)
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
    with _photos_on(port):
        campaign.fault(f"nothing listening for {time.monotonic() - started:.0f}s, schedule {SCHEDULE} s")
        check = campaign.record(settle_and_check(stack, request_id, IMAGES, webhook))
    rows = _images(stack, request_id)
    assert check.ok, (check.problems, rows)
    assert all(row[1] == "Done" and int(str(row[2])) > 1 for row in rows), rows
    campaign.fault(f"attempts per image {min(int(str(r[2])) for r in rows)}-{max(int(str(r[2])) for r in rows)}")


def test_image_host_answering_500_for_a_while(make_stack, webhook, campaign) -> None:
    """Image host answers 500 for 5 s, then recovers"""
    photos = ImageServer()
    down = threading.Event()
    down.set()

    def handle(request: RecordedRequest) -> Reply:
        return Reply(status=500, body=b"down for maintenance") if down.is_set() else photos.handle(request)

    stack = make_stack(**FAST_FAILURE)
    with serve_in_thread(handle) as server:
        started = time.monotonic()
        request_id = upload_job(stack, [server.url(f"/img/{n}.jpg") for n in range(IMAGES)], webhook.url)
        assert wait_until(lambda: _every_image_failed_once(stack, request_id), 30), _images(stack, request_id)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        down.clear()
        campaign.fault(f"HTTP 500 for {time.monotonic() - started:.0f}s, schedule {SCHEDULE} s")
        check = campaign.record(settle_and_check(stack, request_id, IMAGES, webhook))
    rows = _images(stack, request_id)
    assert check.ok, (check.problems, rows)
    assert all(row[1] == "Done" and int(str(row[2])) > 1 for row in rows), rows


def test_image_host_down_for_good(make_stack, webhook, campaign) -> None:
    """Image host never comes up: images Failed after the schedule"""
    stack = make_stack(**FAST_FAILURE)
    started = time.monotonic()
    request_id = upload_job(stack, _urls(_free_port()), webhook.url)
    check = campaign.record(settle_and_check(stack, request_id, IMAGES, webhook, expect_failed=IMAGES))
    campaign.fault(f"all Failed {time.monotonic() - started:.0f}s after the upload (schedule {SCHEDULE} s)")
    rows = _images(stack, request_id)
    assert check.ok, (check.problems, rows)
    assert [row[1] for row in rows] == ["Failed"] * IMAGES
    for row in rows:
        assert f"gave up after {ATTEMPTS} attempts" in str(row[3]) and "no connection" in str(row[3]), row
        assert int(str(row[2])) == ATTEMPTS, row
    # The schedule was honoured: each image's attempts spread over at least the sum of its delays
    # (queue visibility enforces them; before the fix all five ran back to back within a second).
    spans = query(stack, "SELECT started_at, finished_at FROM images WHERE request_id = ?", (request_id,))
    assert all(_seconds_between(*span) >= SCHEDULE_TOTAL_S for span in spans), spans
    document = stack.status(request_id, include="images").json()
    results = document["results"]
    assert all(r["status"] == "Failed" and r["attempts"] == ATTEMPTS and r["retry_at"] is None for r in results)
    assert {r["error"] for r in results} == {str(row[3]) for row in rows}
