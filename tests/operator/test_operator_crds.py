"""The API as installed: CRDs (structural schemas, CEL rules, printer columns) and RBAC, validated offline.

Sample manifests are validated against the CRDs' openAPIV3Schema the way an API
server would at admission (tests/support/crds.py): jsonschema for the structural
schema, cel-python for the `x-kubernetes-validations` rules (skipped, with the
reason, when cel-python is not installed).
"""
from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.crds import CRDS_DIR, cel_rules, crds, schema_of, validate
from tests.support.resources import project_manifest, run_manifest

KUBERNETES_VERSION = "1.33"
RBAC = Path(__file__).resolve().parents[2] / "operator" / "rbac.yaml"


def with_spec(manifest, **changes):
    changed = copy.deepcopy(manifest)
    changed["spec"].update(changes)
    return changed


PROJECT = project_manifest("shop", "Shop Backend (main)", path="shop",
                           embedding={"provider": "local", "model": "all-MiniLM-L6-v2", "dimensions": 384},
                           indexing={"include": ["**/*.py"], "exclude": ["vendor/**"], "maxFileSize": 1048576},
                           indexerTemplate={"activeDeadlineSeconds": 600, "backoffLimit": 2,
                                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                                          "limits": {"memory": 2147483648}}})
GIT_PROJECT = project_manifest("lib", "lib", source={"git": {"url": "https://git.example.com/lib.git", "ref": "v1.2.0",
                                                            "credentialsSecret": "lib-git"}}, reclaim_policy="Delete")
RUN = run_manifest("shop-1", "shop")


@pytest.mark.parametrize("manifest", [PROJECT, GIT_PROJECT, RUN,
                                      run_manifest("shop-2", "shop", mode="Full", repoPath="shop/sub"),
                                      run_manifest("lib-2", "lib", gitRef="main", cancel=False)],
                         ids=["project-path", "project-git", "run", "run-full-repoPath", "run-gitRef"])
def test_valid_manifests_are_accepted(manifest):
    assert validate(manifest) == []


INVALID = {
    "run-without-projectRef": run_manifest("r", None),
    "run-bad-project-name": run_manifest("r", "Not_A_Name"),
    "run-bad-mode": run_manifest("r", "shop", mode="Sometimes"),
    "run-absolute-repoPath": run_manifest("r", "shop", repoPath="/etc"),
    "run-unknown-field-type": with_spec(RUN, cancel="yes"),
    "project-without-projectId": {**PROJECT, "spec": {"source": {"path": "a"}}},
    "project-id-control-chars": with_spec(PROJECT, projectId="bad\nid"),
    "project-id-blank": with_spec(PROJECT, projectId="   "),
    "project-id-too-long": with_spec(PROJECT, projectId="x" * 201),
    "project-bad-reclaimPolicy": with_spec(PROJECT, database={"reclaimPolicy": "Keep"}),
    "project-bad-database-name": with_spec(PROJECT, database={"name": "postgres"}),
    "project-git-url-not-a-url": with_spec(GIT_PROJECT, source={"git": {"url": "not a url"}}),
    "project-bad-quantity": with_spec(PROJECT, indexerTemplate={"resources": {"limits": {"memory": "lots"}}}),
}
CEL_INVALID = {
    "run-name-too-long": run_manifest("r" * 64, "shop"),
    "run-repoPath-escapes": run_manifest("r", "shop", repoPath="shop/../../etc"),
    "run-repoPath-and-gitRef": run_manifest("r", "shop", repoPath="a", gitRef="main"),
    "project-two-sources": with_spec(PROJECT, source={"path": "a", "git": {"url": "https://e.com/r.git"}}),
    "project-no-source": with_spec(PROJECT, source={}),
    "project-path-escapes": with_spec(PROJECT, source={"path": "../other"}),
}


@pytest.mark.parametrize("manifest", list(INVALID.values()), ids=list(INVALID))
def test_invalid_manifests_are_rejected_by_the_schema(manifest):
    assert validate(manifest), "the API server would have accepted this"


@pytest.mark.parametrize("manifest", list(CEL_INVALID.values()), ids=list(CEL_INVALID))
def test_invalid_manifests_are_rejected_by_cel_rules(manifest):
    pytest.importorskip("celpy", reason="cel-python evaluates the CRDs' CEL rules offline")
    assert validate(manifest), "the API server would have accepted this"


UPDATES = {
    "project-projectId-changed": (PROJECT, with_spec(PROJECT, projectId="other"), False),
    "project-database-name-changed": (with_spec(PROJECT, database={"name": "cb_proj_a_0123abcd"}),
                                      with_spec(PROJECT, database={"name": "cb_proj_b_0123abcd"}), False),
    "project-embedding-changed": (PROJECT, with_spec(PROJECT, embedding={"model": "other-model"}), False),
    "project-reclaimPolicy-changed": (PROJECT, with_spec(PROJECT, database={"reclaimPolicy": "Delete"}), True),
    "run-projectRef-changed": (RUN, with_spec(RUN, projectRef={"name": "other"}), False),
    "run-mode-changed": (RUN, with_spec(RUN, mode="Full"), False),
    "run-cancel-set": (with_spec(RUN, cancel=False), with_spec(RUN, cancel=True), True),
    "run-cancel-unset": (with_spec(RUN, cancel=True), with_spec(RUN, cancel=False), False),
}


@pytest.mark.parametrize("old, new, accepted", list(UPDATES.values()), ids=list(UPDATES))
def test_updates_respect_immutable_fields_and_one_way_cancel(old, new, accepted):
    pytest.importorskip("celpy", reason="cel-python evaluates the CRDs' CEL transition rules offline")
    assert (validate(new, old=old) == []) is accepted, validate(new, old=old)


def test_cel_rules_are_present_where_the_api_promises_them():
    project_rules = {path: rule["rule"] for path, rule in cel_rules(schema_of("CodebaseProject"))}
    run_rules = {path: rule["rule"] for path, rule in cel_rules(schema_of("IndexingRun"))}
    assert project_rules[".spec.projectId"] == "self == oldSelf"
    assert project_rules[".spec.database.name"] == "self == oldSelf"
    assert project_rules[".spec.embedding"] == "self == oldSelf"
    assert "has(self.path) != has(self.git)" in project_rules[".spec.source"]
    assert run_rules[".spec.projectRef"] == "self == oldSelf"
    assert run_rules[".spec.cancel"] == "oldSelf == false || self == true"
    for rules in (project_rules, run_rules):
        assert "self.metadata.name.size() <= 63" in rules["."]
        for path, rule in rules.items():  # every rule that reads oldSelf is a transition rule on a field
            assert ("oldSelf" not in rule) or path != ".", path


def test_cel_rules_compile():
    celpy = pytest.importorskip("celpy", reason="cel-python compiles the CRDs' CEL rules offline")
    environment = celpy.Environment()
    for kind in crds():
        for path, rule in cel_rules(schema_of(kind)):
            environment.compile(rule["rule"])
            assert rule.get("message"), f"{kind} {path}: a rule without a message gives users a CEL expression"


def _structural_problems(schema, path="") -> list[str]:
    """Kubernetes' structural-schema rules that matter here: a type everywhere, no free-form objects."""
    problems = []
    if "type" not in schema and not schema.get("x-kubernetes-int-or-string"):
        problems.append(f"{path or '.'}: no type")
    if schema.get("type") == "object" and path.count(".") > 1 and not (
            schema.get("properties") or schema.get("additionalProperties")
            or schema.get("x-kubernetes-preserve-unknown-fields")):
        problems.append(f"{path}: an object without properties")
    for name, child in (schema.get("properties") or {}).items():
        problems += _structural_problems(child, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            problems += _structural_problems(schema[key], f"{path}[{key}]")
    return problems


@pytest.mark.parametrize("kind", ["CodebaseProject", "IndexingRun"])
def test_crds_are_structural_with_status_subresource_and_conditions(kind):
    crd = crds()[kind]
    kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.codebase.mcp.dev"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert _structural_problems(schema) == []
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {"type", "status", "lastTransitionTime", "reason", "message"}


def test_short_names_and_printer_columns():
    project, run = crds()["CodebaseProject"], crds()["IndexingRun"]
    assert project["spec"]["names"]["shortNames"] == ["cbp"] and run["spec"]["names"]["shortNames"] == ["ir"]
    columns = {kind: [column["name"] for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]
                      if not column.get("priority")]
               for kind, crd in crds().items()}
    assert columns["CodebaseProject"] == ["Ready", "Database", "Last run", "Commit", "Indexed", "Age"]
    commit = next(c for c in project["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Commit")
    assert commit["jsonPath"] == ".status.lastIndexedCommitShort"
    assert columns["IndexingRun"] == ["Project", "Succeeded", "Reason", "Files", "Chunks", "Shards", "Age"]
    ready = project["spec"]["versions"][0]["additionalPrinterColumns"][0]
    assert ready["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'


def test_rbac_manifest_is_valid_and_grants_the_indexer_nothing():
    documents = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]
    for doc in documents:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents}
    assert ("ServiceAccount", "codebase-indexer") in kinds
    subjects = [s["name"] for doc in documents if doc["kind"].endswith("Binding") for s in doc["subjects"]]
    assert set(subjects) == {"codebase-operator"}, "the indexer's ServiceAccount must not be bound to any role"
    indexer = next(doc for doc in documents if doc["metadata"]["name"] == "codebase-indexer")
    assert indexer["automountServiceAccountToken"] is False
    (role,) = [doc for doc in documents if doc["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
        assert not {"update", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]), rule


def test_crd_files_are_the_only_yaml_in_crds():
    assert sorted(path.name for path in CRDS_DIR.iterdir()) == ["codebaseprojects.yaml", "indexingruns.yaml"]


def test_parallelism_is_bounded_by_the_schema_as_the_indexer_bounds_shards():
    from codebase_indexer.shards import MAX_SHARDS

    project, run = crds()["CodebaseProject"], crds()["IndexingRun"]
    project_spec = project["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    run_spec = run["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    for field in (project_spec["indexing"]["properties"]["parallelism"], run_spec["parallelism"]):
        assert (field["type"], field["minimum"], field["maximum"]) == ("integer", 1, MAX_SHARDS)
    assert run_spec["parallelism"]["x-kubernetes-validations"][0]["rule"] == "self == oldSelf"
    shards = [c for c in run["spec"]["versions"][0]["additionalPrinterColumns"] if c["name"] == "Shards"]
    assert shards[0]["jsonPath"] == ".status.progress.shardSummary"
