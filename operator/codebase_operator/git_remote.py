"""Which commit a git source's ref is at, asked of the remote without cloning (`git ls-remote`).

Run as an argument list (no shell) in a child process that asyncio waits for, so the
operator's event loop never blocks; bounded by a timeout, after which the child's process
group is killed. Credentials (the project's git Secret) reach git only through GIT_ASKPASS
(codebase_indexer.git_access), as in the indexer: never in argv, and error messages are
redacted before they leave this module. The operator's own secrets are not in git's environment.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import os
import signal
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codebase_indexer.configuration import environment_names
from codebase_indexer.credentials import redact
from codebase_indexer.git_access import COMMIT, git_environment
from codebase_indexer.git_refs import InvalidGitRef, check_git_ref

from . import kube
from .context import Context
from .secret_refs import check_usable
from .settings import OperatorSettings
from .specs import InvalidSpec, Source

LS_REMOTE_TIMEOUT = 30.0
_MAX_OUTPUT = 64 * 1024  # a few lines are expected: the ref patterns are exact
_MAX_MESSAGE = 300


class RemoteCheckFailed(Exception):
    """The remote could not say where the ref is; the message is redacted and names no URL."""


@dataclasses.dataclass(frozen=True)
class GitCredentials:
    username: str | None = dataclasses.field(default=None, repr=False)
    password: str | None = dataclasses.field(default=None, repr=False)


def ls_remote_command(url: str, ref: str | None) -> list[str]:
    """git's argv: the ref's exact names (branch, tag, peeled annotated tag), or HEAD without a ref."""
    patterns = ["HEAD"] if ref is None else [f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"]
    return ["git", "ls-remote", "--", url, *patterns]


def commit_of(output: str, ref: str | None) -> str:
    """The commit `git clone --branch REF` would check out: the branch, else the tag (peeled)."""
    listed: dict[str, str] = {}
    for line in output.splitlines():
        commit, _, name = line.partition("\t")
        if COMMIT.fullmatch(commit):
            listed[name.strip()] = commit
    names = ["HEAD"] if ref is None else [f"refs/heads/{ref}", f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}"]
    for name in names:
        if name in listed:
            return listed[name]
    raise RemoteCheckFailed(f"the remote has no branch or tag {ref!r}" if ref else "the remote has no HEAD")


async def remote_commit(source: Source, credentials: GitCredentials, *,
                        timeout: float = LS_REMOTE_TIMEOUT) -> str:
    """The commit the source's ref is at on its remote; RemoteCheckFailed when git cannot say."""
    ref = source.git_ref
    if ref is not None:
        try:
            check_git_ref(ref)
        except InvalidGitRef as exc:
            raise RemoteCheckFailed(str(exc)) from None
        if COMMIT.fullmatch(ref):
            return ref  # a commit names itself
    with tempfile.TemporaryDirectory(prefix="ls-remote-") as work:
        env = git_environment(Path(work), username=credentials.username, password=credentials.password,
                              hidden=_operator_secrets())
        output = await _run(ls_remote_command(source.git_url or "", ref), env, timeout)
    return commit_of(output, ref)


async def _run(command: list[str], env: Mapping[str, str], timeout: float) -> str:
    try:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=dict(env), start_new_session=True)
    except OSError as exc:
        raise RemoteCheckFailed(f"cannot run git: {exc.strerror or exc}") from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        raise RemoteCheckFailed(f"git ls-remote did not answer within {timeout:g} s") from None
    finally:
        if process.returncode is None:  # timed out, or this task was cancelled
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if process.returncode != 0:
        detail = stderr.decode(errors="replace").strip()[-_MAX_MESSAGE:]
        raise RemoteCheckFailed(f"git ls-remote failed (exit code {process.returncode}): "
                                f"{redact(detail) or 'no message'}")
    return stdout[:_MAX_OUTPUT].decode(errors="replace")


def _operator_secrets() -> set[str]:
    return environment_names(OperatorSettings, secret=True)


async def source_credentials(ctx: Context, namespace: str, source: Source) -> GitCredentials:
    """The username and password of the project's git Secret (if it names one that opted in)."""
    if not source.git_credentials_secret:
        return GitCredentials()
    secret = await kube.get(ctx.api, kube.Secret, namespace, source.git_credentials_secret)
    if secret is None:
        raise RemoteCheckFailed(f"spec.source.git.credentialsSecret names Secret "
                                f"{source.git_credentials_secret!r}, which does not exist")
    try:
        check_usable("spec.source.git.credentialsSecret", secret)
    except InvalidSpec as exc:
        raise RemoteCheckFailed(str(exc)) from None
    data = secret.get("data") or {}
    return GitCredentials(username=_decoded(data, "username"), password=_decoded(data, "password"))


def _decoded(data: Mapping[str, Any], key: str) -> str | None:
    try:
        return base64.b64decode(data[key]).decode() if data.get(key) else None
    except (binascii.Error, UnicodeDecodeError):
        raise RemoteCheckFailed(f"the git Secret's key {key!r} is not valid base64 text") from None
