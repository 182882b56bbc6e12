"""What one queue message costs in CPU on this machine: the client's side and Azurite's side.

The pipeline sends, receives and deletes one message per image, and on a developer's machine the
client (the local host), Azurite and the function workers share the same cores, so these costs set
a floor under the end-to-end time that no change to the app can remove. Two measurements, each on
a fresh Azurite:

- **per operation**: client CPU (this process, ``os.times``) and Azurite CPU (its process tree,
  ``/proc``) per send, per message received (pages of 32) and per delete, at a small backlog, for
  each client the local host could use: the Python SDK as built by default, the SDK with
  ``use_env_settings=False`` (no proxy and ``.netrc`` lookups per request), and the small REST
  client the local host uses (``devhost.queue_rest``; ``bench.queue_client_cost`` compares the
  clients' own CPU more finely, in interleaved rounds);
- **against the backlog**: Azurite CPU per receive page and per delete as the queue holds more
  messages (Azurite keeps a queue's messages in an unindexed in-memory collection, so both grow
  linearly with the messages stored).

From these it derives the floor the issue-9 ratio target meets: Azurite's CPU per image (one send,
one received message, one delete at a backlog of about 200) as a fraction of the kernel's CPU per
image (``bench.pipeline.kernel_cpu_s_per_image``); and what processing a 200,000-message backlog
would cost Azurite in deletes alone.

Usage: ``python -m bench.queue_costs [--ops 300] [--backlogs 100,1000,5000,10000,20000]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueClient

from bench.harness import OUT_DIR, cpu_seconds, environment, load_average, process_tree
from bench.pipeline import kernel_cpu_s_per_image
from bench.queue_client_cost import rest_ops, sdk_ops
from devtools.servers import Azurite

MESSAGE = "x" * 160  # about the size of one base64 image message
LIMIT_MESSAGES = 200_000  # 10,000 rows x 20 URLs


def _own_cpu() -> float:
    return time.process_time()  # user + system at ns resolution (os.times ticks at 10 ms)


class _Meter:
    """CPU seconds spent by this process and by Azurite between two readings."""

    def __init__(self, azurite: Azurite) -> None:
        assert azurite.proc is not None
        self._pids = process_tree(azurite.proc.pid)

    def azurite(self) -> float:
        return sum(cpu_seconds(pid) for pid in self._pids)

    def measure(self, work: Callable[[], None]) -> tuple[float, float]:
        client0, server0 = _own_cpu(), self.azurite()
        work()
        return _own_cpu() - client0, self.azurite() - server0


def per_operation(meter: _Meter, name: str, ops: dict[str, Callable[..., Any]], count: int) -> dict[str, Any]:
    """Client and Azurite CPU per send, received message and delete (``bench.queue_client_cost``'s ops)."""
    ops["send"](MESSAGE)  # a warm connection, as the host's is
    for message_id, receipt in ops["receive"]():
        ops["delete"](message_id, receipt)
    received: list[tuple[str, str]] = []

    def send() -> None:
        for _ in range(count):
            ops["send"](MESSAGE)

    def receive() -> None:
        while len(received) < count:
            received.extend(ops["receive"]())

    def delete() -> None:
        for message_id, receipt in received:
            ops["delete"](message_id, receipt)

    row: dict[str, Any] = {"client": name, "operations": count}
    for label, work in (("send", send), ("receive", receive), ("delete", delete)):
        client_s, server_s = meter.measure(work)
        row[f"{label}_client_ms"] = round(1000 * client_s / count, 3)
        row[f"{label}_azurite_ms"] = round(1000 * server_s / count, 3)
    return row


def against_backlog(meter: _Meter, client: QueueClient, backlogs: Sequence[int]) -> list[dict[str, Any]]:
    client.create_queue()
    stored = 0
    rows = []
    with ThreadPoolExecutor(16) as pool:
        for backlog in backlogs:
            list(pool.map(lambda _: client.send_message(MESSAGE), range(backlog - stored)))
            stored = backlog
            victims: list[Any] = []

            def receive_three_pages(into: list[Any] = victims) -> None:
                for _ in range(3):
                    into.extend(next(client.receive_messages(messages_per_page=32, visibility_timeout=600).by_page()))

            _, receive_s = meter.measure(receive_three_pages)
            del victims[30:]

            def delete_victims(these: list[Any] = victims) -> None:
                for message in these:
                    client.delete_message(message)

            _, delete_s = meter.measure(delete_victims)
            list(pool.map(lambda _: client.send_message(MESSAGE), range(len(victims))))
            rows.append({
                "stored": backlog,
                "receive_page_azurite_ms": round(1000 * receive_s / 3, 2),
                "delete_azurite_ms": round(1000 * delete_s / len(victims), 3),
            })  # fmt: skip
            print(f"  backlog {backlog:>6,}: receive page {rows[-1]['receive_page_azurite_ms']} ms, "
                  f"delete {rows[-1]['delete_azurite_ms']} ms (Azurite CPU)", flush=True)  # fmt: skip
    client.delete_queue()
    return rows


def _slope(rows: Sequence[dict[str, Any]], key: str) -> float:
    """Least-squares ms per stored message."""
    xs, ys = [r["stored"] for r in rows], [r[key] for r in rows]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum((x - mean_x) ** 2 for x in xs)


def run(ops: int, backlogs: Sequence[int]) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="queue-costs-"))
    try:
        azurite = Azurite(location=workdir / "azurite").start()
        try:
            meter = _Meter(azurite)
            connection = azurite.connection_string
            clients: dict[str, Callable[[str], dict[str, Callable[..., Any]]]] = {
                "Python SDK (default)": lambda q: sdk_ops(connection, q, True),
                "Python SDK, use_env_settings=False": lambda q: sdk_ops(connection, q, False),
                "local host's REST client (devhost.queue_rest)": lambda q: rest_ops(connection, q),
            }
            operations = []
            for index, (name, make) in enumerate(clients.items()):
                operations.append(per_operation(meter, name, make(f"ops-{index}"), ops))
                print(f"  {name}: {operations[-1]}", flush=True)
            backlog = against_backlog(meter, QueueClient.from_connection_string(connection, "backlog"), backlogs)
        finally:
            azurite.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    kernel_ms = 1000 * kernel_cpu_s_per_image(2.0)
    base = operations[-1]  # the client the local host uses
    delete_slope = _slope(backlog, "delete_azurite_ms")
    at_200 = min(backlog, key=lambda r: abs(r["stored"] - 200))
    azurite_per_image = base["send_azurite_ms"] + base["receive_azurite_ms"] + at_200["delete_azurite_ms"]
    return {
        "benchmark": "queue_costs",
        "environment": environment(),
        "params": {"ops": ops, "backlogs": list(backlogs), "load_average_1m": load_average()},
        "operations": operations,
        "backlog": backlog,
        "kernel_cpu_ms_per_image": round(kernel_ms, 2),
        "azurite_ms_per_image": round(azurite_per_image, 2),
        "azurite_share_of_kernel": round(azurite_per_image / kernel_ms, 3),
        "host_client_ms_per_image": round(
            base["send_client_ms"] + base["receive_client_ms"] + base["delete_client_ms"], 2
        ),
        "delete_ms_per_stored_message": round(delete_slope, 5),
        "receive_page_ms_per_stored_message": round(_slope(backlog, "receive_page_azurite_ms"), 5),
        # Deleting n messages one by one from a backlog that shrinks from n: slope * n^2 / 2.
        "limit_backlog_delete_hours": round(delete_slope * LIMIT_MESSAGES**2 / 2 / 1000 / 3600, 1),
    }


def markdown(document: dict[str, Any]) -> str:
    env = document["environment"]
    lines = [
        f"Run {env['date_utc']} UTC: `python -m bench.queue_costs --ops {document['params']['ops']}`, "
        f"{env['cpus']} CPUs, load {document['params']['load_average_1m']}; CPU milliseconds per "
        "operation, the client's (this process) and Azurite's (its process tree), at a small backlog.",
        "",
        "| client | send: client | send: Azurite | received message: client | received message: Azurite "
        "| delete: client | delete: Azurite |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['client']} | {r['send_client_ms']} | {r['send_azurite_ms']} | {r['receive_client_ms']} | "
        f"{r['receive_azurite_ms']} | {r['delete_client_ms']} | {r['delete_azurite_ms']} |"
        for r in document["operations"]
    ]
    lines += [
        "",
        "Azurite's CPU against the messages stored in the queue:",
        "",
        "| messages stored | receive (page of 32) ms | delete ms |",
        "|---:|---:|---:|",
    ]
    lines += [
        f"| {r['stored']:,} | {r['receive_page_azurite_ms']} | {r['delete_azurite_ms']} |" for r in document["backlog"]
    ]
    lines += [
        "",
        f"Azurite alone costs {document['azurite_ms_per_image']} ms of CPU per image (one send, one received "
        f"message, one delete at a backlog of about 200): {document['azurite_share_of_kernel']:.0%} of the "
        f"kernel's {document['kernel_cpu_ms_per_image']} ms per image, on the same cores; the local host's client "
        f"adds {document.get('host_client_ms_per_image', '?')} ms. A delete costs "
        f"{document['delete_ms_per_stored_message'] * 1000:.1f} µs more per message stored: draining a "
        f"{LIMIT_MESSAGES:,}-message backlog one delete at a time would cost Azurite about "
        f"{document['limit_backlog_delete_hours']} hours of CPU in deletes alone.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queue_costs", description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--backlogs", default="100,200,1000,2500,5000,10000,20000")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "queue_costs.json")
    args = parser.parse_args(argv)
    result = run(args.ops, [int(n) for n in args.backlogs.split(",")])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
