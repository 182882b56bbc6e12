"""App-level helper of the fixture app: proves `from recorder import ...` works from a function.

Each invocation appends one JSON line to RECORD_DIR/<name>.jsonl (O_APPEND keeps lines whole across
worker processes). `concurrency()` counts invocations running at once across processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path


def record(name: str, **fields: object) -> None:
    directory = Path(os.environ["RECORD_DIR"])
    line = json.dumps({"pid": os.getpid(), **fields}, default=str) + "\n"
    fd = os.open(directory / f"{name}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _bump(delta: int) -> None:
    path = Path(os.environ["RECORD_DIR"]) / "concurrency.json"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        state = json.loads(handle.read() or '{"now": 0, "max": 0}')
        state["now"] += delta
        state["max"] = max(state["max"], state["now"])
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(state))


@contextlib.contextmanager
def concurrency() -> Iterator[None]:
    _bump(1)
    try:
        yield
    finally:
        _bump(-1)
