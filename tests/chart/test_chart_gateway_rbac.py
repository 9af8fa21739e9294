"""The gateway's Role grants exactly the calls its Kubernetes control plane makes, derived from its source:
`self.custom.<verb>_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, ...)` and
`self.core.read_namespaced_<kind>(...)`, following the plural through helpers such as `_get(plural, ...)`."""
from __future__ import annotations

import ast
import importlib
import re

import pytest

from chart_support import REPO_ROOT, Triple, assert_role_grants_exactly

SOURCE = REPO_ROOT / "mcp_gateway" / "codebase_gateway" / "control_plane" / "kubernetes.py"
METHOD = re.compile(r"^(create|read|get|list|patch|delete|replace)_namespaced_(\w+)$")
VERB = {"read": "get", "replace": "update"}
CORE_PLURALS = {"secret": "secrets", "config_map": "config_maps", "pod": "pods", "event": "events"}


def derive_gateway_permissions() -> set[Triple]:
    module = importlib.import_module("codebase_gateway.control_plane.kubernetes")
    tree = ast.parse(SOURCE.read_text())
    constants = {name: getattr(module, name) for name in dir(module) if name.isupper()}
    group = module.GROUP
    required: set[Triple] = set()
    helpers: dict[tuple[str, int], set[str]] = {}  # (helper name, index of its plural parameter) -> verbs

    for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
        params = [a.arg for a in function.args.args]
        for call in ast.walk(function):
            if not isinstance(call, ast.Call):
                continue
            # self._call(self.custom.m, ...) or self.custom.m(...)
            target, args = (call.args[0], call.args[1:]) if call.args and isinstance(call.args[0], ast.Attribute) \
                and isinstance(call.func, ast.Attribute) and call.func.attr == "_call" else (call.func, call.args)
            if not (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                    and target.value.attr in ("custom", "core")):
                continue
            match = METHOD.match(target.attr)
            assert match, f"line {call.lineno}: unmapped API method {target.attr}"
            verb = VERB.get(match.group(1), match.group(1))
            if match.group(2) != "custom_object":
                required.add(("", CORE_PLURALS[match.group(2)], verb))
                continue
            plural = args[3]
            if isinstance(plural, ast.Name) and plural.id in constants:
                required.add((group, constants[plural.id], verb))
            elif isinstance(plural, ast.Name) and plural.id in params:
                helpers.setdefault((function.name, params.index(plural.id) - 1), set()).add(verb)
            else:
                pytest.fail(f"line {call.lineno}: cannot resolve the plural {ast.unparse(plural)}")

    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute):
            for (helper, index), verbs in helpers.items():
                if call.func.attr == helper:
                    plural = call.args[index]
                    assert isinstance(plural, ast.Name) and plural.id in constants, ast.unparse(call)
                    required |= {(group, constants[plural.id], verb) for verb in verbs}
    return required


@pytest.fixture(scope="module")
def derived() -> set[Triple]:
    pytest.importorskip("kubernetes")
    return derive_gateway_permissions()


def test_derivation_sees_the_gateway_at_work(derived):
    for expected in [("codebase.mcp.dev", "indexingruns", "create"), ("codebase.mcp.dev", "codebaseprojects", "get"),
                     ("codebase.mcp.dev", "indexingruns", "patch"), ("", "secrets", "get")]:
        assert expected in derived


def test_chart_gateway_role_grants_exactly_what_the_code_uses(derived, default_manifests):
    assert_role_grants_exactly(default_manifests, "-gateway", derived)
