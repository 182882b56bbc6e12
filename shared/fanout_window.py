"""The fan-out window: how far ahead of its processing a request's fan-out may run.

The image queue is first in, first out. Without a bound, a 200,000-image request posted first
holds every later request behind all of its messages; locally, Azurite's cost per receive and
delete also grows with the messages a queue holds. So a request may have at most
``FANOUT_WINDOW`` images handed out ahead of those finished: a range may send while its ``start``
is below ``finished + window`` (``limit``). A range reaching past the limit sends its head and
splits what lies below the limit as usual, and leaves the rest as one *tail* range that waits on
the fan-out queue, re-sent with a visibility delay (``wait_delay_s``) until the request has
finished enough images. One tail per request waits at a time, so the cost of waiting is one cheap
read (the request row) and one delayed send per check, whatever the request's size.

The delay aims at the moment the tail may go: the images still to finish before it may, over the
request's recent finishing rate, measured between two checks (``Sighting`` in the message).
Without a rate (the first check) it looks again after ``MIN_WAIT_S``; with nothing finished since
the last check it doubles the last wait, up to ``MAX_WAIT_S``. Ceiled to whole seconds: queue
visibility delays are whole seconds.

Images handed out and not finished stay below ``window + leaf_size`` per request (a head may start
just below the limit); a repeated URL's slots finish with their leader and can loosen that by
their number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shared.errors import MalformedMessage

# Bounds of the wait between two checks of a waiting range. At least a second (queue visibility
# is in whole seconds); at most MAX_WAIT_S, so a request that was stuck behind others resumes
# within that once its images finish again (the default windows hold far more than that).
MIN_WAIT_S = 1
MAX_WAIT_S = 10


@dataclass(frozen=True)
class Sighting:
    """What the previous check of a waiting range saw: images finished, when, and its wait."""

    finished: int
    at: float  # seconds since the epoch
    waited_s: int = 0

    def to_payload(self) -> list[float]:
        return [self.finished, self.at, self.waited_s]

    @classmethod
    def from_payload(cls, value: object) -> Sighting:
        if not isinstance(value, list) or len(value) != 3:
            raise MalformedMessage("fan-out message has a 'seen' that is not [finished, at, waited_s]")
        try:
            return cls(int(value[0]), float(value[1]), int(value[2]))
        except (TypeError, ValueError):
            raise MalformedMessage("fan-out message has a 'seen' that is not [finished, at, waited_s]") from None


def window_limit(finished: int, window: int) -> int | None:
    """The first seq a range may not start at yet; None when the window is off (0)."""
    return finished + window if window > 0 else None


def wait_delay_s(start: int, limit: int, finished: int, now: float, seen: Sighting | None) -> int:
    """Seconds a range starting at ``start`` should wait before it looks at the window again."""
    to_finish = start - limit + 1  # images that must finish before start < limit
    if to_finish <= 0:
        return MIN_WAIT_S
    rate = _recent_rate(finished, now, seen)
    if rate is not None:
        delay = to_finish / rate
    elif seen is not None and seen.waited_s > 0:
        delay = 2 * seen.waited_s  # nothing finished since the last check: back off
    else:
        delay = MIN_WAIT_S
    return max(MIN_WAIT_S, min(MAX_WAIT_S, math.ceil(delay)))


def _recent_rate(finished: int, now: float, seen: Sighting | None) -> float | None:
    """Images finished per second since the last check; None when unknown or nothing finished."""
    if seen is None or now <= seen.at or finished <= seen.finished:
        return None
    return (finished - seen.finished) / (now - seen.at)
