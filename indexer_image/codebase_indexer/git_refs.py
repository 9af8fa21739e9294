"""The one rule for a git ref (branch, tag or commit) that a run may clone.

The CRDs (crds/: `IndexingRun.spec.gitRef`, `CodebaseProject.spec.source.git.ref`) carry
GIT_REF_PATTERN and MAX_GIT_REF_LENGTH verbatim, the operator checks specs with
`check_git_ref`, and the indexer checks its --git-ref with it, so a ref that passes
admission is one the indexer clones.

The pattern is a subset of what `git check-ref-format` accepts, written for both RE2 (the
API server) and Python: path components of letters, digits, `_ + @ - .`, each starting with
a letter, digit or `_` (so never `-`, which git would read as an option, nor `.` or `@`),
with no `..`, no trailing `.`, no empty component and no `@{`.
"""
from __future__ import annotations

import re

MAX_GIT_REF_LENGTH = 255
_COMPONENT = r"[A-Za-z0-9_]([A-Za-z0-9_+@-]|\.[A-Za-z0-9_+@-])*"
GIT_REF_PATTERN = rf"^{_COMPONENT}(/{_COMPONENT})*$"
_GIT_REF = re.compile(GIT_REF_PATTERN)


class InvalidGitRef(ValueError):
    """A git ref no run may clone; the message says what a valid one looks like."""


def check_git_ref(ref: object) -> str:
    """Return `ref` when it is a ref a run may clone, or raise InvalidGitRef saying why not."""
    if not isinstance(ref, str) or not ref:
        raise InvalidGitRef("a git ref must be a non-empty string such as 'main' or 'v1.2.0'")
    if len(ref) > MAX_GIT_REF_LENGTH:
        raise InvalidGitRef(f"git ref is {len(ref)} characters long; the limit is {MAX_GIT_REF_LENGTH}")
    if not _GIT_REF.fullmatch(ref):
        raise InvalidGitRef(f"{ref!r} is not a valid git ref: name a branch, tag or commit with letters, "
                            f"digits and '_ + @ - .' in '/'-separated parts, each starting with a letter, "
                            f"digit or '_', without '..' or a trailing '.'")
    return ref
