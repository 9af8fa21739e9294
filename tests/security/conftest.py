"""Fixtures the security tests share with other tiers: the chart renders, a real project database,
and the embedding server that holds runs in their write phase."""
from __future__ import annotations

import sys
from pathlib import Path

# The chart tests' helpers, imported under the names tests/chart uses (it is not a package).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))
from chart_support import default_manifests, full_manifests, helm  # noqa: E402
from tests.integration.conftest import project  # noqa: E402

from .embedding_gate import gate  # noqa: E402

__all__ = ["default_manifests", "full_manifests", "helm", "project", "gate"]
