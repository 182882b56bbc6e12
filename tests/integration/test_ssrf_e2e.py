"""SSRF end to end with the production default (OUTBOUND_ALLOWLIST empty): one request, all of it refused.

The spelling-by-spelling matrix, the off-machine addresses behind a network tripwire and the
redirect cases live in tests/security/. This file follows one request through the whole
pipeline: its image URLs name this machine or the cloud metadata address, its webhook is on
loopback. Every image must end Failed with a refusal after one attempt, nothing may reach the
local servers, the webhook must be given up (and recorded) without a retry loop, and the request
must still complete.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.apphost import AppStack
from devtools.http_servers import Reply, RunningServer, serve_in_thread
from devtools.samples import csv_for
from shared.queues import queue_client

pytestmark = pytest.mark.integration

PRODUCTION_DEFAULT = {"OUTBOUND_ALLOWLIST": "", "OUTBOUND_CONNECT_TIMEOUT_SECONDS": "1"}


@pytest.fixture()
def v6_images() -> Iterator[RunningServer]:
    bait = Reply(body=b"\xff\xd8 never to be fetched", headers={"Content-Type": "image/jpeg"})
    with serve_in_thread(lambda request: bait, host="::1") as server:
        yield server


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _queue_depth(stack: AppStack, name: str) -> int:
    with queue_client(stack.env["AzureWebJobsStorage"], name) as client:
        return len(client.peek_messages(max_messages=32))


def _settled(stack: AppStack, request_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The status once the notify function has run and left nothing queued behind it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        document: dict[str, Any] = stack.status(request_id, include="images").json()
        ran = stack.logs().count("Executed 'Functions.notify_queue'")
        if document["status"] == "Completed" and ran and _queue_depth(stack, stack.env["NOTIFY_QUEUE_NAME"]) == 0:
            return document
        time.sleep(0.2)
    raise TimeoutError(f"request {request_id} did not settle; logs:\n{stack.logs()[-3000:]}")


def test_local_and_metadata_urls_are_refused_and_the_request_still_completes(
    make_stack, image_server, v6_images, webhook
) -> None:
    stack = make_stack(**PRODUCTION_DEFAULT)
    port = _port(image_server.url("/"))
    urls = [
        image_server.url("/img/1.jpg"),  # 127.0.0.1: a real server that would answer
        f"http://localhost:{port}/img/2.jpg",
        f"http://[::1]:{_port(v6_images.base_url)}/img/3.jpg",
        f"http://2130706433:{port}/img/4.jpg",  # 127.0.0.1 as one decimal number
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    ]
    hook = f"http://127.0.0.1:{_port(webhook.url)}/hook"
    response = stack.upload(csv_for([urls[:2], urls[2:]]), webhook_url=hook)
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]

    document = _settled(stack, request_id)
    assert (document["done"], document["failed"], document["images"]) == (0, 5, 5)
    assert document["completed_at"] is not None
    results = document["results"]
    assert [r["input_url"] for r in results] == urls
    for result in results:
        assert result["status"] == "Failed" and "refused" in result["error"], result
        assert result["attempts"] == 1 and result["output_url"] is None
    assert image_server.requests == [] and v6_images.requests == []

    summary = document["webhook"]
    assert summary["delivered"] is False and summary["attempts"] == 1
    assert "refused" in summary["last_error"] and summary["last_status_code"] is None
    assert webhook.attempts == 0 and webhook.server is not None and webhook.server.requests == []
    assert stack.logs().count("Executed 'Functions.notify_queue'") == 1  # given up: never re-enqueued
    for queue in ("IMAGE_QUEUE_NAME", "NOTIFY_QUEUE_NAME"):
        assert _queue_depth(stack, stack.env[queue] + "-poison") == 0  # refusals are answers, not crashes

    # The output CSV keeps one empty slot per refused image, aligned with the input URLs.
    rows = list(csv.reader(io.StringIO(stack.status(request_id, format="csv").text)))
    assert [row[3] for row in rows[1:]] == [",", ",,"]
