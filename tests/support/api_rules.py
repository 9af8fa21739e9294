"""Rules a real API server applies that the emulator must apply too: object names, labels, label selectors.

Each function answers like the API server would: a list of problems (empty when valid),
or whether an object's labels match a selector.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(rf"^{_DNS_LABEL}$")
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# Kinds whose names must be DNS labels (they become host names or label values); others are subdomains.
DNS_LABEL_KINDS = {"Namespace", "Service"}


def name_errors(kind: str, name: object) -> list[str]:
    if not isinstance(name, str) or not name:
        return ["metadata.name: Required value: name or generateName is required"]
    if kind in DNS_LABEL_KINDS:
        valid = len(name) <= 63 and DNS_LABEL.match(name)
        shape = "a lowercase RFC 1123 label"
    else:
        valid = len(name) <= 253 and DNS_SUBDOMAIN.match(name)
        shape = "a lowercase RFC 1123 subdomain"
    return [] if valid else [f"metadata.name: Invalid value: {name!r}: must be {shape} "
                             f"(lower-case letters, digits, '-' and '.')"]


def label_errors(labels: object) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return ["metadata.labels: must be a map of strings"]
    errors = []
    for key, value in labels.items():
        prefix, _, name = str(key).rpartition("/")
        if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or len(name) > 63 \
                or not _LABEL_NAME.match(name):
            errors.append(f"metadata.labels: Invalid value: {key!r}: not a valid label key")
        if not isinstance(value, str) or len(value) > 63 or (value and not _LABEL_NAME.match(value)):
            errors.append(f"metadata.labels: Invalid value: {value!r}: a label value must be at most 63 "
                          f"characters, alphanumeric, '-', '_' or '.', starting and ending alphanumeric")
    return errors


_SET_TERM = re.compile(r"^\s*(?P<key>[^\s!=()]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c` is two terms)."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [term for term in [*terms, current] if term.strip()]


def selector_matches(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Whether `labels` satisfy a label selector (equality, inequality, existence and set terms)."""
    labels = labels or {}
    for term in _split_terms(selector or ""):
        found = _SET_TERM.match(term)
        if found:
            values = {value.strip() for value in found["values"].split(",")}
            inside = found["key"] in labels and labels[found["key"]] in values
            if inside != (found["op"] == "in"):
                return False
            continue
        term = term.strip()
        if "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True
