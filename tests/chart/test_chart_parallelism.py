"""Issue 10: the chart's indexer.parallelism reaches the operator as its default shards per run, is
bounded like the CRDs, and grants nothing new (an Indexed Job is still just a Job)."""
from __future__ import annotations

from chart_support import find, one


def operator_env(manifests) -> dict:
    container = one(manifests, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]
    return {var["name"]: var.get("value") for var in container["env"]}


def rbac(manifests) -> list:
    return sorted((doc["kind"], doc["metadata"]["name"], repr(doc.get("rules")), repr(doc.get("subjects")))
                  for kind in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
                  for doc in find(manifests, kind))


def test_parallelism_reaches_the_operator_and_rbac_is_unchanged(helm, default_manifests):
    assert operator_env(default_manifests)["CODEBASE_MCP_DEFAULT_PARALLELISM"] == "1"
    wide = helm.render("--set", "indexer.parallelism=16")
    assert operator_env(wide)["CODEBASE_MCP_DEFAULT_PARALLELISM"] == "16"
    assert rbac(wide) == rbac(default_manifests) and rbac(wide)


def test_parallelism_out_of_bounds_is_refused_by_the_values_schema(helm):
    for value in ("0", "65"):
        result = helm.template("--set", f"indexer.parallelism={value}", check=False)
        assert result.returncode != 0 and "/indexer/parallelism" in result.stderr, value
