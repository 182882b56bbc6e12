"""CSV parsing time by shape: ~20 MB CSVs of several shapes through ``shared.csv_input.parse_products``.

Issue 11 asks that parsing be linear: "a 20 MB CSV of any shape, the wide-header one included, is
parsed in <= 2 s on this machine", as a benchmark figure, not a timed test. Each shape is generated
here to just under ``MAX_CSV_BYTES`` (20 MiB) and parsed in this process, ``--repeats`` times (best
and median seconds kept), with the production ``MAX_PRODUCTS`` and ``MAX_URLS_PER_ROW``. A shape
that the product limit stops early (many narrow rows) is parsed a second time with the limit
lifted, so that the whole file is read.

Shapes: many narrow rows (one short URL each), quoted and unquoted; the most URLs a row may have
(in one quoted cell, and spilled into unquoted cells); long cells (20 URLs of ~2,000 characters:
~40,000-character cells); the widest header allowed (200 columns), quoted and unquoted; and a
2,000-column header (refused at the header: the quadratic case of the issue).

Usage: ``python -m bench.csv_shapes [--repeats 3]``; writes ``bench/out/csv_shapes.json``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.harness import OUT_DIR, environment, load_average
from shared.csv_input import MAX_COLUMNS, parse_products
from shared.errors import ImgpipeError
from shared.settings import Settings

HEADER = ["S. No.", "Product Name", "Input Image Urls"]


def _default(name: str) -> Any:
    return next(f.default for f in dataclasses.fields(Settings) if f.name == name)


TARGET_BYTES = _default("max_csv_bytes") - 64 * 1024  # just under the upload limit
MAX_URLS = _default("max_urls_per_row")
MAX_PRODUCTS = _default("max_products")


# Cell sizes are chosen so that each shape but the narrow rows stays within MAX_PRODUCTS rows at
# ~20 MB: the service accepts it whole, and all of it is parsed under the production limits.
def _url(serial: int, index: int, length: int) -> str:
    stem = f"https://images.example.com/p/{serial}/{index}.jpg?sig="
    return stem + "a" * max(0, length - len(stem))


def _write(header: list[str], rows: Iterator[list[str]], quote_all: bool) -> bytes:
    """Rows until the next one would pass TARGET_BYTES."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(header)
    size = buffer.tell()
    for row in rows:
        line = io.StringIO()
        csv.writer(line, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n").writerow(row)
        text = line.getvalue()
        if size + len(text) > TARGET_BYTES:
            break
        buffer.write(text)
        size += len(text)
    return buffer.getvalue().encode("utf-8")


def _serials() -> Iterator[int]:
    serial = 0
    while True:
        serial += 1
        yield serial


def narrow_rows(quote_all: bool) -> bytes:
    return _write(HEADER, ([str(n), f"P{n}", _url(n, 0, 40)] for n in _serials()), quote_all)


def most_urls_quoted() -> bytes:
    rows = ([str(n), f"Product {n}", ",".join(_url(n, i, 104) for i in range(MAX_URLS))] for n in _serials())
    return _write(HEADER, rows, quote_all=False)


def most_urls_spilled() -> bytes:
    """Extra URLs in unquoted cells after the URL column (``1,SKU,url1,url2,...``), as some clients write."""
    rows = ([str(n), f"Product {n}", *(_url(n, i, 104) for i in range(MAX_URLS))] for n in _serials())
    return _write(HEADER, rows, quote_all=False)


def long_cells() -> bytes:
    rows = ([str(n), f"Product {n}", ",".join(_url(n, i, 2000) for i in range(MAX_URLS))] for n in _serials())
    return _write(HEADER, rows, quote_all=False)


def wide_header(columns: int, quote_all: bool) -> bytes:
    extra = [f"Attribute {i}" for i in range(columns - len(HEADER))]
    rows = ([str(n), f"Product {n}", _url(n, 0, 60), *(f"value {i:04}" for i in range(len(extra)))] for n in _serials())
    return _write(HEADER + extra, rows, quote_all)


SHAPES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "narrow_unquoted": ("many narrow rows (1 URL each), unquoted", lambda: narrow_rows(False)),
    "narrow_quoted": ("many narrow rows (1 URL each), every cell quoted", lambda: narrow_rows(True)),
    "most_urls_quoted": (f"{MAX_URLS} URLs a row in one quoted cell", most_urls_quoted),
    "most_urls_spilled": (f"{MAX_URLS} URLs a row spilled into unquoted cells", most_urls_spilled),
    "long_cells": (f"long cells: {MAX_URLS} URLs of ~2,000 characters a row", long_cells),
    "wide_header_unquoted": (f"widest header allowed ({MAX_COLUMNS} columns), unquoted",
                             lambda: wide_header(MAX_COLUMNS, False)),
    "wide_header_quoted": (f"widest header allowed ({MAX_COLUMNS} columns), every cell quoted",
                           lambda: wide_header(MAX_COLUMNS, True)),
    "header_2000": ("2,000-column header (refused)", lambda: wide_header(2000, False)),
}  # fmt: skip


def timed_parse(data: bytes, max_products: int, repeats: int) -> tuple[list[float], str]:
    seconds, outcome = [], ""
    for _ in range(repeats):
        started = time.perf_counter()
        try:
            rows = parse_products(data, max_products=max_products, max_urls_per_row=MAX_URLS)
            outcome = f"{len(rows)} products"
        except ImgpipeError as exc:
            problems = getattr(exc, "problems", None)
            outcome = f"{type(exc).__name__}: {problems[0].message if problems else exc}"
        seconds.append(time.perf_counter() - started)
    return seconds, outcome


def run(repeats: int) -> dict[str, Any]:
    rows = []
    for name, (label, build) in SHAPES.items():
        data = build()
        lines = data.count(b"\n")
        for limit_lifted in (False, True):
            load = load_average()
            seconds, outcome = timed_parse(data, 10**9 if limit_lifted else MAX_PRODUCTS, repeats)
            if limit_lifted and "PayloadTooLarge" not in rows[-1]["outcome"]:
                break  # the production limits already read the whole file
            row = {
                "shape": name, "label": label + (" (product limit lifted)" if limit_lifted else ""),
                "bytes": len(data), "lines": lines, "outcome": outcome, "seconds_best": round(min(seconds), 3),
                "seconds_median": round(statistics.median(seconds), 3), "load_average_1m": load,
            }  # fmt: skip
            rows.append(row)
            print(f"{row['label']:70} {len(data) / 1e6:5.1f} MB {lines:>8} lines  best {row['seconds_best']:6.3f} s"
                  f"  median {row['seconds_median']:6.3f} s  load {load}  {outcome}")  # fmt: skip
    return {
        "benchmark": "csv_shapes",
        "params": {
            "repeats": repeats,
            "target_bytes": TARGET_BYTES,
            "max_products": MAX_PRODUCTS,
            "max_urls_per_row": MAX_URLS,
            "max_columns": MAX_COLUMNS,
        },
        "environment": environment(),
        "results": rows,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.csv_shapes", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "csv_shapes.json")
    args = parser.parse_args(argv)
    result = run(args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    worst = max(r["seconds_best"] for r in result["results"])
    print(json.dumps({"benchmark": "csv_shapes", "worst_best_s": worst}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
