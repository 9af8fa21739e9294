"""One rule for git refs: what the API server admits, the operator accepts and the indexer clones.

A ref the CRD schema admitted but the indexer refused used to pass admission and fail later,
in its Job (`v1+build`); a ref the operator accepted could start with '-' (read by git as an
option) or be a bare '@'. The same list of refs goes through all three here.
"""
from __future__ import annotations

import json

import pytest

from codebase_indexer import indexer_main
from codebase_operator.specs import InvalidSpec, check_project_spec, check_run_spec
from tests.support.crds import validate
from tests.support.resources import project_manifest, run_manifest

ACCEPTED = ["main", "v1.2.0", "v1+build", "release/2024.1", "feature/x@y", "user_branch", "v1.0-rc.1",
            "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "x" * 255]
REFUSED = ["@", "-upload-pack=touch /tmp/pwned", "--help", "main..other", "main.", ".hidden", "a/.b", "a//b",
           "/main", "main/", "main;rm -rf", "a b", "a@{1}", "ref~1", "ref^", "a:b", "ré", "x" * 256]


def run_admitted(ref: str) -> bool:
    return validate(run_manifest("r", "lib", gitRef=ref)) == []


def project_admitted(ref: str) -> bool:
    git = {"url": "https://git.example.com/lib.git", "ref": ref}
    return validate(project_manifest("lib", "lib", source={"git": git})) == []


def operator_accepts(ref: str) -> bool:
    try:
        check_run_spec("r", {"projectRef": {"name": "lib"}, "gitRef": ref})
    except InvalidSpec:
        return False
    git = {"url": "https://git.example.com/lib.git", "ref": ref}
    check_project_spec("lib", {"projectId": "lib", "source": {"git": git}}, "default")  # must agree
    return True


def indexer_accepts(ref: str, tmp_path, capsys, monkeypatch) -> bool:
    """The indexer's own verdict on the ref its Job passes in CODEBASE_MCP_GIT_REF: InvalidArguments
    before cloning, or a clone attempt (of a missing repository)."""
    monkeypatch.setenv("CODEBASE_MCP_GIT_REF", ref)
    code = indexer_main.main(["--database-url", "postgresql://nobody@127.0.0.1:1/none", "--project", "lib",
                              "--git-url", str(tmp_path / "missing-repo"), "--work-dir", str(tmp_path)])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if result["reason"] == "InvalidArguments":
        assert code == indexer_main.EXIT_USAGE and "git ref" in result["message"]
        return False
    assert result["reason"] == "GitCloneFailed", result
    return True


@pytest.mark.parametrize("ref", ACCEPTED)
def test_a_valid_ref_is_admitted_accepted_and_cloned(ref, tmp_path, capsys, monkeypatch):
    assert run_admitted(ref) and project_admitted(ref)
    assert operator_accepts(ref)
    assert indexer_accepts(ref, tmp_path, capsys, monkeypatch)


@pytest.mark.parametrize("ref", REFUSED)
def test_an_invalid_ref_is_refused_by_the_schema_the_operator_and_the_indexer(ref, tmp_path, capsys, monkeypatch):
    assert not run_admitted(ref) and not project_admitted(ref)
    assert not operator_accepts(ref)
    with pytest.raises(InvalidSpec, match=r"spec\.source\.git\.ref: .*git ref"):
        check_project_spec("lib", {"projectId": "lib",
                                   "source": {"git": {"url": "https://git.example.com/lib.git", "ref": ref}}},
                           "default")
    assert not indexer_accepts(ref, tmp_path, capsys, monkeypatch)


def test_a_project_without_a_ref_clones_the_default_branch():
    assert project_admitted("")
    check_project_spec("lib", {"projectId": "lib", "source": {"git": {"url": "https://git.example.com/lib.git",
                                                                      "ref": ""}}}, "default")


def test_a_trailing_newline_is_refused_by_the_operator():
    with pytest.raises(InvalidSpec, match="not a valid git ref"):
        check_run_spec("r", {"projectRef": {"name": "lib"}, "gitRef": "main\n"})
