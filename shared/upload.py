"""Accepting an upload: validate the CSV, store it in one transaction, start its fan-out.

The fan-out itself is not done here: the upload returns the one message that starts it, which the
HTTP function writes through its queue output binding (see ``shared.fanout``), so the answer takes
the same time whatever the job's size.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shared.container import Dependencies
from shared.csv_input import parse_products
from shared.errors import (
    DuplicateRequest,
    IdempotencyKeyReused,
    PayloadTooLarge,
    Problem,
    TransientFailure,
    ValidationError,
)
from shared.fanout import root_message
from shared.idempotency import ANONYMOUS, Caller, KeyedRequest, expired, scoped_key, upload_fingerprint
from shared.models import RequestStatus
from shared.options import parse_options
from shared.sql_limits import URL_UNITS, too_long
from shared.urls import url_problem

logger = logging.getLogger(__name__)

# Printable ASCII without spaces, as most APIs that take an Idempotency-Key accept.
IDEMPOTENCY_KEY_PATTERN = re.compile(r"[\x21-\x7e]{1,200}")


@dataclass(frozen=True)
class UploadInput:
    csv_data: bytes
    webhook_url: str | None
    idempotency_key: str | None
    # Who sent it (``shared.idempotency.caller_of``): the scope of its Idempotency-Key.
    caller: Caller = field(default=ANONYMOUS)
    option_fields: Mapping[str, str] = field(default_factory=dict)  # quality, size_target, format, ...


@dataclass(frozen=True)
class UploadAccepted:
    request_id: str
    status: RequestStatus
    products: int
    images: int
    replayed: bool  # an earlier upload with the same Idempotency-Key is answered again
    # The message that starts (or restarts) the fan-out, for the fan-out queue; None if it is done.
    fanout_message: str | None = None


def accept_upload(deps: Dependencies, upload: UploadInput) -> UploadAccepted:
    settings = deps.settings
    options, option_problems = parse_options(upload.option_fields)
    option_problems = _option_problems(upload) + option_problems
    store = deps.store
    key = scoped_key(upload.caller, upload.idempotency_key) if upload.idempotency_key else None
    fingerprint = upload_fingerprint(upload)
    if key is not None and not option_problems:
        existing = store.find_keyed_request(key)
        if existing is not None and not expired(existing, settings.idempotency_key_ttl_s):
            return _replay(deps, existing, fingerprint)
    if len(upload.csv_data) > settings.max_csv_bytes:
        raise PayloadTooLarge(f"the CSV is larger than {settings.max_csv_bytes} bytes")
    try:
        products = parse_products(
            upload.csv_data, max_products=settings.max_products, max_urls_per_row=settings.max_urls_per_row
        )
    except PayloadTooLarge:
        raise
    except ValidationError as exc:  # report the options' problems together with the CSV's
        raise ValidationError(option_problems + exc.problems, truncated=exc.truncated) from None
    if option_problems:
        raise ValidationError(option_problems)
    # A missing queue is a deployment problem: answer 503 with its reason, never a 202 for work
    # that cannot be processed.
    deps.image_queue.check()
    request_id = str(uuid.uuid4())
    webhook_url = upload.webhook_url or settings.default_webhook_url or None
    key_cutoff = datetime.now(UTC) - timedelta(seconds=settings.idempotency_key_ttl_s)
    try:
        store.create_request(
            request_id, products, webhook_url, key, upload_sha256=fingerprint, release_key_older_than=key_cutoff,
            options=options,
        )
    except DuplicateRequest:  # the same key raced us: answer as its replay
        assert key is not None  # only a key can be a duplicate
        raced = store.find_keyed_request(key)
        if raced is None:
            raise TransientFailure("a concurrent upload with this Idempotency-Key vanished; retry") from None
        return _replay(deps, raced, fingerprint)
    images = sum(len(product.urls) for product in products)
    logger.info("request %s stored: %d products, %d images", request_id, len(products), images)
    return UploadAccepted(
        request_id, RequestStatus.PENDING, len(products), images, replayed=False,
        fanout_message=root_message(request_id, images),
    )


def _option_problems(upload: UploadInput) -> list[Problem]:
    problems = []
    if upload.webhook_url is not None:
        reason = url_problem(upload.webhook_url) or too_long(upload.webhook_url, URL_UNITS)
        if reason:
            problems.append(Problem(f"webhook_url: {reason}", column="webhook_url"))
    if upload.idempotency_key is not None and not IDEMPOTENCY_KEY_PATTERN.fullmatch(upload.idempotency_key):
        problems.append(
            Problem("Idempotency-Key must be 1-200 printable ASCII characters", column="Idempotency-Key")
        )
    return problems


def _replay(deps: Dependencies, keyed: KeyedRequest, fingerprint: str) -> UploadAccepted:
    """Answer an earlier upload with the same key again, if it asked for the same thing."""
    if keyed.upload_sha256 != fingerprint:
        hours = deps.settings.idempotency_key_ttl_s / 3600
        raise IdempotencyKeyReused([
            Problem(
                "Idempotency-Key was already used with a different upload (CSV, webhook_url or options); "
                f"use a new key for a new upload (a key is kept for {hours:g} h)",
                column="Idempotency-Key",
            )
        ])
    request_id = keyed.request_id
    record = deps.store.get_request(request_id)
    if record is None:  # deleted between the look-up and now
        raise TransientFailure("the earlier request with this Idempotency-Key is gone; retry")
    # The first answer's fan-out message may never have been written (its host died after the
    # commit): restart it; images already handed out are not sent again.
    restart = None if record.fanout_completed_at is not None else root_message(request_id, record.images, resume=True)
    return UploadAccepted(
        request_id, record.status, record.products, record.images, replayed=True, fanout_message=restart
    )
