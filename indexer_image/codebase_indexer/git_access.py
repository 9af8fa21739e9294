"""How git is run against a remote, by the indexer (clone) and the operator (ls-remote).

git gets its arguments as a list, never through a shell, and never prompts. Repository
credentials reach it only through GIT_ASKPASS: a script that prints them from its own
environment, so they are in no command line, no file and no message. The caller's own
secrets (database URLs, API keys) are left out of git's environment altogether.
"""
from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

# A full commit id: SHA-1 (40 hex digits) or SHA-256 (64).
COMMIT = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")

ASKPASS_SCRIPT = """#!/bin/sh
# git asks for credentials through this script; they come from the environment, never argv.
case "$1" in
  Username*) printf '%s\\n' "$GIT_USERNAME" ;;
  *) printf '%s\\n' "$GIT_PASSWORD" ;;
esac
"""


def git_environment(work: Path, *, username: str | None, password: str | None, hidden: Collection[str],
                    environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """git's environment: the process's own without the `hidden` names, no terminal prompt, and
    (when a password is given) an askpass script written into `work` that answers git's prompts."""
    source = os.environ if environ is None else environ
    env = {name: value for name, value in source.items() if name not in hidden}
    env["GIT_TERMINAL_PROMPT"] = "0"
    if password:
        askpass = work / "askpass.sh"
        askpass.write_text(ASKPASS_SCRIPT)
        askpass.chmod(0o700)
        env.update(GIT_ASKPASS=str(askpass), GIT_USERNAME=username or "", GIT_PASSWORD=password)
    return env
