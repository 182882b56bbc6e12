"""The queue trigger for one function, with the Storage extension 5.x semantics.

Polls in batches while fewer than ``newBatchThreshold`` messages are in flight (so at most
``batchSize + newBatchThreshold``), backs off exponentially with jitter from 100 ms up to
``maxPollingInterval`` while the queue is empty, leases each message and renews the lease while its
invocation runs. Success deletes the message; failure releases it after ``visibilityTimeout`` or, on
the last attempt, copies it to ``<queue>-poison``. Output bindings are written only on success.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from devhost.backoff import RandomizedExponentialBackoff
from devhost.discovery import FunctionSpec
from devhost.invocation import InvocationRequest, InvocationResult, QueueMessageData
from devhost.logs import InvocationLog, queue_reason
from devhost.queue_io import POISON_SUFFIX, QueueClients, connection_setting, decode
from devhost.queue_options import MIN_POLLING_INTERVAL, QueueOptions
from devhost.queue_rest import QueueRequestError, QueueResourceNotFound, ReceivedMessage
from devhost.workers import WorkerCrashed, WorkerPool

logger = logging.getLogger(__name__)


@dataclass
class _Lease:
    message: ReceivedMessage
    pop_receipt: str
    renew_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    settled: bool = False


class QueueListener:
    def __init__(
        self,
        spec: FunctionSpec,
        options: QueueOptions,
        clients: QueueClients,
        pool: WorkerPool,
        completions: Executor,
    ) -> None:
        self.spec = spec
        self.queue_name = str(spec.trigger.get("queueName")).lower()
        self._options = options
        self._clients = clients
        self._setting = connection_setting(spec.trigger)
        # QueueListenerFactory gives a queue whose name ends in -poison no poison queue of its own.
        self._has_poison_queue = not self.queue_name.endswith(POISON_SUFFIX)
        self._client = clients.queue(self._setting, self.queue_name)
        self._pool = pool
        self._completions = completions
        self._leases: dict[str, _Lease] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._closed = threading.Event()
        # Set by the host's SharedQueueWatcher when a function writes to this queue (wake-on-output).
        self._wake = threading.Event()
        clients.watcher.register(self.queue_name, self._wake.set)
        self._threads = [
            threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True),
            threading.Thread(target=self._renew, name=f"renew-{spec.name}", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop_polling(self) -> None:
        self._stopping.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no invocation is in flight or the monotonic ``deadline`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._leases, timeout=max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        self._closed.set()
        self.stop_polling()

    def in_flight(self) -> int:
        with self._changed:
            return len(self._leases)

    def _poll(self) -> None:
        backoff = RandomizedExponentialBackoff(MIN_POLLING_INTERVAL, self._options.max_polling_interval)
        found_since_last_delay = False
        missing_reported = False
        while not self._stopping.is_set():
            with self._changed:
                self._changed.wait_for(
                    lambda: len(self._leases) <= self._options.new_batch_threshold or self._stopping.is_set()
                )
            if self._stopping.is_set():
                break
            # Cleared before the receive, so a write during it still ends the next delay at once
            # (the real listener renews its wait handle at the start of each poll in the same way).
            self._wake.clear()
            try:
                messages = self._client.receive_messages(self._options.batch_size, self._lease_seconds())
                missing_reported = False
            except QueueResourceNotFound:
                if not missing_reported:
                    logger.warning("Queue '%s' does not exist yet; waiting for it to be created", self.queue_name)
                    missing_reported = True
                messages = []
            except QueueRequestError as exc:
                logger.warning("Polling queue '%s' failed: %s", self.queue_name, type(exc).__name__)
                messages = []
            if self._stopping.is_set():
                for message in messages:
                    self._release(message.id, message.pop_receipt or "", 0)
                break
            if messages:
                found_since_last_delay = True
                for message in messages:
                    self._handle(message)
                continue
            delay = backoff.next_delay(found_since_last_delay)
            found_since_last_delay = False
            logger.debug("Queue '%s' is empty; next poll in %dms", self.queue_name, round(delay * 1000))
            waited_from = time.monotonic()
            if self._wake.wait(delay) and not self._stopping.is_set():
                logger.debug(
                    "Queue '%s' woken by an output binding after %dms of a %dms wait",
                    self.queue_name,
                    round((time.monotonic() - waited_from) * 1000),
                    round(delay * 1000),
                )

    def _lease_seconds(self) -> int:
        return max(1, round(self._options.lease_seconds))

    def _handle(self, message: ReceivedMessage) -> None:
        max_count = self._options.max_dequeue_count
        if message.dequeue_count is not None and message.dequeue_count > max_count:
            if not self._has_poison_queue:
                return  # QueueProcessor: no poison queue, so the message stays invisible until its lease ends
            logger.warning(
                "Message '%s' was dequeued %d times, more than %d: moving it to '%s%s' without running",
                message.id,
                message.dequeue_count,
                max_count,
                self.queue_name,
                POISON_SUFFIX,
            )
            self._poison(message, message.pop_receipt or "")
            return
        body = decode(message.content, self._options.message_encoding)
        if body is None:
            logger.warning(
                "Message '%s' on '%s' is not valid %s: moving it to '%s%s'",
                message.id,
                self.queue_name,
                self._options.message_encoding,
                self.queue_name,
                POISON_SUFFIX,
            )
            self._poison(message, message.pop_receipt or "")
            return
        lease = _Lease(message, message.pop_receipt or "", time.monotonic() + self._options.lease_seconds / 2)
        with self._changed:
            self._leases[message.id] = lease
        invocation_id = str(uuid.uuid4())
        log = InvocationLog(self.spec.name, invocation_id, queue_reason(self.queue_name))
        data = QueueMessageData(
            id=message.id,
            body=body,
            dequeue_count=int(message.dequeue_count or 1),
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=lease.pop_receipt,
        )
        future = self._pool.submit(InvocationRequest(invocation_id, self.spec.name, data))
        future.add_done_callback(lambda done: self._completions.submit(self._complete, lease, log, done))

    def _complete(self, lease: _Lease, log: InvocationLog, future: Future[InvocationResult]) -> None:
        try:
            crashed = False
            try:
                result = future.result()
                succeeded, error = result.succeeded, result.error
            except WorkerCrashed as exc:
                result, succeeded, error, crashed = None, False, f"{exc}", True
            if succeeded and result is not None:
                try:
                    self._write_outputs(result)
                except Exception:
                    succeeded, error = False, "writing an output binding failed:\n" + traceback.format_exc()
            log.finished(succeeded, error)
            with lease.lock:
                lease.settled = True
                if succeeded:
                    self._delete(lease.message.id, lease.pop_receipt)
                elif crashed and self._stopping.is_set():
                    pass  # shutting down: the lease runs out and the message comes back
                elif not self._has_poison_queue:
                    # A queue named *-poison has no poison queue: the failed message is left invisible
                    # (not released) until its lease runs out, to avoid a fast infinite loop.
                    pass
                elif int(lease.message.dequeue_count or 1) >= self._options.max_dequeue_count:
                    logger.warning(
                        "Message Id '%s' has reached MaxDequeueCount of %d. Moving message to queue '%s%s'.",
                        lease.message.id,
                        self._options.max_dequeue_count,
                        self.queue_name,
                        POISON_SUFFIX,
                    )
                    self._poison(lease.message, lease.pop_receipt)
                else:
                    self._release(lease.message.id, lease.pop_receipt, round(self._options.visibility_timeout))
        finally:
            with self._changed:
                self._leases.pop(lease.message.id, None)
                self._changed.notify_all()

    def _write_outputs(self, result: InvocationResult) -> None:
        self._clients.write_outputs(self.spec.outputs, result.queue_outputs, self._options.message_encoding)

    def _renew(self) -> None:
        interval = min(1.0, self._options.lease_seconds / 4)
        while not self._closed.wait(interval):
            with self._changed:
                leases = list(self._leases.values())
            now = time.monotonic()
            for lease in leases:
                if lease.renew_at > now:
                    continue
                with lease.lock:
                    if lease.settled:
                        continue
                    try:
                        lease.pop_receipt = self._client.update_visibility(
                            lease.message.id, lease.pop_receipt, self._lease_seconds()
                        )
                        lease.renew_at = time.monotonic() + self._options.lease_seconds / 2
                    except QueueRequestError as exc:
                        logger.warning(
                            "Renewing the lease of message '%s' failed: %s",
                            lease.message.id,
                            type(exc).__name__,
                        )

    def _poison(self, message: ReceivedMessage, pop_receipt: str) -> None:
        try:
            # The raw text, so the poison copy keeps the original encoding (or the undecodable body).
            self._clients.send_raw(self._setting, self.queue_name + POISON_SUFFIX, message.content)
        except QueueRequestError:
            logger.exception(
                "Copying message '%s' to the poison queue failed; it stays on '%s'",
                message.id,
                self.queue_name,
            )
            return
        self._delete(message.id, pop_receipt)

    def _delete(self, message_id: str, pop_receipt: str) -> None:
        try:
            self._client.delete_message(message_id, pop_receipt)
        except QueueRequestError as exc:
            logger.warning(
                "Deleting message '%s' failed (%s); it will be delivered again",
                message_id,
                type(exc).__name__,
            )

    def _release(self, message_id: str, pop_receipt: str, delay_seconds: int) -> None:
        try:
            self._client.update_visibility(message_id, pop_receipt, delay_seconds)
        except QueueRequestError as exc:
            logger.warning(
                "Releasing message '%s' failed (%s); it returns when its lease ends",
                message_id,
                type(exc).__name__,
            )
