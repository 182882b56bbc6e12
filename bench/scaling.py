"""Scaling: images/s with 1, 2 and 4 worker processes (and 2 x 2 threads), and with jobs of 100, 1,000 and 5,000 images.

Worker processes (``FUNCTIONS_WORKER_PROCESS_COUNT``): one fresh stack per count, a warm-up, then
one job of ``--count`` 2 MP photos (the pipeline benchmark's set), end to end. ``2x2`` is 2 worker
processes with ``PYTHON_THREADPOOL_THREAD_COUNT=2`` instead of the app's 8: on 2 cores, fewer images
decoding at once should cost no throughput and bound memory (see ``bench.memory``).

Job size: one fresh stack (2 worker processes), then jobs of each size in turn. The sizes use
smaller photos (``--sizes-mp``, 0.5 MP by default) so the 5,000-image job fits the time budget of
``make bench`` and the per-image overhead (queue, database, Redis) weighs more against the image
work: if per-image cost grew with job size or queue depth, it would show here first. Reports
images/s, CPU seconds per image by process (Azurite's receive/delete cost grows with the number of
messages stored), and the job's seconds to the 202.

Usage: ``python -m bench.scaling --workers 1,2,4 --count 1000 --sizes 100,1000,5000``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import OUT_DIR, bench_stack, environment, photos_dir, warm_up
from bench.pipeline import kernel_ceiling, kernel_cpu_s_per_image, measure_job, photo_names
from devtools.apphost import load_local_settings

APP_THREADS = int(load_local_settings().get("PYTHON_THREADPOOL_THREAD_COUNT") or 0) or None


def _config(item: str) -> tuple[int, int | None]:
    """``"2"`` is 2 worker processes with the app's thread count; ``"2x2"`` also sets 2 threads each."""
    processes, _, threads = item.partition("x")
    return int(processes), int(threads) if threads else None


def by_workers(configs: Sequence[str], images: int, megapixels: float) -> list[dict[str, Any]]:
    names = photo_names(megapixels, images)
    results = []
    for item in configs:
        workers, threads = _config(item)
        overrides = {"FUNCTIONS_WORKER_PROCESS_COUNT": str(workers)}
        if threads:
            overrides["PYTHON_THREADPOOL_THREAD_COUNT"] = str(threads)
        with bench_stack(f"scaling-w{item}", photos_dir(megapixels), overrides) as stack:
            warm_up(stack, names)
            run = measure_job(stack, stack.urls(names))
        run.pop("rows")
        results.append({"workers": workers, "threads": threads or APP_THREADS, "config": item, **run})
    return results


def by_job_size(sizes: Sequence[int], megapixels: float, workers: int) -> list[dict[str, Any]]:
    names = photo_names(megapixels, max(sizes))
    results = []
    with bench_stack("scaling-size", photos_dir(megapixels), {"FUNCTIONS_WORKER_PROCESS_COUNT": str(workers)}) as stack:
        warm_up(stack, names)
        for size in sizes:
            run = measure_job(stack, stack.urls(names[:size]))
            run.pop("rows")
            results.append({"size": size, "megapixels": megapixels, **run})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers", default="1,2,4,2x2", help="worker process counts; PxT also sets T threads per process"
    )
    parser.add_argument("--count", type=int, default=1000, help="2 MP images per job for the worker series")
    parser.add_argument("--sizes", default="100,1000,5000", help="job sizes for the size series ('' to skip)")
    parser.add_argument("--sizes-mp", type=float, default=0.5, help="megapixels of the size series' photos")
    parser.add_argument("--out", type=Path, default=OUT_DIR / "scaling.json")
    args = parser.parse_args(argv)
    workers = [w for w in args.workers.split(",") if w]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    result: dict[str, Any] = {
        "benchmark": "scaling",
        "environment": environment(),
        "params": {"workers": workers, "count": args.count, "sizes": sizes, "sizes_mp": args.sizes_mp},
        "kernel": kernel_ceiling(2.0),
        "kernel_cpu_s_per_image": kernel_cpu_s_per_image(2.0),
        "kernel_cpu_s_per_image_sizes_mp": kernel_cpu_s_per_image(args.sizes_mp),
        "by_workers": by_workers(workers, args.count, 2.0) if workers else [],
    }
    print(f"{'config':>7} {'img/s':>7} {'to 202 s':>9} {'app CPU s/img':>14} {'azurite s/img':>14} {'load':>5}")
    for r in result["by_workers"]:
        print(
            f"{r['workers']:>7} {r['images_per_s']:>7.1f} {r['accept_s']:>9.2f} {r['app_cpu_s_per_image']:>14.4f} "
            f"{r['cpu_s_per_image']['azurite']:>14.4f} {r['load_average_1m']:>5.2f}"
        )
    result["by_job_size"] = by_job_size(sizes, args.sizes_mp, 2) if sizes else []
    print(f"{'images':>7} {'img/s':>7} {'to 202 s':>9} {'app CPU s/img':>14} {'azurite s/img':>14} {'load':>5}")
    for r in result["by_job_size"]:
        print(
            f"{r['size']:>7} {r['images_per_s']:>7.1f} {r['accept_s']:>9.2f} {r['app_cpu_s_per_image']:>14.4f} "
            f"{r['cpu_s_per_image']['azurite']:>14.4f} {r['load_average_1m']:>5.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {
                "benchmark": "scaling",
                "by_workers": {r["config"]: r["images_per_s"] for r in result["by_workers"]},
                "by_job_size": {r["size"]: r["images_per_s"] for r in result["by_job_size"]},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
