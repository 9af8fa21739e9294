"""Validate manifests against the CRDs in crds/, offline, as an API server would at admission.

The structural schema is checked with jsonschema (the `x-kubernetes-*` keywords are
annotations to it). The CEL rules (`x-kubernetes-validations`) are evaluated with
cel-python when it is installed, including transition rules (`oldSelf`) when the
old object is given; otherwise they are only collected and compiled by the caller.
"""
from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRDS_DIR = Path(__file__).resolve().parents[2] / "crds"


@functools.cache
def crds() -> dict[str, dict[str, Any]]:
    """kind → CRD document."""
    loaded = (yaml.safe_load(path.read_text()) for path in sorted(CRDS_DIR.glob("*.yaml")))
    return {crd["spec"]["names"]["kind"]: crd for crd in loaded}


def schema_of(kind: str, version: str = "v1alpha1") -> dict[str, Any]:
    for served in crds()[kind]["spec"]["versions"]:
        if served["name"] == version:
            return served["schema"]["openAPIV3Schema"]
    raise KeyError(f"{kind} has no version {version}")


def cel_rules(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (schema path, rule) in the schema."""
    for rule in schema.get("x-kubernetes-validations") or ():
        yield path or ".", rule
    for name, child in (schema.get("properties") or {}).items():
        yield from cel_rules(child, f"{path}.{name}")
    if isinstance(schema.get("items"), Mapping):
        yield from cel_rules(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from cel_rules(schema["additionalProperties"], f"{path}.*")


@functools.cache
def _validator(kind: str, version: str) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema_of(kind, version))


_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([KMGTPE]i|[numkMGTPE])?)$")
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000), "": 1, "k": 10 ** 3,
            "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}


def _quantity(text: Any) -> Fraction:
    """A resource.Quantity's value, as Kubernetes' CEL quantity library parses it."""
    match = _QUANTITY.match(str(text))
    if not match:
        raise ValueError(f"quantities must match the regular expression of a Kubernetes quantity: {text!r}")
    number, exponent, suffix = match.groups()
    if exponent:
        return Fraction(number) * Fraction(10) ** int(exponent[1:])
    return Fraction(number) * (_BINARY.get(suffix or "") or _DECIMAL[suffix or ""])


def _kubernetes_functions() -> dict[str, Any]:
    """The functions of Kubernetes' CEL quantity library the CRDs use (cel-python has no Kubernetes libraries)."""
    from celpy import celtypes

    def compare(a: Fraction, b: Fraction) -> Any:
        return celtypes.IntType((a > b) - (a < b))

    return {"quantity": _quantity, "isQuantity": lambda text: celtypes.BoolType(bool(_QUANTITY.match(str(text)))),
            "compareTo": compare, "isGreaterThan": lambda a, b: celtypes.BoolType(a > b),
            "isLessThan": lambda a, b: celtypes.BoolType(a < b)}


@functools.cache
def _program(rule: str) -> Any:
    import celpy

    environment = celpy.Environment()
    return environment.program(environment.compile(rule), functions=_kubernetes_functions())


def validate(manifest: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> list[str]:
    """The reasons the API server would reject `manifest` (an update of `old` when given)."""
    version = manifest["apiVersion"].split("/")[-1]
    schema = schema_of(manifest["kind"], version)
    errors = [f"{'.'.join(map(str, error.absolute_path)) or '.'}: {error.message}"
              for error in _validator(manifest["kind"], version).iter_errors(dict(manifest))]
    try:
        import celpy  # noqa: F401
    except ImportError:
        return errors
    return errors + list(_cel_errors(schema, manifest, old, "."))


def _cel_errors(schema: Mapping[str, Any], value: Any, old: Any, path: str) -> Iterator[str]:
    import celpy

    for rule in schema.get("x-kubernetes-validations") or ():
        transition = "oldSelf" in rule["rule"]
        if transition and old is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if transition:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            passed = bool(_program(rule["rule"]).evaluate(activation))
        except celpy.CELEvalError as error:  # the API server refuses the object with the evaluation error
            yield f"{path}: {error.args[0] if error.args else error}"
            continue
        if not passed:
            yield f"{path}: {rule.get('message') or rule['rule']}"
    for name, child in (schema.get("properties") or {}).items():
        if isinstance(value, Mapping) and name in value:
            old_child = old.get(name) if isinstance(old, Mapping) else None
            yield from _cel_errors(child, value[name], old_child, f"{path}{name}.")
    items = schema.get("items")
    if isinstance(items, Mapping) and isinstance(value, list):
        for index, item in enumerate(value):  # list items have no oldSelf unless keyed; not used here
            yield from _cel_errors(items, item, None, f"{path}[{index}].")
