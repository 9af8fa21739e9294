"""values.schema.json turns a wrong value into a clear error at install time instead of a broken release."""
from __future__ import annotations

import json

import pytest

from chart_support import CHART

BAD_VALUES = [
    # (helm --set arguments, a fragment of the error helm must print)
    (["unknownKey=1"], "additional properties 'unknownKey' not allowed"),
    (["gateway.typo=1"], "additional properties 'typo' not allowed"),
    (["gateway.replicas=two"], "/gateway/replicas"),
    (["gateway.image.tag=latest"], "/gateway/image/tag"),
    (["indexer.image.digest=md5:abc"], "/indexer/image/digest"),
    (["gateway.image.pullPolicy=Sometimes"], "/gateway/image/pullPolicy"),
    (["gateway.service.type=Ingress"], "/gateway/service/type"),
    (["gateway.service.nodePort=80"], "/gateway/service/nodePort"),
    (["gateway.port=70000"], "/gateway/port"),
    (["gateway.logLevel=chatty"], "/gateway/logLevel"),
    (["gateway.auth.token=short"], "/gateway/auth/token"),
    (["workspace.mountPath=relative/path"], "/workspace/mountPath"),
    (["workspace.type=nfs"], "/workspace/type"),
    (["workspace.persistentVolumeClaim.size=lots"], "/workspace/persistentVolumeClaim/size"),
    (["workspace.persistentVolumeClaim.claimName=Not_A_Claim"], "/workspace/persistentVolumeClaim/claimName"),
    (["postgresql.enabled=false"], "/externalDatabase/existingSecret"),
    (["postgresql.persistence.size=lots"], "/postgresql/persistence/size"),
    (["postgresql.auth.username=Robert'); DROP"], "/postgresql/auth/username"),
    (["embedding.provider=word2vec"], "/embedding/provider"),
    (["embedding.provider=openai"], "/embedding/url"),
    (["operator.extraWatchNamespaces[0]=Not_A_Namespace"], "/operator/extraWatchNamespaces/0"),
    (["operator.verbose=loud"], "/operator/verbose"),
    (["operator.refreshCheckIntervalSeconds=0"], "/operator/refreshCheckIntervalSeconds"),
    (["operator.minRefreshIntervalSeconds=soon"], "/operator/minRefreshIntervalSeconds"),
    (["indexer.backoffLimit=100"], "/indexer/backoffLimit"),
    (["indexer.activeDeadlineSeconds=-1"], "/indexer/activeDeadlineSeconds"),
    (["gateway.resources.requests.memory=a lot"], "/gateway/resources/requests/memory"),
    (["tests.enabled=maybe"], "/tests/enabled"),
]


@pytest.mark.parametrize("set_args, message", BAD_VALUES, ids=[args[0] for args, _ in BAD_VALUES])
def test_bad_values_are_rejected_with_a_message(helm, set_args, message):
    args = [part for item in set_args for part in ("--set", item)]
    result = helm.template(*args, check=False)
    assert result.returncode != 0, f"helm accepted {set_args}"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr, result.stderr


def test_lint_fails_on_bad_values_too(helm):
    result = helm.run("lint", str(CHART), "--set", "gateway.replicas=two", check=False)
    assert result.returncode != 0 and "/gateway/replicas" in result.stdout + result.stderr


def test_every_object_in_the_schema_is_closed():
    """additionalProperties: false everywhere values are ours (free-form Kubernetes maps excepted)."""
    free_form = {"global", "podSecurityContext", "containerSecurityContext", "affinity", "nodeSelector",
                 "annotations", "podAnnotations", "labels", "requests", "limits"}
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node: dict, path: str) -> None:
        if node.get("type") == "object" and path.rsplit(".", 1)[-1] not in free_form:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}")

    walk(schema, "values")
    for name, definition in schema["definitions"].items():  # image, resources: shared through $ref
        walk(definition, f"definitions.{name}")
