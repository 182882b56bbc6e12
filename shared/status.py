"""Answering a status query: JSON, per-image results, or the output CSV.

A query only reads: a stalled fan-out is resumed by the timer-triggered sweep (``shared.fanout``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from shared.container import Dependencies
from shared.errors import NotFound, Problem, ValidationError
from shared.options import CompressionOptions
from shared.output_storage import with_presentable_urls
from shared.report import output_csv, status_document
from shared.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusQuery:
    request_id: str
    include_images: bool = False
    as_csv: bool = False


@dataclass(frozen=True)
class StatusAnswer:
    document: dict[str, object] | None  # the JSON answer, or None when csv is set
    csv: str | None


def canonical_request_id(raw: str) -> str:
    """Request ids are UUID4s; anything else cannot name a request."""
    try:
        parsed = uuid.UUID(raw)
    except ValueError:
        raise ValidationError([Problem("request_id is not a UUID", column="request_id")]) from None
    if parsed.version != 4 or str(parsed) != raw.lower():
        raise ValidationError([Problem("request_id is not a UUID4 in canonical form", column="request_id")])
    return str(parsed)


def get_status(deps: Dependencies, query: StatusQuery) -> StatusAnswer:
    request_id = canonical_request_id(query.request_id)
    store = deps.store
    record = store.get_request(request_id)
    if record is None:
        raise NotFound(f"no request {request_id}")
    if query.as_csv:
        return StatusAnswer(None, output_csv(with_presentable_urls(store.list_images(request_id), deps.output)))
    images = with_presentable_urls(store.list_images(request_id), deps.output) if query.include_images else None
    document = status_document(record, images, store.delivery_attempts(request_id))
    document["options"] = effective_options(deps.settings, store.request_options(request_id))
    return StatusAnswer(document, None)


def effective_options(settings: Settings, options: CompressionOptions) -> dict[str, object]:
    """The request's options with the service's settings filled in where it gave none."""
    shown = options.as_dict()
    shown["quality"] = options.quality or settings.jpeg_quality
    shown["size_target"] = settings.size_target_ratio if options.size_target is None else options.size_target
    return shown

