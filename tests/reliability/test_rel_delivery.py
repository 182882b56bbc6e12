"""At-least-once delivery taken literally: every image message twice, and a staged fan-out cut short."""

from __future__ import annotations

import os
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from shared.queues import encode, queue_client
from tests.reliability.checker import connect_readonly, image_counts, query, settle_and_check, wait_until
from tests.reliability.jobs import JOB_IMAGES, image_urls, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def test_every_image_message_delivered_twice(make_stack, image_server, webhook, campaign) -> None:
    """Every image message delivered twice"""
    stack = make_stack()
    urls = image_urls(image_server, delay_s=0.3)
    request_id = upload_job(stack, urls, webhook.url)
    fanned_out = "SELECT fanout_completed_at IS NOT NULL FROM requests WHERE request_id = ?"
    assert wait_until(lambda: query(stack, fanned_out, (request_id,)) == [(1,)], 30, 0.01)
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


# 100 images, 5 a leaf, 3 sub-ranges a split: 22 fan-out invocations over four levels.
STAGED_IMAGES = 100
STAGED = {"FANOUT_LEAF_SIZE": "5", "FANOUT_BRANCHING": "3"}


def test_host_killed_during_a_staged_fanout_is_resumed_by_the_queue(
    make_stack, image_server, webhook, azurite, campaign
) -> None:
    """Host killed mid staged fan-out, resumed by the queue"""
    # Leases of the dead host's messages come back after 3 s; no sweep (its stale age stays 300 s).
    stack = make_stack(DEVHOST_QUEUE_VISIBILITY_SECONDS="3", **STAGED)
    urls = image_urls(image_server, STAGED_IMAGES)
    request_id = upload_job(stack, urls, webhook.url)  # the 202: the client does nothing more
    path = Path(stack.env["SQLITE_PATH"])
    assert wait_until(lambda: ((state := _fanout_state(path)) is not None and state[1] > 0), 30, 0.002)
    # A fan-out invocation has marked its images and the host is writing its outputs: freeze
    # Azurite (SIGSTOP) so the writes hang, and kill the host right there.
    os.kill(azurite.proc.pid, signal.SIGSTOP)
    try:
        state = _fanout_state(path)
        assert state is not None
        stack.hosts[0].kill()
    finally:
        os.kill(azurite.proc.pid, signal.SIGCONT)
    finished, marked = state
    campaign.fault(f"host killed with the fan-out {'finished' if finished else 'unfinished'}, {marked} marked")
    assert not finished and marked < STAGED_IMAGES, "the kill missed the fan-out"
    stack.start_host()
    check = campaign.record(settle_and_check(stack, request_id, STAGED_IMAGES, webhook))
    assert check.ok, check.problems
    assert image_counts(stack, request_id)["enqueued"] == STAGED_IMAGES
    assert [row[0] for row in query(stack, "SELECT COUNT(*) FROM requests")] == [1]  # no client retry
