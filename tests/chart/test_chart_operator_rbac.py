"""The operator's RBAC in the chart grants exactly what the operator's code uses: nothing more, nothing less.

The required permissions are derived from the operator package itself:
- kopf's registry, built by the operator's own `build_registry`: every resource
  with handlers is listed and watched, and patched (finalizers, progress
  annotations, and `status` through the status subresource when handlers write
  `patch.status`);
- the Kubernetes helpers in `codebase_operator/kube.py`: each helper's verbs
  come from the pykube calls in its body, each call site gives the kind (and
  subresource) it is used with;
- `kopf.event(...)` calls post core/v1 Events.
Only kopf's cluster-wide observation of CRDs is stated here rather than derived
(kopf watches CustomResourceDefinitions to follow API changes at runtime).
"""
from __future__ import annotations

import ast
import inspect

import pytest

from chart_support import REPO_ROOT, Triple, assert_role_grants_exactly, find, one, triples

PACKAGE = REPO_ROOT / "operator" / "codebase_operator"
KOPF_CLUSTER_WIDE = {("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                     ("apiextensions.k8s.io", "customresourcedefinitions", "watch")}
# pykube method -> API verb
PYKUBE_VERBS = {"get_or_none": "get", "get_by_name": "get", "get": "get", "create": "create", "delete": "delete",
                "filter": "list", "objects": "list", "patch": "patch", "update": "patch", "watch": "watch"}
# `.objects(api)` is a query: iterated it lists, followed by `.get*`/`.filter` it is that call instead.
# `.get(...)`/`.update(...)` are pykube calls only in pykube's form (keywords only / no arguments);
# with positional arguments they are dict methods.


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def helper_verbs(kube_module: ast.Module) -> dict[str, set[str]]:
    """The API verbs of each public helper in kube.py, from the pykube calls in its body."""
    result = {}
    for node in kube_module.body:
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and not node.name.startswith("_"):
            methods = [call.func.attr for call in ast.walk(node)
                       if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                       and not (call.func.attr in {"get", "update"} and call.args)]
            calls = [m for m in methods if m in PYKUBE_VERBS]
            verbs = {PYKUBE_VERBS[m] for m in calls if m != "objects"}
            if "objects" in calls and not verbs & {"get", "list"}:
                verbs.add("list")  # iterating kind.objects(api) lists
            if verbs:
                result[node.name] = verbs
    return result


def kind_resource(kind_name: str) -> tuple[str, str]:
    """(apiGroup, plural) of a kind declared or re-exported in kube.py."""
    from codebase_operator import kube

    kind = getattr(kube, kind_name)
    group = kind.version.rsplit("/", 1)[0] if "/" in kind.version else ""
    return group, kind.endpoint


def derive_operator_permissions() -> set[Triple]:
    from codebase_operator.handlers import build_registry

    mods = modules()
    required: set[Triple] = set()

    # kopf: every handled resource is listed, watched and patched.
    # build_registry's keyword arguments are pacing (intervals, backoffs): any positive number will do.
    pacing = {name: 5.0 for name, parameter in inspect.signature(build_registry).parameters.items()
              if parameter.default is parameter.empty}
    registry = build_registry(**pacing)
    handlers = [h for reg in (registry._changing, registry._spawning, registry._watching, registry._indexing)
                for h in reg.get_all_handlers()]
    assert handlers, "the operator registers no kopf handlers?"
    writes_status = any(isinstance(n, ast.Attribute) and n.attr == "status"
                        and isinstance(n.value, ast.Name) and n.value.id == "patch"
                        for tree in mods.values() for n in ast.walk(tree))
    for handler in handlers:
        group, plural = handler.selector.group or "", handler.selector.plural or handler.selector.any_name
        required |= {(group, plural, verb) for verb in ("list", "watch", "patch")}
        if writes_status:
            required.add((group, f"{plural}/status", "patch"))

    # The kube.py helpers, at every call site: kube.<helper>(api, kube.<Kind>, ..., subresource=...)
    verbs_of = helper_verbs(mods["kube"])
    for name, tree in mods.items():
        for call in ast.walk(tree):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == "kube"
                    and call.func.attr in verbs_of):
                continue
            kind_arg = call.args[1]
            assert isinstance(kind_arg, ast.Attribute), f"{name}.py:{call.lineno}: pass the kind as kube.<Kind>"
            group, plural = kind_resource(kind_arg.attr)
            subresource = next((kw.value.value for kw in call.keywords if kw.arg == "subresource"), None)
            resource = f"{plural}/{subresource}" if subresource else plural
            required |= {(group, resource, verb) for verb in verbs_of[call.func.attr]}

    # Events the operator posts for humans.
    if any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "event"
           and isinstance(n.func.value, ast.Name) and n.func.value.id == "kopf"
           for tree in mods.values() for n in ast.walk(tree)):
        required.add(("", "events", "create"))
    return required


@pytest.fixture(scope="module")
def derived() -> set[Triple]:
    return derive_operator_permissions()


def test_the_api_is_only_called_through_kube_py():
    """Otherwise the derivation below would miss calls."""
    trees = modules()
    helpers = set(helper_verbs(trees["kube"])) | {"load_config", "connection_info"}
    for name, tree in trees.items():
        if name == "kube":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "pykube":
                assert node.attr in {"HTTPClient", "KubeConfig"}, f"{name}.py:{node.lineno} uses pykube.{node.attr}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "api":
                pytest.fail(f"{name}.py:{node.lineno} calls the API directly; go through kube.py")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "kube" \
                    and node.func.attr[0].islower():
                assert node.func.attr in helpers, \
                    f"{name}.py:{node.lineno}: kube.{node.func.attr} is not mapped to API verbs"


def test_derivation_sees_the_operator_at_work(derived):
    for expected in [("codebase.mcp.dev", "indexingruns", "watch"), ("codebase.mcp.dev", "codebaseprojects/status",
                                                                       "patch"),
                     ("batch", "jobs", "create"), ("batch", "jobs", "delete"), ("", "secrets", "create"),
                     ("", "pods", "list"), ("", "events", "create")]:
        assert expected in derived


def test_chart_operator_role_grants_exactly_what_the_code_uses(derived, default_manifests):
    assert_role_grants_exactly(default_manifests, "-operator", derived)


def test_chart_operator_cluster_role_is_read_only_crd_observation(default_manifests):
    (cluster_role,) = find(default_manifests, "ClusterRole")
    assert triples(cluster_role["rules"]) == KOPF_CLUSTER_WIDE


def test_every_watched_namespace_gets_the_same_role(full_manifests, default_manifests):
    (reference,) = find(default_manifests, "Role", "-operator")
    roles = find(full_manifests, "Role", "-operator")
    assert len(roles) == 3 and all(triples(r["rules"]) == triples(reference["rules"]) for r in roles)


def test_gateway_and_indexer_accounts_are_minimal(default_manifests):
    (gateway_role,) = find(default_manifests, "Role", "-gateway")
    assert ("", "secrets", "list") not in triples(gateway_role["rules"])  # reads one named Secret at a time
    assert all(verb in {"get", "list", "create", "patch"} for _, _, verb in triples(gateway_role["rules"]))
    bindings = find(default_manifests, "RoleBinding") + find(default_manifests, "ClusterRoleBinding")
    indexer_accounts = {m["metadata"]["name"] for m in find(default_manifests, "ServiceAccount", "-indexer")}
    bound = {s["name"] for b in bindings for s in b["subjects"]}
    assert indexer_accounts and not indexer_accounts & bound, "the indexer ServiceAccount must be bound to nothing"


def test_chart_mirrors_operator_rbac_yaml(default_manifests):
    """operator/rbac.yaml (a plain `kubectl apply` install) grants what the chart grants, plus only what
    the chart never needs: namespaces (for --namespace globs; the chart passes exact names) and kopf
    peering (for --peering; the chart runs one replica, standalone)."""
    import yaml

    documents = [d for d in yaml.safe_load_all((REPO_ROOT / "operator" / "rbac.yaml").read_text()) if d]
    in_file = set().union(*(triples(d["rules"]) for d in documents if d["kind"] in ("Role", "ClusterRole")))
    (role,) = find(default_manifests, "Role", "-operator")
    (cluster_role,) = find(default_manifests, "ClusterRole")
    in_chart = triples(role["rules"]) | triples(cluster_role["rules"])
    assert not in_chart - in_file, f"the chart grants more than operator/rbac.yaml: {sorted(in_chart - in_file)}"
    only_in_file = {(group, resource.split("/")[0]) for group, resource, _ in in_file - in_chart}
    assert only_in_file <= {("", "namespaces"), ("kopf.dev", "clusterkopfpeerings"), ("kopf.dev", "kopfpeerings")}, \
        sorted(in_file - in_chart)
    operator = one(default_manifests, "Deployment", "-operator")
    args = operator["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not any(arg.startswith("--peering") for arg in args)
    assert all("*" not in arg for arg in args if arg.startswith("--namespace="))
