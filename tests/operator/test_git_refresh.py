"""Scheduled refreshes of git sources: the operator asks the remote for the ref's commit (`git ls-remote`,
no clone) and starts a run only when it moved; `status.lastIndexedCommit` records what a run indexed.
The scenario here is the issue's measure: after 10 refreshes, as many Jobs as the commit moved (+ the
first), and the history limits hold.

The remote is a local bare repository. The project names it by an https:// URL (the operator refuses
file://); git's own `url.<base>.insteadOf`, given to the operator's process and to the test kubelet's
containers through GIT_CONFIG_COUNT/KEY/VALUE, sends that URL to the bare repository.
"""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import logging
import subprocess
from pathlib import Path

import asyncpg
import pytest

from codebase_indexer import contract
from codebase_indexer.identifiers import database_name
from codebase_indexer.postgres import database_url
from codebase_operator import git_remote
from codebase_operator.specs import Source
from tests.operator import test_operator_scenarios as scenarios
from tests.operator.test_operator_scenarios import NS, events_of, get, jobs_of, until_condition, write_repo
from tests.operator.test_refresh import annotate, runs_of
from tests.support.k8s import eventually
from tests.support.resources import PROJECTS, RUNS, SECRETS, condition, project_manifest, run_manifest

drop_databases = scenarios.drop_databases
REMOTE_URL = "https://git.test/team/shop.git"
_GIT_IDENTITY = ["-c", "user.email=ci@example.com", "-c", "user.name=ci"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclasses.dataclass
class BareRemote:
    """A bare repository and a working clone that pushes to it."""
    bare: Path
    work: Path

    def push(self, path: str, text: str) -> str:
        """Commit a change to `path` and push it to main; the new commit."""
        (self.work / path).write_text(text)
        git("add", "-A", cwd=self.work)
        git(*_GIT_IDENTITY, "commit", "-qm", f"change {path}", cwd=self.work)
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)
        return self.head()

    def head(self) -> str:
        return git("rev-parse", "main", cwd=self.bare)


def redirect(url: str, target: str) -> dict[str, str]:
    """git configuration, as environment variables, that sends `url` to `target`."""
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"url.{target}.insteadOf", "GIT_CONFIG_VALUE_0": url}


@pytest.fixture
def remote(tmp_path: Path, monkeypatch, test_kubelet) -> BareRemote:
    bare, work = tmp_path / "remote.git", tmp_path / "work"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    write_repo(work)
    git("init", "-q", "-b", "main", cwd=work)
    git("remote", "add", "origin", str(bare), cwd=work)
    git("add", "-A", cwd=work)
    git(*_GIT_IDENTITY, "commit", "-qm", "first", cwd=work)
    git("push", "-q", "origin", "main", cwd=work)
    for name, value in redirect(REMOTE_URL, f"file://{bare}").items():
        monkeypatch.setenv(name, value)  # the operator's process (its ls-remote)
        test_kubelet.node_environment[name] = value  # the indexer's clone
    return BareRemote(bare, work)


@pytest.fixture
def operator_config(operator_config):
    """Checks for due refreshes often, and honours intervals of a second."""
    return dataclasses.replace(operator_config, refresh_check_interval=0.3, min_refresh_interval=1.0)


async def git_project(cluster, name, project_id, url=REMOTE_URL, **spec):
    await cluster.client.create(PROJECTS, NS, project_manifest(
        name, project_id, source={"git": {"url": url, "ref": "main"}}, **spec))
    return await until_condition(cluster, PROJECTS, name, "Ready", "True", timeout=30)


async def status_of(cluster, name):
    return (await get(cluster, PROJECTS, name)).get("status") or {}


async def checked_after(cluster, name, moment):
    """The project's status once its remote was checked later than `moment`."""
    status = await status_of(cluster, name)
    checked = (status.get("remote") or {}).get("checkedTime")
    return status if checked and checked > moment else None


async def indexed(cluster, name, commit):
    status = await status_of(cluster, name)
    return status if status.get("lastIndexedCommit") == commit else None


MOVES = (4, 8)  # the refreshes (1 to 10) before which a new commit is pushed


@pytest.mark.slow
async def test_ten_scheduled_refreshes_start_a_job_only_when_the_commit_moved_and_keep_the_history_limits(
        k8s_cluster, codebase_operator, test_kubelet, unique_project_id, drop_databases, remote):
    """The first refresh indexes (never indexed); an unchanged commit starts no run and no Job; a moved one
    exactly one, which records the commit; finished runs beyond spec.runHistory are deleted; the manual
    trigger runs although the commit did not move."""
    drop_databases.append(unique_project_id)
    await git_project(k8s_cluster, "shop", unique_project_id, refresh={"interval": "1s"},
                      runHistory={"succeeded": 2, "failed": 1})
    head = remote.head()
    status = await eventually(lambda: indexed(k8s_cluster, "shop", head), timeout=60, interval=0.2,
                              message="refresh 1: the first run indexed the remote's commit")
    assert status["lastIndexedCommitShort"] == head[:12]
    [first_run] = await runs_of(k8s_cluster, "shop")
    # The project records the commit while the run's handler finishes; the run's own status lands with
    # the handler's patch just after, together with its Succeeded condition.
    run = await until_condition(k8s_cluster, RUNS, first_run, "Succeeded", "True", timeout=30)
    assert run["status"]["commit"] == head
    for refresh_number in range(2, 11):
        if refresh_number in MOVES:
            head = remote.push("billing/invoice.py", f"def total(lines):\n    return {refresh_number}\n")
        status = await eventually(lambda before=status["remote"]["checkedTime"], commit=head: _checked_and_indexed(
            k8s_cluster, "shop", before, commit), timeout=60, interval=0.2, message=f"refresh {refresh_number}")
        if refresh_number not in MOVES:
            assert condition({"status": status}, "RemoteChecked")["reason"] == "CommitUnchanged"

    assert len(set(test_kubelet.started)) == len(MOVES) + 1  # a Job per moved commit, and the first
    runs = await runs_of(k8s_cluster, "shop")
    assert len(runs) == 2 and status["lastRun"]["name"] in runs  # runHistory.succeeded: the newest 2 kept

    await annotate(k8s_cluster, "shop")
    runs = await eventually(lambda: _at_least(runs_of(k8s_cluster, "shop"), 3), timeout=15, interval=0.2,
                            message="the run the refresh annotation asked for, the commit unchanged")
    assert len(runs) == 3
    manual = next(run for run in await k8s_cluster.client.list(RUNS, NS)
                  if run["metadata"]["labels"].get(contract.TRIGGER_LABEL) == "manual")
    await k8s_cluster.client.patch(RUNS, NS, manual["metadata"]["name"], {"spec": {"cancel": True}})  # not needed


async def _checked_and_indexed(cluster, name, before, commit):
    """The status once the remote was checked after `before` and `commit` is indexed, with no run unfinished."""
    status = await checked_after(cluster, name, before)
    if status is None or status.get("lastIndexedCommit") != commit or status.get("activeRun"):
        return None
    return status


async def _at_least(listing, count):
    found = await listing
    return found if len(found) >= count else None


@pytest.mark.slow
async def test_the_shards_of_a_run_index_the_commit_pinned_when_its_job_was_made(
        k8s_cluster, codebase_operator, test_kubelet, postgres_url, unique_project_id, drop_databases, remote):
    """Each shard clones the ref itself; a branch that moves between the Job's creation and the pods'
    clones must not give the shards different trees. The operator pins the ref's commit in the Job."""
    drop_databases.append(unique_project_id)
    await git_project(k8s_cluster, "pinned", unique_project_id, indexing={"parallelism": 2})
    pinned = remote.head()
    test_kubelet.hold("wide")
    await k8s_cluster.client.create(RUNS, NS, run_manifest("wide", "pinned"))
    [job] = await eventually(lambda: _at_least(jobs_of(k8s_cluster, "wide"), 1), timeout=30, message="the run's Job")
    env = {item["name"]: item.get("value") for item in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CODEBASE_MCP_GIT_COMMIT"] == pinned and env["CODEBASE_MCP_GIT_REF"] == "main"

    moved = remote.push("billing/invoice.py", "def total(lines):\n    return 'moved'\n")  # before any clone
    test_kubelet.release("wide")
    run = await until_condition(k8s_cluster, RUNS, "wide", "Succeeded", "True", timeout=90)
    assert run["status"]["commit"] == pinned != moved
    assert run["status"]["progress"]["shardSummary"] == "2/2 shards"
    conn = await asyncpg.connect(database_url(postgres_url, database_name(unique_project_id, NS)))
    try:
        indexed = await conn.fetchval("SELECT content FROM files WHERE path = 'billing/invoice.py'")
    finally:
        await conn.close()
    assert indexed == scenarios.REPO_FILES["billing/invoice.py"]


async def test_a_run_is_pinned_only_when_several_shards_clone_a_ref_the_remote_can_resolve(caplog):
    from codebase_operator.indexing_runs import pin_commit

    logger = logging.getLogger("test-pin")
    gone = Source(git_url="https://git.test.invalid/team/gone.git", git_ref="main")
    with caplog.at_level(logging.WARNING, logger="test-pin"):
        assert await pin_commit(None, NS, gone, 2, logger) is gone  # the shards clone the ref, unpinned
    assert "the shards clone main each, unpinned" in caplog.text
    commit = Source(git_url=gone.git_url, git_ref="a" * 40)
    assert await pin_commit(None, NS, commit, 2, logger) is commit  # a commit pins itself
    assert await pin_commit(None, NS, gone, 1, logger) is gone  # one clone cannot disagree with itself
    path = Source(path="shop")
    assert await pin_commit(None, NS, path, 4, logger) is path


async def test_a_remote_that_cannot_answer_is_a_condition_and_an_event_and_no_run(
        k8s_cluster, codebase_operator, unique_project_id, drop_databases, monkeypatch):
    drop_databases.append(unique_project_id)
    url = "https://robot:hunter2-token@git.test.invalid/team/gone.git"
    await git_project(k8s_cluster, "gone", unique_project_id, url=url, refresh={"interval": "1s"})
    project = await until_condition(k8s_cluster, PROJECTS, "gone", "RemoteChecked", "False", "RemoteCheckFailed",
                                    timeout=30)
    message = condition(project, "RemoteChecked")["message"]
    assert "no run now" in message and "hunter2-token" not in str(project["status"])
    first_check = project["status"]["remote"]["checkedTime"]
    # Not retried in a loop: the next check waits an interval (1 s here, checks every 0.3 s).
    later = await eventually(lambda: checked_after(k8s_cluster, "gone", first_check), timeout=15, interval=0.2,
                             message="the next check")
    checked = datetime.datetime.fromisoformat(later["remote"]["checkedTime"])
    assert datetime.datetime.fromisoformat(later["nextRefreshTime"]) - checked == datetime.timedelta(seconds=1)
    assert await runs_of(k8s_cluster, "gone") == []
    assert ("RemoteCheckFailed", "Warning") in await events_of(k8s_cluster, "gone")
    events = [e for e in await k8s_cluster.client.list("v1/events", NS) if e["involvedObject"]["name"] == "gone"]
    assert "hunter2-token" not in str(events)


def test_ls_remote_asks_for_the_exact_ref_names_and_reads_branch_before_tag():
    assert git_remote.ls_remote_command("https://h/r.git", "main") == [
        "git", "ls-remote", "--", "https://h/r.git", "refs/heads/main", "refs/tags/main", "refs/tags/main^{}"]
    branch, tag, peeled = "a" * 40, "b" * 40, "c" * 40
    listing = f"{tag}\trefs/tags/v1\n{peeled}\trefs/tags/v1^{{}}\n"
    assert git_remote.commit_of(listing, "v1") == peeled
    assert git_remote.commit_of(f"{branch}\trefs/heads/v1\n" + listing, "v1") == branch
    with pytest.raises(git_remote.RemoteCheckFailed, match="no branch or tag 'main'"):
        git_remote.commit_of(f"{branch}\trefs/heads/feature/main\n", "main")


async def test_ls_remote_credentials_reach_git_through_askpass_never_argv(monkeypatch, tmp_path):
    """The password is in git's environment for its askpass script only; the operator's admin database URL
    is not in git's environment at all."""
    seen = {}

    async def fake_exec(*argv, env, **kwargs):
        seen["argv"], seen["env"] = list(argv), dict(env)
        seen["askpass"] = Path(env["GIT_ASKPASS"]).read_text()
        seen["answer"] = subprocess.run([env["GIT_ASKPASS"], "Password for 'https://git.test': "], env=env,
                                        capture_output=True, text=True).stdout
        return await _real_exec("git", "--version", stdout=asyncio.subprocess.PIPE,
                                stderr=asyncio.subprocess.PIPE)

    monkeypatch.setenv("CODEBASE_MCP_ADMIN_DATABASE_URL", "postgresql://admin:db-admin-pass@db/postgres")
    monkeypatch.setattr(git_remote.asyncio, "create_subprocess_exec", fake_exec)
    source = Source(git_url=REMOTE_URL, git_ref="main")
    with pytest.raises(git_remote.RemoteCheckFailed, match="no branch or tag"):  # `git --version` lists no refs
        await git_remote.remote_commit(source, git_remote.GitCredentials("robot", "s3cret-token"))
    assert "s3cret-token" not in " ".join(seen["argv"]) and "s3cret-token" not in seen["askpass"]
    assert seen["answer"] == "s3cret-token\n" and seen["env"]["GIT_TERMINAL_PROMPT"] == "0"
    assert not [value for value in seen["env"].values() if "db-admin-pass" in value]
    assert "s3cret-token" not in repr(git_remote.GitCredentials("robot", "s3cret-token"))


_real_exec = asyncio.create_subprocess_exec


async def test_a_git_secret_that_did_not_opt_in_is_refused_before_git_runs(k8s_cluster, operator_config):
    from codebase_operator import kube
    from codebase_operator.context import Context

    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
              "data": {"password": base64.b64encode(b"tok").decode()}}
    await k8s_cluster.client.create(SECRETS, NS, secret)
    ctx = Context(config=operator_config, api=kube.pykube.HTTPClient(kube.load_config(operator_config.kubeconfig)))
    with pytest.raises(git_remote.RemoteCheckFailed, match=contract.USABLE_LABEL):
        await git_remote.source_credentials(ctx, NS, Source(git_url=REMOTE_URL, git_credentials_secret="creds"))


async def test_a_git_that_hangs_is_killed_at_the_timeout_and_its_errors_are_redacted():
    started = asyncio.get_running_loop().time()
    with pytest.raises(git_remote.RemoteCheckFailed, match="did not answer within 0.3 s"):
        await git_remote._run(["sleep", "30"], {"PATH": "/usr/bin:/bin"}, timeout=0.3)
    assert asyncio.get_running_loop().time() - started < 5
    token = "ghp_" + "a1B2c3D4e5" * 4
    with pytest.raises(git_remote.RemoteCheckFailed) as failed:
        await git_remote._run(["sh", "-c", f"echo 'fatal: https://robot:{token}@git.test/r.git refused' >&2; "
                                           "exit 128"], {"PATH": "/usr/bin:/bin"}, timeout=5)
    assert "exit code 128" in str(failed.value) and token not in str(failed.value)


async def test_a_ref_that_is_a_full_commit_names_itself_without_asking_the_remote(monkeypatch):
    async def no_git(*args, **kwargs):
        raise AssertionError("git was run")

    monkeypatch.setattr(git_remote.asyncio, "create_subprocess_exec", no_git)
    pinned = "0123456789abcdef" * 2 + "01234567"
    assert await git_remote.remote_commit(Source(git_url=REMOTE_URL, git_ref=pinned), git_remote.GitCredentials()) \
        == pinned
    with pytest.raises(git_remote.RemoteCheckFailed, match="not a valid git ref"):
        await git_remote.remote_commit(Source(git_url=REMOTE_URL, git_ref="--upload-pack=sh"),
                                       git_remote.GitCredentials())


def test_a_successful_run_records_its_commit_and_one_without_a_commit_clears_it():
    from codebase_operator.indexing_runs import _indexed_commit_ops

    commit = "f" * 40
    assert _indexed_commit_ops({}, commit) == [
        {"op": "add", "path": "/status/lastIndexedCommit", "value": commit},
        {"op": "add", "path": "/status/lastIndexedCommitShort", "value": commit[:12]}]
    # The project's source became a path: the Commit column must not show a commit it no longer holds.
    recorded = {"lastIndexedCommit": commit, "lastIndexedCommitShort": commit[:12]}
    assert _indexed_commit_ops(recorded, None) == [{"op": "remove", "path": "/status/lastIndexedCommit"},
                                                  {"op": "remove", "path": "/status/lastIndexedCommitShort"}]
    assert _indexed_commit_ops({}, None) == []
