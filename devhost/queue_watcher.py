"""Wake-on-output: a queue listener in backoff wakes when a function of this host writes to its queue.

The real host keeps one ``SharedQueueWatcher`` per host: each queue listener registers under its queue
name, and the queue output binding calls ``Notify(queueName)`` after every message it adds (as does
the poison handling after a copy to ``<queue>-poison``). ``Notify`` ends the listener's empty-queue
delay at once; messages written by anything else (an SDK client, another host) are found only by
polling. (Azure/azure-sdk-for-net, sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Queues:
``src/Config/QueuesExtensionConfigProvider.cs`` ``QueueAsyncCollector.AddAsync`` and
``src/Listeners/QueueListener.cs`` ``Notify``; earlier in Azure/azure-webjobs-sdk
``Queues/Listeners/SharedQueueWatcher.cs``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class SharedQueueWatcher:
    """Queue name -> the wake-up callbacks of the listeners on that queue (names compared lower-case)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registrations: dict[str, list[Callable[[], None]]] = {}

    def register(self, queue_name: str, wake: Callable[[], None]) -> None:
        with self._lock:
            self._registrations.setdefault(queue_name.lower(), []).append(wake)

    def notify(self, queue_name: str) -> None:
        with self._lock:
            callbacks = list(self._registrations.get(queue_name.lower(), ()))
        for wake in callbacks:
            wake()
