"""Health of what the app depends on: database, Redis, queues, output storage.

Probes may come often (a load balancer, an availability test, a person), so each check is bounded
in time, all run in parallel, and one result is shared for a few seconds by every caller: the
dependencies see at most one round of checks per process per ``cache_s``, however many probes.
A check passes by returning and fails by raising; its reason is an ``ImgpipeError``'s message
(these name settings and resources, never their secrets) or only the exception's type.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING

from shared.errors import ImgpipeError

if TYPE_CHECKING:
    from shared.container import Dependencies
    from shared.ports import MessageQueue

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0
CACHE_S = 5.0

HealthCheck = Callable[[], None]


class CheckStatus(StrEnum):
    """The outcome of one check."""

    OK = "ok"  # the dependency answered as expected
    FAILED = "failed"  # it answered with an error, or is missing
    TIMEOUT = "timeout"  # it did not answer within the time bound


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    reason: str | None
    duration_ms: int

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status.value, "reason": self.reason, "duration_ms": self.duration_ms}


@dataclass(frozen=True)
class HealthReport:
    checks: tuple[CheckResult, ...]

    @property
    def healthy(self) -> bool:
        return all(check.status is CheckStatus.OK for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "healthy" if self.healthy else "unhealthy",
            "checks": {check.name: check.as_dict() for check in self.checks},
        }


def failed_report(name: str, exc: BaseException) -> HealthReport:
    """The report when the checks themselves cannot be built (e.g. the settings are refused)."""
    return HealthReport((CheckResult(name, CheckStatus.FAILED, _reason(exc), 0),))


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ImgpipeError) and str(exc) else type(exc).__name__


class HealthMonitor:
    """Runs named checks in parallel, each bounded by ``timeout_s``; caches the report ``cache_s``."""

    def __init__(
        self,
        checks: Mapping[str, HealthCheck],
        *,
        timeout_s: float = CHECK_TIMEOUT_S,
        cache_s: float = CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._clock = clock
        # One thread a check, and a few spare for checks still hung from an earlier round.
        self._executor = ThreadPoolExecutor(2 * len(self._checks) or 1, thread_name_prefix="health")
        self._lock = threading.Lock()
        self._cached: tuple[float, HealthReport] | None = None

    def report(self) -> HealthReport:
        with self._lock:  # concurrent probes wait for one round instead of starting their own
            now = self._clock()
            if self._cached is not None and now - self._cached[0] < self._cache_s:
                return self._cached[1]
            report = self._run()
            self._cached = (self._clock(), report)
            return report

    def _run(self) -> HealthReport:
        started = time.perf_counter()
        futures = {name: self._executor.submit(self._timed, check) for name, check in self._checks.items()}
        deadline = started + self._timeout_s
        results = []
        for name, future in futures.items():
            try:
                error, duration_ms = future.result(timeout=max(0.0, deadline - time.perf_counter()))
            except FutureTimeout:
                future.cancel()
                elapsed = round((time.perf_counter() - started) * 1000)
                reason = f"no answer within {self._timeout_s:g} s"
                results.append(CheckResult(name, CheckStatus.TIMEOUT, reason, elapsed))
                continue
            if error is None:
                results.append(CheckResult(name, CheckStatus.OK, None, duration_ms))
            else:
                results.append(CheckResult(name, CheckStatus.FAILED, _reason(error), duration_ms))
        report = HealthReport(tuple(results))
        if not report.healthy:
            logger.warning("health: %s", {r.name: r.reason for r in results if r.status is not CheckStatus.OK})
        return report

    @staticmethod
    def _timed(check: HealthCheck) -> tuple[BaseException | None, int]:
        started = time.perf_counter()
        try:
            check()
        except Exception as exc:  # every failure is a result, reported with its reason
            logger.debug("health check failed", exc_info=True)
            return exc, round((time.perf_counter() - started) * 1000)
        return None, round((time.perf_counter() - started) * 1000)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


# A request id no request has: reading it exercises the connection, the login and the schema.
PROBE_REQUEST_ID = "00000000-0000-4000-8000-000000000000"


def dependency_checks(deps: Dependencies) -> dict[str, HealthCheck]:
    """The checks of GET /api/health, named as the answer names them."""

    def database() -> None:
        deps.store.get_request(PROBE_REQUEST_ID)

    checks: dict[str, HealthCheck] = {"database": database, "redis": deps.completion.ping}
    for queue in _queues(deps):
        checks[f"queue:{queue.name}"] = queue.check
    checks["output_storage"] = deps.output.check
    return checks


def _queues(deps: Dependencies) -> list[MessageQueue]:
    """Every queue the container holds (a queue added to it later is checked without a change here)."""
    values = (getattr(deps, field.name) for field in fields(deps))
    return [value for value in values if all(hasattr(value, a) for a in ("name", "send", "check"))]
