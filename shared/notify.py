"""Closing a request and delivering its webhook.

The request is marked Completed exactly once (a conditional update). The webhook carries a
delivery id that is the same for every attempt, so a receiver can drop duplicates. A transient
failure re-enqueues the notify message with a growing delay; other 4xx give up. Every attempt is
recorded.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared import services
from shared.errors import ConfigError, PermanentFailure
from shared.models import DeliveryAttempt
from shared.queues import decode, send
from shared.report import webhook_payload
from shared.webhook import DeliveryResult, DeliveryVerdict, retry_delay_s

logger = logging.getLogger(__name__)

DELIVERY_NAMESPACE = uuid.UUID("7d0b8d1e-4f4b-4d55-9a55-0c2f6b1f6a11")
# The error text of an attempt that is claimed and being sent.
SENDING = "sending"
# A claim older than twice the webhook timeout plus this was left by an invocation that died.
ABANDONED_AFTER_S = 60


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


def notify_request(body: str) -> NotifyResult:
    fields = decode(body)
    request_id = str(fields.get("request_id", ""))
    if not request_id:
        raise PermanentFailure("notify message lacks request_id")
    store = services.store()
    record = store.get_request(request_id)
    if record is None:
        logger.warning("notify for unknown request %s dropped", request_id)
        return NotifyResult(NotifyOutcome.UNKNOWN, False)
    if record.done + record.failed < record.images:
        logger.warning(
            "notify for request %s with %d of %d images finished: not closing it yet",
            request_id, record.done + record.failed, record.images,
        )
        return NotifyResult(NotifyOutcome.NOT_READY, False)
    completed_now = store.complete_request(request_id)
    if completed_now:
        logger.info("request %s completed: %d done, %d failed", request_id, record.done, record.failed)
    if not record.webhook_url:
        return NotifyResult(NotifyOutcome.NO_WEBHOOK, completed_now)
    attempts = store.delivery_attempts(request_id)
    if any(attempt.succeeded for attempt in attempts):
        return NotifyResult(NotifyOutcome.ALREADY_DELIVERED, completed_now)
    # Each message carries the attempt it is for; once that attempt is claimed, a copy of the
    # message (a redelivery, a second fire after Redis lost its keys) must not start another chain,
    # unless the claim was abandoned by an invocation that died while sending.
    if len(attempts) >= _attempt_of(fields) and not _abandoned(attempts[-1]):
        return NotifyResult(NotifyOutcome.STALE, completed_now)
    return NotifyResult(_deliver(request_id, record.webhook_url, len(attempts) + 1), completed_now)


def _abandoned(attempt: DeliveryAttempt) -> bool:
    if attempt.error != SENDING or attempt.succeeded:
        return False
    limit = timedelta(seconds=services.settings().webhook_timeout_s * 2 + ABANDONED_AFTER_S)
    return datetime.now(UTC) - attempt.attempted_at > limit


def _attempt_of(fields: dict[str, object]) -> int:
    value = fields.get("attempt", 1)
    return value if isinstance(value, int) and value >= 1 else 1


def _deliver(request_id: str, url: str, attempt: int) -> NotifyOutcome:
    settings = services.settings()
    store = services.store()
    record = store.get_request(request_id)
    assert record is not None  # it existed a moment ago and requests are never deleted here
    delivery_id = delivery_id_for(request_id)
    claim = DeliveryAttempt(
        request_id=request_id, delivery_id=delivery_id, attempt=attempt, attempted_at=datetime.now(UTC),
        url=url, status_code=None, error=SENDING, succeeded=False,
    )
    if not store.record_delivery_attempt(claim):
        return NotifyOutcome.STALE  # a racing notify claimed this attempt and is sending it
    payload = webhook_payload(record, store.list_images(request_id))
    try:
        result = services.webhook_sender().send(url, payload, delivery_id)
    except ConfigError as exc:  # e.g. no WEBHOOK_SECRET: never send unsigned; retrying cannot help
        result = DeliveryResult(DeliveryVerdict.GIVE_UP, None, f"not sent: {exc}")
    outcome = NotifyOutcome.GAVE_UP
    if result.verdict is DeliveryVerdict.DELIVERED:
        outcome = NotifyOutcome.DELIVERED
    elif result.verdict is DeliveryVerdict.RETRY and attempt < settings.webhook_max_attempts:
        # The next attempt is queued before this one is finished: a crash in between leaves a
        # claim that a later copy of this message recognises as abandoned, not a lost chain.
        delay = retry_delay_s(attempt, settings.webhook_retry_base_s)
        send(services.notify_queue(), {"request_id": request_id, "attempt": attempt + 1}, delay_s=delay)
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
