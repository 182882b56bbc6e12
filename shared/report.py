"""What a client sees: the status JSON, the webhook payload and the output CSV.

Timestamps are ISO-8601 in UTC with a ``Z`` and millisecond precision (a naive datetime is taken
to be UTC already, as the store writes them). The webhook URL is shown without credentials, query
or fragment, because those are where clients put tokens.

Output CSV: one row per product in input order, with the columns of the input plus
``Output Image Urls``. Each URL cell is the product's URLs joined with "," in input order. A
failed (or still pending) image keeps its slot as an empty string, so the n-th output URL always
belongs to the n-th input URL: ``https://a/1.jpg,,https://a/3.jpg`` means the second failed.
Cells are written with ``defusedcsv`` so a product name such as ``=HYPERLINK(...)`` is
neutralised before a spreadsheet can evaluate it, and every control character (ANSI escapes
included) and bidirectional override (U+202E and its kin, which reorder what a reader sees) is
replaced by U+FFFD, so a cell cannot restyle a terminal or disguise itself.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from defusedcsv import csv

from shared.models import DeliveryAttempt, ImageRecord, ImageStatus, RequestRecord, RequestStatus
from shared.webhook import redact_url

CSV_HEADER = ("S. No.", "Product Name", "Input Image Urls", "Output Image Urls")
URL_SEPARATOR = ","
# C0 and C1 controls (ESC starts ANSI sequences), bidi embeddings/overrides/isolates and marks,
# and the Unicode line and paragraph separators.
_UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def neutralise(text: str) -> str:
    """``text`` with every control or bidi formatting character replaced by U+FFFD."""
    return _UNSAFE_CHARACTERS.sub("\ufffd", text)


def iso_utc(moment: datetime | None) -> str | None:
    """``2024-05-01T12:00:00.123Z``; None stays None."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _in_input_order(images: Sequence[ImageRecord]) -> list[ImageRecord]:
    return sorted(images, key=lambda image: image.seq)


def image_result(image: ImageRecord) -> dict[str, object]:
    """One image as the status endpoint reports it with ``include=images``."""
    return {
        "seq": image.seq,
        "serial": image.serial,
        "product_name": image.product_name,
        "url_index": image.url_index,
        "input_url": image.input_url,
        "status": image.status.value,
        "output_url": image.output_url,
        "error": image.error,
        "bytes_in": image.bytes_in,
        "bytes_out": image.bytes_out,
        "width": image.width,
        "height": image.height,
        "attempts": image.attempts,
        "started_at": iso_utc(image.started_at),
        "finished_at": iso_utc(image.finished_at),
        # Pending after a transient failure (``error`` says which): when the next attempt is due.
        "retry_at": iso_utc(image.retry_at) if image.status is ImageStatus.PENDING else None,
    }


def _webhook_summary(request: RequestRecord,
                     deliveries: Sequence[DeliveryAttempt]) -> dict[str, object] | None:
    last = max(deliveries, key=lambda d: (d.attempt, d.attempted_at), default=None)
    url = request.webhook_url or (last.url if last else None)
    if not url:
        return None
    return {
        "url": redact_url(url),
        "delivered": any(d.succeeded for d in deliveries),
        "attempts": len(deliveries),
        "last_status_code": last.status_code if last else None,
        "last_error": last.error if last else None,
        "last_attempt_at": iso_utc(last.attempted_at) if last else None,
    }


def status_document(request: RequestRecord, images: Sequence[ImageRecord] | None,
                    deliveries: Sequence[DeliveryAttempt]) -> dict[str, object]:
    """The JSON answer of ``GET /api/status/{request_id}``; per-image ``results`` if images given.

    ``webhook`` is null when the request has no webhook URL.
    """
    document: dict[str, object] = {
        "request_id": request.request_id,
        "status": request.status.value,
        "products": request.products,
        "images": request.images,
        "done": request.done,
        "failed": request.failed,
        "skipped": request.skipped,
        "distinct_images": request.images - request.repeats,
        "created_at": iso_utc(request.created_at),
        "updated_at": iso_utc(request.updated_at),
        "completed_at": iso_utc(request.completed_at),
        "webhook": _webhook_summary(request, deliveries),
    }
    if images is not None:
        document["results"] = [image_result(image) for image in _in_input_order(images)]
    return document


def webhook_payload(request: RequestRecord, images: Sequence[ImageRecord]) -> dict[str, object]:
    """The body POSTed to the client's webhook once every image of the request finished.

    ``done`` and ``failed`` are counted from ``images`` so they always agree with ``output_images``.
    """
    ordered = _in_input_order(images)
    cancelled = request.status in (RequestStatus.CANCELLING, RequestStatus.CANCELLED)
    return {
        "request_id": request.request_id,
        "status": (RequestStatus.CANCELLED if cancelled else RequestStatus.COMPLETED).value,
        "products": request.products,
        "images": len(ordered),
        "done": sum(1 for image in ordered if image.status is ImageStatus.DONE),
        "failed": sum(1 for image in ordered if image.status is ImageStatus.FAILED),
        "skipped": sum(1 for image in ordered if image.status is ImageStatus.SKIPPED),
        "distinct_images": len({image.input_url for image in ordered}),
        "completed_at": iso_utc(request.completed_at or request.updated_at),
        "output_images": [
            {
                "serial": image.serial,
                "product_name": image.product_name,
                "input_url": image.input_url,
                "output_url": image.output_url if image.status is ImageStatus.DONE else None,
                "status": image.status.value,
                "error": image.error,
            }
            for image in ordered
        ],
    }


def _products(images: Sequence[ImageRecord]) -> list[list[ImageRecord]]:
    """Images grouped by product; a product's images are consecutive seqs starting at url_index 0."""
    products: list[list[ImageRecord]] = []
    for image in _in_input_order(images):
        current = products[-1] if products else None
        if current is None or image.url_index == 0 or image.serial != current[0].serial:
            products.append([image])
        else:
            current.append(image)
    return products


def output_csv(images: Sequence[ImageRecord]) -> str:
    """The output CSV (header plus one row per product), CRLF line ends as RFC 4180 asks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_HEADER)
    for product in _products(images):
        ordered = sorted(product, key=lambda image: image.url_index)
        outputs = ((image.output_url or "") if image.status is ImageStatus.DONE else "" for image in ordered)
        writer.writerow((
            product[0].serial,
            neutralise(product[0].product_name),
            neutralise(URL_SEPARATOR.join(image.input_url for image in ordered)),
            neutralise(URL_SEPARATOR.join(outputs)),
        ))
    return buffer.getvalue()
