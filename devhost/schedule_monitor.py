"""Timer schedule monitoring: the last and next occurrence of each timer, kept across host restarts.

As the real host's ``StorageScheduleMonitor`` (Azure/azure-webjobs-sdk-extensions
``Extensions/Timers/Scheduling/StorageScheduleMonitor.cs``), the status of a timer is a JSON blob
``timers/{hostId}/{timerName}/status`` in the ``azure-webjobs-hosts`` container of the
``AzureWebJobsStorage`` account (Azurite locally): it survives a restart, is shared by every instance
of the app on that storage like the real one, and can be inspected with any blob tool. The past-due
rule is ``ScheduleMonitor.CheckPastDueAsync`` of the same repository.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient

from devhost.ncrontab import TimerSchedule
from devhost.queue_io import DEFAULT_CONNECTION
from devhost.settings import resolve_setting_name

logger = logging.getLogger(__name__)
HOST_CONTAINER = "azure-webjobs-hosts"
HOST_ID_SETTING = "AzureFunctionsWebHost__hostid"
_NEVER = "0001-01-01T00:00:00"


@dataclass
class ScheduleStatus:
    next: datetime
    last: datetime | None = None
    last_updated: datetime | None = None

    def to_json(self) -> dict[str, str]:
        return {"Last": _format(self.last), "Next": _format(self.next), "LastUpdated": _format(self.last_updated)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> ScheduleStatus | None:
        next_time = _parse(data.get("Next"))
        if next_time is None:
            return None
        return cls(next=next_time, last=_parse(data.get("Last")), last_updated=_parse(data.get("LastUpdated")))


class BlobScheduleMonitor:
    def __init__(self, environ: Mapping[str, str], app_dir: Path) -> None:
        connection = resolve_setting_name(DEFAULT_CONNECTION, environ)
        if connection is None:
            raise ValueError("timer schedule monitoring needs the AzureWebJobsStorage setting")
        self.host_id = environ.get(HOST_ID_SETTING) or default_host_id(app_dir)
        self._container = BlobServiceClient.from_connection_string(connection).get_container_client(HOST_CONTAINER)
        self._created = False

    def get(self, timer_name: str) -> ScheduleStatus | None:
        try:
            text = self._blob(timer_name).download_blob().readall()
        except ResourceNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            logger.warning("Timer '%s': unreadable schedule status ignored", timer_name)
            return None
        return ScheduleStatus.from_json(data) if isinstance(data, dict) else None

    def update(self, timer_name: str, status: ScheduleStatus) -> None:
        """Best effort, as the real monitor: a failed write is logged, never fatal."""
        try:
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self._container.create_container()
                self._created = True
            self._blob(timer_name).upload_blob(json.dumps(status.to_json()), overwrite=True)
        except AzureError:
            logger.exception("Function '%s' failed to update the timer trigger status.", timer_name)

    def _blob(self, timer_name: str) -> BlobClient:
        return self._container.get_blob_client(f"timers/{self.host_id}/{timer_name}/status")


def check_past_due(
    monitor: BlobScheduleMonitor, timer_name: str, now: datetime, schedule: TimerSchedule, last: ScheduleStatus | None
) -> tuple[timedelta, ScheduleStatus]:
    """How far past due the timer is (zero if not) and the status to run with, recording a first status."""
    if last is None:
        status = ScheduleStatus(next=_next(schedule, now), last=None, last_updated=now)
        monitor.update(timer_name, status)
    else:
        status = last
        if last.last is not None:
            expected, updated = _next(schedule, last.last), last.last
        elif last.last_updated is not None:
            expected, updated = _next(schedule, last.last_updated), last.last_updated
        else:
            expected, updated = _next(schedule, now), now
        if last.next != expected:
            # The schedule changed since the status was written: start afresh rather than run at once.
            if now > expected:
                expected, updated = _next(schedule, now), now
            status = ScheduleStatus(next=expected, last=None, last_updated=updated)
            monitor.update(timer_name, status)
    return (now - status.next if now > status.next else timedelta(0)), status


def default_host_id(app_dir: Path) -> str:
    """Machine name and a stable hash of the app folder, lower-case, at most 32 characters (as Core Tools)."""
    machine = re.sub(r"[^a-z0-9-]", "", socket.gethostname().lower())
    return f"{machine}-{zlib.crc32(str(app_dir.resolve()).encode())}"[:32].strip("-")


def _next(schedule: TimerSchedule, moment: datetime) -> datetime:
    found = schedule.next_after(moment)
    return found if found is not None else datetime.max


def _format(moment: datetime | None) -> str:
    return _NEVER if moment is None or moment == datetime.max else moment.astimezone().isoformat()


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone().replace(tzinfo=None) if parsed.tzinfo else parsed
