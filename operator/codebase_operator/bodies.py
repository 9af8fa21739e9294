"""What the operator reads from the objects kopf hands its handlers (no API calls here)."""
from __future__ import annotations

import kopf


def namespace_of(body: kopf.Body) -> str:
    """The namespace of one of the operator's resources: both kinds are namespaced, so there is one."""
    namespace = body.metadata.namespace
    if not namespace:
        raise kopf.PermanentError(f"{body.metadata.name} has no namespace; its kind must be namespaced")
    return namespace
