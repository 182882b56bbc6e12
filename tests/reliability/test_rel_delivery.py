"""At-least-once delivery taken literally: every image message twice, and a fan-out cut short."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
import uuid
from contextlib import closing
from pathlib import Path

import pytest
import requests

from shared.queues import encode, queue_client
from tests.reliability.checker import connect_readonly, image_counts, settle_and_check
from tests.reliability.jobs import JOB_IMAGES, Background, image_urls, job_csv, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_every_image_message_delivered_twice(make_stack, image_server, webhook, campaign) -> None:
    """Every image message delivered twice"""
    stack = make_stack()
    urls = image_urls(image_server, delay_s=0.3)
    request_id = upload_job(stack, urls, webhook.url)
    with closing(queue_client(stack.azurite.connection_string, stack.env["IMAGE_QUEUE_NAME"])) as queue:
        for seq, url in enumerate(urls):
            queue.send_message(encode({"request_id": request_id, "seq": seq, "url": url, "total": len(urls)}))
    campaign.fault(f"{len(urls)} copies sent after the fan-out")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
    invocations = stack.logs().count("Executed 'Functions.process_queue' (Succeeded")
    assert invocations == 2 * JOB_IMAGES, invocations  # both copies ran; neither left a trace


def _fanout_state(path: Path) -> tuple[bool, int] | None:
    """(fan-out finished, images marked enqueued) of the only request, None before it is stored."""
    try:
        with closing(connect_readonly(path)) as connection:
            row = connection.execute(
                "SELECT r.fanout_completed_at IS NOT NULL,"
                " (SELECT COUNT(*) FROM images i WHERE i.request_id = r.request_id AND i.enqueued_at IS NOT NULL)"
                " FROM requests r"
            ).fetchone()
    except sqlite3.OperationalError:  # the file or the schema is not there yet
        return None
    return None if row is None else (bool(row[0]), int(row[1]))


def _kill_during_fanout(stack, azurite, campaign) -> tuple[bool, int]:  # type: ignore[no-untyped-def]
    """SIGKILL the host once the request's rows are committed and its fan-out has not finished.

    The fan-out of 50 messages takes a fraction of a second, so the moment the rows appear the
    test freezes Azurite (SIGSTOP): the sends then hang, the kill lands inside the fan-out for
    sure, and Azurite resumes afterwards with whatever it had accepted.
    """
    path = Path(stack.env["SQLITE_PATH"])
    state = None
    deadline = time.monotonic() + 30
    while state is None and time.monotonic() < deadline:
        state = _fanout_state(path)
        time.sleep(0.002)
    assert state is not None, "the upload never stored its request"
    os.kill(azurite.proc.pid, signal.SIGSTOP)
    try:
        state = _fanout_state(path)
        assert state is not None
        stack.hosts[0].kill()
    finally:
        os.kill(azurite.proc.pid, signal.SIGCONT)
    campaign.fault(f"host killed with fan-out {'finished' if state[0] else 'unfinished'}, {state[1]} marked enqueued")
    return state


@pytest.mark.parametrize("resume_by", ["idempotent-retry", "status-query"])
def test_upload_interrupted_during_fanout_is_resumed(
    make_stack, image_server, webhook, azurite, campaign, resume_by: str
) -> None:
    """Upload killed mid-fan-out, resumed"""
    stack = make_stack(DEVHOST_QUEUE_VISIBILITY_SECONDS="3", FANOUT_STALE_AFTER_SECONDS="1")
    urls = image_urls(image_server)
    key = f"reliability-{uuid.uuid4()}"
    upload = Background(stack.upload, job_csv(urls), webhook_url=webhook.url, headers={"Idempotency-Key": key})
    upload.start()
    finished, marked = _kill_during_fanout(stack, azurite, campaign)
    upload.join(timeout=60)
    assert not finished and marked < JOB_IMAGES, "the kill missed the fan-out"
    assert isinstance(upload.error, requests.ConnectionError), (upload.result, upload.error)
    [request_id] = [row[0] for row in connect_readonly(Path(stack.env["SQLITE_PATH"])).execute(
        "SELECT request_id FROM requests")]  # fmt: skip
    host = stack.start_host()
    if resume_by == "idempotent-retry":
        response = requests.post(
            f"{host.base_url}/upload",
            files={"file": ("p.csv", job_csv(urls), "text/csv")},
            data={"webhook_url": webhook.url},
            headers={"Idempotency-Key": key},
            timeout=60,
        )
        assert response.status_code == 202 and response.json()["request_id"] == request_id, response.text
    else:
        time.sleep(1.1)  # FANOUT_STALE_AFTER_SECONDS
        response = requests.get(f"{host.base_url}/status/{request_id}", timeout=60)
        assert response.status_code == 200, response.text
    assert image_counts(stack, request_id)["enqueued"] == JOB_IMAGES
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
