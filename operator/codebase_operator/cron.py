"""Standard 5-field cron expressions (`spec.refresh.schedule`), in UTC.

minute (0-59), hour (0-23), day of month (1-31), month (1-12), day of week (0-7, 0 and 7 are
Sunday). Each field is a list of items: `*`, a number, a range `a-b`, each optionally with a
step (`*/15`, `1-31/2`, `5/10` = from 5 to the end of the field's range). No names, no `?`,
`L`, `W` or `#`. As in Vixie cron, when both day fields are restricted (neither starts with
`*`), a day matches when either does. No parser is in the project's locked dependencies, and
kopf parses no cron, so this is the small one needed.
"""
from __future__ import annotations

import calendar
import dataclasses
import datetime
import re

MAX_EXPRESSION_LENGTH = 100
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_ITEM = re.compile(r"^(?:(\*)|(\d{1,2})(?:-(\d{1,2}))?)(?:/(\d{1,2}))?$")
_SEARCH_DAYS = 9 * 366  # February 29 on a given weekday recurs within 28 years, but Feb 29 alone within 8


class InvalidCron(ValueError):
    """An expression this parser refuses; the message says which field and why."""


@dataclasses.dataclass(frozen=True)
class CronSchedule:
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: datetime.date) -> bool:
        if day.month not in self.months:
            return False
        by_date, by_weekday = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_date or by_weekday
        return by_date and by_weekday

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first time the schedule fires strictly after `moment` (UTC, whole minutes)."""
        start = moment.astimezone(datetime.UTC).replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        day = start.date()
        for _ in range(_SEARCH_DAYS):
            if self.matches_day(day):
                earliest = (start.hour, start.minute) if day == start.date() else (0, 0)
                for hour in self.hours:
                    for minute in self.minutes:
                        if (hour, minute) >= earliest:
                            return datetime.datetime(day.year, day.month, day.day, hour, minute, tzinfo=datetime.UTC)
            day += datetime.timedelta(days=1)
        raise InvalidCron("the schedule never fires")  # parse() refuses such schedules; kept as a bound


def parse(expression: object) -> CronSchedule:
    """A schedule from a 5-field expression; InvalidCron naming the field otherwise."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidCron("a cron schedule must be a non-empty string such as '*/15 * * * *'")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidCron(f"a cron schedule is at most {MAX_EXPRESSION_LENGTH} characters")
    parts = expression.split()
    if len(parts) != 5:
        raise InvalidCron(f"a cron schedule has 5 fields (minute hour day-of-month month day-of-week), "
                          f"not {len(parts)}: {expression!r}")
    values = [_field(text, name, low, high) for text, (name, low, high) in zip(parts, _FIELDS, strict=True)]
    schedule = CronSchedule(
        minutes=tuple(sorted(values[0])), hours=tuple(sorted(values[1])), days=frozenset(values[2]),
        months=frozenset(values[3]), weekdays=frozenset(day % 7 for day in values[4]),
        days_restricted=not parts[2].startswith("*"), weekdays_restricted=not parts[4].startswith("*"))
    if not _can_fire(schedule):
        raise InvalidCron(f"the cron schedule {expression!r} never fires (no such day in those months)")
    return schedule


def _field(text: str, name: str, low: int, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        found = _ITEM.match(item)
        if not found:
            raise InvalidCron(f"cron field {name} {text!r}: each item is *, a number or a range a-b, "
                              f"optionally with /step")
        star, first, last, step = found.groups()
        start = low if star else int(first)
        end = high if star or (step and last is None) else int(last or first)
        stride = int(step) if step else 1
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise InvalidCron(f"cron field {name} {text!r}: values must be {low}-{high}, ranges ascending")
        if not 1 <= stride <= high - low + 1:
            raise InvalidCron(f"cron field {name} {text!r}: a step must be 1 to {high - low + 1}")
        values.update(range(start, end + 1, stride))
    return values


def _can_fire(schedule: CronSchedule) -> bool:
    if schedule.weekdays_restricted or not schedule.days_restricted:
        return True  # some weekday of any month matches
    return any(day <= calendar.monthrange(2024, month)[1] for month in schedule.months for day in schedule.days)
