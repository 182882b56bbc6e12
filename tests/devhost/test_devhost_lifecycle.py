"""Shutdown, crashes and competing instances: no message is lost and none is processed twice."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.devhost.conftest import Hosts, QueueKit, decoded, records, wait_until

pytestmark = pytest.mark.integration


def events(record_dir: Path, event: str, tag: str) -> list[dict[str, object]]:
    return [r for r in records(record_dir) if r["event"] == event and r["tag"] == tag]


def process_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in status)
    except FileNotFoundError:
        return True


def test_sigterm_lets_a_running_invocation_finish_and_settle(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start()
    queues.send(queues.work, {"tag": "slow", "action": "sleep", "seconds": 2})
    wait_until(lambda: events(record_dir, "start", "slow"))
    host.signal(signal.SIGTERM)
    assert host.wait_exit() == 0
    assert events(record_dir, "end", "slow")
    assert queues.count(queues.work) == 0
    assert decoded(queues.peek_texts(queues.out)) == ["done:slow"]
    assert "Host stopped" in host.output()


def test_an_invocation_cut_off_by_shutdown_is_not_deleted(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start(env={"DEVHOST_SHUTDOWN_GRACE_SECONDS": "0.5", "DEVHOST_QUEUE_VISIBILITY_SECONDS": "3"})
    queues.send(queues.work, {"tag": "cut", "action": "sleep", "seconds": 30})
    wait_until(lambda: events(record_dir, "start", "cut"))
    host.signal(signal.SIGTERM)
    assert host.wait_exit() == 0
    assert events(record_dir, "end", "cut") == []
    # The lease runs out and the message is visible again, never deleted.
    wait_until(lambda: queues.peek_texts(queues.work), timeout=30)
    assert queues.peek_texts(queues.out) == []


def test_sigkill_leaves_no_worker_behind_and_the_message_is_redelivered(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    env = {"DEVHOST_QUEUE_VISIBILITY_SECONDS": "3"}
    host = hosts.start(env=env, args=["--workers", "2"])
    queues.send(queues.work, {"tag": "killed", "action": "sleep", "seconds": 2})
    (first,) = wait_until(lambda: events(record_dir, "start", "killed"))  # type: ignore[misc]
    host.signal(signal.SIGKILL)
    host.wait_exit()
    wait_until(lambda: process_gone(int(first["pid"])), timeout=15)
    hosts.start(env=env)
    wait_until(lambda: events(record_dir, "end", "killed"), timeout=60)
    assert [r["dequeue_count"] for r in events(record_dir, "start", "killed")] == [1, 2]
    assert events(record_dir, "end", "killed")[0]["dequeue_count"] == 2
    wait_until(lambda: queues.count(queues.work) == 0)


def test_a_lease_is_renewed_while_the_function_runs(hosts: Hosts, queues: QueueKit, record_dir: Path) -> None:
    hosts.start(env={"DEVHOST_QUEUE_VISIBILITY_SECONDS": "2"})
    queues.send(queues.work, {"tag": "long", "action": "sleep", "seconds": 5})
    wait_until(lambda: events(record_dir, "end", "long"), timeout=30)
    assert len(events(record_dir, "start", "long")) == 1  # never redelivered while running


def test_two_instances_share_a_queue_without_double_processing(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    first = hosts.start()
    second = hosts.start()
    tags = [f"m{index}" for index in range(16)]
    for tag in tags:
        queues.send(queues.work, {"tag": tag, "action": "sleep", "seconds": 0.2})
    wait_until(lambda: all(events(record_dir, "end", tag) for tag in tags), timeout=60)
    for tag in tags:
        assert len(events(record_dir, "start", tag)) == 1, tag
    wait_until(lambda: queues.count(queues.work) == 0)
    assert sorted(decoded(queues.peek_texts(queues.out))) == sorted(f"done:{tag}" for tag in tags)
    assert first.proc.poll() is None and second.proc.poll() is None


def test_a_crashed_worker_is_replaced_and_its_message_retried(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    host = hosts.start()
    queues.send(queues.work, {"tag": "crash", "action": "exit_first"})
    wait_until(lambda: events(record_dir, "end", "crash"), timeout=60)
    first, second = events(record_dir, "start", "crash")
    assert (first["dequeue_count"], second["dequeue_count"]) == (1, 2)
    assert first["pid"] != second["pid"]
    assert "starting a new one" in host.output()
    wait_until(lambda: queues.count(queues.work) == 0)
