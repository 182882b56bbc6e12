"""Timer schedules as the real timer trigger reads them: six-field NCRONTAB or a TimeSpan.

NCRONTAB (NCrontab with ``IncludingSeconds``, as ``CronSchedule.TryCreate`` in
Azure/azure-webjobs-sdk-extensions ``Extensions/Timers/Scheduling/CronSchedule.cs`` parses it):
``{second} {minute} {hour} {day} {month} {day-of-week}``; each field ``*``, a value, ``a-b``, a step
``*/n``, ``a-b/n`` or ``a/n`` (``a`` up to the field's maximum), or a comma list of those. Months and
days of week may be names (any prefix, case-insensitive, first match, as NCrontab's ``ParseValue``);
day of week is 0-6 from Sunday. Unlike Vixie cron, NCrontab requires BOTH the day of month and the day
of week to match. A schedule that is not NCRONTAB is tried as a TimeSpan (``hh:mm:ss``,
``d.hh:mm:ss``): a constant interval (``ConstantSchedule``). Times are the host's local wall clock.

No cron library is used: croniter reads a sixth field as seconds but puts it last and ORs the day
fields by default, cronsim has no seconds; translating between dialects is where bugs would hide.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from devhost.settings import SettingsError

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")  # fmt: skip
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
# (name, minimum, maximum, value names)
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("second", 0, 59, ()),
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2}(?:\.\d+)?))?$")
# NCrontab stops looking after this many years (a schedule like "0 0 0 30 2 *" never fires).
_SEARCH_YEARS = 5


class CronSchedule:
    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != len(_FIELDS):
            raise SettingsError(
                f"schedule '{expression}': NCRONTAB needs 6 fields (second minute hour day month day-of-week)"
            )
        values = [_parse_field(part, *field, expression) for part, field in zip(parts, _FIELDS, strict=True)]
        self.expression = expression
        self._seconds, self._minutes, self._hours = (sorted(v) for v in values[:3])
        self._days, self._months, self._weekdays = values[3], values[4], values[5]

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment`` (whole seconds), or None within the search window."""
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        day = start.replace(hour=0, minute=0, second=0)
        for _ in range(366 * _SEARCH_YEARS):
            if day.day in self._days and day.month in self._months and (day.weekday() + 1) % 7 in self._weekdays:
                found = self._first_in_day(day, start)
                if found is not None:
                    return found
            day += timedelta(days=1)
        return None

    def _first_in_day(self, day: datetime, start: datetime) -> datetime | None:
        same_day = day.date() == start.date()
        for hour in self._hours[bisect.bisect_left(self._hours, start.hour) if same_day else 0 :]:
            later_hour = not same_day or hour > start.hour
            for minute in self._minutes[0 if later_hour else bisect.bisect_left(self._minutes, start.minute) :]:
                later_minute = later_hour or minute > start.minute
                index = 0 if later_minute else bisect.bisect_left(self._seconds, start.second)
                if index < len(self._seconds):
                    return day.replace(hour=hour, minute=minute, second=self._seconds[index])
        return None

    def __str__(self) -> str:
        return f"Cron: '{self.expression}'"


@dataclass(frozen=True)
class ConstantSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime | None:
        return moment + self.interval

    def __str__(self) -> str:
        return f"Constant: {self.interval}"


TimerSchedule = CronSchedule | ConstantSchedule


def parse_schedule(expression: str) -> TimerSchedule:
    """NCRONTAB first, then TimeSpan, as ``TimerSchedule.Create``; a clear error for anything else."""
    text = expression.strip()
    try:
        return CronSchedule(text)
    except SettingsError as cron_error:
        match = _TIMESPAN.match(text)
        if match is None:
            raise SettingsError(
                f"{cron_error}; nor is it a TimeSpan like 00:05:00 "
                "(the schedule expression was not recognized as a valid cron expression or timespan string)"
            ) from None
        days, hours, minutes, seconds = match.groups()
        interval = timedelta(
            days=int(days or 0), hours=int(hours), minutes=int(minutes), seconds=float(seconds or 0)
        )
        if interval <= timedelta(0):
            raise SettingsError(f"schedule '{expression}': a TimeSpan schedule must be positive") from None
        return ConstantSchedule(interval)


def occurs_more_than_once_a_minute(schedule: TimerSchedule, now: datetime) -> bool:
    """True for sub-minute schedules, for which the real host turns schedule monitoring off by default."""
    if isinstance(schedule, ConstantSchedule):
        return schedule.interval < timedelta(minutes=1)
    first = schedule.next_after(now)
    second = schedule.next_after(first) if first is not None else None
    return first is not None and second is not None and second - now <= timedelta(minutes=1)


def _parse_field(text: str, what: str, low: int, high: int, names: tuple[str, ...], expression: str) -> frozenset[int]:
    values: set[int] = set()
    for token in text.split(","):
        try:
            values.update(_parse_token(token, low, high, names))
        except ValueError as exc:
            raise SettingsError(f"schedule '{expression}': {what} field '{text}': {exc}") from None
    return frozenset(values)


def _parse_token(text: str, low: int, high: int, names: tuple[str, ...]) -> range:
    every = 1
    if "/" in text:
        text, step = text.split("/", 1)
        every = int(step)
        if every <= 0:
            raise ValueError("a step must be positive")
    if text == "*":
        first, last = low, high
    elif "-" in text[1:]:
        left, right = text.split("-", 1)
        first, last = _value(left, names, low), _value(right, names, low)
    else:
        first = _value(text, names, low)
        last = high if every > 1 else first
    if not low <= first <= high or not low <= last <= high:
        raise ValueError(f"values must be {low}-{high}")
    if first > last:
        raise ValueError(f"range {first}-{last} runs backwards")
    return range(first, last + 1, every)


def _value(text: str, names: tuple[str, ...], low: int) -> int:
    if not text:
        raise ValueError("empty value")
    if text[0].isdigit():
        return int(text)
    for index, name in enumerate(names):
        if name.lower().startswith(text.lower()):
            return index + low
    raise ValueError(f"'{text}' is not a number" + (f" nor one of {', '.join(names)}" if names else ""))
