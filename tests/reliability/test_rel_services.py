"""The services under the app failing mid-job: Redis flushed or restarted, Azurite restarted,
the SQLite database locked by another process."""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
import redis

from shared.fanin import completion_keys
from tests.reliability.checker import progress_mid_job, settle_and_check, wait_for_progress, wait_until
from tests.reliability.jobs import JOB_IMAGES, image_urls, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

SHORT_LEASE = {"DEVHOST_QUEUE_VISIBILITY_SECONDS": "3"}
SLOW_IMAGE_S = 0.5  # each image answer waits this long, so the job is still running when the fault hits


def _start_job(make_stack, image_server, webhook, **overrides: str):  # type: ignore[no-untyped-def]
    stack = make_stack(**overrides)
    request_id = upload_job(stack, image_urls(image_server, delay_s=SLOW_IMAGE_S), webhook.url)
    return stack, request_id


def _progress(stack, request_id: str) -> str:  # type: ignore[no-untyped-def]
    return progress_mid_job(stack, request_id, JOB_IMAGES)


def test_redis_flushall_mid_job(make_stack, image_server, webhook, redis_server, campaign) -> None:
    """Redis FLUSHALL mid-job"""
    stack, request_id = _start_job(make_stack, image_server, webhook)
    wait_for_progress(stack, request_id, 10)
    with closing(redis.Redis.from_url(redis_server.url)) as client:
        client.flushall()
    campaign.fault(f"FLUSHALL at {_progress(stack, request_id)}")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
    # The counter was rebuilt from the database: a seeding of this request that found finished images.
    reseeds = re.findall(rf"Seeding fan-in of request {request_id} with (\d+) finished images", stack.logs())
    assert any(int(found) > 0 for found in reseeds), reseeds


def test_redis_restarted_mid_job(make_stack, image_server, webhook, redis_server, campaign) -> None:
    """Redis restarted mid-job (keys lost)"""
    stack, request_id = _start_job(make_stack, image_server, webhook)
    wait_for_progress(stack, request_id, 10)
    redis_server.restart()
    campaign.fault(f"restart at {_progress(stack, request_id)}")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems


def test_redis_down_until_the_job_ends(make_stack, image_server, webhook, redis_server, campaign) -> None:
    """Redis stopped for the end of the job"""
    stack, request_id = _start_job(make_stack, image_server, webhook)
    wait_for_progress(stack, request_id, 30)
    redis_server.stop()
    try:
        campaign.fault(f"stopped at {_progress(stack, request_id)}")
        check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    finally:
        redis_server.start()
    assert check.ok, check.problems
    assert f"Redis unavailable: counting request {request_id} in the database" in stack.logs()


def test_redis_unreachable_for_a_while_with_its_data_kept(make_stack, image_server, webhook, redis_server,
                                                          campaign) -> None:  # fmt: skip
    """Redis refuses clients for a while mid-job, keys kept"""
    stack, request_id = _start_job(make_stack, image_server, webhook)
    done_key = completion_keys(request_id)[0]
    with closing(redis.Redis.from_url(redis_server.url)) as admin:
        assert wait_until(lambda: admin.scard(done_key) >= 10, 60), "Redis never counted 10 images"
        # As a failover or a network blip looks to a client: connections dropped and refused, no data lost.
        admin.config_set("maxclients", 1)
        try:
            admin.client_kill_filter(_type="normal", skipme=True)
            counted = int(admin.scard(done_key))
            campaign.fault(f"refusing from {_progress(stack, request_id)} ({counted} counted in Redis)")
            # Long enough for a few images to finish (and be counted in the database instead), short
            # enough that the job is still running when Redis answers again.
            wait_for_progress(stack, request_id, counted + 5)
        finally:
            admin.config_set("maxclients", 10000)
    campaign.fault(f"back at {_progress(stack, request_id)}")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook, timeout_s=20))
    with closing(redis.Redis.from_url(redis_server.url)) as admin:
        campaign.fault(f"{admin.scard(done_key)} of {JOB_IMAGES} counted in Redis at the end")
    assert check.ok, check.problems


def test_azurite_restarted_mid_job(make_stack, image_server, webhook, azurite, campaign) -> None:
    """Azurite restarted mid-job (data kept)"""
    stack, request_id = _start_job(make_stack, image_server, webhook, **SHORT_LEASE)
    wait_for_progress(stack, request_id, 10)
    azurite.restart()
    campaign.fault(f"restart at {_progress(stack, request_id)}")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
    assert all(host.proc is not None and host.proc.poll() is None for host in stack.hosts), "a host died"


@pytest.mark.parametrize("hold_s", [2.0, 7.0], ids=["2s", "7s-beyond-busy-timeout"])
def test_database_locked_exclusively_mid_job(make_stack, image_server, webhook, campaign, hold_s: float) -> None:
    """SQLite held by BEGIN EXCLUSIVE mid-job"""
    stack, request_id = _start_job(make_stack, image_server, webhook)
    wait_for_progress(stack, request_id, 10)
    with closing(sqlite3.connect(Path(stack.env["SQLITE_PATH"]), timeout=30, isolation_level=None)) as blocker:
        blocker.execute("BEGIN EXCLUSIVE")
        campaign.fault(f"lock {hold_s:.0f}s from {_progress(stack, request_id)}")
        time.sleep(hold_s)
        blocker.execute("COMMIT")
    campaign.fault(f"released at {_progress(stack, request_id)}")
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
