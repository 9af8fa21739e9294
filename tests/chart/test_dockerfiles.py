"""The three Dockerfiles, linted for what a cluster admin checks first."""
from __future__ import annotations

import re
import tomllib

import pytest

from chart_support import REPO_ROOT

DOCKERFILES = {
    "indexer": REPO_ROOT / "indexer_image" / "Dockerfile",
    "gateway": REPO_ROOT / "mcp_gateway" / "Dockerfile",
    "operator": REPO_ROOT / "operator" / "Dockerfile",
}
# An exact x.y.z version tag (3.11.13-slim-bookworm) or a digest; never a floating tag.
PINNED = re.compile(r"^[\w./-]+((:\d+\.\d+\.\d+[\w.-]*)(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})$")


def instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages(path) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """Global ARG defaults, and the instructions of each stage (FROM first)."""
    args, result = {}, []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            result.append([])
        if keyword == "ARG" and not result and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
        if result:
            result[-1].append((keyword, rest))
    return args, result


@pytest.mark.parametrize("component", DOCKERFILES)
def test_base_images_are_pinned(component):
    args, all_stages = stages(DOCKERFILES[component])
    assert all_stages, "no FROM"
    for stage in all_stages:
        image = stage[0][1].split()[0]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        if image in {s[0][1].split()[-1] for s in all_stages if " AS " in s[0][1].upper()}:
            continue  # FROM an earlier stage
        assert "latest" not in image
        assert (":" in image.rsplit("/", 1)[-1] or "@sha256:" in image) and PINNED.match(image), \
            f"{component}: base image {image!r} is not pinned to an exact version or digest"


@pytest.mark.parametrize("component", DOCKERFILES)
def test_final_stage_runs_as_a_numeric_non_root_user(component):
    _, all_stages = stages(DOCKERFILES[component])
    users = [rest for keyword, rest in all_stages[-1] if keyword == "USER"]
    assert users, f"{component}: the final stage sets no USER and would run as root"
    uid = users[-1].split(":")[0]
    # numeric, so that Kubernetes' runAsNonRoot can verify it
    assert uid.isdigit() and int(uid) != 0, f"{component}: USER {users[-1]!r}"
    assert any(keyword == "ENTRYPOINT" for keyword, _ in all_stages[-1])


@pytest.mark.parametrize("component", ["indexer", "gateway"])
def test_model_images_use_cpu_torch_and_stay_offline(component):
    text = re.sub(r"\\\n", " ", DOCKERFILES[component].read_text())
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (torch_pin,) = [d for d in pyproject["project"]["optional-dependencies"]["local"] if d.startswith("torch")]
    assert re.search(rf"pip install {re.escape(torch_pin)} --index-url https://download\.pytorch\.org/whl/cpu", text)
    assert "HF_HUB_OFFLINE=1" in text
    # the baked model is loaded once at build time, as the runtime user, offline
    final = text.split("\nFROM ")[-1]
    assert final.index("USER 10001") < final.index("get_model_path()")


def test_operator_image_has_no_torch():
    text = DOCKERFILES["operator"].read_text()
    assert "torch==" not in text and "[operator]" in text


def test_dockerignore_sends_only_the_sources():
    lines = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*"  # allow-list: .git, .venv, tools/bin, tests never reach the build context
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "indexer_image", "mcp_gateway", "operator"}


def test_the_linter_catches_root_and_latest(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nENTRYPOINT [\"x\"]\n")
    DOCKERFILES["bad"] = bad
    try:
        with pytest.raises(AssertionError):
            test_base_images_are_pinned("bad")
        with pytest.raises(AssertionError):
            test_final_stage_runs_as_a_numeric_non_root_user("bad")
        bad.write_text("FROM python:3.11-slim\nUSER 10001\nENTRYPOINT [\"x\"]\n")
        test_final_stage_runs_as_a_numeric_non_root_user("bad")
        with pytest.raises(AssertionError):  # a minor tag floats with every patch release
            test_base_images_are_pinned("bad")
        bad.write_text("FROM python:3.11.13-slim-bookworm\nUSER 10001\nENTRYPOINT [\"x\"]\n")
        test_base_images_are_pinned("bad")
    finally:
        del DOCKERFILES["bad"]


def test_indexer_jobs_run_as_the_indexer_image_user():
    from codebase_operator.jobs import INDEXER_UID

    _, all_stages = stages(DOCKERFILES["indexer"])
    users = [rest for keyword, rest in all_stages[-1] if keyword == "USER"]
    assert users[-1] == f"{INDEXER_UID}:{INDEXER_UID}"
