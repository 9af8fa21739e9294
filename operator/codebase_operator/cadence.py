"""`spec.refresh`: when a project's scheduled runs come, an interval after the last one or a cron schedule's times."""
from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping
from typing import Any

from . import cron
from .specs import InvalidSpec

_INTERVAL = re.compile(r"^(?:(\d{1,4})h)?(?:(\d{1,5})m)?(?:(\d{1,6})s)?$")
MAX_INTERVAL = 366 * 24 * 3600


@dataclasses.dataclass(frozen=True)
class Cadence:
    """`trigger` labels the runs (interval or schedule). With a schedule, `seconds` is the operator's
    minimum gap (--min-refresh-interval); without one, the interval."""
    trigger: str
    seconds: float
    schedule: cron.CronSchedule | None = None

    def after(self, moment: datetime.datetime) -> datetime.datetime:
        """The next refresh after one at `moment`."""
        if self.schedule is None:
            return moment + datetime.timedelta(seconds=self.seconds)
        earliest = moment + datetime.timedelta(seconds=self.seconds) - datetime.timedelta(microseconds=1)
        return self.schedule.next_after(max(moment, earliest))


def parse_interval(text: Any) -> float:
    """Seconds of a duration like "15m", "1h30m" or "90s"; InvalidSpec otherwise."""
    found = _INTERVAL.match(text) if isinstance(text, str) and text else None
    seconds = (int(found[1] or 0) * 3600 + int(found[2] or 0) * 60 + int(found[3] or 0)) if found else 0
    if not found or not 0 < seconds <= MAX_INTERVAL:
        raise InvalidSpec(f"spec.refresh.interval must be a duration like 15m, 1h or 1h30m (at most 366 days), "
                          f"not {text!r}")
    return float(seconds)


def refresh_cadence(project_spec: Mapping[str, Any], minimum: float) -> Cadence | None:
    """The project's refresh cadence (an interval raised to the operator's minimum), or None."""
    spec = project_spec.get("refresh")
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise InvalidSpec("spec.refresh must be an object: {interval: 15m} or {schedule: '0 * * * *'}")
    if ("interval" in spec) == ("schedule" in spec):
        raise InvalidSpec("spec.refresh takes exactly one of interval (a duration such as 15m) and schedule "
                          "(a cron expression such as '0 * * * *', UTC)")
    if "interval" in spec:
        return Cadence("interval", max(parse_interval(spec["interval"]), minimum))
    try:
        return Cadence("schedule", minimum, cron.parse(spec["schedule"]))
    except cron.InvalidCron as exc:
        raise InvalidSpec(f"spec.refresh.schedule: {exc}") from None


def refresh_interval(project_spec: Mapping[str, Any], minimum: float) -> float | None:
    """The project's refresh interval in seconds (raised to the operator's minimum), or None."""
    cadence = refresh_cadence(project_spec, minimum)
    return None if cadence is None or cadence.schedule is not None else cadence.seconds
