"""Fan-out: one image-queue message per stored image, resumable after any interruption.

Each image row carries ``enqueued_at``; it is set in batches as sends succeed, so a fan-out cut
short (a crash, a timeout, a queue outage) is resumed by sending only the unmarked images. A send
whose mark was lost is sent again: harmless, because processing an image is idempotent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from shared.container import Dependencies
from shared.errors import TransientFailure

logger = logging.getLogger(__name__)


def fan_out(deps: Dependencies, request_id: str) -> int:
    """Send every not-yet-enqueued image of the request; returns how many were sent."""
    store = deps.store
    tasks = store.unenqueued_tasks(request_id)
    sent = deps.image_queue.send_all(
        [(task.seq, task.to_message()) for task in tasks],
        on_sent=lambda seqs: store.mark_enqueued(request_id, seqs),
    )
    store.mark_fanout_complete(request_id)
    logger.info("fan-out of request %s: %d image messages sent", request_id, sent)
    return sent


def resume_if_stale(deps: Dependencies, request_id: str, created_at: datetime, stale_after_s: float) -> bool:
    """Resume a fan-out that should long have finished; returns whether it resumed one."""
    if datetime.now(UTC) - _aware(created_at) < timedelta(seconds=stale_after_s):
        return False
    logger.warning("resuming the interrupted fan-out of request %s", request_id)
    fan_out(deps, request_id)
    return True


def sweep_stale(deps: Dependencies, stale_after_s: float, limit: int = 5) -> int:
    """Resume up to ``limit`` fan-outs that should long have finished; returns how many resumed.

    Run on every upload, so a request whose fan-out was cut short (its host died before the
    202, or the queue failed) is resumed even when its client never polls the status.
    """
    older_than = datetime.now(UTC) - timedelta(seconds=stale_after_s)
    resumed = 0
    for request_id in deps.store.stale_fanouts(older_than, limit=limit):
        logger.warning("sweep: resuming the interrupted fan-out of request %s", request_id)
        try:
            fan_out(deps, request_id)
        except TransientFailure:
            logger.warning("sweep: request %s still cannot be fanned out", request_id, exc_info=True)
            break
        resumed += 1
    return resumed


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
