"""Decode bombs: peak memory and seconds of one worker given each bomb, beside a normal 12 MP photo.

Issue 11 asks that worker memory stay bounded in the bomb cases. Each case is built here (the
builders the security tests use, ``devtools.bombs``), written to a file and handed, in a fresh
Python process, to the service's own ``shared.imaging.compress_image`` with the production
``JPEG_QUALITY`` and ``MAX_IMAGE_PIXELS``, as ``process_queue`` would. The child reports its peak
RSS (``VmHWM`` in /proc/self/status; not ``ru_maxrss``, which a child inherits from the process
that started it) before and after the call, the seconds the call took and its outcome (the
refusal reason, or "compressed"). A fresh process per case, because peak RSS only ever grows.

Cases: a normal 12 MP q90 photo (for scale: what an ordinary large image costs), an animated GIF
whose second frame is 8000 x 8000 behind a 1 x 1 screen, two-page TIFFs whose second page is
8000 x 8000 (over ``MAX_IMAGE_PIXELS``) or 6000 x 6000 (under it), GIFs of 100,000 tiny frames
and of 1,000 (the frame cap, accepted), and a progressive JPEG with one scan repeated 60 times
(~0.6 MB, the size of the issue's 12.7 s case). ``--repeats`` runs each case that many times
(fresh processes) and keeps the median seconds and the largest growth.

Usage: ``python -m bench.bombs [--repeats 3]``; writes ``bench/out/bombs.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.harness import OUT_DIR, REPO_ROOT, environment, load_average, photos_dir
from devtools import bombs
from devtools.photoset import LARGE_MEGAPIXELS, make_photoset
from shared.decode_budget import MAX_FRAMES
from shared.settings import Settings

_CHILD = """
import json, sys, time
from shared.errors import PermanentFailure
from shared.imaging import compress_image

def high_water_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

data = open(sys.argv[1], "rb").read()
before = high_water_kib()
started = time.perf_counter()
try:
    result = compress_image(data, quality=int(sys.argv[2]), max_pixels=int(sys.argv[3]))
    outcome = f"compressed ({result.width}x{result.height} {result.format})"
except PermanentFailure as exc:
    outcome = f"refused: {exc}"
seconds = time.perf_counter() - started
after = high_water_kib()
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_before_kib": before, "rss_peak_kib": after}))
"""


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(Settings) if f.name == name)


def _photo() -> bytes:
    [path] = make_photoset(photos_dir(LARGE_MEGAPIXELS), 1, LARGE_MEGAPIXELS, 90)
    return path.read_bytes()


def _many_frames(count: int) -> bytes:
    frames = [bombs._gif_frame(1, 1, colour=0), bombs._gif_frame(1, 1, colour=1)]
    return bombs.gif_with_frames((1, 1), frames * (count // 2))


CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "photo": ("normal 12 MP photo, q90 (for scale)", _photo),
    "gif_pixel_bomb": ("GIF: 1x1 screen, second frame 8000x8000", lambda: bombs.gif_pixel_bomb(8000, 8000)),
    "tiff_pages_over": ("TIFF: 16x16 first page, 8000x8000 second", lambda: bombs.tiff_pages((16, 16), (8000, 8000))),
    "tiff_pages_under": ("TIFF: 16x16 first page, 6000x6000 second", lambda: bombs.tiff_pages((16, 16), (6000, 6000))),
    "gif_many_frames": ("GIF: 100,000 frames of 1x1", lambda: _many_frames(100_000)),
    "gif_frame_cap": ("GIF: 1,000 frames of 1x1 (the frame cap)", lambda: _many_frames(MAX_FRAMES)),
    "jpeg_scans": ("progressive JPEG 256x256, one scan repeated 60 times",
                   lambda: bombs.jpeg_with_repeated_scan(256, 256, repeats=60)),
}  # fmt: skip


def measure(path: Path, quality: int, max_pixels: int) -> dict[str, Any]:
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(quality), str(max_pixels)],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return result


def run(repeats: int) -> dict[str, Any]:
    quality, max_pixels = _default("jpeg_quality"), _default("max_image_pixels")
    rows = []
    with tempfile.TemporaryDirectory(prefix="imgpipe-bombs-") as scratch:
        for name, (label, build) in CASES.items():
            path = Path(scratch) / name
            path.write_bytes(build())
            load = load_average()
            runs = [measure(path, quality, max_pixels) for _ in range(repeats)]
            growth = max(r["rss_peak_kib"] - r["rss_before_kib"] for r in runs) / 1024
            rows.append({
                "case": name, "label": label, "bytes": path.stat().st_size, "outcome": runs[0]["outcome"],
                "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
                "rss_before_mib": round(max(r["rss_before_kib"] for r in runs) / 1024, 1),
                "rss_peak_mib": round(max(r["rss_peak_kib"] for r in runs) / 1024, 1),
                "rss_growth_mib": round(growth, 1), "load_average_1m": load,
            })  # fmt: skip
            row = rows[-1]
            print(f"{label:60} {row['bytes']:>10} B  {row['seconds_median']:7.3f} s  peak {row['rss_peak_mib']:7.1f}"
                  f" MiB (+{growth:.1f})  load {load}  {row['outcome']}")  # fmt: skip
    return {
        "benchmark": "bombs",
        "params": {"repeats": repeats, "quality": quality, "max_pixels": max_pixels},
        "environment": environment(),
        "results": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bombs", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "bombs.json")
    args = parser.parse_args(argv)
    result = run(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({"benchmark": "bombs", "results": {r["case"]: r["rss_growth_mib"] for r in result["results"]}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
