"""Fixtures of the security tests: the app stack behind a network tripwire, and helpers.

The integration fixtures (``shared_stacks``, ``image_server``, ``webhook``) are reused as they are;
``secure_stack`` wraps ``shared_stacks`` (one stack per module and settings, reset between tests) so
every app process it starts loads
``tripwire/sitecustomize.py`` (see there): a connect to an address off this machine, or a DNS
lookup, is refused and recorded instead of leaving the machine.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.apphost import AppStack

TRIPWIRE_DIR = Path(__file__).resolve().parent / "tripwire"


class SecureStack:
    """An AppStack plus what the tripwire and the database saw."""

    def __init__(self, stack: AppStack, tripwire_log: Path) -> None:
        self.stack = stack
        self.tripwire_log = tripwire_log

    def __getattr__(self, name: str) -> object:
        return getattr(self.stack, name)

    def tripwire_hits(self) -> list[str]:
        if not self.tripwire_log.exists():
            return []
        return self.tripwire_log.read_text().splitlines()

    def row_counts(self) -> dict[str, int]:
        path = self.stack.env["SQLITE_PATH"]
        with sqlite3.connect(path) as db:
            return {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in ("requests", "products", "images")}


@pytest.fixture()
def secure_stack(shared_stacks, tmp_path_factory) -> Callable[..., SecureStack]:  # noqa: F811
    """The module's stack for these settings behind the tripwire, reset (tripwire log emptied) before each test."""
    logs = tmp_path_factory.getbasetemp() / "tripwire"
    logs.mkdir(exist_ok=True)

    def make(extra_args: list[str] | None = None, **overrides: str) -> SecureStack:
        settings = repr((extra_args, sorted(overrides.items()))).encode()
        log = logs / f"tripwire-{hashlib.sha256(settings).hexdigest()[:16]}.log"
        python_path = os.pathsep.join(filter(None, [str(TRIPWIRE_DIR), os.environ.get("PYTHONPATH", "")]))
        overrides = {"PYTHONPATH": python_path, "IMGPIPE_TRIPWIRE_LOG": str(log), **overrides}
        stack = shared_stacks.get(extra_args=extra_args, **overrides)
        if stack.log_marks:  # reused (reset, its hosts idle): the last test's hits are not this one's
            log.unlink(missing_ok=True)
        return SecureStack(stack, log)

    return make


# Settings that keep a stack from ever downloading or posting anything: uploads are stored and
# queued, but no queue function runs (used where the input is random and may name any host).
NO_QUEUE_FUNCTIONS = {
    "AzureWebJobs.process_queue.Disabled": "true",
    "AzureWebJobs.notify_queue.Disabled": "true",
}
