"""`metav1.Condition` lists as plain data: read, set (keeping lastTransitionTime), format."""
from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
MAX_MESSAGE_LENGTH = 4096


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    for condition in conditions or ():
        if condition.get("type") == type_:
            return condition
    return None


def is_true(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> bool:
    condition = find(conditions, type_)
    return condition is not None and condition.get("status") == "True"


def set_condition(conditions: Iterable[Mapping[str, Any]] | None, *, type_: str,
                  status: ConditionStatus, reason: str, message: str,
                  observed_generation: int | None, now: str | None = None) -> list[dict[str, Any]]:
    """A new list with one condition set; lastTransitionTime changes only when the status does."""
    previous = find(conditions, type_)
    transition_time = (previous["lastTransitionTime"]
                       if previous is not None and previous.get("status") == status
                       and previous.get("lastTransitionTime")
                       else now or now_rfc3339())
    updated: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": truncate(message),
        "lastTransitionTime": transition_time,
    }
    if observed_generation is not None:
        updated["observedGeneration"] = observed_generation
    others = [dict(c) for c in conditions or () if c.get("type") != type_]
    return sorted(others + [updated], key=lambda c: str(c["type"]))


def truncate(message: str, limit: int = MAX_MESSAGE_LENGTH) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
