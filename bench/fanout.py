"""Fan-out: POST /api/upload to the 202 for CSVs of 1,000 and 10,000 images, against a raw send loop.

The app's upload parses the CSV, stores request, products and images in one transaction, then
sends one base64 JSON message per image (32 concurrent sync sends) and marks them enqueued. The
reference is the plainest fast client: a ``ThreadPoolExecutor`` of 32 sync ``send_message`` calls
with ``TextBase64EncodePolicy``, sending messages of the same size to a queue of the same Azurite,
measured in the same run, alternating with the app. Processing is disabled
(``AzureWebJobs.process_queue.Disabled``) so nothing competes with the sends, and every queue is
emptied between measurements (Azurite slows down as it stores more messages).

Reports seconds to the 202, the fan-out alone (requests.created_at to fanout_completed_at),
messages/s of both, and the ratio app/raw. Since the fan-out is staged (``fanout_queue``), the 202
comes before the fan-out: the fan-out alone is the figure to compare with the raw loop.

Usage: ``python -m bench.fanout --sizes 1000,10000 --repeats 2``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness import OUT_DIR, BenchStack, bench_stack, environment, load_average, photos_dir, summary
from bench.pipeline import photo_names

# No processing, and no fan-out window: nothing finishes, so a window (FANOUT_WINDOW) would stop
# the fan-out at the window. This measures the fan-out mechanism's throughput.
DISABLE_PROCESSING = {"AzureWebJobs.process_queue.Disabled": "true", "FANOUT_WINDOW": "0"}
RAW_CONCURRENCY = 32


def raw_send(stack: BenchStack, bodies: Sequence[str]) -> float:
    """Seconds to send ``bodies`` with 32 concurrent sync sends; the queue is deleted afterwards."""
    from shared.queues import ensure_queue, queue_client

    client = queue_client(stack.azurite.connection_string, f"raw-{uuid.uuid4().hex[:8]}")
    ensure_queue(client)
    client.send_message(bodies[0])  # the connection pool is warm, as the app's is
    client.clear_messages()
    with ThreadPoolExecutor(RAW_CONCURRENCY) as pool:
        started = time.perf_counter()
        list(pool.map(client.send_message, bodies))
        seconds = time.perf_counter() - started
    client.delete_queue()
    return seconds


def app_fanout(stack: BenchStack, urls: Sequence[str]) -> dict[str, float]:
    from shared.queues import queue_client

    result = stack.run_accept_only(urls)
    # The fan-out is staged (fanout_queue): the 202 comes before it, so wait for it to finish.
    deadline = time.monotonic() + 900
    while True:
        with sqlite3.connect(stack.app.env["SQLITE_PATH"]) as db:
            created, fanned = db.execute(
                "SELECT created_at, fanout_completed_at FROM requests WHERE request_id = ?", (result["request_id"],)
            ).fetchone()
        if fanned is not None:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fan-out of {len(urls)} images did not finish in 900 s")
        time.sleep(0.05)
    fanout_s = (datetime.fromisoformat(fanned) - datetime.fromisoformat(created)).total_seconds()
    queue_client(stack.azurite.connection_string, stack.app.env["IMAGE_QUEUE_NAME"]).clear_messages()
    return {"accept_s": result["accept_s"], "fanout_s": round(fanout_s, 3)}


def message_bodies(urls: Sequence[str]) -> list[str]:
    """Messages shaped like the app's (``ImageTask.to_message()``), one per URL."""
    request_id = str(uuid.uuid4())
    return [
        json.dumps({"request_id": request_id, "seq": seq, "url": url, "total": len(urls)}, separators=(",", ":"))
        for seq, url in enumerate(urls)
    ]


def run(sizes: Sequence[int], repeats: int) -> dict[str, Any]:
    names = photo_names(2.0, 1000)
    results: list[dict[str, Any]] = []
    with bench_stack("fanout", photos_dir(2.0), DISABLE_PROCESSING) as stack:
        stack.run_accept_only(stack.urls(names[:50]))  # warm-up: imports, connections, schema
        from shared.queues import queue_client

        queue_client(stack.azurite.connection_string, stack.app.env["IMAGE_QUEUE_NAME"]).clear_messages()
        for size in sizes:
            urls = stack.urls([names[i % len(names)] + f"?copy={i // len(names)}" for i in range(size)])
            bodies = message_bodies(urls)
            raw_s: list[float] = []
            app: list[dict[str, float]] = []
            load = load_average()
            for _ in range(repeats if size <= 2000 else max(1, repeats // 2)):
                raw_s.append(raw_send(stack, bodies))
                app.append(app_fanout(stack, urls))
            accept = [a["accept_s"] for a in app]
            fanout = [a["fanout_s"] for a in app]
            results.append(
                {
                    "images": size,
                    "load_average_1m": load,
                    "raw_send_s": summary(raw_s),
                    "raw_messages_per_s": round(size / min(raw_s), 1),
                    "app_accept_s": summary(accept),
                    "app_fanout_only_s": summary(fanout),
                    "app_messages_per_s_accept": round(size / min(accept), 1),
                    "app_messages_per_s_fanout_only": round(size / min(fanout), 1),
                    "ratio_accept_vs_raw": round(min(raw_s) / min(accept), 3),
                    "ratio_fanout_only_vs_raw": round(min(raw_s) / min(fanout), 3),
                    "ratio_median_accept_vs_raw": round(summary(raw_s)["median"] / summary(accept)["median"], 3),
                }
            )
    return {
        "benchmark": "fanout",
        "environment": environment(),
        "params": {"sizes": list(sizes), "repeats": repeats, "raw_concurrency": RAW_CONCURRENCY},
        "results": results,
    }


def print_result(result: dict[str, Any]) -> None:
    print("fan-out: the staged fan-out alone vs a raw 32-thread send loop (processing disabled)")
    print(
        f"{'images':>7} {'raw s':>7} {'raw msg/s':>10} {'to 202 s':>9} {'fan-out s':>10} {'app msg/s':>10} "
        f"{'ratio':>6} {'load':>5}"
    )
    for r in result["results"]:
        print(
            f"{r['images']:>7} {r['raw_send_s']['min']:>7.2f} {r['raw_messages_per_s']:>10.0f} "
            f"{r['app_accept_s']['min']:>9.2f} {r['app_fanout_only_s']['min']:>10.2f} "
            f"{r['app_messages_per_s_fanout_only']:>10.0f} {r['ratio_fanout_only_vs_raw']:>6.2f} "
            f"{r['load_average_1m']:>5.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "fanout.json")
    args = parser.parse_args(argv)
    result = run([int(s) for s in args.sizes.split(",")], args.repeats)
    print_result(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "benchmark": "fanout",
                "results": [
                    {
                        k: r[k]
                        for k in ("images", "raw_messages_per_s", "app_messages_per_s_accept", "ratio_accept_vs_raw")
                    }
                    for r in result["results"]
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
