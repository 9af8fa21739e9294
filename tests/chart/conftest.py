"""Chart tests render the chart offline with a real `helm`; see chart_support.py."""
import pytest  # noqa: E402

from chart_support import default_manifests, full_manifests, helm  # noqa: F401 - the shared fixtures


@pytest.fixture(autouse=True)
def _operator_environment(operator_environment):
    """The rendered programs are configured by the chart alone (see tests/conftest.py)."""
