"""What the end-to-end benchmarks share: the real stack, an image source, jobs, /proc sampling.

``BenchStack`` starts a fresh Azurite and Redis (so no other run's messages slow Azurite down), a
photo server process serving one photo-set directory from memory, a webhook receiver, and the app
through the local host (``devtools.apphost.AppStack``). ``run_job`` posts a CSV and times
the request from POST to the 202 and to the signed webhook; ``image_rows`` reads the pipeline's
own per-image timings from the SQLite database. ``ProcessSampler`` sums RSS and CPU time over a
process tree from /proc (Linux only, no dependency).
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import PIL
from PIL import features

from devtools import http_servers
from devtools.apphost import TEST_WEBHOOK_SECRET, AppStack
from devtools.servers import Azurite, RedisServer
from devtools.webhook_receiver import WebhookReceiver, running_receiver

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = REPO_ROOT / ".data" / "bench" / "runs"
OUT_DIR = REPO_ROOT / "bench" / "out"
PHOTOS_ROOT = REPO_ROOT / ".data" / "bench"
URLS_PER_PRODUCT = 4
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EXECUTED = re.compile(r"Executed 'Functions\.(\w+)' \((\w+), Id=[^,]+, Duration=(\d+)ms\)")


def _quiet_handle_error(self: object, request: object, client_address: object) -> None:
    """The app's session closing an idle keep-alive connection to the receiver is normal here."""


# Without this, every idle connection the app's webhook session drops prints a traceback and buries
# the figures; the test suite keeps the default (it wants to see surprises).
http_servers._Server.handle_error = _quiet_handle_error  # type: ignore[method-assign]


def environment() -> dict[str, Any]:
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def photos_dir(megapixels: float, quality: int = 90) -> Path:
    return PHOTOS_ROOT / f"photos_{megapixels:g}mp_q{quality}"


def products_csv(urls: Sequence[str], per_product: int = URLS_PER_PRODUCT) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["S. No.", "Product Name", "Input Image Urls"])
    for serial, start in enumerate(range(0, len(urls), per_product), 1):
        writer.writerow([serial, f"SKU-{serial:05d}", ",".join(urls[start : start + per_product])])
    return out.getvalue().encode()


# --- /proc ---------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (its threads included)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(b")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in argv if a)
    if "azurite" in text:
        return "azurite"
    if "redis-server" in text:
        return "redis"
    if "bench.photo_server" in text:
        return "photo server"
    if "multiprocessing" in text:
        return "host worker"
    if "-m devhost" in text:
        return "host"
    return "other"


@dataclass
class ProcessSampler:
    """Samples the summed RSS of a process tree every ``interval_s`` in a thread; keeps the peak."""

    root: int
    interval_s: float = 0.05
    peak_bytes: int = 0
    peak_processes: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        pids = process_tree(self.root)
        total = sum(rss_bytes(pid) for pid in pids)
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, len(pids)

    def __enter__(self) -> ProcessSampler:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()


def cpu_by_role(pids: Mapping[str, Sequence[int]]) -> dict[str, float]:
    return {role: round(sum(cpu_seconds(pid) for pid in group), 3) for role, group in pids.items()}


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class PhotoServer:
    proc: subprocess.Popen[bytes]
    base_url: str

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"


@contextmanager
def photo_server(directory: Path, workdir: Path) -> Iterator[PhotoServer]:
    port_file = workdir / "photo_server.port"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.photo_server", str(directory), "--port-file", str(port_file)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the photo server did not start")
            time.sleep(0.05)
        yield PhotoServer(proc, f"http://127.0.0.1:{port_file.read_text().strip()}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class JobResult:
    request_id: str
    images: int
    accept_s: float  # POST to the 202
    total_s: float  # POST to the webhook's arrival
    load_1m: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.total_s


@dataclass
class BenchStack:
    app: AppStack
    photos: PhotoServer
    webhook: WebhookReceiver
    azurite: Azurite
    redis: RedisServer

    @property
    def host_pid(self) -> int:
        proc = self.app.hosts[0].proc
        assert proc is not None
        return proc.pid

    def roles(self) -> dict[str, list[int]]:
        """The processes doing the work, by role (for CPU accounting)."""
        host_tree = process_tree(self.host_pid)
        roles: dict[str, list[int]] = {"host": [self.host_pid], "host workers": host_tree[1:]}
        for name, proc in (
            ("azurite", self.azurite.proc),
            ("redis", self.redis.proc),
            ("photo server", self.photos.proc),
        ):
            roles[name] = process_tree(proc.pid) if proc is not None else []
        roles["benchmark driver"] = [os.getpid()]
        return roles

    def urls(self, names: Sequence[str]) -> list[str]:
        return [self.photos.url(name) for name in names]

    def run_job(self, urls: Sequence[str], timeout_s: float = 900) -> JobResult:
        body = products_csv(urls)
        self.webhook.accepted.clear()
        load = load_average()
        started = time.perf_counter()
        response = self.app.upload(body, webhook_url=self.webhook.url)
        accepted = time.perf_counter()
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
        request_id = response.json()["request_id"]
        while True:
            with self.webhook._lock:
                payload = self.webhook.accepted.get(_delivery_key(self.webhook, request_id))
            if payload is not None:
                break
            if time.perf_counter() - started > timeout_s:
                raise TimeoutError(f"request {request_id}: no webhook after {timeout_s}s")
            time.sleep(0.01)
        finished = time.perf_counter()
        if payload.get("status") != "Completed":
            raise RuntimeError(f"request {request_id} ended {payload.get('status')}")
        return JobResult(request_id, len(urls), accepted - started, finished - started, load)

    def run_accept_only(self, urls: Sequence[str], body: bytes | None = None) -> dict[str, Any]:
        """POST a CSV and time it to the 202 (for stacks whose processing is disabled)."""
        body = body if body is not None else products_csv(urls)
        started = time.perf_counter()
        response = self.app.upload(body, webhook_url=self.webhook.url)
        seconds = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"upload answered {response.status_code}: {response.text[:500]}")
        return {
            "request_id": response.json()["request_id"],
            "accept_s": round(seconds, 3),
            "images": response.json()["images"],
        }

    def image_rows(self, request_id: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.app.env["SQLITE_PATH"]) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT seq, status, attempts, bytes_in, bytes_out, width, height, enqueued_at, started_at,"
                " finished_at, download_ms, process_ms, store_ms FROM images WHERE request_id = ? ORDER BY seq",
                (request_id,),
            ).fetchall()
        return [dict(row) for row in rows]

    def host_log_durations(self, function: str = "process_queue") -> list[int]:
        return [int(m.group(3)) for m in EXECUTED.finditer(self.app.logs()) if m.group(1) == function]


def _delivery_key(webhook: WebhookReceiver, request_id: str) -> str:
    """The receiver keys payloads by delivery id; find the one for this request."""
    for key, payload in webhook.accepted.items():
        if payload.get("request_id") == request_id:
            return key
    return ""


@contextmanager
def bench_stack(
    name: str, photo_directory: Path, overrides: Mapping[str, str] | None = None, host_args: list[str] | None = None
) -> Iterator[BenchStack]:
    """A fresh Azurite, Redis, photo server, webhook receiver and host for one configuration."""
    workdir = RUNS_DIR / f"{name}-{datetime.now(UTC).strftime('%H%M%S')}-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        # A pipeline run leaves ~0.2 GB of outputs and Azurite data: keep it only when asked.
        if not os.environ.get("BENCH_KEEP_RUNS"):
            stack.callback(shutil.rmtree, workdir, True)
        azurite = Azurite(location=workdir / "azurite").start()
        stack.callback(azurite.stop)
        redis = RedisServer(directory=workdir / "redis").start()
        stack.callback(redis.stop)
        photos = stack.enter_context(photo_server(photo_directory, workdir))
        webhook = stack.enter_context(running_receiver(TEST_WEBHOOK_SECRET))
        app = AppStack(
            azurite, redis, workdir / "app", overrides={"WEBHOOK_RETRY_BASE_SECONDS": "0.2", **(overrides or {})}
        )
        app.bootstrap()
        app.start_host(host_args)
        stack.callback(app.stop)
        yield BenchStack(app, photos, webhook, azurite, redis)


def warm_up(stack: BenchStack, names: Sequence[str], count: int = 16) -> None:
    """One small job first: worker imports, lazy clients and connections are not timed after it."""
    stack.run_job(stack.urls(list(names[:count])), timeout_s=120)


def summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "max": round(ordered[-1], 3),
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
