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
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.container import Dependencies
from shared.errors import MalformedMessage
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

    @classmethod
    def whole(cls, request_id: str, images: int, resume: bool = False) -> FanoutRange:
        return cls(request_id, 0, images, resume)

    def to_message(self) -> str:
        payload: dict[str, object] = {"request_id": self.request_id, "start": self.start, "end": self.end}
        if self.resume:
            payload["resume"] = True
        return encode(payload)

    @classmethod
    def from_message(cls, body: str) -> FanoutRange:
        fields = decode(body)
        try:
            fanout_range = cls(
                request_id=str(fields["request_id"]),
                start=int(fields["start"]),
                end=int(fields["end"]),
                resume=bool(fields.get("resume", False)),
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
    """The messages one range's invocation hands to its output bindings."""

    sub_ranges: list[str]  # for the fan-out queue
    image_messages: list[str]  # for the image queue


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


def handle_range(store: RequestStore, body: str, dequeue_count: int, shape: FanoutShape) -> FanoutResult:
    """Handle one fan-out message: its head's image messages and its sub-range messages."""
    fanout_range = FanoutRange.from_message(body)
    head, children = split(fanout_range, shape)
    # A redelivery may follow a crash after the marks were set but before the host wrote the
    # messages, so only a first delivery may trust the marks to skip images.
    unmarked_only = head.resume and dequeue_count <= 1
    tasks = store.pending_tasks(head.request_id, head.start, head.end, unmarked_only=unmarked_only)
    images = [json.dumps(task.to_message(), separators=(",", ":"), ensure_ascii=False) for task in tasks]
    store.mark_enqueued_range(head.request_id, head.start, head.end)
    if not children and store.mark_fanout_complete_if_done(head.request_id):
        logger.info("fan-out of request %s: every image handed to the image queue", head.request_id)
    logger.info(
        "fan-out of request %s [%d, %d): %d image messages, %d sub-ranges",
        fanout_range.request_id, fanout_range.start, fanout_range.end, len(images), len(children),
    )  # fmt: skip
    return FanoutResult([child.to_message() for child in children], images)


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

    A body that can never be a range raises ``MalformedMessage`` before anything is touched.
    """
    shape = FanoutShape(deps.settings.fanout_leaf_size, deps.settings.fanout_branching)
    return handle_range(deps.store, body, dequeue_count, shape)


def sweep_stalled(deps: Dependencies) -> list[str]:
    """The sweep function's use case: restart messages for the stalled fan-outs."""
    return sweep(deps.store, deps.settings.fanout_stale_after_s)
