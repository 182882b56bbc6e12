"""Cancelling a request: unstarted images are skipped, started ones finish, then it closes once.

``DELETE /api/requests/{request_id}`` marks the request Cancelling and its unstarted images
Skipped in one transaction. Images already started finish normally. The request is then closed
like any other (the notify's conditional update, exactly once) as Cancelled, and its webhook says
so. The skipped slots are not in the Redis fan-in count, so the request is marked for a re-seed
from the database: the last started image to finish then fires the notify; when none is in
flight, the cancel sends the notify itself. A repeated cancel answers the same and sends the
notify again if it may have been lost (the notify is idempotent).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.container import Dependencies
from shared.errors import Conflict, NotFound
from shared.models import RequestRecord, RequestStatus
from shared.report import status_document
from shared.status import canonical_request_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CancelAnswer:
    finished: bool  # Cancelled (closed); False while started images are finishing
    document: dict[str, object]  # the status document


def cancel_request(deps: Dependencies, raw_request_id: str) -> CancelAnswer:
    """Cancel; NotFound for an unknown id, Conflict once the request has finished otherwise."""
    request_id = canonical_request_id(raw_request_id)
    store = deps.store
    if store.get_request(request_id) is None:
        raise NotFound(f"no request {request_id}")
    if store.cancel_request(request_id):
        logger.info("request %s cancelled: unstarted images skipped", request_id)
    record = store.get_request(request_id)
    assert record is not None  # requests are never deleted
    if record.status not in (RequestStatus.CANCELLING, RequestStatus.CANCELLED):
        raise Conflict(f"request {request_id} has no image left to cancel (status {record.status.value})")
    if record.status is RequestStatus.CANCELLING:
        # On every call, not only the one that cancelled: a retry after a lost commit
        # acknowledgement finds the request Cancelling already and must still do both.
        store.mark_fanin_reseed(request_id)
        _notify_if_settled(deps, record)
    document = status_document(record, None, store.delivery_attempts(request_id))
    return CancelAnswer(record.status is RequestStatus.CANCELLED, document)


def _notify_if_settled(deps: Dependencies, record: RequestRecord) -> None:
    """With no image left in flight, no image invocation will fire the notify: send it here."""
    if record.finished_images >= record.images:
        deps.notify_queue.send({"request_id": record.request_id})
