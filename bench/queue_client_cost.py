"""Client CPU per queue operation: the Python SDK (with and without env lookups) against devhost's REST client.

Runs one Azurite and, for each client in turn and ``--rounds`` times, sends ``--count`` messages one by
one, receives them in pages of 32 (with a visibility timeout, as the listener does), updates each one's
visibility (a lease renewal) and deletes each one. Prints the process CPU (user + system) per operation
for each client side by side: the figure that decides whether devhost's hand-written client is worth it.
Writes ``bench/out/queue_client_cost.json`` and prints a one-line JSON summary last.

Usage: ``python -m bench.queue_client_cost [--count 300] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import ExponentialRetry, QueueClient

from bench.harness import OUT_DIR, environment
from devhost.queue_rest import QueueService
from devtools.servers import Azurite

OPERATIONS = ("send", "receive", "update", "delete")
TEXT = "eyJyZXF1ZXN0X2lkIjogIjEyMyIsICJyb3ciOiAxLCAiaW5kZXgiOiAwLCAidXJsIjogImh0dHA6Ly9leGFtcGxlIn0=" * 2


def cpu() -> float:
    return time.process_time()  # user + system of this process, at ns resolution (os.times: 10 ms)


def measure(ops: dict[str, Callable[..., Any]], count: int) -> dict[str, float]:
    """ms of client CPU per operation."""
    spent: dict[str, float] = {}
    start = cpu()
    for _ in range(count):
        ops["send"](TEXT)
    spent["send"] = cpu() - start
    received: list[tuple[str, str]] = []
    start = cpu()
    while len(received) < count:
        page = ops["receive"]()
        if not page:
            break
        received.extend(page)
    spent["receive"] = cpu() - start
    renewed: list[tuple[str, str]] = []
    start = cpu()
    for message_id, receipt in received:
        renewed.append((message_id, ops["update"](message_id, receipt)))
    spent["update"] = cpu() - start
    start = cpu()
    for message_id, receipt in renewed:
        ops["delete"](message_id, receipt)
    spent["delete"] = cpu() - start
    if len(received) != count:
        raise RuntimeError(f"received {len(received)} of {count} messages")
    return {name: 1000 * value / count for name, value in spent.items()}


def sdk_ops(connection_string: str, queue: str, use_env_settings: bool) -> dict[str, Callable[..., Any]]:
    client = QueueClient.from_connection_string(
        connection_string,
        queue,
        use_env_settings=use_env_settings,
        retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2, retry_total=2),
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()

    def receive() -> list[tuple[str, str]]:
        page = next(client.receive_messages(messages_per_page=32, visibility_timeout=600).by_page(), [])
        return [(message.id, message.pop_receipt) for message in page]

    return {
        "send": client.send_message,
        "receive": receive,
        "update": lambda i, r: client.update_message(i, r, visibility_timeout=600).pop_receipt,
        "delete": client.delete_message,
    }


def rest_ops(connection_string: str, queue: str) -> dict[str, Callable[..., Any]]:
    client = QueueService.from_connection_string(connection_string).queue(queue)
    client.create_queue()

    def receive() -> list[tuple[str, str]]:
        return [(m.id, m.pop_receipt) for m in client.receive_messages(32, 600)]

    return {
        "send": client.send_message,
        "receive": receive,
        "update": lambda i, r: client.update_visibility(i, r, 600),
        "delete": client.delete_message,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "queue_client_cost.json")
    args = parser.parse_args(argv)
    env = environment()
    azurite = Azurite(location=Path(tempfile.mkdtemp(prefix="queue-cost-")) / "azurite").start()
    try:
        connection = azurite.connection_string
        clients: dict[str, Callable[[str], dict[str, Callable[..., Any]]]] = {
            "sdk (env lookups)": lambda q: sdk_ops(connection, q, True),
            "sdk use_env_settings=False": lambda q: sdk_ops(connection, q, False),
            "devhost queue_rest": lambda q: rest_ops(connection, q),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
        for round_number in range(args.rounds):
            for index, (name, make) in enumerate(clients.items()):  # interleaved: noise hits all alike
                ops = make(f"cost-{round_number}-{index}")
                measure(ops, 20)  # warm-up: connections, imports, caches
                results[name].append(measure(ops, args.count))
        print(f"client CPU per operation, ms (median of {args.rounds} rounds of {args.count} messages)")
        print(f"{'client':28}" + "".join(f"{op:>10}" for op in OPERATIONS))
        medians = {
            name: {op: round(statistics.median(r[op] for r in rounds), 3) for op in OPERATIONS}
            for name, rounds in results.items()
        }
        for name, figures in medians.items():
            print(f"{name:28}" + "".join(f"{figures[op]:10.3f}" for op in OPERATIONS))
        rest = medians["devhost queue_rest"]
        for name in ("sdk (env lookups)", "sdk use_env_settings=False"):
            ratios = "".join(f"{medians[name][op] / rest[op]:9.1f}x" for op in OPERATIONS)
            print(f"{'ratio ' + name.split(' ', 1)[1]:28}{ratios}")
        params = {"count": args.count, "rounds": args.rounds}
        result = {"benchmark": "queue_client_cost", "environment": env, "params": params, "rounds": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**result, "median_ms": medians}, indent=2) + "\n", encoding="utf-8")
        print(json.dumps({"benchmark": "queue_client_cost", "params": params, "median_ms": medians}))
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
