"""Processing one image message: download, compress, store, record, count towards the fan-in.

Idempotent under redelivery: an image already terminal in the database is not worked again, the
output name is deterministic (a retry overwrites), the outcome is recorded with a conditional
update, and the fan-in counts each image once.

A URL repeated within a request is worked once, by its first slot (the leader): the leader's
outcome is copied to the repeats (aliases) in the same transaction, and the leader counts every
one of those slots towards the fan-in (its redelivery counts them again). An alias's own message,
if one is sent, does nothing.

A transient failure is retried later, on ``shared.retry_policy``'s schedule, through a delayed
copy of the message; the image stays Pending meanwhile, so the fan-in counts nothing until the
image is Done or Failed. A copy sent twice (the original redelivered after a crash) only works
the image twice: the first to finish records it, and the fan-in counts a seq once.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.container import Dependencies
from shared.errors import MAX_ERROR_CHARS, MalformedMessage, PermanentFailure, TransientFailure
from shared.imaging import compress_image
from shared.models import ImageOutcome, ImageState, ImageTask, Recorded
from shared.options import CompressionOptions
from shared.outbound import download
from shared.queues import decode

logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What this invocation did with its image."""

    DONE = "done"  # compressed and recorded now
    FAILED = "failed"  # recorded as failed now (permanent failure, or the last attempt)
    ALREADY = "already"  # the image was terminal before: only the fan-in was (re)counted
    ALIAS = "alias"  # the URL repeats an earlier slot (its leader), which works and counts for it
    UNKNOWN = "unknown"  # the database has no such image: nothing to do
    RETRYING = "retrying"  # failed transiently; a delayed copy of the message tries again


@dataclass(frozen=True)
class ProcessResult:
    outcome: Outcome
    notify: dict[str, object] | None  # the notify-queue message, when this image completed the request


def parse_task(body: str) -> ImageTask:
    fields = decode(body)
    try:
        task = ImageTask(
            request_id=str(fields["request_id"]),
            seq=int(fields["seq"]),
            url=str(fields["url"]),
            total=int(fields["total"]),
            retry=int(fields.get("retry", 0)),
        )
    except (KeyError, TypeError, ValueError):
        raise MalformedMessage("image message lacks request_id, seq, url or total") from None
    if task.seq < 0 or task.total <= task.seq:
        raise MalformedMessage("image message has seq outside 0..total-1")
    if task.retry < 0:
        raise MalformedMessage("image message has a negative retry count")
    return task


def process_image(deps: Dependencies, body: str, dequeue_count: int) -> ProcessResult:
    """Handle one image message; raises to have the queue retry a transient failure.

    A body that can never be an image task raises ``MalformedMessage`` before anything is touched.
    """
    task = parse_task(body)
    store = deps.store
    state = store.image_state(task.request_id, task.seq)
    if state is None:
        logger.warning("image %s/%d is not in the database; dropping the message", task.request_id, task.seq)
        return ProcessResult(Outcome.UNKNOWN, None)
    if state.leader_seq is not None:
        # The leader's invocation works for this slot and counts it; counting it here as well
        # could make a second invocation fire (the one whose count completed the set is its seq).
        return ProcessResult(Outcome.ALIAS, None)
    if state.status.terminal:
        # Terminal before the read, so the read's re-seed mark is as late as the rule needs.
        outcome, reseed = Outcome.ALREADY, state.fanin_reseed
    elif not store.mark_started(task.request_id, task.seq):
        # It stopped being Pending since the read (a cancel skipped it, or a racing worker
        # finished it): read the mark again, now that it is terminal.
        outcome, reseed = Outcome.ALREADY, store.fanin_reseed_needed(task.request_id)
    else:
        outcome, recorded = _work(deps, task, body, dequeue_count, state)
        if recorded is None:  # retrying: still Pending, nothing to count yet
            return ProcessResult(outcome, None)
        reseed = recorded.fanin_reseed  # read in the transaction that recorded the image
    # A leader counts its repeats too; only a leader that has some reads their seqs.
    slots = [task.seq, *store.alias_seqs(task.request_id, task.seq)] if state.has_repeats else [task.seq]
    fires = _count_completion(deps, task, slots, reseed)
    if fires:
        logger.info("request %s: last image finished, notifying", task.request_id)
    return ProcessResult(outcome, {"request_id": task.request_id} if fires else None)


def _count_completion(deps: Dependencies, task: ImageTask, slots: list[int], reseed: bool) -> bool:
    """Whether these slots completed their request: Redis counts; the database answers if Redis is down.

    Images finished during an outage are missing from Redis's set even when Redis kept its keys,
    so the fallback first marks the request for a re-seed (then counts in the database); every
    later count of that request re-seeds the set from the database. Marking before counting
    closes the race: an image recorded after the mark sees it, one recorded before is counted.
    So ``reseed`` must be the mark as read after this image became terminal: read in the
    transaction that recorded it (``Recorded.fanin_reseed``, under the request row's write lock,
    which the mark's update also takes), or by a read that found it already terminal. Reading it
    before the image is recorded would not do: a mark and a database count falling between that
    read and the record would each miss the other's image, and the request would never complete.
    The fallback may fire more than once; the notify handles duplicates.
    """
    store = deps.store
    fires = False
    for seq in slots:  # every one, even after one fired: each slot must be in the count
        try:
            fires = deps.completion.record(
                task.request_id, seq, task.total,
                seed=lambda: store.terminal_seqs(task.request_id),
                reseed=reseed,
            ) or fires  # fmt: skip
        except TransientFailure:
            logger.warning("Redis unavailable: counting request %s in the database", task.request_id, exc_info=True)
            store.mark_fanin_reseed(task.request_id)
            reseed = True  # the mark is never cleared: later slots re-seed, as any later count does
            record = store.get_request(task.request_id)
            fires = (record is not None and record.finished_images >= record.images) or fires
    return fires


def _work(
    deps: Dependencies, task: ImageTask, body: str, dequeue_count: int, state: ImageState
) -> tuple[Outcome, Recorded | None]:
    """Compress and record the image; the ``Recorded`` is None while a delayed retry is pending."""
    store = deps.store
    try:
        outcome = compress_and_store(deps, task, state.options)
    except PermanentFailure as exc:
        recorded = store.record_failed(task.request_id, task.seq, _reason(exc), has_repeats=state.has_repeats)
        logger.info("image %s/%d failed: %s", task.request_id, task.seq, _reason(exc))
        return Outcome.FAILED, recorded
    except Exception as exc:
        return _retry_later(deps, task, body, dequeue_count, exc, state.has_repeats)
    return Outcome.DONE, store.record_done(task.request_id, task.seq, outcome, has_repeats=state.has_repeats)


def _retry_later(
    deps: Dependencies, task: ImageTask, body: str, dequeue_count: int, exc: Exception, has_repeats: bool
) -> tuple[Outcome, Recorded | None]:
    """Send a delayed copy of the message for the next attempt, or record Failed when none is left.

    The copy is sent before this invocation returns, so the host deletes the original only once
    the copy is safely queued. If the copy cannot be sent, the exception goes to the host, which
    redelivers the original at once (host.json ``maxDequeueCount``); its last attempt gives up.
    """
    schedule = deps.settings.image_retry_schedule
    reason = _reason(exc)
    delay_s = schedule.delay_after(task.retry)
    if delay_s is None:
        return _give_up(deps, task, f"gave up after {task.retry + 1} attempts: {reason}", exc, has_repeats)
    retry_at = datetime.now(UTC) + timedelta(seconds=delay_s)
    deps.store.note_retry(task.request_id, task.seq, reason, retry_at)
    try:
        # Queue visibility is in whole seconds: round up, so a short delay is never no delay.
        deps.image_queue.send({**decode(body), "retry": task.retry + 1}, delay_s=math.ceil(delay_s))
    except TransientFailure:
        if dequeue_count < deps.settings.max_dequeue_count:
            raise
        return _give_up(deps, task, f"gave up after {dequeue_count} attempts, no retry could be queued: {reason}",
                        exc, has_repeats)  # fmt: skip
    logger.info(
        "image %s/%d failed transiently (%s): attempt %d of %d in %gs",
        task.request_id, task.seq, reason, task.retry + 2, schedule.attempts, delay_s,
    )  # fmt: skip
    return Outcome.RETRYING, None


def _give_up(
    deps: Dependencies, task: ImageTask, reason: str, exc: Exception, has_repeats: bool
) -> tuple[Outcome, Recorded | None]:
    recorded = deps.store.record_failed(task.request_id, task.seq, reason, has_repeats=has_repeats)
    logger.warning("image %s/%d %s", task.request_id, task.seq, reason, exc_info=exc)
    return Outcome.FAILED, recorded


def compress_and_store(deps: Dependencies, task: ImageTask, options: CompressionOptions | None = None) -> ImageOutcome:
    settings = deps.settings
    options = options or CompressionOptions()
    started = time.perf_counter()
    data = download(
        deps.http,
        task.url,
        max_bytes=settings.max_image_bytes,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        total_timeout_s=settings.read_timeout_s * 3,
    )
    downloaded = time.perf_counter()
    image = compress_image(
        data,
        quality=options.quality or settings.jpeg_quality,
        max_pixels=settings.max_image_pixels,
        size_target_ratio=settings.size_target_ratio if options.size_target is None else options.size_target,
        output_format=options.format.value,
        max_dimension=options.max_dimension,
    )
    compressed = time.perf_counter()
    name = f"{task.request_id}/{task.seq:05d}.{image.extension}"
    output_url = deps.output.put(name, image.data, image.content_type)
    stored = time.perf_counter()
    return ImageOutcome(
        output_url=output_url,
        bytes_in=len(data),
        bytes_out=len(image.data),
        width=image.width,
        height=image.height,
        format=image.format,
        quality=image.quality,
        download_ms=round((downloaded - started) * 1000),
        process_ms=round((compressed - downloaded) * 1000),
        store_ms=round((stored - compressed) * 1000),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:MAX_ERROR_CHARS]
