"""Queue trigger conformance with the real host's Storage queues extension (real Azurite, real host process)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests

from devhost.backoff import RandomizedExponentialBackoff
from devhost.queue_io import BASE64, decode
from tests.devhost.conftest import APPS, HostProcess, Hosts, QueueKit, log_lines, records, wait_until

pytestmark = pytest.mark.integration
WAKE_APP = APPS / "wake"
BACKED_OFF_MS = 3000  # maxPollingInterval is 4 s in the wake app


def _wait_line(queue: str) -> re.Pattern[str]:
    return re.compile(rf"^Queue '{re.escape(queue)}' is empty; next poll in (\d+)ms$")


def _backed_off(host: HostProcess, queue: str) -> bool:
    waits = [int(m.group(1)) for _, text in log_lines(host) if (m := _wait_line(queue).match(text))]
    return bool(waits) and waits[-1] >= BACKED_OFF_MS


def _pickup(host: HostProcess, function: str, queue: str) -> tuple[datetime, datetime, int, bool]:
    """(start of the last wait before the invocation, invocation start, that wait's length in ms, woken?)."""
    lines = log_lines(host)
    started = next(i for i, (_, text) in enumerate(lines) if text.startswith(f"Executing 'Functions.{function}'"))
    wait_index = max(i for i, (_, text) in enumerate(lines[:started]) if _wait_line(queue).match(text))
    match = _wait_line(queue).match(lines[wait_index][1])
    assert match is not None
    woken = any(text.startswith(f"Queue '{queue}' woken by an output binding") for _, text in lines[wait_index:started])
    return lines[wait_index][0], lines[started][0], int(match.group(1)), woken


@pytest.fixture()
def stage_queues(queues: QueueKit) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    first, second = f"stage1-{suffix}", f"stage2-{suffix}"
    queues.create(first)
    queues.create(second)
    return first, second


def _start_backed_off(hosts: Hosts, stage_queues: tuple[str, str]) -> HostProcess:
    first, second = stage_queues
    host = hosts.start(
        WAKE_APP, env={"STAGE1_QUEUE": first, "STAGE2_QUEUE": second}, args=["--workers", "1", "--verbose"]
    )
    wait_until(lambda: _backed_off(host, first) and _backed_off(host, second), timeout=30)
    return host


def test_a_message_written_through_an_output_binding_wakes_the_listener(
    hosts: Hosts, stage_queues: tuple[str, str]
) -> None:
    """Real host: the queue output binding calls SharedQueueWatcher.Notify(queueName) after each add, which
    ends that queue listener's backoff delay (Azure/azure-sdk-for-net
    sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Queues/src/Config/QueuesExtensionConfigProvider.cs,
    QueueAsyncCollector.AddAsync; src/Listeners/QueueListener.cs, Notify / CreateDelayWithNotificationTask).

    Both listeners are fully backed off (4 s). An HTTP function writes to stage1 through its output binding;
    stage1 (queue-triggered) writes to stage2 through its own. Each pick-up must come from a wake-up, before
    the delay that was running would have ended (measured in the host's own log).
    """
    first, second = stage_queues
    host = _start_backed_off(hosts, stage_queues)
    assert requests.post(host.url("/api/kick"), data=b"go", timeout=10).status_code == 202
    wait_until(lambda: "Executed 'Functions.stage2' (Succeeded" in host.output(), timeout=30)
    for function, queue in (("stage1", first), ("stage2", second)):
        wait_started, picked_up, wait_ms, woken = _pickup(host, function, queue)
        assert woken, f"{function}: not woken\n{host.output()}"
        assert wait_ms >= BACKED_OFF_MS
        assert picked_up < wait_started + timedelta(milliseconds=wait_ms), host.output()


def test_a_message_sent_with_the_sdk_does_not_wake_the_listener(
    hosts: Hosts, queues: QueueKit, stage_queues: tuple[str, str]
) -> None:
    """Real host: only writes made through this host's output bindings notify the SharedQueueWatcher; a message
    added by any other client is found by the next poll (QueueListener.cs: ExecuteAsync / CreateBackoffResult).
    """
    first, _ = stage_queues
    host = _start_backed_off(hosts, stage_queues)
    queues.send(first, "from outside")
    wait_until(lambda: "Executed 'Functions.stage1' (Succeeded" in host.output(), timeout=30)
    wait_started, picked_up, wait_ms, woken = _pickup(host, "stage1", first)
    assert not woken, host.output()
    # The invocation started only after the running delay had run out (the poll found it).
    assert picked_up >= wait_started + timedelta(milliseconds=wait_ms - 50), host.output()


def test_the_empty_queue_backoff_follows_the_storage_extension_sequence() -> None:
    """Azure/azure-sdk-for-net sdk/storage/Microsoft.Azure.WebJobs.Extensions.Storage.Common/src/Timers/
    RandomizedExponentialBackoffStrategy.cs (minimum = delta = 100 ms): minimum + factor * 2^(n-1) * delta,
    the factor drawn from 0.8-1.2, capped at the maximum (then no more jitter); work found resets it."""
    factors = iter([1.0, 1.2, 0.8, 1.0, 1.0, 1.0, 1.0])
    backoff = RandomizedExponentialBackoff(0.1, 2.0, uniform=lambda low, high: next(factors))
    delays = [round(backoff.next_delay(False), 3) for _ in range(8)]
    assert delays == [0.1, 0.2, 0.34, 0.42, 0.9, 1.7, 2.0, 2.0]
    assert backoff.next_delay(True) == 0.1
    assert round(backoff.next_delay(False), 3) == 0.2


def test_base64_bodies_are_decoded_ignoring_whitespace() -> None:
    """The SDK decodes with .NET Convert.FromBase64String, which skips spaces, tabs and line breaks."""
    assert decode("aGVs\r\nbG8g d29y\tbGQ=", BASE64) == b"hello world"
    assert decode("not base64!", BASE64) is None


@pytest.mark.integration
def test_a_poison_queue_trigger_has_no_poison_queue_of_its_own(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    """Storage extension QueueListenerFactory / QueueProcessor (Azure/azure-webjobs-sdk
    src/Microsoft.Azure.WebJobs.Extensions.Storage/Queues/QueueProcessor.cs CompleteProcessingMessageAsync):
    a queue named *-poison has no poison queue; a failed message is not released but left invisible until its
    lease ends, "to prevent a fast infinite loop"."""
    poison_named = f"{queues.work}-poison"
    host = hosts.start(env={"WORK_QUEUE": poison_named, "DEVHOST_QUEUE_VISIBILITY_SECONDS": "4"})
    queues.send(poison_named, {"tag": "pp", "action": "fail"})
    wait_until(lambda: "Executed 'Functions.work' (Failed" in host.output())
    starts = [r for r in records(record_dir) if r["event"] == "start"]
    assert len(starts) == 1  # not released: no immediate retry although visibilityTimeout is 0
    assert queues.count(poison_named + "-poison") == 0
    # Once the lease runs out it comes back (dequeue count 2), and so on; never copied anywhere.
    wait_until(lambda: len([r for r in records(record_dir) if r["event"] == "start"]) >= 2, timeout=30)
    assert queues.count(poison_named + "-poison") == 0
