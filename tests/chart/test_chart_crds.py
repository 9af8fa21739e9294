"""The chart installs exactly the CRDs of crds/ (the API's source of truth), byte for byte."""
from __future__ import annotations

import yaml

from chart_support import CHART, REPO_ROOT

SOURCE = REPO_ROOT / "crds"
COPIES = CHART / "crds"


def test_chart_crds_are_identical_to_the_source():
    source = {path.name: path.read_bytes() for path in SOURCE.glob("*.yaml")}
    copies = {path.name: path.read_bytes() for path in COPIES.glob("*.yaml")}
    assert source, "crds/ holds no CRDs"
    assert sorted(copies) == sorted(source), "the chart's crds/ must hold the same files as crds/"
    stale = [name for name in source if copies[name] != source[name]]
    assert not stale, f"charts/codebase-mcp/crds/ is stale, run: cp crds/*.yaml charts/codebase-mcp/crds/ ({stale})"


def test_chart_crds_define_the_api():
    crds = [yaml.safe_load(path.read_text()) for path in sorted(COPIES.glob("*.yaml"))]
    names = {(crd["spec"]["group"], crd["spec"]["names"]["kind"], tuple(crd["spec"]["names"]["shortNames"]))
             for crd in crds}
    assert names == {("codebase.mcp.dev", "CodebaseProject", ("cbp",)), ("codebase.mcp.dev", "IndexingRun", ("ir",))}
    for crd in crds:
        assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
        assert crd["spec"]["versions"][0]["subresources"]["status"] == {}


def test_helm_does_not_template_crds():
    """Files in crds/ are installed verbatim by helm; a template there would be sent unrendered."""
    for path in COPIES.glob("*.yaml"):
        assert "{{" not in path.read_text(), path
