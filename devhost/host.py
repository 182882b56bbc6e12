"""The host: load settings and functions, start workers, triggers and the HTTP server, shut down cleanly.

Shutdown on SIGINT/SIGTERM: stop polling and accepting, let in-flight invocations finish within the
grace period, then stop the workers. A message whose invocation did not finish is never deleted: its
lease runs out and it is delivered again.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from devhost.discovery import (
    HTTP_TRIGGER,
    QUEUE_TRIGGER,
    TIMER_TRIGGER,
    FunctionLoadError,
    FunctionSpec,
    discover,
    function_in_error,
)
from devhost.http_server import HttpFrontend, HttpOptions, HttpServer
from devhost.indexing import registrable
from devhost.queue_io import QueueClients
from devhost.queue_listener import QueueListener
from devhost.queue_options import QueueOptions
from devhost.routing import Router
from devhost.schedule_monitor import BlobScheduleMonitor
from devhost.settings import (
    SettingsError,
    load_host_json,
    load_local_settings,
    local_http_port,
    lookup,
    parse_int,
    parse_timespan,
    section,
    threadpool_thread_count,
    worker_process_count,
)
from devhost.timer_listener import TimerListener
from devhost.workers import WorkerPool

logger = logging.getLogger(__name__)
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0


@dataclass(frozen=True)
class HostOptions:
    app_dir: Path
    port: int | None = None
    enforce_keys: bool = False
    function_key: str | None = None
    workers: int | None = None
    shutdown_grace: float = 30.0


class Host:
    def __init__(self, options: HostOptions) -> None:
        self._options = options
        self._stop = threading.Event()
        self._signals = 0

    def run(self) -> int:
        started = time.monotonic()
        app_dir = self._options.app_dir.resolve()
        local_settings = load_local_settings(app_dir, os.environ)
        host_json = load_host_json(app_dir, os.environ)
        specs = discover(app_dir, os.environ)
        queue_options = QueueOptions.from_host_json(host_json, os.environ)
        clients = QueueClients(os.environ)
        specs = registrable(specs, host_json, clients, _route_prefix(host_json))
        router = Router([s for s in specs if s.trigger.type == HTTP_TRIGGER], _route_prefix(host_json))
        http_options = HttpOptions(
            port=self._options.port if self._options.port is not None else local_http_port(local_settings),
            enforce_keys=self._options.enforce_keys,
            function_key=self._options.function_key,
            function_timeout=_function_timeout(host_json),
            queue_encoding=queue_options.message_encoding,
            max_concurrent_requests=_http_limit(host_json, "maxConcurrentRequests"),
            max_outstanding_requests=_http_limit(host_json, "maxOutstandingRequests"),
        )
        if http_options.enforce_keys and not http_options.function_key:
            raise SystemExit("--enforce-keys needs a key: set DEVHOST_FUNCTION_KEY")
        process_count = self._options.workers or worker_process_count(os.environ)
        thread_count = threadpool_thread_count(os.environ)
        pool = WorkerPool(specs, process_count, thread_count, http_options.function_timeout)
        pool.start()
        for name, error in sorted(pool.load_errors.items()):
            function_in_error(name, error)
        completions = ThreadPoolExecutor(max_workers=16, thread_name_prefix="settle")
        server = HttpServer(HttpFrontend(router, pool, clients, http_options), http_options)
        listeners = [
            QueueListener(spec, queue_options, clients, pool, completions)
            for spec in specs
            if spec.trigger.type == QUEUE_TRIGGER
        ]
        timers = _timer_listeners(specs, pool, clients, queue_options, app_dir)
        self._install_signal_handlers()
        server.start()
        for listener in listeners:
            listener.start()
        _announce(specs, router, listeners, server.port, queue_options, process_count)
        for timer in timers:
            timer.start()
        logger.info("Host started (%dms)", round((time.monotonic() - started) * 1000))
        while not self._stop.wait(0.5):
            pool.supervise()
        self._shutdown(server, listeners, timers, pool, completions)
        clients.close()
        return 0

    def _install_signal_handlers(self) -> None:
        def handle(signum: int, frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                logger.warning("Second signal: exiting now")
                os._exit(130)
            logger.info("Received %s: shutting down", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)

    def _shutdown(
        self,
        server: HttpServer,
        listeners: list[QueueListener],
        timers: list[TimerListener],
        pool: WorkerPool,
        completions: ThreadPoolExecutor,
    ) -> None:
        deadline = time.monotonic() + self._options.shutdown_grace
        for listener in listeners:
            listener.stop_polling()
        for timer in timers:
            timer.stop()
        server.stop_accepting()
        idle = server.frontend.wait_idle(deadline)
        idle = all([listener.wait_idle(deadline) for listener in listeners]) and idle
        idle = all([timer.wait_idle(deadline) for timer in timers]) and idle
        if not idle:
            logger.warning(
                "Grace period of %.0fs ended with invocations still running; their messages will be delivered again",
                self._options.shutdown_grace,
            )
        for listener in listeners:
            listener.close()
        pool.close(timeout=1.0 if not idle else 5.0)
        completions.shutdown(wait=idle)
        logger.info("Host stopped")


def _timer_listeners(
    specs: list[FunctionSpec],
    pool: WorkerPool,
    clients: QueueClients,
    queue_options: QueueOptions,
    app_dir: Path,
) -> list[TimerListener]:
    monitors: list[BlobScheduleMonitor] = []

    def monitor() -> BlobScheduleMonitor:
        if not monitors:  # one client for all timers, made only when a timer is monitored
            monitors.append(BlobScheduleMonitor(os.environ, app_dir))
        return monitors[0]

    timers = []
    for spec in specs:
        if spec.trigger.type != TIMER_TRIGGER:
            continue
        try:
            timers.append(
                TimerListener(spec, pool, clients, queue_options.message_encoding, monitor)
            )
        except (SettingsError, ValueError) as exc:
            raise FunctionLoadError(f"function '{spec.name}', binding '{spec.trigger.name}': {exc}") from exc
    return timers


def _http_limit(host_json: dict[str, object], key: str) -> int | None:
    raw = lookup(section(host_json, "extensions", "http"), key)
    value = -1 if raw is None else parse_int(raw, f"extensions.http.{key}")
    return None if value <= 0 else value


def _route_prefix(host_json: dict[str, object]) -> str:
    return str(lookup(section(host_json, "extensions", "http"), "routePrefix", "api"))


def _function_timeout(host_json: dict[str, object]) -> float | None:
    """host.json functionTimeout in seconds; "-1" is unbounded (None), as the real host reads it."""
    raw = lookup(host_json, "functionTimeout")
    if raw is None:
        return DEFAULT_FUNCTION_TIMEOUT
    if str(raw).strip() in ("-1", "-1.0"):
        return None
    return parse_timespan(raw, "functionTimeout")


def _announce(
    specs: list[FunctionSpec],
    router: Router,
    listeners: list[QueueListener],
    port: int,
    queue_options: QueueOptions,
    process_count: int,
) -> None:
    lines = ["Functions:", ""]
    for route in sorted(router.routes, key=lambda r: r.spec.name):
        methods = ",".join(sorted(route.methods)) if route.methods else "ALL"
        lines.append(f"        {route.spec.name}: [{methods}] http://localhost:{port}/{route.template}")
    for listener in listeners:
        lines.append(f"        {listener.spec.name}: queueTrigger (queue: {listener.queue_name})")
    logger.info("%s", "\n".join(lines))
    logger.info(
        "Listening on http://127.0.0.1:%d with %d worker process(es); queues: batchSize=%d, "
        "newBatchThreshold=%d, maxPollingInterval=%.1fs, messageEncoding=%s",
        port,
        process_count,
        queue_options.batch_size,
        queue_options.new_batch_threshold,
        queue_options.max_polling_interval,
        queue_options.message_encoding,
    )
