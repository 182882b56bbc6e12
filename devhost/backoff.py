"""The queue listener's empty-queue delay: the Storage extension's RandomizedExponentialBackoffStrategy.

(Azure/azure-sdk-for-net ``sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Timers/
RandomizedExponentialBackoffStrategy.cs``, used by ``QueueListener`` with minimum = delta = 100 ms.)
After a poll that found messages the next delay is the minimum; each empty poll after that adds a
randomized (x0.8-1.2) doubling increment to the MINIMUM: 100, ~200, ~300, ~500, ~900, ~1700 ms, ...
until the maximum, which then holds without jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable

RANDOMIZATION_FACTOR = 0.2


class RandomizedExponentialBackoff:
    def __init__(
        self,
        minimum: float,
        maximum: float,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if minimum > maximum:
            raise ValueError("The minimumInterval must not be greater than the maximumInterval.")
        self._minimum = minimum
        self._maximum = maximum
        self._delta = minimum
        self._uniform = uniform
        self._current = 0.0
        self._exponent = 0

    def next_delay(self, found_messages: bool) -> float:
        """Seconds to wait; ``found_messages`` is whether a poll found work since the last delay."""
        if found_messages:
            self._current = self._minimum
            self._exponent = 1
        elif self._current != self._maximum:
            interval = self._minimum
            if self._exponent > 0:
                factor = self._uniform(1.0 - RANDOMIZATION_FACTOR, 1.0 + RANDOMIZATION_FACTOR)
                interval += factor * 2.0 ** (self._exponent - 1) * self._delta
            if interval < self._maximum:
                self._current = interval
                self._exponent += 1
            else:
                self._current = self._maximum
        return self._current
