"""A queue message that can never succeed goes to its poison queue on the first attempt.

The host's own poison handling (Azure WebJobs Storage extension, ``QueueProcessor``: a message is
copied to ``<queue>-poison`` once its dequeue count reaches ``maxDequeueCount``) would run the
function five times first; the functions write such a message to ``<queue>-poison`` themselves,
through a queue output binding, and return, so the host deletes it after one invocation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from devtools.apphost import AppStack
from shared.queues import queue_client

pytestmark = pytest.mark.integration


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _poison_texts(stack: AppStack, queue: str) -> list[str]:
    with queue_client(stack.env["AzureWebJobsStorage"], f"{queue}-poison") as client:
        return [str(m.content) for m in client.peek_messages(max_messages=32)]


@pytest.mark.parametrize(
    ("setting", "function", "body"),
    [
        ("IMAGE_QUEUE_NAME", "process_queue", "this is not JSON"),
        ("IMAGE_QUEUE_NAME", "process_queue", '{"request_id": "r", "seq": 0}'),
        ("NOTIFY_QUEUE_NAME", "notify_queue", "[1, 2, 3]"),
    ],
)
def test_a_malformed_message_is_poisoned_after_one_invocation(
    stack: AppStack, setting: str, function: str, body: str
) -> None:
    queue = stack.env[setting]
    with queue_client(stack.env["AzureWebJobsStorage"], queue) as client:
        client.send_message(body)
    _wait(lambda: _poison_texts(stack, queue) == [body], 60, f"the message in {queue}-poison")
    with queue_client(stack.env["AzureWebJobsStorage"], queue) as client:
        _wait(lambda: client.get_queue_properties().approximate_message_count == 0, 30, f"{queue} to drain")
    logs = stack.logs()
    assert logs.count(f"Executed 'Functions.{function}'") == 1, logs[-3000:]
    assert "malformed" in logs and "moved to the poison queue without retries" in logs
