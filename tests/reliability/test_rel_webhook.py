"""The client's webhook receiver misbehaving: down for a while, failing forever, hanging."""

from __future__ import annotations

import pytest

from tests.reliability.checker import WebhookExpectation, query, settle_and_check, wait_until
from tests.reliability.jobs import JOB_IMAGES, image_urls, upload_job

pytestmark = [pytest.mark.reliability, pytest.mark.integration]


def _attempts(stack, request_id: str) -> list[tuple[object, ...]]:  # type: ignore[no-untyped-def]
    return query(stack, "SELECT attempt, status_code, error, succeeded FROM webhook_deliveries"
                        " WHERE request_id = ? ORDER BY attempt", (request_id,))  # fmt: skip


def test_receiver_down_for_two_attempts_then_up(make_stack, image_server, make_webhook, campaign) -> None:
    """Webhook answers 503, 503, then 200"""
    receiver = make_webhook(script=[503, 503])
    stack = make_stack()
    request_id = upload_job(stack, image_urls(image_server), receiver.url)
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, receiver))
    assert check.ok, check.problems
    attempts = _attempts(stack, request_id)
    assert [(row[0], row[1], row[3]) for row in attempts] == [(1, 503, 0), (2, 503, 0), (3, 200, 1)]
    assert receiver.attempts == 3


def test_receiver_failing_forever_is_given_up(make_stack, image_server, make_webhook, campaign) -> None:
    """Webhook answers 500 forever (max 3 attempts)"""
    receiver = make_webhook(script=[500] * 20)
    stack = make_stack(WEBHOOK_MAX_ATTEMPTS="3")
    request_id = upload_job(stack, image_urls(image_server), receiver.url)
    check = campaign.record(
        settle_and_check(stack, request_id, JOB_IMAGES, receiver, expect_webhook=WebhookExpectation.GAVE_UP)
    )
    assert check.ok, check.problems
    assert [(row[0], row[1], row[3]) for row in _attempts(stack, request_id)] == [(1, 500, 0), (2, 500, 0), (3, 500, 0)]
    assert receiver.attempts == 3  # nothing after giving up
    document = stack.status(request_id).json()
    assert document["status"] == "Completed"
    assert document["webhook"]["delivered"] is False and document["webhook"]["attempts"] == 3


def test_receiver_hanging_times_out_and_is_retried(make_stack, image_server, make_webhook, campaign) -> None:
    """Webhook hangs past a 1 s timeout, then answers"""
    receiver = make_webhook(script=["hang"], hang_s=3.0)
    stack = make_stack(WEBHOOK_TIMEOUT_SECONDS="1")
    request_id = upload_job(stack, image_urls(image_server), receiver.url)
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, receiver))
    assert check.ok, check.problems
    first, *rest = _attempts(stack, request_id)
    assert first[1] is None and first[2] and not first[3], first  # no status: the timeout is the error
    campaign.fault(f"attempt 1 recorded: {first[2]}")
    assert [(row[1], row[3]) for row in rest] == [(200, 1)]


def test_host_sigkilled_while_posting_the_webhook(make_stack, image_server, make_webhook, campaign) -> None:
    """Host SIGKILLed while posting the webhook"""
    receiver = make_webhook(script=["hang"], hang_s=4.0)
    stack = make_stack(DEVHOST_QUEUE_VISIBILITY_SECONDS="3", WEBHOOK_TIMEOUT_SECONDS="3",
                       WEBHOOK_CLAIM_EXPIRY_SECONDS="8")
    request_id = upload_job(stack, image_urls(image_server), receiver.url)
    assert wait_until(lambda: receiver.attempts >= 1, 60), "the webhook was never attempted"
    stack.hosts[0].kill()  # the request is closed; the first POST is hanging in the receiver
    campaign.fault(f"kill during POST 1 ({len(_attempts(stack, request_id))} attempts recorded)")
    stack.start_host()
    check = campaign.record(settle_and_check(stack, request_id, JOB_IMAGES, receiver))
    assert check.ok, check.problems
    assert [(row[0], row[1], row[3]) for row in _attempts(stack, request_id)] == [(1, 200, 1)]
