"""Kernel ceiling: bare decode + compress of the benchmark photos, one process per core.

No queue, no HTTP, no database: each worker reads its share of the photos into memory, waits at
a barrier with the others, then calls the service's own ``shared.imaging.compress_image`` on each
one. The wall time runs from the barrier to the last worker's finish, so the figures are the most
the service could ever do on this machine (images/s and MP/s, in total and per process).
It also records, per image, the output/input byte ratio (quality 50 output vs the q90 input).

Usage: ``python -m bench.kernel --count 200 --processes 2 --repeats 3``; the full result goes to
``bench/out/kernel.json`` and a one-line JSON summary is printed last.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import multiprocessing
import os
import platform
import queue
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, features

from devtools.photoset import DEFAULT_MEGAPIXELS, make_photoset
from shared.imaging import compress_image
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PHOTOS_ROOT = REPO_ROOT / ".data" / "bench"
DEFAULT_OUTPUT = REPO_ROOT / "bench" / "out" / "kernel.json"
INPUT_QUALITY = 90
# A worker that has not reported by then is stuck; fail rather than hang the benchmark.
WORKER_TIMEOUT_S = 1800.0


def _setting_default(name: str) -> Any:
    """The production default of a setting, so the benchmark runs what the service runs."""
    return next(f.default for f in dataclasses.fields(Settings) if f.name == name)


@dataclass(frozen=True)
class ImageResult:
    name: str
    width: int
    height: int
    bytes_in: int
    bytes_out: int
    seconds: float
    output_format: str
    output_quality: int  # 0 when the service kept the input bytes (its output was not smaller)


@dataclass(frozen=True)
class WorkerResult:
    started: float  # time.perf_counter(): CLOCK_MONOTONIC, one clock for all processes on Linux
    finished: float
    images: list[ImageResult]


def _worker(
    paths: Sequence[Path],
    quality: int,
    max_pixels: int,
    barrier: Barrier,
    results: multiprocessing.Queue[WorkerResult | str],
) -> None:
    try:
        # Everything not measured happens before the barrier: reading files, header parsing, and
        # one untimed compression so lazy imports and plugin set-up are not counted.
        blobs = [(path.name, path.read_bytes()) for path in paths]
        sizes = []
        for _, data in blobs:
            with Image.open(io.BytesIO(data)) as header:
                sizes.append(header.size)
        if blobs:
            compress_image(blobs[0][1], quality=quality, max_pixels=max_pixels, size_target_ratio=0.0)
    except BaseException as exc:
        barrier.abort()
        results.put(f"worker {os.getpid()} failed before the barrier: {exc!r}")
        raise
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        return  # another worker failed and has reported why
    try:
        images: list[ImageResult] = []
        started = time.perf_counter()
        for (name, data), (width, height) in zip(blobs, sizes, strict=True):
            before = time.perf_counter()
            output = compress_image(data, quality=quality, max_pixels=max_pixels, size_target_ratio=0.0)
            seconds = time.perf_counter() - before
            images.append(
                ImageResult(
                    name, width, height, len(data), len(output.data), seconds, output.format, output.quality
                )
            )
        results.put(WorkerResult(started, time.perf_counter(), images))
    except BaseException as exc:
        results.put(f"worker {os.getpid()} failed: {exc!r}")
        raise


def run_once(
    paths: Sequence[Path], processes: int, quality: int, max_pixels: int
) -> tuple[float, list[ImageResult]]:
    """One timed pass over ``paths`` with ``processes`` workers: (wall seconds, per-image results)."""
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(processes + 1)
    results: multiprocessing.Queue[WorkerResult | str] = context.Queue()
    shares = [list(paths[i::processes]) for i in range(processes)]
    workers = [
        context.Process(target=_worker, args=(share, quality, max_pixels, barrier, results), daemon=True)
        for share in shares
    ]
    for worker in workers:
        worker.start()
    reports: list[WorkerResult] = []
    try:
        try:
            barrier.wait(timeout=WORKER_TIMEOUT_S)
        except threading.BrokenBarrierError:
            # A worker that aborted the barrier has left its reason in the queue.
            reason = results.get(timeout=5)
            raise RuntimeError(reason if isinstance(reason, str) else "a benchmark worker failed") from None
        for _ in workers:
            report = results.get(timeout=WORKER_TIMEOUT_S)
            if isinstance(report, str):
                raise RuntimeError(report)
            reports.append(report)
    except queue.Empty:
        raise RuntimeError("a benchmark worker hung or died without reporting") from None
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
    wall = max(r.finished for r in reports) - min(r.started for r in reports)
    return wall, [image for r in reports for image in r.images]


def _rates(images: int, megapixels: float, seconds: float, processes: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 4),
        "images_per_s": round(images / seconds, 2),
        "mp_per_s": round(megapixels / seconds, 2),
        "images_per_s_per_process": round(images / seconds / processes, 2),
        "mp_per_s_per_process": round(megapixels / seconds / processes, 2),
    }


def summarise(
    walls: Sequence[float], passes: Sequence[Sequence[ImageResult]], processes: int
) -> dict[str, Any]:
    first = passes[0]
    count = len(first)
    megapixels = sum(i.width * i.height for i in first) / 1e6
    ratios = [i.bytes_out / i.bytes_in for i in first]
    per_image_ms = [i.seconds * 1000 for p in passes for i in p]
    return {
        "images": count,
        "megapixels": round(megapixels, 2),
        "processes": processes,
        "repeats": [_rates(count, megapixels, wall, processes) for wall in walls],
        "best": _rates(count, megapixels, min(walls), processes),
        "median": _rates(count, megapixels, statistics.median(walls), processes),
        "per_image_ms": {
            "median": round(statistics.median(per_image_ms), 2),
            "p95": round(statistics.quantiles(per_image_ms, n=20)[-1], 2) if len(per_image_ms) > 1 else None,
            "max": round(max(per_image_ms), 2),
        },
        "output_formats": dict(sorted(Counter(i.output_format for i in first).items())),
        "kept_input_bytes": sum(1 for i in first if i.output_quality == 0),
        "bytes_ratio_out_in": {
            "total": round(sum(i.bytes_out for i in first) / sum(i.bytes_in for i in first), 4),
            "min": round(min(ratios), 4),
            "median": round(statistics.median(ratios), 4),
            "max": round(max(ratios), 4),
        },
    }


def environment() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "platform": platform.platform(),
        # Other work on the machine skews the figures: record how busy it was when the run began.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def _print_table(summary: dict[str, Any]) -> None:
    images, megapixels, processes = summary["images"], summary["megapixels"], summary["processes"]
    print(f"kernel ceiling: {images} images, {megapixels} MP, {processes} processes")
    header = f"{'run':>8} {'seconds':>9} {'images/s':>9} {'MP/s':>8} {'img/s/proc':>11} {'MP/s/proc':>10}"
    print(header)
    rows = [(f"#{n}", r) for n, r in enumerate(summary["repeats"], 1)]
    rows += [("best", summary["best"]), ("median", summary["median"])]
    for label, r in rows:
        print(
            f"{label:>8} {r['seconds']:>9.3f} {r['images_per_s']:>9.1f} {r['mp_per_s']:>8.1f} "
            f"{r['images_per_s_per_process']:>11.1f} {r['mp_per_s_per_process']:>10.1f}"
        )
    ms = summary["per_image_ms"]
    ratio = summary["bytes_ratio_out_in"]
    print(f"per image: median {ms['median']} ms, p95 {ms['p95']} ms, max {ms['max']} ms")
    print(
        f"bytes out/in: total {ratio['total']}, per image min {ratio['min']} "
        f"median {ratio['median']} max {ratio['max']}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernel", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200, help="photos in the set")
    parser.add_argument("--mp", type=float, default=DEFAULT_MEGAPIXELS, help="megapixels per photo")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quality", type=int, default=_setting_default("jpeg_quality"))
    parser.add_argument("--max-pixels", type=int, default=_setting_default("max_image_pixels"))
    parser.add_argument("--photos", type=Path, default=None, help="photo set directory (made if missing)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.count < 1 or args.processes < 1 or args.repeats < 1:
        parser.error("--count, --processes and --repeats must be at least 1")

    photos_dir = args.photos or DEFAULT_PHOTOS_ROOT / f"photos_{args.mp:g}mp_q{INPUT_QUALITY}"
    paths = make_photoset(photos_dir, args.count, args.mp, INPUT_QUALITY)
    walls: list[float] = []
    passes: list[list[ImageResult]] = []
    for _ in range(args.repeats):
        wall, images = run_once(paths, args.processes, args.quality, args.max_pixels)
        walls.append(wall)
        passes.append(sorted(images, key=lambda i: i.name))

    summary = summarise(walls, passes, args.processes)
    _print_table(summary)
    params = {
        "count": args.count,
        "megapixels_per_photo": args.mp,
        "input_quality": INPUT_QUALITY,
        "quality": args.quality,
        "max_pixels": args.max_pixels,
        "size_target_ratio": 0.0,
        "photos": str(photos_dir),
    }
    per_image = [
        {
            **asdict(runs[0]),
            "ratio": round(runs[0].bytes_out / runs[0].bytes_in, 4),
            "seconds": round(statistics.median(r.seconds for r in runs), 5),  # median over the repeats
        }
        for runs in zip(*passes, strict=True)
    ]
    result = {
        "benchmark": "kernel",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "params": params,
        "summary": summary,
        "images": per_image,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"full result: {args.out}")
    print(json.dumps({"benchmark": "kernel", "params": params, "summary": summary}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
