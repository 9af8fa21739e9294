"""Git sources are fetched over https:// or ssh:// only; http:// and git:// (unencrypted: the code and any
credentials cross the network in clear, and can be altered on the way) only when the operator is started
with --allow-plaintext-git.

Before: any of the four schemes was accepted and cloned.
"""
from __future__ import annotations

import pytest

from codebase_operator import command
from codebase_operator.specs import InvalidSpec, check_git_url
from tests.security.operator_support import *  # noqa: F401,F403
from tests.security.operator_support import PROJECTS, RUNS, jobs_of, until_condition
from tests.support.resources import condition, project_manifest, run_manifest

ACCEPTED = ["https://git.example.com/team/repo.git", "ssh://git@git.example.com:2222/team/repo.git",
            "git@git.example.com:team/repo.git"]
PLAINTEXT = ["http://git.example.com/team/repo.git", "git://git.example.com/team/repo.git"]
NEVER = ["file:///etc", "ext::sh -c touch% /tmp/pwned", "-oProxyCommand=x@host:path", "https://", "/srv/repo.git"]

pytestmark = pytest.mark.usefixtures("operator_environment")


@pytest.mark.parametrize("url", ACCEPTED)
def test_encrypted_sources_are_accepted(url):
    check_git_url(url, allow_plaintext=False)


@pytest.mark.parametrize("url", PLAINTEXT)
def test_plaintext_sources_need_the_operator_flag(url):
    with pytest.raises(InvalidSpec, match="--allow-plaintext-git") as refused:
        check_git_url(url, allow_plaintext=False)
    assert "https:// or ssh://" in str(refused.value)
    check_git_url(url, allow_plaintext=True)


@pytest.mark.parametrize("url", NEVER)
def test_other_sources_are_refused_even_with_the_flag(url):
    with pytest.raises(InvalidSpec, match="must be an https:// or ssh:// URL"):
        check_git_url(url, allow_plaintext=True)


def test_the_flag_and_its_environment_variable(monkeypatch):
    def parse(*argv):
        parser = command.argparse.ArgumentParser()
        command.add_arguments(parser)
        return command.config_from_args(parser.parse_args(["--admin-database-url", "postgresql://a@h/p", *argv]))

    assert parse().allow_plaintext_git is False
    assert parse("--allow-plaintext-git").allow_plaintext_git is True
    monkeypatch.setenv("CODEBASE_MCP_ALLOW_PLAINTEXT_GIT", "true")
    assert parse().allow_plaintext_git is True


@pytest.mark.slow
async def test_a_plaintext_project_is_refused_and_no_job_runs(k8s_cluster, codebase_operator, test_kubelet):
    await k8s_cluster.client.create(PROJECTS, "default", project_manifest(
        "insecure", "insecure-source", source={"git": {"url": "http://git.example.com/team/repo.git"}}))
    project = await until_condition(k8s_cluster, PROJECTS, "insecure", "Ready", "False", "InvalidSpec")
    message = condition(project, "Ready")["message"]
    assert "http://" in message and "https:// or ssh://" in message and "--allow-plaintext-git" in message

    # A run of it is refused too (it never gets a database, and the run checks the source again).
    await k8s_cluster.client.create(RUNS, "default", run_manifest("insecure-run", "insecure"))
    await until_condition(k8s_cluster, RUNS, "insecure-run", "Succeeded", "Unknown", "WaitingForDatabase")
    assert not await jobs_of(k8s_cluster, "insecure-run")


@pytest.mark.slow
async def test_the_allow_flag_lets_a_plaintext_project_be_provisioned(
        k8s_cluster, configured_operator, unique_project_id, drop_databases):
    drop_databases.append(unique_project_id)
    await configured_operator(allow_plaintext_git=True)
    await k8s_cluster.client.create(PROJECTS, "default", project_manifest(
        "internal", unique_project_id, source={"git": {"url": "git://git.internal/team/repo.git"}}))
    await until_condition(k8s_cluster, PROJECTS, "internal", "Ready", "True", timeout=30)
