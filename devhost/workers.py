"""Host side of the worker processes: start them, dispatch invocations, collect results.

Each worker imports the app and runs functions; the host keeps the I/O. Invocations go to the worker
with the fewest in flight. A worker that dies fails its in-flight invocations and is replaced by
``supervise()``, which the host's main thread calls (so the kernel's parent-death signal, tied to the
thread that started the worker, only fires when the host itself ends).

``functionTimeout`` applies to every invocation, whatever its trigger: past it the invocation fails
with ``FunctionTimeout`` and its worker process is killed (its other invocations fail too) and replaced,
as the real host restarts the language worker of a timed-out out-of-process function
(Azure/azure-functions-host ``FunctionInvocationTimeout`` / ``ScriptHost`` timeout handling; host.json
reference, functionTimeout). ``None`` (host.json ``-1``) is unbounded.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from devhost.discovery import FunctionLoadError, FunctionSpec
from devhost.invocation import InvocationRequest, InvocationResult, ShutdownRequest, WorkerReady
from devhost.worker_process import worker_main

logger = logging.getLogger(__name__)
READY_TIMEOUT_SECONDS = 120.0


class WorkerCrashed(Exception):
    """The worker process running an invocation exited before answering."""


class FunctionTimeout(WorkerCrashed):
    """The invocation ran past functionTimeout; its worker process is killed and replaced."""


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    conn: Connection
    send_lock: threading.Lock = field(default_factory=threading.Lock)
    pending: dict[str, Future[InvocationResult]] = field(default_factory=dict)
    deadlines: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (monotonic deadline, function)
    alive: bool = True


class WorkerPool:
    def __init__(
        self,
        specs: list[FunctionSpec],
        process_count: int,
        thread_count: int | None,
        function_timeout: float | None = None,
    ) -> None:
        self._specs = specs
        self._timeout = function_timeout
        self._process_count = max(1, process_count)
        self._thread_count = thread_count
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        # Invocations submitted while no worker is alive wait here for a replacement.
        self._backlog: list[tuple[InvocationRequest, Future[InvocationResult]]] = []
        # Round robin over the live workers, whatever each has in flight, as the real host's
        # RpcFunctionInvocationDispatcherLoadBalancer does (Interlocked.Increment(counter) % workers).
        self._dispatched = 0
        self._closing = False
        # Functions the workers could not load (name -> error); they stay registered and fail each call.
        self.load_errors: dict[str, str] = {}

    def start(self) -> None:
        """Start every worker and wait until each has loaded the app; raise on a load error."""
        starting = [self._spawn(index) for index in range(self._process_count)]
        try:
            for worker in starting:
                self._await_ready(worker)
        except Exception:
            for worker in starting:
                _kill(worker)
            raise
        with self._lock:
            self._workers = starting
        for worker in starting:
            threading.Thread(target=self._read, args=(worker,), name=f"worker-{worker.index}", daemon=True).start()
        if self._timeout is not None:
            threading.Thread(target=self._watch_timeouts, name="function-timeout", daemon=True).start()

    def submit(self, request: InvocationRequest) -> Future[InvocationResult]:
        future: Future[InvocationResult] = Future()
        self._dispatch(request, future)
        return future

    def _dispatch(self, request: InvocationRequest, future: Future[InvocationResult]) -> None:
        with self._lock:
            if self._closing:
                future.set_exception(WorkerCrashed("the host is shutting down"))
                return
            live = [w for w in self._workers if w.alive]
            if not live:
                self._backlog.append((request, future))
                return
            self._dispatched += 1
            worker = live[self._dispatched % len(live)]
            worker.pending[request.invocation_id] = future
            if self._timeout is not None:
                worker.deadlines[request.invocation_id] = (time.monotonic() + self._timeout, request.function_name)
        try:
            with worker.send_lock:
                worker.conn.send(request)
        except (OSError, ValueError) as exc:
            self._fail(worker, request.invocation_id, WorkerCrashed(f"worker {worker.index} unreachable: {exc}"))

    def in_flight(self) -> int:
        with self._lock:
            return sum(len(w.pending) for w in self._workers)

    def supervise(self) -> None:
        """Replace dead workers; call from the main thread."""
        with self._lock:
            if self._closing:
                return
            dead = [w for w in self._workers if not w.alive]
        for worker in dead:
            logger.error(
                "Worker process %d exited (code %s); starting a new one",
                worker.index,
                worker.process.exitcode,
            )
            replacement = self._spawn(worker.index)
            try:
                self._await_ready(replacement)
            except Exception:
                logger.exception("Replacement worker %d failed to start", worker.index)
                _kill(replacement)
                continue
            with self._lock:
                self._workers = [replacement if w is worker else w for w in self._workers]
            threading.Thread(target=self._read, args=(replacement,), daemon=True).start()
        with self._lock:
            backlog, self._backlog = self._backlog, []
        for request, future in backlog:
            self._dispatch(request, future)

    def close(self, timeout: float) -> None:
        """Ask workers to finish what they run, then make sure none is left."""
        with self._lock:
            self._closing = True
            workers = list(self._workers)
            backlog, self._backlog = self._backlog, []
        for _, future in backlog:
            future.set_exception(WorkerCrashed("the host is shutting down"))
        for worker in workers:
            try:
                with worker.send_lock:
                    worker.conn.send(ShutdownRequest())
            except (OSError, ValueError):
                pass
        for worker in workers:
            worker.process.join(timeout)
            _kill(worker)

    def _spawn(self, index: int) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=worker_main,
            args=(child_end, self._specs, self._thread_count, index),
            name=f"devhost-worker-{index}",
            daemon=True,
        )
        process.start()
        child_end.close()
        return _Worker(index, process, parent_end)

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(READY_TIMEOUT_SECONDS):
            raise FunctionLoadError(f"worker process {worker.index} did not load the app in time")
        try:
            ready = worker.conn.recv()
        except EOFError as exc:
            raise FunctionLoadError(f"worker process {worker.index} exited while loading the app") from exc
        if not isinstance(ready, WorkerReady):
            raise FunctionLoadError(f"worker process {worker.index} sent {type(ready).__name__} before ready")
        self.load_errors = dict(ready.errors)

    def _read(self, worker: _Worker) -> None:
        while True:
            try:
                result = worker.conn.recv()
            except (EOFError, OSError):
                break
            if isinstance(result, InvocationResult):
                with self._lock:
                    worker.deadlines.pop(result.invocation_id, None)
                    future = worker.pending.pop(result.invocation_id, None)
                if future is not None:
                    future.set_result(result)
        worker.process.join(1)
        with self._lock:
            worker.alive = False
            pending = list(worker.pending)
        for invocation_id in pending:
            self._fail(worker, invocation_id, WorkerCrashed(f"worker process {worker.index} exited"))

    def _watch_timeouts(self) -> None:
        interval = min(0.25, (self._timeout or 1.0) / 4)
        while True:
            time.sleep(interval)
            now = time.monotonic()
            with self._lock:
                if self._closing:
                    return
                expired = [
                    (worker, invocation_id, function)
                    for worker in self._workers
                    for invocation_id, (deadline, function) in worker.deadlines.items()
                    if deadline <= now
                ]
            limit = _timespan(self._timeout or 0.0)
            for worker, invocation_id, function in expired:
                logger.error(
                    "Timeout value of %s exceeded by function 'Functions.%s' (Id: '%s'). Restarting worker process %d.",
                    limit,
                    function,
                    invocation_id,
                    worker.index,
                )
                self._fail(worker, invocation_id, FunctionTimeout(f"Timeout value of {limit} was exceeded"))
                if worker.process.is_alive():
                    worker.process.kill()  # the reader sees EOF, fails the rest, supervise() replaces it

    def _fail(self, worker: _Worker, invocation_id: str, error: Exception) -> None:
        with self._lock:
            worker.deadlines.pop(invocation_id, None)
            future = worker.pending.pop(invocation_id, None)
        if future is not None:
            future.set_exception(error)


def _kill(worker: _Worker) -> None:
    worker.alive = False
    if worker.process.is_alive():
        worker.process.terminate()
        worker.process.join(5)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(5)
    worker.conn.close()


def _timespan(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
