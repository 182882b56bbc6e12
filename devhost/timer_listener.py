"""The timer trigger for one function, with the semantics of the real host's ``TimerListener``.

(Azure/azure-webjobs-sdk-extensions ``Extensions/Timers/Listener/TimerListener.cs``.) On start, with
schedule monitoring on, a missed occurrence since the last recorded status runs at once with
``IsPastDue``; otherwise ``runOnStartup`` runs the function at once; then it fires at each occurrence
of the schedule. One invocation at a time: the next occurrence is computed after an invocation ends
(from the occurrence it ran for, so a slightly early wake-up cannot fire twice), and recorded by the
monitor. A failed invocation does not stop the schedule. The function gets a ``func.TimerRequest``
whose ``past_due`` is True only for that catch-up run and whose ``schedule_status`` is the status
(or empty when monitoring is off).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime

from devhost.discovery import FunctionSpec
from devhost.invocation import InvocationRequest, TimerData
from devhost.logs import InvocationLog
from devhost.ncrontab import TimerSchedule, occurs_more_than_once_a_minute, parse_schedule
from devhost.queue_io import QueueClients
from devhost.schedule_monitor import BlobScheduleMonitor, ScheduleStatus, check_past_due
from devhost.settings import is_true
from devhost.workers import WorkerCrashed, WorkerPool

logger = logging.getLogger(__name__)
_OCCURRENCES_SHOWN = 5
_MAX_WAIT_SECONDS = 24 * 3600.0


def timer_name(spec: FunctionSpec) -> str:
    """The name the real host files a script function's timer status under."""
    return f"Host.Functions.{spec.name}"


class TimerListener:
    def __init__(
        self,
        spec: FunctionSpec,
        pool: WorkerPool,
        clients: QueueClients,
        queue_encoding: str,
        monitor_factory: Callable[[], BlobScheduleMonitor],
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.spec = spec
        self.schedule: TimerSchedule = parse_schedule(str(spec.trigger.get("schedule") or ""))
        self._pool = pool
        self._clients = clients
        self._encoding = queue_encoding
        self._now = now
        self.run_on_startup = _flag(spec.trigger.get("runOnStartup"), default=False)
        use_monitor = _flag(spec.trigger.get("useMonitor"), default=True)
        # As TimerSchedule.Create: a schedule firing more than once a minute is never monitored.
        self.use_monitor = use_monitor and not occurs_more_than_once_a_minute(self.schedule, now())
        self._monitor = monitor_factory() if self.use_monitor else None
        self._stopping = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)
        self._status = ScheduleStatus(next=datetime.max)
        self._startup: tuple[bool, bool] | None = None  # (past due, run on startup)

    def start(self) -> None:
        now = self._now()
        name = timer_name(self.spec)
        past_due = False
        recorded: ScheduleStatus | None = None
        if self._monitor is not None:
            recorded = self._monitor.get(name)
            overdue, recorded = check_past_due(self._monitor, name, now, self.schedule, recorded)
            past_due = overdue.total_seconds() > 0
        self._status = recorded or ScheduleStatus(next=_next(self.schedule, now))
        upcoming, moment = [], now
        for _ in range(_OCCURRENCES_SHOWN):
            found = self.schedule.next_after(moment)
            if found is None:
                break
            upcoming.append(found.isoformat(sep=" "))
            moment = found
        logger.info(
            "The next %d occurrences of the '%s' schedule (%s) will be:\n%s",
            len(upcoming),
            self.spec.name,
            self.schedule,
            "\n".join(upcoming),
        )
        if past_due:
            self._startup = (True, False)
        elif self.run_on_startup:
            self._startup = (False, True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def wait_idle(self, deadline: float) -> bool:
        return self._idle.wait(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        if self._startup is not None:
            past_due, on_startup = self._startup
            if past_due:
                logger.info("Function '%s' is past due on startup. Executing now.", self.spec.name)
            else:
                logger.info("Function '%s' is configured to run on startup. Executing now.", self.spec.name)
            self._invoke(self._now(), past_due=past_due, run_on_startup=on_startup)
        while not self._stopping.is_set():
            delay = (self._status.next - self._now()).total_seconds()
            # Long waits are taken in steps (the real listener's timer is capped at 24 days the same way).
            if self._stopping.wait(min(max(0.0, delay), _MAX_WAIT_SECONDS)):
                break
            if delay <= _MAX_WAIT_SECONDS:
                self._invoke(self._now())

    def _invoke(self, fired_at: datetime, past_due: bool = False, run_on_startup: bool = False) -> None:
        if self._stopping.is_set():
            return
        self._idle.clear()
        try:
            status = self._status.to_json() if self._monitor is not None else {}
            invocation_id = str(uuid.uuid4())
            log = InvocationLog(self.spec.name, invocation_id, f"Timer fired at {fired_at.astimezone().isoformat()}")
            data = TimerData(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
            future = self._pool.submit(InvocationRequest(invocation_id, self.spec.name, data))
            try:
                result = future.result()  # the pool enforces functionTimeout
                succeeded, error = result.succeeded, result.error
                if succeeded:
                    try:
                        self._clients.write_outputs(self.spec.outputs, result.queue_outputs, self._encoding)
                    except Exception:
                        succeeded, error = False, "writing an output binding failed:\n" + traceback.format_exc()
            except WorkerCrashed as exc:
                succeeded, error = False, str(exc)
            log.finished(succeeded, error)
            adjusted = fired_at
            if not past_due and not run_on_startup and self._status.next > fired_at:
                adjusted = self._status.next
            self._status = ScheduleStatus(next=_next(self.schedule, adjusted), last=adjusted, last_updated=adjusted)
            if self._monitor is not None:
                self._monitor.update(timer_name(self.spec), self._status)
        finally:
            self._idle.set()


def _next(schedule: TimerSchedule, moment: datetime) -> datetime:
    found = schedule.next_after(moment)
    return found if found is not None else datetime.max


def _flag(value: object, default: bool) -> bool:
    if value is None:
        return default
    return value if isinstance(value, bool) else is_true(str(value))
