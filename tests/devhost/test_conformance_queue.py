"""Queue trigger conformance with the real host's Storage queues extension (real Azurite, real host process)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest
import requests

from tests.devhost.conftest import APPS, HostProcess, Hosts, QueueKit, log_lines, wait_until

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
