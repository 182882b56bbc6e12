"""The queue trigger and queue output binding through a real host process against real Azurite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.devhost.conftest import Hosts, QueueKit, decoded, records, wait_until

pytestmark = pytest.mark.integration


def starts(record_dir: Path, tag: str) -> list[dict[str, object]]:
    return [r for r in records(record_dir) if r["event"] == "start" and r["tag"] == tag]


def ends(record_dir: Path, tag: str) -> list[dict[str, object]]:
    return [r for r in records(record_dir) if r["event"] == "end" and r["tag"] == tag]


def test_success_deletes_the_message_and_writes_the_output(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    hosts.start()
    message_id = queues.send(queues.work, {"tag": "a"})
    wait_until(lambda: ends(record_dir, "a"))
    wait_until(lambda: queues.count(queues.work) == 0)
    wait_until(lambda: queues.peek_texts(queues.out))
    assert decoded(queues.peek_texts(queues.out)) == ["done:a"]
    (seen,) = starts(record_dir, "a")
    assert seen["id"] == message_id
    assert seen["dequeue_count"] == 1
    assert seen["body"] == json.dumps({"tag": "a"})
    assert (
        seen["pop_receipt"]
        and seen["insertion_time"]
        and seen["expiration_time"]
        and seen["time_next_visible"]
    )


def test_failure_is_retried_and_only_the_successful_attempt_writes_output(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start()
    queues.send(queues.work, {"tag": "r", "fail_below": 3})
    wait_until(lambda: ends(record_dir, "r"))
    wait_until(lambda: queues.count(queues.work) == 0)
    assert [r["dequeue_count"] for r in starts(record_dir, "r")] == [1, 2, 3]
    wait_until(lambda: queues.peek_texts(queues.out))
    assert decoded(queues.peek_texts(queues.out)) == ["done:r"]
    assert host.output().count("Executed 'Functions.work' (Failed") == 2


def test_five_failures_move_the_message_to_poison_with_its_body_intact(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start()
    body = {"tag": "p", "action": "fail", "payload": "ünïcode"}
    queues.send(queues.work, body)
    poison = queues.work + "-poison"
    wait_until(lambda: queues.peek_texts(poison))
    assert decoded(queues.peek_texts(poison)) == [json.dumps(body)]
    assert [r["dequeue_count"] for r in starts(record_dir, "p")] == [1, 2, 3, 4, 5]
    wait_until(lambda: queues.count(queues.work) == 0)
    assert queues.peek_texts(queues.out) == []
    assert "has reached MaxDequeueCount of 5. Moving message to queue" in host.output()


def test_an_undecodable_message_goes_to_poison_at_once(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start()
    queues.send(queues.work, "this is not base64 !", encode=False)
    poison = queues.work + "-poison"
    wait_until(lambda: queues.peek_texts(poison))
    assert queues.peek_texts(poison) == ["this is not base64 !"]
    assert records(record_dir) == []
    assert "is not valid base64" in host.output()


def test_a_message_dequeued_too_often_goes_to_poison_without_running(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    queues.send(queues.work, {"tag": "old"})
    client = queues.client(queues.work)
    for _ in range(5):  # five earlier deliveries that never finished
        (message,) = list(client.receive_messages(max_messages=1, visibility_timeout=30))
        client.update_message(message.id, message.pop_receipt, visibility_timeout=0)
    hosts.start()
    poison = queues.work + "-poison"
    wait_until(lambda: queues.peek_texts(poison))
    assert decoded(queues.peek_texts(poison)) == [json.dumps({"tag": "old"})]
    assert starts(record_dir, "old") == []


def test_none_encoding_reads_and_writes_plain_text(hosts: Hosts, queues: QueueKit, record_dir: Path) -> None:
    hosts.start(env={"AzureFunctionsJobHost__extensions__queues__messageEncoding": "none"})
    queues.send(queues.work, {"tag": "plain"}, encode=False)
    wait_until(lambda: ends(record_dir, "plain"))
    wait_until(lambda: queues.peek_texts(queues.out))
    assert queues.peek_texts(queues.out) == ["done:plain"]


def test_in_flight_never_exceeds_batch_size_plus_threshold(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    hosts.start(
        env={
            "AzureFunctionsJobHost__extensions__queues__batchSize": "2",
            "AzureFunctionsJobHost__extensions__queues__newBatchThreshold": "1",
        },
        args=["--workers", "2"],
    )
    for index in range(9):
        queues.send(queues.work, {"tag": f"c{index}", "action": "sleep", "seconds": 0.5})
    wait_until(lambda: len([r for r in records(record_dir) if r["event"] == "end"]) == 9, timeout=60)
    peak = json.loads((record_dir / "concurrency.json").read_text())["max"]
    assert 2 <= peak <= 3


def test_a_missing_queue_is_waited_for_not_created(hosts: Hosts, queues: QueueKit, record_dir: Path) -> None:
    host = hosts.start()
    wait_until(lambda: f"Queue '{queues.work}' does not exist yet" in host.output())
    with pytest.raises(ResourceNotFoundError):
        queues.client(queues.work).get_queue_properties()
    queues.send(queues.work, {"tag": "late"})
    wait_until(lambda: ends(record_dir, "late"))
