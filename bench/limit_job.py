"""A CSV at the limits (10,000 rows x 20 URLs = 200,000 images) processed end to end, locally.

Issue 9 asks that such a CSV be accepted (202), fanned out, every image done and the webhook sent
once. The other benchmarks measure its 202 and fan-out rate with processing disabled
(``bench.targets --limit``); this one processes it. The images are tiny (32 x 32 JPEGs, each URL
distinct through a ``?copy=`` query, so none is deduplicated) because the point is the 200,000
messages, not Pillow: at 2 MP each the run would be ~70 minutes of compression on two cores.

Runs the real stack (``bench.harness.bench_stack``: Azurite, Redis, SQLite, the local host) with
the app's local settings (so ``FANOUT_WINDOW`` as ``local.settings.json`` sets it), prints progress
every ``--every`` seconds (images finished, rate, image-queue depth), and at the end checks, from the
database, the output folder, the photo server and the webhook receiver: every image Done exactly
once, one output file per image, each URL downloaded (how many times), the webhook delivered once.

Usage: ``python -m bench.limit_job [--rows 10000] [--per-row 20] [--every 30]``.
"""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from azure.storage.queue import QueueClient
from PIL import Image

from bench.harness import OUT_DIR, PHOTOS_ROOT, bench_stack, environment, load_average, products_csv, warm_up
from shared.queues import queue_client

TINY_DIR = PHOTOS_ROOT / "tiny_32px"
TINY_NAMES = [f"tiny_{i}.jpg" for i in range(8)]


def tiny_photos() -> Path:
    TINY_DIR.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(TINY_NAMES):
        path = TINY_DIR / name
        if not path.exists():
            image = Image.new("RGB", (32, 32), (30 * index % 256, 90, 200 - 20 * index))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=90)
            path.write_bytes(out.getvalue())
    return TINY_DIR


def _counts(db_path: str, request_id: str) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT status, COUNT(*) FROM images WHERE request_id = ? GROUP BY status", (request_id,)
        ).fetchall()
    return {str(status): int(count) for status, count in rows}


def _queue_depth(client: QueueClient) -> int:
    return int(client.get_queue_properties().approximate_message_count or 0)


def run(rows: int, per_row: int, every_s: float, timeout_s: float) -> dict[str, Any]:
    images = rows * per_row
    with bench_stack("limit-job", tiny_photos()) as stack:
        env: Mapping[str, str] = stack.app.env
        warm_up(stack, TINY_NAMES)
        urls = stack.urls([f"{TINY_NAMES[i % len(TINY_NAMES)]}?copy={i}" for i in range(images)])
        body = products_csv(urls, per_row)
        served_before = int(requests.get(f"{stack.photos.base_url}/__count", timeout=10).text)
        stack.webhook.accepted.clear()
        stack.webhook.deliveries.clear()
        load = load_average()
        posted = time.time()
        accept = stack.run_accept_only(urls, body)
        accepted = posted + accept["accept_s"]
        request_id = accept["request_id"]
        print(f"{images:,} images ({len(body) / 1e6:.1f} MB CSV): 202 in {accepted - posted:.2f} s", flush=True)
        progress: list[dict[str, Any]] = []
        image_queue = queue_client(env["AzureWebJobsStorage"], env["IMAGE_QUEUE_NAME"])
        deadline = time.monotonic() + timeout_s
        while not any(p.get("request_id") == request_id for p in list(stack.webhook.accepted.values())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no webhook after {timeout_s:.0f} s")
            time.sleep(every_s if not progress or progress[-1]["finished"] < images else 1)
            counts = _counts(env["SQLITE_PATH"], request_id)
            finished = sum(n for status, n in counts.items() if status not in ("Pending", "Processing"))
            depth = _queue_depth(image_queue)
            elapsed = time.time() - accepted
            progress.append({"s": round(elapsed, 1), "finished": finished, "queue_depth": depth,
                             "load_1m": load_average()})  # fmt: skip
            print(f"  {elapsed:7.0f} s: {finished:>7,} finished ({finished / elapsed:5.0f}/s), "
                  f"image queue {depth:,}, load {load_average():.1f}", flush=True)  # fmt: skip
        arrived = time.time()
        image_queue.close()
        time.sleep(5)  # a duplicate webhook, if any, would come within the notify's retry
        counts = _counts(env["SQLITE_PATH"], request_id)
        outputs = sum(1 for _ in (Path(env["OUTPUT_DIR"]) / request_id).iterdir())
        served = int(requests.get(f"{stack.photos.base_url}/__count", timeout=10).text) - served_before
        webhooks = [d for d, p in stack.webhook.accepted.items() if p.get("request_id") == request_id]
        posts = sum(1 for d in stack.webhook.deliveries if d in webhooks)
        payload = stack.webhook.accepted[webhooks[0]]
    return {
        "benchmark": "limit_job",
        "environment": environment(),
        "params": {"rows": rows, "per_row": per_row, "image_px": 32},
        "load_average_1m": load,
        "images": images,
        "post_to_202_s": round(accepted - posted, 3),
        "post_to_webhook_s": round(arrived - posted, 1),
        "images_per_s": round(images / (arrived - accepted), 1),
        "status_counts": counts,
        "output_files": outputs,
        "downloads": served,
        "webhook_deliveries": len(webhooks),
        "webhook_posts": posts,
        "webhook_status": payload.get("status"),
        "webhook_done": payload.get("done"),
        "max_queue_depth": max((p["queue_depth"] for p in progress), default=0),
        "progress": progress,
    }


def markdown(document: Mapping[str, Any]) -> str:
    env, p = document["environment"], document["params"]
    counts = ", ".join(f"{n:,} {status}" for status, n in sorted(document["status_counts"].items()))
    lines = [
        f"Run {env['date_utc']} UTC: `python -m bench.limit_job --rows {p['rows']} --per-row {p['per_row']}`, "
        f"{env['cpus']} CPUs, load {document['load_average_1m']} at the POST; {p['image_px']} x {p['image_px']} "
        "JPEGs, every URL distinct; the app's local settings.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| images | {document['images']:,} |",
        f"| POST -> 202 | {document['post_to_202_s']:.2f} s |",
        f"| POST -> webhook | {document['post_to_webhook_s']:,.0f} s ({document['images_per_s']:.0f} images/s) |",
        f"| images by status | {counts} |",
        f"| output files | {document['output_files']:,} |",
        f"| downloads from the image server | {document['downloads']:,} |",
        f"| webhook | {document['webhook_deliveries']} delivery, {document['webhook_posts']} post(s), "
        f"status {document['webhook_status']}, done {document['webhook_done']:,} |",
        f"| deepest image queue seen | {document['max_queue_depth']:,} messages |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limit_job", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--per-row", type=int, default=20)
    parser.add_argument("--every", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "limit_job.json")
    args = parser.parse_args(argv)
    result = run(args.rows, args.per_row, args.every, args.timeout)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
