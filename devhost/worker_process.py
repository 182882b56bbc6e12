"""The worker process: imports the app and runs invocations the host sends over a pipe.

Sync functions run in a thread pool (``PYTHON_THREADPOOL_THREAD_COUNT``), async functions on one event
loop. The process exits at once when the host's end of the pipe closes (host killed), and asks the
kernel to kill it with its parent, so a SIGKILLed host leaves no orphans.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from devhost.discovery import FunctionSpec
from devhost.invocation import InvocationRequest, InvocationResult, ShutdownRequest, WorkerReady
from devhost.loader import LoadedFunction, LoadFailure, build_arguments, collect_result, failure, load

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def worker_main(conn: Connection, specs: list[FunctionSpec], thread_count: int | None, index: int) -> None:
    _die_with_parent()
    # Ctrl-C reaches the whole process group; only the host decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"[%(asctime)s] [worker {index}] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    loaded: dict[str, LoadedFunction] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        try:
            loaded[spec.name] = load(spec)
        except LoadFailure as exc:
            errors[spec.name] = str(exc)
    conn.send(WorkerReady(errors))
    _Worker(conn, loaded, thread_count, errors).serve()


class _Worker:
    def __init__(
        self,
        conn: Connection,
        functions: dict[str, LoadedFunction],
        thread_count: int | None,
        load_errors: dict[str, str],
    ) -> None:
        self._conn = conn
        self._functions = functions
        self._load_errors = load_errors
        self._send_lock = threading.Lock()
        self._threads = ThreadPoolExecutor(max_workers=thread_count, thread_name_prefix="function")
        self._loop = asyncio.new_event_loop()
        self._in_flight = 0
        self._idle = threading.Condition()
        threading.Thread(target=self._loop.run_forever, name="function-loop", daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the host is gone: nothing we finish now could be acknowledged
            if isinstance(message, ShutdownRequest):
                with self._idle:
                    self._idle.wait_for(lambda: self._in_flight == 0)
                return
            if isinstance(message, InvocationRequest):
                self._start(message)

    def _start(self, request: InvocationRequest) -> None:
        with self._idle:
            self._in_flight += 1
        function = self._functions.get(request.function_name)
        if function is None:
            error = self._load_errors.get(request.function_name, f"unknown function {request.function_name}")
            self._finish(failure(request, LoadFailure(error)))
        elif function.is_async:
            future = asyncio.run_coroutine_threadsafe(self._run_async(function, request), self._loop)
            future.add_done_callback(lambda done: self._finish(done.result()))
        else:
            self._threads.submit(self._run_sync, function, request)

    def _run_sync(self, function: LoadedFunction, request: InvocationRequest) -> None:
        try:
            arguments, outs = build_arguments(function, request)
            returned = function.entry(**arguments)
            result = collect_result(function, request, returned, outs)
        except BaseException as exc:
            result = failure(request, exc)
        self._finish(result)

    async def _run_async(self, function: LoadedFunction, request: InvocationRequest) -> InvocationResult:
        try:
            arguments, outs = build_arguments(function, request)
            returned: Any = await function.entry(**arguments)
            return collect_result(function, request, returned, outs)
        except BaseException as exc:
            return failure(request, exc)

    def _finish(self, result: InvocationResult) -> None:
        try:
            with self._send_lock:
                self._conn.send(result)
        except (OSError, ValueError):
            os._exit(0)
        except Exception as exc:  # an unpicklable value: report it as the invocation's failure
            with self._send_lock:
                self._conn.send(InvocationResult(result.invocation_id, False, error=f"result not sendable: {exc!r}"))
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        logger.debug("prctl(PR_SET_PDEATHSIG) unavailable; relying on the pipe closing")
    if os.getppid() == 1:  # the host died before prctl took effect
        os._exit(0)
