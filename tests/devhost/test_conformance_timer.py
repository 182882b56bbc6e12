"""Timer trigger conformance: NCRONTAB, TimeSpan, runOnStartup, useMonitor and past-due, as the real host.

Sources: Azure/azure-webjobs-sdk-extensions ``src/WebJobs.Extensions/Extensions/Timers/``
(``Scheduling/CronSchedule.cs``, ``Scheduling/TimerSchedule.cs``, ``Scheduling/ScheduleMonitor.cs``,
``Scheduling/StorageScheduleMonitor.cs``, ``Listener/TimerListener.cs``), NCrontab (``CrontabFieldImpl``,
``CrontabSchedule.GetNextOccurrence``), and the "Timer trigger for Azure Functions" doc page.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from devhost.ncrontab import ConstantSchedule, CronSchedule, occurs_more_than_once_a_minute, parse_schedule
from devhost.schedule_monitor import HOST_CONTAINER, ScheduleStatus, check_past_due
from devhost.settings import SettingsError
from tests.devhost.conftest import APPS, Hosts, QueueKit, decoded, wait_until

TIMER_APP = APPS / "timers"
TIMER_FUNCTIONS = ("hourly", "startup", "even_seconds", "interval", "sweep")


def _next(expression: str, after: datetime) -> datetime | None:
    return CronSchedule(expression).next_after(after)


# --- NCRONTAB (unit) ---------------------------------------------------------------------------------


def test_the_first_field_is_seconds() -> None:
    """NCRONTAB with seconds: {second} {minute} {hour} {day} {month} {day-of-week} (CronSchedule.TryCreate
    parses with IncludingSeconds = true)."""
    assert _next("*/15 * * * * *", datetime(2026, 1, 1, 10, 0, 7)) == datetime(2026, 1, 1, 10, 0, 15)
    assert _next("0 */5 * * * *", datetime(2026, 1, 1, 10, 3, 7)) == datetime(2026, 1, 1, 10, 5, 0)
    assert _next("30 0 9 * * *", datetime(2026, 1, 1, 9, 0, 30)) == datetime(2026, 1, 2, 9, 0, 30)


def test_five_fields_or_seven_are_refused() -> None:
    """IncludingSeconds makes NCrontab require exactly six fields; TimerSchedule.Create then tries a TimeSpan
    and fails with 'not recognized as a valid cron expression or timespan string'."""
    for expression in ("0 */5 * * *", "0 0 */5 * * * *", "every minute"):
        with pytest.raises(SettingsError, match="not recognized as a valid cron expression or timespan"):
            parse_schedule(expression)


def test_day_of_month_and_day_of_week_must_both_match() -> None:
    """NCrontab ANDs the day fields (CrontabSchedule.GetNextOccurrence checks the day of week after the
    day), unlike Vixie cron which ORs them: Friday the 13th only."""
    assert _next("0 0 0 13 * 5", datetime(2026, 1, 1)) == datetime(2026, 2, 13)
    assert _next("0 0 0 13 * Fri", datetime(2026, 2, 14)) == datetime(2026, 3, 13)


def test_names_ranges_lists_and_steps() -> None:
    """CrontabFieldImpl: names matched by prefix, case-insensitive; day of week 0-6 from Sunday; 'a/n' runs
    from a to the field's maximum."""
    assert _next("0 30 9 * * mon-fri", datetime(2026, 11, 27, 10, 0)) == datetime(2026, 11, 30, 9, 30)
    assert _next("0 0 12 1 jan,JULY *", datetime(2026, 2, 1)) == datetime(2026, 7, 1, 12)
    assert _next("10/20 * * * * *", datetime(2026, 1, 1, 0, 0, 31)) == datetime(2026, 1, 1, 0, 0, 50)
    assert _next("0 0 0 * * 0", datetime(2026, 11, 30)) == datetime(2026, 12, 6)  # a Sunday


@pytest.mark.parametrize(
    "expression", ["0 0 0 * * 7", "60 * * * * *", "* * 24 * * *", "* * * 0 * *", "*/0 * * * * *", "5-1 * * * * *"]
)
def test_out_of_range_values_are_refused(expression: str) -> None:
    """CrontabFieldImpl ranges: second/minute 0-59, hour 0-23, day 1-31, month 1-12, day of week 0-6."""
    with pytest.raises(SettingsError):
        CronSchedule(expression)


def test_a_timespan_is_a_constant_interval() -> None:
    """TimerSchedule.Create: not NCRONTAB but a TimeSpan gives a ConstantSchedule."""
    schedule = parse_schedule("00:05:00")
    assert schedule == ConstantSchedule(timedelta(minutes=5))
    assert parse_schedule("1.00:00:00") == ConstantSchedule(timedelta(days=1))


def test_sub_minute_schedules_are_not_monitored() -> None:
    """TimerSchedule.Create turns UseMonitor off when more than one occurrence falls within a minute or a
    TimeSpan is under a minute."""
    now = datetime(2026, 1, 1, 10, 0, 0)
    assert occurs_more_than_once_a_minute(parse_schedule("*/10 * * * * *"), now)
    assert occurs_more_than_once_a_minute(parse_schedule("00:00:30"), now)
    assert not occurs_more_than_once_a_minute(parse_schedule("0 * * * * *"), now)
    assert not occurs_more_than_once_a_minute(parse_schedule("00:01:00"), now)


# --- Past-due rule (unit, a fake monitor) ------------------------------------------------------------


class _FakeMonitor:
    def __init__(self) -> None:
        self.written: list[ScheduleStatus] = []

    def update(self, timer_name: str, status: ScheduleStatus) -> None:
        self.written.append(status)


def test_a_missed_occurrence_is_past_due() -> None:
    """ScheduleMonitor.CheckPastDueAsync: now later than the recorded Next means at least one occurrence was
    missed; the duration is now - Next."""
    hourly = parse_schedule("0 0 * * * *")
    last = datetime(2026, 1, 1, 8, 0)
    recorded = ScheduleStatus(next=datetime(2026, 1, 1, 9, 0), last=last, last_updated=last)
    overdue, status = check_past_due(_FakeMonitor(), "t", datetime(2026, 1, 1, 9, 30), hourly, recorded)  # type: ignore[arg-type]
    assert overdue == timedelta(minutes=30)
    assert status.next == datetime(2026, 1, 1, 9, 0)


def test_a_first_start_records_a_status_and_is_not_past_due() -> None:
    """CheckPastDueAsync with no status: write Next from now, so an occurrence missed later is caught."""
    monitor = _FakeMonitor()
    now = datetime(2026, 1, 1, 9, 30)
    overdue, status = check_past_due(monitor, "t", now, parse_schedule("0 0 * * * *"), None)  # type: ignore[arg-type]
    assert overdue == timedelta(0)
    assert monitor.written and monitor.written[0].next == datetime(2026, 1, 1, 10, 0)


def test_a_changed_schedule_is_not_past_due() -> None:
    """CheckPastDueAsync: when Next no longer follows from Last under the current schedule, the schedule
    changed; a Next already in the past is recomputed from now instead of firing at once."""
    monitor = _FakeMonitor()
    last = datetime(2026, 1, 1, 8, 0)
    recorded = ScheduleStatus(next=datetime(2026, 1, 1, 9, 0), last=last, last_updated=last)
    every_5_min = parse_schedule("0 */5 * * * *")
    overdue, status = check_past_due(monitor, "t", datetime(2026, 1, 1, 9, 31), every_5_min, recorded)  # type: ignore[arg-type]
    assert overdue == timedelta(0)
    assert status.next == datetime(2026, 1, 1, 9, 35)


# --- Through a real host (integration) -----------------------------------------------------------------


def _only(name: str) -> dict[str, str]:
    """Disable every timer of the fixture app except ``name`` (AzureWebJobs.<name>.Disabled, as the real host)."""
    return {f"AzureWebJobs.{other}.Disabled": "true" for other in TIMER_FUNCTIONS if other != name}


def _calls(record_dir: Path, name: str) -> list[dict[str, object]]:
    path = record_dir / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.integration
def test_run_on_startup_invokes_once_at_start(hosts: Hosts, record_dir: Path) -> None:
    """TimerListener.StartAsync: RunOnStartup schedules an immediate invocation (not past due), then the
    schedule (here yearly) goes on."""
    host = hosts.start(TIMER_APP, env={**_only("startup"), "AzureFunctionsJobHost__functionTimeout": "00:01:00"})
    wait_until(lambda: _calls(record_dir, "startup"))
    (call,) = _calls(record_dir, "startup")
    assert call["past_due"] is False and call["is_timer_request"] is True
    assert "is configured to run on startup" in host.output()


@pytest.mark.integration
def test_a_six_field_schedule_fires_on_its_seconds(hosts: Hosts, record_dir: Path) -> None:
    """'*/2 * * * * *' fires at every even second; sub-minute, so unmonitored: ScheduleStatus is null
    (TimerInfo.ScheduleStatus is null when monitoring is off; the worker passes an empty dict)."""
    host = hosts.start(TIMER_APP, env=_only("even_seconds"))
    wait_until(lambda: len(_calls(record_dir, "even_seconds")) >= 3, timeout=30)
    calls = _calls(record_dir, "even_seconds")
    marker = "Executing 'Functions.even_seconds' (Reason='Timer fired at"
    fired = [text for text in host.output().splitlines() if marker in text]
    assert len(fired) >= 3
    for call in calls:
        assert call["past_due"] is False and call["schedule_status"] == {}
    # The reason names the occurrence's time: every one on an even second.
    seconds = [int(line.split("Timer fired at ")[1][17:19]) for line in fired]
    assert all(second % 2 == 0 for second in seconds), fired


@pytest.mark.integration
def test_a_timespan_schedule_fires_repeatedly(hosts: Hosts, record_dir: Path) -> None:
    """A TimeSpan schedule ('00:00:01') is a ConstantSchedule: an invocation every interval."""
    hosts.start(TIMER_APP, env=_only("interval"))
    wait_until(lambda: len(_calls(record_dir, "interval")) >= 3, timeout=30)


@pytest.mark.integration
def test_a_timer_output_binding_is_written_and_wakes_nothing_else(
    hosts: Hosts, queues: QueueKit, record_dir: Path
) -> None:
    """A timer-triggered function's queue output is written on success, like any other trigger's."""
    hosts.start(TIMER_APP, env=_only("sweep"))
    wait_until(lambda: queues.peek_texts(queues.out), timeout=30)
    assert set(decoded(queues.peek_texts(queues.out))) == {"swept"}


def _status_blob(azurite: object, host_id: str, name: str):  # type: ignore[no-untyped-def]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)  # type: ignore[attr-defined]
    container = service.get_container_client(HOST_CONTAINER)
    if not container.exists():
        container.create_container()
    return container.get_blob_client(f"timers/{host_id}/Host.Functions.{name}/status")


@pytest.mark.integration
def test_a_missed_occurrence_runs_at_once_as_past_due(hosts: Hosts, record_dir: Path, azurite: object) -> None:
    """StorageScheduleMonitor keeps timers/{hostId}/{timerName}/status in azure-webjobs-hosts; on start
    TimerListener runs a past-due timer at once with IsPastDue = true and its ScheduleStatus, then records
    Last = now and Next from the schedule."""
    host_id = f"test-{uuid.uuid4().hex[:12]}"
    blob = _status_blob(azurite, host_id, "hourly")
    on_the_hour = datetime.now().replace(minute=0, second=0, microsecond=0)
    last, missed = on_the_hour - timedelta(hours=2), on_the_hour - timedelta(hours=1)
    blob.upload_blob(json.dumps(ScheduleStatus(next=missed, last=last, last_updated=last).to_json()))
    host = hosts.start(TIMER_APP, env={**_only("hourly"), "AzureFunctionsWebHost__hostid": host_id})
    wait_until(lambda: _calls(record_dir, "hourly"))
    (call,) = _calls(record_dir, "hourly")
    assert call["past_due"] is True
    status = call["schedule_status"]
    assert isinstance(status, dict) and datetime.fromisoformat(status["Next"]).replace(tzinfo=None) == missed
    assert "is past due on startup" in host.output()

    def recorded() -> ScheduleStatus | None:
        written = ScheduleStatus.from_json(json.loads(blob.download_blob().readall()))
        return written if written is not None and written.last is not None and written.last > missed else None

    written = wait_until(recorded)
    assert isinstance(written, ScheduleStatus) and written.next == on_the_hour + timedelta(hours=1)


@pytest.mark.integration
def test_a_current_status_is_not_past_due(hosts: Hosts, record_dir: Path, azurite: object) -> None:
    """CheckPastDueAsync returns zero when the recorded Next is still ahead: nothing runs at start."""
    host_id = f"test-{uuid.uuid4().hex[:12]}"
    blob = _status_blob(azurite, host_id, "hourly")
    on_the_hour = datetime.now().replace(minute=0, second=0, microsecond=0)
    upcoming = on_the_hour + timedelta(hours=1)
    blob.upload_blob(json.dumps(ScheduleStatus(next=upcoming, last=on_the_hour, last_updated=on_the_hour).to_json()))
    host = hosts.start(TIMER_APP, env={**_only("hourly"), "AzureFunctionsWebHost__hostid": host_id})
    wait_until(lambda: "The next 5 occurrences of the 'hourly' schedule" in host.output())
    hosts.start(TIMER_APP, env={**_only("startup"), "AzureFunctionsWebHost__hostid": host_id})
    wait_until(lambda: _calls(record_dir, "startup"))  # a later event in the same directory
    assert _calls(record_dir, "hourly") == []
    assert "past due" not in host.output()
