"""Host processes dying mid-job: SIGKILL and restart, and a second host carrying on alone."""

from __future__ import annotations

import pytest

from tests.reliability.checker import image_counts, settle_and_check, wait_for_progress, wait_until
from tests.reliability.jobs import JOB_IMAGES, image_urls, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

# A killed host's leased messages come back after this long instead of 10 minutes.
SHORT_LEASE = {"DEVHOST_QUEUE_VISIBILITY_SECONDS": "3"}


def test_baseline_job_without_faults(make_stack, image_server, webhook, campaign) -> None:
    """Baseline: one host, no fault"""
    stack = make_stack()
    request_id = upload_job(stack, image_urls(image_server), webhook.url)
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
    assert "Traceback" not in stack.logs()


def test_host_sigkilled_three_times_and_restarted(make_stack, image_server, webhook, campaign) -> None:
    """Host SIGKILLed 3x mid-job, restarted"""
    stack = make_stack(**SHORT_LEASE)
    request_id = upload_job(stack, image_urls(image_server, delay_s=0.8), webhook.url)
    terminal = 0
    for _ in range(3):
        terminal = wait_for_progress(stack, request_id, terminal + 1)
        stack.hosts[-1].kill()
        at_kill = image_counts(stack, request_id)["terminal"]
        campaign.fault(f"kill at {at_kill}/{JOB_IMAGES}")
        assert at_kill < JOB_IMAGES, "the job finished before the kill: slow the images more"
        stack.start_host()
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems


def test_two_hosts_share_the_job_and_one_is_killed(make_stack, image_server, webhook, campaign) -> None:
    """Two hosts, one SIGKILLed mid-job"""
    stack = make_stack(hosts=2, **SHORT_LEASE)
    request_id = upload_job(stack, image_urls(image_server, delay_s=0.8), webhook.url)
    wait_for_progress(stack, request_id, 5)
    stack.hosts[1].kill()
    at_kill = image_counts(stack, request_id)["terminal"]
    campaign.fault(f"second host killed at {at_kill}/{JOB_IMAGES}")
    assert at_kill < JOB_IMAGES
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems


def test_host_sigkilled_while_a_windowed_fan_out_waits(make_stack, image_server, webhook, campaign) -> None:
    """Host SIGKILLed while a windowed fan-out waits"""
    # A window of 10 and leaves of 5: most of the job's fan-out waits on the fan-out queue as a
    # delayed range (shared.fanout_window) while the first images are processed.
    stack = make_stack(FANOUT_WINDOW="10", FANOUT_LEAF_SIZE="5", FANOUT_BRANCHING="3", **SHORT_LEASE)
    request_id = upload_job(stack, image_urls(image_server, delay_s=0.3), webhook.url)
    wait_for_progress(stack, request_id, 10)
    waits = stack.logs().count("waits for the window")
    assert wait_until(lambda: stack.logs().count("waits for the window") > waits, 60), "no range waits"
    stack.hosts[-1].kill()
    at_kill = image_counts(stack, request_id)["terminal"]
    campaign.fault(f"kill at {at_kill}/{JOB_IMAGES}, the fan-out waiting for its window")
    assert at_kill < JOB_IMAGES - 10, "the job was nearly done before the kill: slow the images more"
    stack.start_host()
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, webhook))
    assert check.ok, check.problems
