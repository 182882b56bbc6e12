"""Fixtures for the local host's tests: run `python -m devhost` as a real subprocess."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from devtools.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
BROKEN = Path(__file__).resolve().parent / "broken"
BASIC_APP = APPS / "basic"
START_TIMEOUT = 60.0


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@dataclass
class HostProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    port: int

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, text: str, timeout: float = START_TIMEOUT) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.output():
                raise AssertionError(f"host exited with {self.proc.returncode}:\n{self.output()}")
            return text in self.output()

        wait_until(seen, timeout)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)


def run_host(tmp_path: Path, app_dir: Path, env: dict[str, str], args: list[str] | None = None) -> HostProcess:
    port = free_port()
    log_path = tmp_path / f"host-{port}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full_env["PYTHONPATH"] = str(ROOT)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", str(port), *(args or [])],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return HostProcess(proc, log_path, port)


@dataclass
class Hosts:
    tmp_path: Path
    base_env: dict[str, str]
    started: list[HostProcess] = field(default_factory=list)

    def start(
        self,
        app_dir: Path = BASIC_APP,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        wait: bool = True,
    ) -> HostProcess:
        host = run_host(self.tmp_path, app_dir, {**self.base_env, **(env or {})}, args or ["--workers", "1"])
        self.started.append(host)
        if wait:
            host.wait_for("Host started")
        return host

    def stop_all(self) -> None:
        for host in self.started:
            if host.proc.poll() is None:
                host.proc.send_signal(signal.SIGKILL)
                host.proc.wait(timeout=30)


@dataclass
class QueueKit:
    """Unique queue names for one test and helpers to read and write them."""

    connection_string: str
    work: str
    out: str

    def client(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name)

    def create(self, name: str) -> QueueClient:
        client = self.client(name)
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def send(self, name: str, body: str | dict[str, object], encode: bool = True) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        wire = base64.b64encode(text.encode()).decode() if encode else text
        return str(self.create(name).send_message(wire).id)

    def peek_texts(self, name: str) -> list[str]:
        try:
            return [str(m.content) for m in self.client(name).peek_messages(max_messages=32)]
        except ResourceNotFoundError:
            return []

    def count(self, name: str) -> int:
        try:
            return int(self.client(name).get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0


def decoded(texts: list[str]) -> list[str]:
    return sorted(base64.b64decode(t).decode() for t in texts)


def records(record_dir: Path, name: str = "work") -> list[dict[str, object]]:
    path = record_dir / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture()
def record_dir(tmp_path: Path) -> Path:
    path = tmp_path / "records"
    path.mkdir()
    return path


@pytest.fixture()
def queues(azurite: object) -> QueueKit:
    suffix = uuid.uuid4().hex[:10]
    return QueueKit(azurite.connection_string, f"work-{suffix}", f"out-{suffix}")  # type: ignore[attr-defined]


@pytest.fixture()
def hosts(tmp_path: Path, azurite: object, queues: QueueKit, record_dir: Path) -> Iterator[Hosts]:
    env = {
        "AzureWebJobsStorage": azurite.connection_string,  # type: ignore[attr-defined]
        "WORK_QUEUE": queues.work,
        "OUT_QUEUE": queues.out,
        "RECORD_DIR": str(record_dir),
        "PYTHON_THREADPOOL_THREAD_COUNT": "8",
    }
    kit = Hosts(tmp_path, env)
    yield kit
    kit.stop_all()


_LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z\] (.*)$")


def log_lines(host: HostProcess) -> list[tuple[datetime, str]]:
    """The host's own log lines with their UTC timestamps (worker and traceback lines skipped)."""
    lines = []
    for raw in host.output().splitlines():
        match = _LOG_LINE.match(raw)
        if match:
            lines.append((datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC), match.group(2)))
    return lines
