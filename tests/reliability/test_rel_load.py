"""Load: many uploads at once on one host."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.reliability.checker import JobCheck, settle_and_check
from tests.reliability.jobs import JOB_IMAGES, image_urls, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]

UPLOADS = 20
# An app log line at ERROR or CRITICAL ("[time] [worker n] LEVEL logger: ..."); the host's own lines
# carry no level, so its failures are caught by "(Failed," and "Traceback".
ERROR_LINE = re.compile(r"^\[[^\]]+\] \[worker \d+\] (?:ERROR|CRITICAL) .*$", re.MULTILINE)


def test_twenty_uploads_at_once_on_one_host(make_stack, image_server, make_webhook, campaign) -> None:
    """Load: 20 uploads of 50 images at once, one host"""
    stack = make_stack()
    receivers = [make_webhook() for _ in range(UPLOADS)]
    urls = image_urls(image_server)
    started = time.monotonic()
    with ThreadPoolExecutor(UPLOADS) as pool:
        request_ids = list(pool.map(lambda receiver: upload_job(stack, urls, receiver.url), receivers))
    assert len(set(request_ids)) == UPLOADS
    checks = [settle_and_check(stack, request_id, JOB_IMAGES, receiver, timeout_s=240)
              for request_id, receiver in zip(request_ids, receivers, strict=True)]  # fmt: skip
    check = campaign.record(JobCheck.combine(checks))
    campaign.fault(f"all settled {time.monotonic() - started:.0f}s after the first upload")
    logs = stack.logs()
    campaign.fault(f"{logs.count('Connection pool is full')} 'connection pool is full' warnings")
    assert check.ok, check.problems
    assert check.completions == UPLOADS and check.images == UPLOADS * JOB_IMAGES
    assert "Traceback" not in logs
    assert "(Failed," not in logs
    assert not ERROR_LINE.findall(logs), ERROR_LINE.findall(logs)[:5]
