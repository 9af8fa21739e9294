"""Chart tests render the chart offline with a real `helm`; see chart_support.py."""
from __future__ import annotations

import pytest

from chart_support import FULL_VALUES, Helm, fetch_tools_module


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(fetch_tools_module().ensure_tools()["helm"])


@pytest.fixture(scope="session")
def default_manifests(helm) -> list[dict]:
    return helm.render()


@pytest.fixture(scope="session")
def full_manifests(helm) -> list[dict]:
    return helm.render("--values", str(FULL_VALUES))
