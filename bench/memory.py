"""Memory: peak RSS of the host's process tree while it processes 12 MP photos and accepts a 20 MB CSV.

RSS is summed over the host and its worker processes from /proc every 50 ms (so a peak shorter
than that can be missed; RSS counts shared pages once per process, so the sum overstates a little).

- 12 MP photos (q90, ~3 MB each; 36 MB each once decoded to RGB): one job of ``--photos`` of them,
  after a warm-up. The bound to compare with: images decoded at once = min(in-flight messages
  (batchSize + newBatchThreshold per host), worker processes x threads) x (decoded size + input
  bytes + output bytes), on top of the idle RSS.
- A 20 MB CSV (the MAX_CSV_BYTES limit): 10,000 rows (MAX_PRODUCTS) of one ~2,000-character URL
  each (long signed-CDN-style URLs: the only way to reach 20 MB within the row and URL limits),
  with processing disabled so only the upload is measured: parse, store, fan out 10,000 messages.

The photo job runs once per ``--threads`` value (8, the app's setting, and 2): with 2 cores, the
threads beyond the core count only add images held in memory at once.

Usage: ``python -m bench.memory --photos 32 --threads 8,2``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.fanout import DISABLE_PROCESSING
from bench.harness import (
    OUT_DIR,
    ProcessSampler,
    bench_stack,
    environment,
    load_average,
    photos_dir,
    process_tree,
    rss_bytes,
)
from devtools.photoset import LARGE_MEGAPIXELS, make_photoset

MB = 1024 * 1024
CSV_TARGET_BYTES = 20_000_000  # just under MAX_CSV_BYTES (20 MiB), multipart framing included
CSV_ROWS = 10_000


def _idle_rss(host_pid: int) -> int:
    time.sleep(1.0)  # let the warm-up's garbage go
    return sum(rss_bytes(pid) for pid in process_tree(host_pid))


def large_photos(count: int, workers: int, threads: int) -> dict[str, Any]:
    paths = make_photoset(photos_dir(LARGE_MEGAPIXELS), count, LARGE_MEGAPIXELS, 90)
    names = [p.name for p in paths]
    overrides = {"FUNCTIONS_WORKER_PROCESS_COUNT": str(workers), "PYTHON_THREADPOOL_THREAD_COUNT": str(threads)}
    with bench_stack("memory-12mp", photos_dir(LARGE_MEGAPIXELS), overrides) as stack:
        stack.run_job(stack.urls(names[:2]), timeout_s=300)
        idle = _idle_rss(stack.host_pid)
        load = load_average()
        with ProcessSampler(stack.host_pid) as sampler:
            result = stack.run_job(stack.urls(names), timeout_s=600)
        rows = stack.image_rows(result.request_id)
    pixels = max(r["width"] * r["height"] for r in rows)
    decoded = pixels * 3
    input_bytes = max(r["bytes_in"] for r in rows)
    output_bytes = max(r["bytes_out"] for r in rows)
    in_flight = 16 + 8  # host.json: batchSize 16 + newBatchThreshold 8
    concurrent = min(in_flight, workers * threads)
    per_image = decoded + input_bytes + output_bytes
    return {
        "photos": count,
        "megapixels": round(pixels / 1e6, 2),
        "workers": workers,
        "threads": threads,
        "load_average_1m": load,
        "seconds": round(result.total_s, 2),
        "images_per_s": round(result.images_per_s, 2),
        "idle_rss_mb": round(idle / MB, 1),
        "peak_rss_mb": round(sampler.peak_bytes / MB, 1),
        "peak_processes": sampler.peak_processes,
        "growth_mb": round((sampler.peak_bytes - idle) / MB, 1),
        "bound": {
            "in_flight_messages": in_flight,
            "decoding_at_once": concurrent,
            "per_image_mb": round(per_image / MB, 1),
            "bound_growth_mb": round(concurrent * per_image / MB, 1),
        },
    }


def big_csv(rows: int = CSV_ROWS, target_bytes: int = CSV_TARGET_BYTES) -> tuple[bytes, int]:
    header = "S. No.,Product Name,Input Image Urls\n"
    per_row = (target_bytes - len(header)) // rows
    lines = [header]
    for serial in range(1, rows + 1):
        prefix = f"{serial},SKU-{serial:05d},http://127.0.0.1:9/img/{serial}.jpg?sig="
        lines.append(prefix + "a" * (per_row - len(prefix) - 1) + "\n")
    data = "".join(lines).encode()
    return data, rows


def large_csv(workers: int) -> dict[str, Any]:
    data, _images = big_csv()
    overrides = {"FUNCTIONS_WORKER_PROCESS_COUNT": str(workers), **DISABLE_PROCESSING}
    with bench_stack("memory-csv", photos_dir(2.0), overrides) as stack:
        stack.run_accept_only([], body=big_csv(20, 40_000)[0])  # warm-up
        idle = _idle_rss(stack.host_pid)
        load = load_average()
        with ProcessSampler(stack.host_pid) as sampler:
            accepted = stack.run_accept_only([], body=data)
    return {
        "csv_bytes": len(data),
        "images": accepted["images"],
        "workers": workers,
        "load_average_1m": load,
        "accept_s": accepted["accept_s"],
        "idle_rss_mb": round(idle / MB, 1),
        "peak_rss_mb": round(sampler.peak_bytes / MB, 1),
        "growth_mb": round((sampler.peak_bytes - idle) / MB, 1),
        "growth_per_csv_byte": round((sampler.peak_bytes - idle) / len(data), 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=32, help="12 MP photos in the job")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", default="8,2", help="PYTHON_THREADPOOL_THREAD_COUNT values to compare")
    parser.add_argument("--skip-csv", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "memory.json")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "benchmark": "memory",
        "environment": environment(),
        "large_photos": [large_photos(args.photos, args.workers, int(t)) for t in args.threads.split(",") if t],
    }
    for case in result["large_photos"]:
        print("12 MP photos:", json.dumps(case))
    if not args.skip_csv:
        result["large_csv"] = large_csv(args.workers)
        print("20 MB CSV:", json.dumps(result["large_csv"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
