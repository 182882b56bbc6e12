"""The fan-out window (FANOUT_WINDOW): a big request, then a small one posted while it runs.

For each ``--windows`` value, on a fresh stack: a ``--big``-image request is posted, and once
``--head-start`` of its images are done a ``--small``-image request is posted. Prints, from the
database's timestamps, the small request's created -> completed seconds, the big one's, how many of
the big one's images finished after the small one had completed (interleaving: without a window
the small one queues behind nearly all of the big one), and the CPU seconds of each process role
over the whole run (Azurite's falls as its queues hold fewer messages). Photos are 0.5 MP so
per-message costs weigh as they do for small images.

Usage: ``python -m bench.window [--windows 0,1000,200] [--big 2000] [--small 20]``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench.harness import (
    OUT_DIR,
    BenchStack,
    bench_stack,
    cpu_by_role,
    environment,
    load_average,
    photos_dir,
    products_csv,
    warm_up,
)
from bench.pipeline import photo_names

MEGAPIXELS = 0.5


def _query(stack: BenchStack, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(stack.app.env["SQLITE_PATH"]) as db:
        return list(db.execute(sql, params).fetchall())


def _post(stack: BenchStack, urls: Sequence[str]) -> str:
    response = stack.app.upload(products_csv(urls), webhook_url=stack.webhook.url)
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    return str(response.json()["request_id"])


def _seconds(start: str, end: str) -> float:
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 2)


def one_run(window: int, names: Sequence[str], big: int, small: int, head_start: int) -> dict[str, Any]:
    with bench_stack(f"window-{window}", photos_dir(MEGAPIXELS), {"FANOUT_WINDOW": str(window)}) as stack:
        warm_up(stack, names)
        roles = stack.roles()
        load = load_average()
        before = cpu_by_role(roles)
        big_id = _post(stack, stack.urls(names[:big]))
        while _query(stack, "SELECT done_images FROM requests WHERE request_id = ?", big_id)[0][0] < head_start:
            time.sleep(0.05)
        small_id = _post(stack, stack.urls(names[big : big + small]))
        deadline = time.monotonic() + 3600
        while time.monotonic() < deadline:
            rows = _query(stack, "SELECT completed_at FROM requests WHERE request_id IN (?, ?)", big_id, small_id)
            if all(completed for (completed,) in rows):
                break
            time.sleep(0.2)
        after = cpu_by_role(roles)
        (small_created, small_done), = _query(
            stack, "SELECT created_at, completed_at FROM requests WHERE request_id = ?", small_id)
        (big_created, big_done), = _query(
            stack, "SELECT created_at, completed_at FROM requests WHERE request_id = ?", big_id)
        big_after = _query(stack, "SELECT COUNT(*) FROM images WHERE request_id = ? AND finished_at > ?",
                           big_id, small_done)[0][0]  # fmt: skip
    return {
        "window": window, "big": big, "small": small, "load_average_1m": load,
        "small_created_to_completed_s": _seconds(small_created, small_done),
        "big_created_to_completed_s": _seconds(big_created, big_done),
        "big_images_finished_after_small_completed": int(big_after),
        "cpu_s": {role: round(after[role] - before[role], 2) for role in after},
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.window", description=__doc__.split("\n")[0])
    parser.add_argument("--windows", default="0,1000,200", help="comma-separated FANOUT_WINDOW values")
    parser.add_argument("--big", type=int, default=2000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--head-start", type=int, default=50, help="big images done before the small one is posted")
    args = parser.parse_args(argv)
    names = photo_names(MEGAPIXELS, args.big + args.small)
    runs = []
    for window in [int(w) for w in args.windows.split(",") if w.strip()]:
        run = one_run(window, names, args.big, args.small, args.head_start)
        runs.append(run)
        cpu = run["cpu_s"]
        print(f"FANOUT_WINDOW={window:>6}: small {args.small} created->completed "
              f"{run['small_created_to_completed_s']:6.1f} s"
              f" | big {args.big} {run['big_created_to_completed_s']:6.1f} s"
              f" | big images finished after the small one: {run['big_images_finished_after_small_completed']:5d}"
              f" | CPU s: azurite {cpu['azurite']:.1f}, host {cpu['host']:.1f}, workers {cpu['host workers']:.1f}",
              flush=True)  # fmt: skip
    result = {"benchmark": "window", "environment": environment(),
              "run_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"), "runs": runs}  # fmt: skip
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "window.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({"benchmark": "window", "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
