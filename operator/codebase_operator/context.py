"""What every handler needs, built once at startup and kept in kopf's memo."""
from __future__ import annotations

import asyncio
import dataclasses

import pykube

from .config import OperatorConfig


@dataclasses.dataclass(frozen=True)
class Context:
    config: OperatorConfig
    api: pykube.HTTPClient
    # The namespaces the operator watches (empty: all); the Job ceiling counts Jobs in these.
    namespaces: tuple[str, ...] = ()
    # Held while counting active Jobs and creating one, so concurrent handlers cannot overshoot the ceiling.
    job_slots: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
