"""The imgpipe app running for real: the local host as a process, on real Azurite, Redis and SQLite.

Used by the integration and reliability tests, the demo and the benchmarks. Each ``AppStack`` gets
its own queue names, SQLite file and output folder, so stacks sharing one Azurite and one Redis do
not see each other's work. A stack can also be reused by several tests in turn: ``reset()`` waits
until its hosts are idle, then empties its queues, database, output folder and Redis and marks the
logs, so the next test sees a stack that looks new (``logs()`` returns only lines after the mark).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.core.exceptions import ResourceNotFoundError

from devtools.servers import Azurite, RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
TEST_WEBHOOK_SECRET = "test-webhook-secret-3f9c1e"  # a test value; appears in no real deployment


def load_local_settings() -> dict[str, str]:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    return {key: str(value) for key, value in values.items()}


@dataclass
class HostProcess:
    """One local-host process serving the app."""

    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)

    def start(self, timeout_s: float = 60) -> HostProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app-dir", str(ROOT), "--port", str(self.port), *self.extra_args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.port, timeout_s, self.proc)
        return self

    def terminate(self, timeout_s: float = 60) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the whole process group: the host and its worker processes die at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class AppStack:
    """Settings and host processes for one isolated run of the app."""

    azurite: Azurite
    redis: RedisServer
    workdir: Path
    overrides: Mapping[str, str] = field(default_factory=dict)
    hosts: list[HostProcess] = field(default_factory=list)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    # Byte offsets into each host log where the current test's lines begin (see reset()).
    log_marks: dict[Path, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(load_local_settings())
        env.update(
            {
                "AzureWebJobsStorage": self.azurite.connection_string,
                "REDIS_URL": self.redis.url,
                "IMAGE_QUEUE_NAME": f"img-{self.tag}",
                "NOTIFY_QUEUE_NAME": f"ntf-{self.tag}",
                "SQLITE_PATH": str(self.workdir / "imgpipe.sqlite3"),
                "OUTPUT_DIR": str(self.workdir / "processed"),
                "WEBHOOK_SECRET": TEST_WEBHOOK_SECRET,
                "WEBHOOK_RETRY_BASE_SECONDS": "0.5",
                # A transiently failing image is Failed after seconds, not the production 8 minutes.
                "IMAGE_RETRY_DELAYS_SECONDS": "1,1,1,1",
                "FUNCTIONS_WORKER_PROCESS_COUNT": "2",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.overrides)
        self.env = env

    def bootstrap(self) -> None:
        from devtools.stack import bootstrap

        bootstrap(self.env)

    def start_host(self, extra_args: list[str] | None = None) -> HostProcess:
        host = HostProcess(env=self.env, log_path=self.workdir / f"host-{len(self.hosts)}.log",
                           extra_args=extra_args or [])
        self.hosts.append(host.start())
        return host

    def stop(self) -> None:
        for host in self.hosts:
            host.terminate()

    @property
    def base_url(self) -> str:
        return self.hosts[0].base_url

    def logs(self) -> str:
        """What the hosts logged since the last reset() (everything, for a stack never reset)."""
        parts = []
        for path in sorted(self.workdir.glob("host-*.log")):
            with open(path, "rb") as log:
                log.seek(self.log_marks.get(path, 0))
                parts.append(log.read().decode(errors="replace"))
        return "".join(parts)

    def mark_logs(self) -> None:
        self.log_marks = {path: path.stat().st_size for path in self.workdir.glob("host-*.log")}

    # --- reuse by several tests ----------------------------------------------------------------

    def queue_names(self) -> list[str]:
        """Every queue of this stack (each ``*_QUEUE_NAME`` setting) and its poison queue."""
        names = sorted({value for key, value in self.env.items() if key.endswith("_QUEUE_NAME") and value})
        return [queue for name in names for queue in (name, f"{name}-poison")]

    def idle(self) -> bool:
        """All hosts alive, every invocation they started finished, and no message left in a queue."""
        from shared.queues import queue_client

        if not self.hosts or not all(host.alive for host in self.hosts):
            return False
        logs = "".join(host.log_path.read_text(errors="replace") for host in self.hosts)
        if logs.count("Executing 'Functions.") != logs.count("Executed 'Functions."):
            return False
        for name in self.queue_names():
            if name.endswith("-poison"):
                continue
            with queue_client(self.env["AzureWebJobsStorage"], name) as client:
                if client.get_queue_properties().approximate_message_count:
                    return False
        return True

    def reset(self, idle_timeout_s: float = 30) -> bool:
        """Make the stack look new to the next test; False when it cannot be (a host died, work still runs).

        Waits for the hosts to go idle first, so no invocation of the last test writes into the next
        one's state. Then: queues (poison ones too) cleared, every table but the schema version
        emptied, the output folder emptied, Redis flushed, and the logs marked.
        """
        deadline = time.monotonic() + idle_timeout_s
        while not self.idle():
            if time.monotonic() > deadline or not all(host.alive for host in self.hosts):
                return False
            time.sleep(0.1)
        self._clear_queues()
        self._clear_database()
        output = Path(self.env["OUTPUT_DIR"])
        if output.is_dir():
            for child in output.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        import redis

        client = redis.Redis.from_url(self.env["REDIS_URL"])
        try:
            client.flushdb()
        finally:
            client.close()
        self.mark_logs()
        return True

    def _clear_queues(self) -> None:
        from shared.queues import queue_client

        for name in self.queue_names():
            with queue_client(self.env["AzureWebJobsStorage"], name) as client, suppress(ResourceNotFoundError):
                client.clear_messages()

    def _clear_database(self) -> None:
        path = self.env.get("SQLITE_PATH")
        if not path or not Path(path).exists():
            return
        db = sqlite3.connect(path, timeout=30)
        try:
            tables = [row[0] for row in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            with db:
                for table in tables:
                    if table != "schema_version":
                        db.execute(f'DELETE FROM "{table}"')  # names from sqlite_master
        finally:
            db.close()

    # --- client side -------------------------------------------------------------------------

    def upload(self, csv_text: str | bytes, webhook_url: str | None = None, **kwargs: Any) -> requests.Response:
        data = csv_text.encode() if isinstance(csv_text, str) else csv_text
        form = {"webhook_url": webhook_url} if webhook_url else {}
        return requests.post(
            f"{self.base_url}/upload", files={"file": ("products.csv", data, "text/csv")}, data=form,
            timeout=120, **kwargs,
        )

    def status(self, request_id: str, **params: str) -> requests.Response:
        return requests.get(f"{self.base_url}/status/{request_id}", params=params, timeout=30)

    def wait_for_status(self, request_id: str, wanted: str = "Completed", timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        document: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.status(request_id)
            if response.status_code == 200:
                document = response.json()
                if document["status"] == wanted:
                    return document
            time.sleep(0.2)
        raise TimeoutError(f"request {request_id} not {wanted} within {timeout_s}s; last: {document}")
