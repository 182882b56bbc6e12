"""Realistic benchmark photos, derived from the freely licensed images in ``samples/sources/``.

The sources are small (at most 0.87 MP), so a photo is a mosaic of native-resolution crops of
them: upscaling would blur them and make the JPEG sizes unrealistically small. Each photo's
layout (aspect, row heights, which source, crop offsets, mirroring) comes from a random generator
seeded with ``(seed, index, megapixels)``, so every file differs and a set is reproducible.
Photos are saved like camera output (JPEG quality 90 by default).

Usage: ``python -m devtools.photoset DIR --count 1000 --mp 2`` (``--mp 12`` for the memory benchmark).
A directory that already holds the requested files is reused as it is (a cache).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image

SOURCES_DIR = Path(__file__).resolve().parent.parent / "samples" / "sources"
SOURCE_SUFFIXES = (".png", ".jpg", ".jpeg")

DEFAULT_MEGAPIXELS = 2.0
# The memory benchmark's size: a typical phone camera photo.
LARGE_MEGAPIXELS = 12.0
DEFAULT_QUALITY = 90

# Landscape photos are the common case; some are portrait, as from a phone held upright.
ASPECTS: tuple[tuple[int, int], ...] = ((4, 3), (4, 3), (3, 2), (3, 4))
# Rows of tiles: heights around this, never below the minimum (a thin sliver looks unlike a photo).
ROW_HEIGHT_TARGET = 300
ROW_HEIGHT_MIN = 220
TILE_WIDTH_MIN = 220
# Below this many photos to make, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 16


@lru_cache(maxsize=1)
def load_sources(sources_dir: Path = SOURCES_DIR) -> tuple[Image.Image, ...]:
    """The source images, decoded to RGB once per process, each also mirrored left to right."""
    paths = sorted(p for p in sources_dir.iterdir() if p.suffix.lower() in SOURCE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no source images in {sources_dir}")
    images: list[Image.Image] = []
    for path in paths:
        with Image.open(path) as opened:
            rgb = opened.convert("RGB")
        images.append(rgb)
        images.append(rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return tuple(images)


def photo_size(megapixels: float, aspect: tuple[int, int]) -> tuple[int, int]:
    """Width and height of a photo of about ``megapixels`` with the aspect ``(w, h)``."""
    if megapixels <= 0:
        raise ValueError(f"megapixels must be positive, got {megapixels}")
    aspect_w, aspect_h = aspect
    width = round(math.sqrt(megapixels * 1_000_000 * aspect_w / aspect_h))
    height = round(width * aspect_h / aspect_w)
    return max(width, 1), max(height, 1)


def _split(total: int, target: int, minimum: int, rng: random.Random) -> list[int]:
    """Split ``total`` into parts near ``target`` (each at least ``minimum`` when total allows)."""
    count = max(1, round(total / target))
    parts = [total // count] * count
    for i in range(total % count):
        parts[i] += 1
    # Jitter neighbouring parts against each other so rows differ in height.
    for i in range(count - 1):
        slack = min(parts[i] - minimum, parts[i + 1] - minimum, target // 4)
        if slack > 0:
            shift = rng.randint(-slack, slack)
            parts[i] += shift
            parts[i + 1] -= shift
    return parts


def _fill_row(
    canvas: Image.Image, top: int, row_height: int, sources: Sequence[Image.Image], rng: random.Random
) -> None:
    tall_enough = [s for s in sources if s.height >= row_height]
    if not tall_enough:
        raise ValueError(f"no source image is {row_height} px tall")
    x = 0
    while x < canvas.width:
        source = rng.choice(tall_enough)
        remaining = canvas.width - x
        width = rng.randint(min(TILE_WIDTH_MIN, source.width), source.width)
        if remaining - width < TILE_WIDTH_MIN:
            # Close the row with this tile rather than leave a sliver for the next one.
            width = remaining if remaining <= source.width else remaining - TILE_WIDTH_MIN
        left = rng.randint(0, source.width - width)
        upper = rng.randint(0, source.height - row_height)
        canvas.paste(source.crop((left, upper, left + width, upper + row_height)), (x, top))
        x += width


def render_photo(
    megapixels: float, seed: int, index: int, sources: Sequence[Image.Image] | None = None
) -> Image.Image:
    """One mosaic photo of about ``megapixels``, the same for the same arguments."""
    sources = load_sources() if sources is None else sources
    rng = random.Random(f"photo:{seed}:{index}:{megapixels:g}")
    width, height = photo_size(megapixels, rng.choice(ASPECTS))
    tallest = max(s.height for s in sources)
    canvas = Image.new("RGB", (width, height))
    top = 0
    for row_height in _split(height, min(ROW_HEIGHT_TARGET, tallest), ROW_HEIGHT_MIN, rng):
        _fill_row(canvas, top, row_height, sources, rng)
        top += row_height
    return canvas


def save_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    """Save as a camera would (baseline JPEG); atomically, so a cache never holds half a file."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    image.save(partial, "JPEG", quality=quality)
    os.replace(partial, path)


def photo_path(directory: Path, megapixels: float, quality: int, seed: int, index: int) -> Path:
    """The file name records everything the content depends on, so a cached file is the right one."""
    return directory / f"photo_{megapixels:g}mp_q{quality}_s{seed}_{index:05d}.jpg"


def _write_one(job: tuple[Path, float, int, int, int]) -> None:
    path, megapixels, quality, seed, index = job
    save_jpeg(render_photo(megapixels, seed, index), path, quality)


def make_photoset(
    directory: Path,
    count: int,
    megapixels: float = DEFAULT_MEGAPIXELS,
    quality: int = DEFAULT_QUALITY,
    seed: int = 0,
    *,
    processes: int | None = None,
) -> list[Path]:
    """Make (or reuse) ``count`` distinct photos of about ``megapixels`` in ``directory``.

    Files already present under the expected names are reused. ``processes`` defaults to the
    number of CPUs; photos are only made in parallel when there are enough of them to pay off.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if not 1 <= quality <= 95:
        raise ValueError(f"quality must be within 1..95, got {quality}")
    directory.mkdir(parents=True, exist_ok=True)
    paths = [photo_path(directory, megapixels, quality, seed, i) for i in range(count)]
    jobs = [(p, megapixels, quality, seed, i) for i, p in enumerate(paths) if not p.is_file()]
    workers = min(processes or os.cpu_count() or 1, len(jobs))
    if workers > 1 and len(jobs) >= PARALLEL_THRESHOLD:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, jobs, chunksize=max(1, len(jobs) // (workers * 8))))
    else:
        for job in jobs:
            _write_one(job)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.photoset", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--mp", type=float, default=DEFAULT_MEGAPIXELS, help="megapixels per photo")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=None, help="default: number of CPUs")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    paths = make_photoset(
        args.directory, args.count, args.mp, args.quality, args.seed, processes=args.processes
    )
    elapsed = time.perf_counter() - started
    total_bytes = sum(p.stat().st_size for p in paths)
    print(
        f"{len(paths)} photos of ~{args.mp:g} MP at q{args.quality} in {args.directory} "
        f"({total_bytes / 1e6:.1f} MB, {elapsed:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
