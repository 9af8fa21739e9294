"""Events posted from outside kopf's handlers (kopf's own poster only serves handlers)."""
from __future__ import annotations

import datetime
import secrets
from collections.abc import Mapping
from typing import Any


def event_manifest(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> dict[str, Any]:
    """An Event about `obj`, to create with kube.create(api, kube.Event, ...)."""
    meta = obj["metadata"]
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta["name"],
                           "namespace": meta["namespace"], "uid": meta.get("uid")},
        "type": type_, "reason": reason, "message": message[:1024],
        "source": {"component": "codebase-operator"}, "reportingComponent": "codebase-operator",
        "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
