"""What every handler needs, built once at startup and kept in kopf's memo."""
from __future__ import annotations

import dataclasses

import pykube

from .config import OperatorConfig


@dataclasses.dataclass(frozen=True)
class Context:
    config: OperatorConfig
    api: pykube.HTTPClient
    namespaces: tuple[str, ...] = ()  # the watched namespaces; empty means cluster-wide
