"""Staged fan-out: a request's images go out as a tree of range messages on the fan-out queue.

The upload writes one range message covering the whole request. Handling a range sends the image
messages of its first ``leaf_size`` images itself and splits the rest into at most ``branching``
sub-range messages, so a big request fans out in parallel on every worker and instance, and the
first images are on the image queue one hop after the upload. Both kinds of message leave through
the fan-out function's queue output bindings: the host writes them only if the invocation
succeeded, and writing through a binding is what wakes the listener of the queue written to.

Crash safety comes from the fan-out queue itself: a range whose host died before its outputs were
written is delivered again and sent again. Duplicates are harmless (processing an image is
idempotent and the fan-in counts each image once); images already finished are not re-sent.

Each image sent is marked ``enqueued_at``, and the request ``fanout_completed_at`` once none is
left unmarked. The marks are a progress record, not a guard: they are set when the messages are
handed to the host, so a redelivered range ignores them. The periodic sweep (``sweep``) uses them
to find a fan-out that made no progress for a while (its root message was never written because
the upload's host died after the commit, or a range went to the poison queue) and starts it again
in *resume* mode, which sends only the images never handed out.

With ``FANOUT_WINDOW`` set, a request keeps at most that many images handed out ahead of its
processing: what lies beyond waits as one tail range, re-sent to the fan-out queue with a delay
(``shared.fanout_window``). Tails are sent in resume mode: they cover only images never handed
out, so a duplicate tail (a redelivery, a sweep's restart) skips what another already sent. A
range of a cancelled request sends nothing more and marks its images, so the fan-out closes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.container import Dependencies
from shared.errors import MalformedMessage
from shared.fanout_window import Sighting, wait_delay_s, window_limit
from shared.models import RequestStatus
from shared.ports import RequestStore
from shared.queues import decode, encode

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FanoutRange:
    """Images ``start <= seq < end`` of a request still to be sent to the image queue."""

    request_id: str
    start: int
    end: int
    # Send only images never handed out before (a sweep's restart), on the first delivery only.
    resume: bool = False
    # A range waiting for its window: what its previous check saw (the request's finishing rate).
    seen: Sighting | None = None

    @classmethod
    def whole(cls, request_id: str, images: int, resume: bool = False) -> FanoutRange:
        return cls(request_id, 0, images, resume)

    def to_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {"request_id": self.request_id, "start": self.start, "end": self.end}
        if self.resume:
            payload["resume"] = True
        if self.seen is not None:
            payload["seen"] = self.seen.to_payload()
        return payload

    def to_message(self) -> str:
        return encode(self.to_payload())

    @classmethod
    def from_message(cls, body: str) -> FanoutRange:
        fields = decode(body)
        try:
            fanout_range = cls(
                request_id=str(fields["request_id"]),
                start=int(fields["start"]),
                end=int(fields["end"]),
                resume=bool(fields.get("resume", False)),
                seen=Sighting.from_payload(fields["seen"]) if "seen" in fields else None,
            )
        except (KeyError, TypeError, ValueError):
            raise MalformedMessage("fan-out message lacks request_id, start or end") from None
        if fanout_range.start < 0 or fanout_range.end < fanout_range.start:
            raise MalformedMessage("fan-out message has a range outside 0 <= start <= end")
        return fanout_range


@dataclass(frozen=True)
class FanoutShape:
    """How a range is cut: images sent by one invocation, and sub-ranges a range splits into."""

    leaf_size: int
    branching: int


@dataclass(frozen=True)
class FanoutResult:
    """The messages one range's invocation hands to its output bindings, and its delayed range."""

    sub_ranges: list[str]  # for the fan-out queue
    image_messages: list[str]  # for the image queue
    # A range waiting for the window, with its delay in seconds: an SDK send (a binding cannot delay).
    later: list[tuple[FanoutRange, int]] = field(default_factory=list)


def split(fanout_range: FanoutRange, shape: FanoutShape) -> tuple[FanoutRange, list[FanoutRange]]:
    """The head this invocation sends itself, and the sub-ranges the rest is cut into."""
    head_end = min(fanout_range.end, fanout_range.start + shape.leaf_size)
    head = FanoutRange(fanout_range.request_id, fanout_range.start, head_end, fanout_range.resume)
    rest = fanout_range.end - head_end
    if rest <= 0:
        return head, []
    # Sub-ranges of at least a leaf each, and no more than ``branching`` of them.
    step = max(shape.leaf_size, -(-rest // shape.branching))
    children = [
        FanoutRange(fanout_range.request_id, start, min(start + step, fanout_range.end), fanout_range.resume)
        for start in range(head_end, fanout_range.end, step)
    ]
    return head, children


def cut_at_window(
    fanout_range: FanoutRange, limit: int | None, leaf_size: int
) -> tuple[FanoutRange, FanoutRange | None]:
    """The part of a range to fan out now (its head at least), and the tail beyond ``limit``."""
    if limit is None:
        return fanout_range, None
    cut = max(limit, fanout_range.start + leaf_size)
    if cut >= fanout_range.end:
        return fanout_range, None
    # The tail covers only images never handed out: in resume mode, a duplicate skips what another sent.
    return replace(fanout_range, end=cut), FanoutRange(fanout_range.request_id, cut, fanout_range.end, resume=True)


def handle_range(
    store: RequestStore, body: str, dequeue_count: int, shape: FanoutShape, window: int = 0, now: float | None = None
) -> FanoutResult:
    """Handle one fan-out message: its head's image messages, its sub-range messages, and with a
    window, its tail (or the whole range, when it may not start yet) to look again later."""
    fanout_range = FanoutRange.from_message(body)
    tail, tail_delay = None, 0
    if window > 0:
        record = store.get_request(fanout_range.request_id)
        if record is None:
            logger.warning("fan-out of request %s: no such request; dropping the range", fanout_range.request_id)
            return FanoutResult([], [])
        if record.status in (RequestStatus.CANCELLING, RequestStatus.CANCELLED):
            return _drop_cancelled(store, fanout_range)
        now = time.time() if now is None else now
        finished = record.finished_images
        limit = window_limit(finished, window)
        assert limit is not None  # window > 0
        if fanout_range.start >= limit:
            delay = wait_delay_s(fanout_range.start, limit, finished, now, fanout_range.seen)
            logger.info(
                "fan-out of request %s [%d, %d) waits for its window: %d finished, limit %d; again in %ds",
                fanout_range.request_id, fanout_range.start, fanout_range.end, finished, limit, delay,
            )  # fmt: skip
            return FanoutResult([], [], [(replace(fanout_range, seen=Sighting(finished, now, delay)), delay)])
        fanout_range, tail = cut_at_window(fanout_range, limit, shape.leaf_size)
        if tail is not None:
            # The rate seen since this range's own last check, if it waited: the tail's first estimate.
            tail_delay = wait_delay_s(tail.start, limit, finished, now, fanout_range.seen)
            tail = replace(tail, seen=Sighting(finished, now, 0))
    head, children = split(fanout_range, shape)
    # A redelivery may follow a crash after the marks were set but before the host wrote the
    # messages, so only a first delivery may trust the marks to skip images.
    unmarked_only = head.resume and dequeue_count <= 1
    tasks = store.pending_tasks(head.request_id, head.start, head.end, unmarked_only=unmarked_only)
    images = [json.dumps(task.to_message(), separators=(",", ":"), ensure_ascii=False) for task in tasks]
    store.mark_enqueued_range(head.request_id, head.start, head.end)
    if not children and tail is None and store.mark_fanout_complete_if_done(head.request_id):
        logger.info("fan-out of request %s: every image handed to the image queue", head.request_id)
    logger.info(
        "fan-out of request %s [%d, %d): %d image messages, %d sub-ranges%s",
        fanout_range.request_id, fanout_range.start, fanout_range.end, len(images), len(children),
        "" if tail is None else f"; [{tail.start}, {tail.end}) waits for the window ({tail_delay}s)",
    )  # fmt: skip
    later = [] if tail is None else [(tail, tail_delay)]
    return FanoutResult([child.to_message() for child in children], images, later)


def _drop_cancelled(store: RequestStore, fanout_range: FanoutRange) -> FanoutResult:
    """A cancelled request's range sends nothing more; its images are marked so the fan-out closes
    (and the sweep leaves it alone)."""
    store.mark_enqueued_range(fanout_range.request_id, fanout_range.start, fanout_range.end)
    store.mark_fanout_complete_if_done(fanout_range.request_id)
    logger.info(
        "fan-out of request %s [%d, %d) stops: the request was cancelled",
        fanout_range.request_id, fanout_range.start, fanout_range.end,
    )  # fmt: skip
    return FanoutResult([], [])


def root_message(request_id: str, images: int, resume: bool = False) -> str:
    """The one message that starts (or, with ``resume``, restarts) a request's fan-out."""
    return FanoutRange.whole(request_id, images, resume).to_message()


def sweep(store: RequestStore, stale_after_s: float, now: datetime | None = None, limit: int = 100) -> list[str]:
    """Restart messages for fan-outs that made no progress for ``stale_after_s``, oldest first."""
    older_than = (now or datetime.now(UTC)) - timedelta(seconds=stale_after_s)
    messages = []
    for request_id, images in store.stalled_fanouts(older_than, limit=limit):
        logger.warning("sweep: restarting the stalled fan-out of request %s (%d images)", request_id, images)
        messages.append(root_message(request_id, images, resume=True))
    return messages



def fan_out_range(deps: Dependencies, body: str, dequeue_count: int) -> FanoutResult:
    """The fan-out function's use case: one range message in, its output messages out.

    A body that can never be a range raises ``MalformedMessage`` before anything is touched. A
    range waiting for its window is sent here, delayed, before the invocation succeeds: the host
    deletes the trigger only after, so a failed send leaves the range to be delivered again.
    """
    settings = deps.settings
    shape = FanoutShape(settings.fanout_leaf_size, settings.fanout_branching)
    result = handle_range(deps.store, body, dequeue_count, shape, settings.fanout_window)
    for waiting, delay_s in result.later:
        deps.fanout_queue.send(waiting.to_payload(), delay_s=delay_s)
    return result


def sweep_stalled(deps: Dependencies) -> list[str]:
    """The sweep function's use case: restart messages for the stalled fan-outs."""
    return sweep(deps.store, deps.settings.fanout_stale_after_s)
