"""Closing a request and delivering its webhook.

The request is marked Completed exactly once (a conditional update). The webhook carries a
delivery id that is the same for every attempt, so a receiver can drop duplicates. A transient
failure re-enqueues the notify message with a growing delay; other 4xx give up. Every attempt is
recorded.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.container import Dependencies
from shared.errors import ConfigError, MalformedMessage
from shared.models import DeliveryAttempt, RequestRecord, RequestStatus
from shared.output_storage import with_presentable_urls
from shared.queues import decode
from shared.report import webhook_payload
from shared.webhook import DeliveryResult, DeliveryVerdict, retry_delay_s

logger = logging.getLogger(__name__)

DELIVERY_NAMESPACE = uuid.UUID("7d0b8d1e-4f4b-4d55-9a55-0c2f6b1f6a11")
# The error text of an attempt that is claimed and being sent.
SENDING = "sending"


class NotifyOutcome(StrEnum):
    """What this invocation did."""

    NOT_READY = "not_ready"  # images still pending: a later image fires the notify again
    NO_WEBHOOK = "no_webhook"  # completed; nobody to tell
    STALE = "stale"  # a duplicate of a notify message whose attempt was already made
    ALREADY_DELIVERED = "already_delivered"
    DELIVERED = "delivered"
    RETRY_SCHEDULED = "retry_scheduled"
    GAVE_UP = "gave_up"
    UNKNOWN = "unknown"  # no such request


@dataclass(frozen=True)
class NotifyResult:
    outcome: NotifyOutcome
    completed_now: bool


def delivery_id_for(request_id: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, request_id))


def notify_request(deps: Dependencies, body: str, dequeue_count: int = 1) -> NotifyResult:
    """Close the request of one notify message and deliver its webhook; ``MalformedMessage`` for a bad body."""
    fields = decode(body)
    request_id = str(fields.get("request_id", ""))
    if not request_id:
        raise MalformedMessage("notify message lacks request_id")
    store = deps.store
    record = store.get_request(request_id)
    if record is None:
        logger.warning("notify for unknown request %s dropped", request_id)
        return NotifyResult(NotifyOutcome.UNKNOWN, False)
    if record.finished_images < record.images:
        logger.warning(
            "notify for request %s with %d of %d images finished: not closing it yet",
            request_id, record.finished_images, record.images,
        )
        return NotifyResult(NotifyOutcome.NOT_READY, False)
    completed_now = store.complete_request(request_id)
    if completed_now:
        logger.info("request %s completed: %d done, %d failed, %d skipped%s", request_id, record.done,
                    record.failed, record.skipped, " (cancelled)" if record.status is RequestStatus.CANCELLING else "")
    if not record.webhook_url:
        return NotifyResult(NotifyOutcome.NO_WEBHOOK, completed_now)
    attempts = store.delivery_attempts(request_id)
    if any(attempt.succeeded for attempt in attempts):
        return NotifyResult(NotifyOutcome.ALREADY_DELIVERED, completed_now)
    # Each message carries the attempt it is for; once that attempt is claimed, a copy of the
    # message (a redelivery, a second fire after Redis lost its keys) must not start another chain,
    # unless the claim was abandoned by an invocation that died while sending.
    wanted = _attempt_of(fields)
    if len(attempts) < wanted:
        return NotifyResult(_deliver(deps, request_id, record.webhook_url, len(attempts) + 1), completed_now)
    last = attempts[-1]
    if _abandoned(deps, last):  # its sender died mid-send: make that attempt again, under its number
        return NotifyResult(
            _deliver(deps, request_id, record.webhook_url, last.attempt, take_over=True), completed_now
        )
    if _in_flight(last) and dequeue_count > 1:
        # This message was tried before, so the in-flight claim may be its own sender's, dead
        # mid-send: look again once that claim must have finished or expired. (A first-time copy
        # racing a live sender just stops: the sender's own message carries the chain.)
        expiry = deps.settings.webhook_claim_expiry_s
        deps.notify_queue.send({"request_id": request_id, "attempt": wanted}, delay_s=expiry + 1)
    return NotifyResult(NotifyOutcome.STALE, completed_now)


def _in_flight(attempt: DeliveryAttempt) -> bool:
    return attempt.error == SENDING and not attempt.succeeded and attempt.status_code is None


def _claim_cutoff(deps: Dependencies) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=deps.settings.webhook_claim_expiry_s)


def _abandoned(deps: Dependencies, attempt: DeliveryAttempt) -> bool:
    return _in_flight(attempt) and attempt.attempted_at < _claim_cutoff(deps)


def _attempt_of(fields: dict[str, object]) -> int:
    value = fields.get("attempt", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def _deliver(deps: Dependencies, request_id: str, url: str, attempt: int, *, take_over: bool = False) -> NotifyOutcome:
    store = deps.store
    record = store.get_request(request_id)
    assert record is not None  # it existed a moment ago and requests are never deleted here
    if take_over:
        claimed = store.take_over_delivery_claim(request_id, attempt, SENDING, _claim_cutoff(deps))
    else:
        claimed = store.record_delivery_attempt(DeliveryAttempt(
            request_id=request_id, delivery_id=delivery_id_for(request_id), attempt=attempt,
            attempted_at=datetime.now(UTC), url=url, status_code=None, error=SENDING, succeeded=False,
        ))  # fmt: skip
    if not claimed:
        return NotifyOutcome.STALE  # a racing notify claimed this attempt and is sending it
    try:
        return _send_claimed(deps, request_id, url, attempt, record)
    except BaseException:
        # Give the claim back so the queue's redelivery of this message can make the attempt.
        with suppress(Exception):
            store.release_delivery_claim(request_id, attempt)
        raise


def _send_claimed(deps: Dependencies, request_id: str, url: str, attempt: int, record: RequestRecord) -> NotifyOutcome:
    settings = deps.settings
    store = deps.store
    delivery_id = delivery_id_for(request_id)
    # Output URLs as the receiver can fetch them now (a fresh SAS for a private container).
    payload = webhook_payload(record, with_presentable_urls(store.list_images(request_id), deps.output))
    try:
        result = deps.webhook.send(url, payload, delivery_id)
    except ConfigError as exc:  # e.g. no WEBHOOK_SECRET: never send unsigned; retrying cannot help
        result = DeliveryResult(DeliveryVerdict.GIVE_UP, None, f"not sent: {exc}")
    outcome = NotifyOutcome.GAVE_UP
    if result.verdict is DeliveryVerdict.DELIVERED:
        outcome = NotifyOutcome.DELIVERED
    elif result.verdict is DeliveryVerdict.RETRY and attempt < settings.webhook_max_attempts:
        # The next attempt is queued before this one is finished: a crash in between leaves a
        # claim that a later copy of this message recognises as abandoned, not a lost chain.
        delay = retry_delay_s(attempt, settings.webhook_retry_base_s)
        deps.notify_queue.send({"request_id": request_id, "attempt": attempt + 1}, delay_s=delay)
        outcome = NotifyOutcome.RETRY_SCHEDULED
    store.finish_delivery_attempt(
        request_id, attempt, result.status_code, result.error, result.verdict is DeliveryVerdict.DELIVERED
    )
    if outcome is NotifyOutcome.DELIVERED:
        logger.info("webhook of request %s delivered (attempt %d)", request_id, attempt)
    elif outcome is NotifyOutcome.RETRY_SCHEDULED:
        logger.warning(
            "webhook of request %s failed (attempt %d: %s); retrying later",
            request_id, attempt, result.error or result.status_code,
        )
    else:
        logger.error(
            "webhook of request %s given up after attempt %d: %s",
            request_id, attempt, result.error or result.status_code,
        )
    return outcome
