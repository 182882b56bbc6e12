"""When to try a transiently failed image again: a schedule of growing delays.

The host's own redelivery retries at once (host.json ``visibilityTimeout`` 0), so an image host
that blips for a few seconds would use up ``maxDequeueCount`` in a second. Instead, a transient
failure sends a copy of the message with a later visibility (``MessageQueue.send(delay_s=...)``)
and the invocation then succeeds, so the host deletes the original only after the copy is sent.
Each copy carries its position in the schedule (``retry``), so the schedule ends however often a
copy is redelivered. Once the schedule is used up, the image is recorded Failed with the last error.

An image whose host is down for good is therefore Failed within ``worst_case_s``: the sum of the
delays plus one download deadline per attempt (and the queue's polling delay per attempt).
"""

from __future__ import annotations

from dataclasses import dataclass

# Azure Storage queues accept a visibility timeout of at most 7 days.
MAX_DELAY_S = 7 * 24 * 3600
DEFAULT_DELAYS_S = (10.0, 30.0, 120.0, 300.0)


@dataclass(frozen=True)
class RetrySchedule:
    """Delays before the 2nd, 3rd, ... attempt of one image (seconds)."""

    delays_s: tuple[float, ...] = DEFAULT_DELAYS_S

    def __post_init__(self) -> None:
        for delay in self.delays_s:
            if not 0 <= delay <= MAX_DELAY_S:
                raise ValueError(f"a retry delay must be within 0..{MAX_DELAY_S} s, got {delay:g}")

    @classmethod
    def parse(cls, text: str) -> RetrySchedule:
        """``"10,30,120,300"``."""
        parts = [part.strip() for part in text.split(",") if part.strip()]
        try:
            return cls(tuple(float(part) for part in parts))
        except ValueError as exc:
            raise ValueError(f"a comma-separated list of seconds, each 0..{MAX_DELAY_S} ({exc})") from None

    @property
    def attempts(self) -> int:
        """How many attempts an image gets in all."""
        return len(self.delays_s) + 1

    def delay_after(self, retries_so_far: int) -> float | None:
        """The delay before the next attempt, or None when the schedule is used up."""
        if retries_so_far < 0:
            raise ValueError("retries_so_far must not be negative")
        return self.delays_s[retries_so_far] if retries_so_far < len(self.delays_s) else None

    def worst_case_s(self, attempt_deadline_s: float) -> float:
        """How long an image whose host never answers takes to be Failed (queue polling aside)."""
        return sum(self.delays_s) + self.attempts * attempt_deadline_s

    def __str__(self) -> str:
        return ",".join(f"{delay:g}" for delay in self.delays_s)
