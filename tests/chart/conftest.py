"""Chart tests render the chart offline with a real `helm`; see chart_support.py."""
from chart_support import default_manifests, full_manifests, helm  # noqa: F401 - the shared fixtures
