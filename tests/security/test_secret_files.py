"""Item 2: secret files and credential-bearing chunks never reach the index.

On the old code a repository's `.env`, private keys, `.aws/credentials`, `.ssh/` and a
token-bearing `.npmrc` were chunked, stored and returned by `search_code`, and so was a
token pasted into source code. Now, through the real stdio gateway, its indexer process and
PostgreSQL: the files are skipped with reason `secret`, chunks carrying a well-known
credential are left out and counted, and a file re-included on purpose in the repository's
`.codebase-mcp/config.json` is indexed.
"""
from __future__ import annotations

import json
import uuid

import pytest

from codebase_indexer.scanning import ScanOptions, SkipCounter, list_candidates
from codebase_indexer.secret_files import RepositoryConfigError
from tests.gateway.conftest import stdio_client, wait_for_job
from tests.repo_files import write_tree

# Built at run time so that no scanner flags this test file itself.
GITHUB_TOKEN = "ghp_" + "Q7w3" * 9
AWS_KEY_ID = "AKIA" + "ZX7QM2PL4RT9VB3N"
PRIVATE_KEY = ("-----BEGIN RSA " "PRIVATE KEY-----\nMIIEowIBAAKCAQEAzQ7deploykey\n"
               "-----END RSA " "PRIVATE KEY-----\n")
DB_PASSWORD = "hunter2-database-password"

SECRET_FILES = {
    ".env": f"DB_PASSWORD={DB_PASSWORD}\n",
    ".env.production": f"DB_PASSWORD={DB_PASSWORD}-prod\n",
    "deploy/id_rsa": PRIVATE_KEY,
    "home/.ssh/config": f"Host prod\n  IdentityFile ~/.ssh/id_rsa  # {DB_PASSWORD}\n",
    "certs/server.pem": PRIVATE_KEY,
    "certs/tls.key": PRIVATE_KEY,
    ".aws/credentials": f"[default]\naws_access_key_id = {AWS_KEY_ID}\n",
    ".npmrc": f"//registry.npmjs.org/:_authToken=npm_{DB_PASSWORD}\n",
    ".netrc": f"machine git.example.com login deploy password {DB_PASSWORD}\n",
    "vault.kdbx": b"\x03\xd9\xa2\x9a keepass " + DB_PASSWORD.encode(),
}
ORDINARY_FILES = {
    "app.py": "def start_application():\n    \"\"\"Start the storefront web application.\"\"\"\n    return 'started'\n",
    "settings.py": (
        "def storefront_currency():\n    return 'EUR'\n\n\n"
        f"def github_client():\n    return connect(token='{GITHUB_TOKEN}')\n"
    ),
    "docs/deploy.md": f"# Deploying\n\nRun the deploy script.\n\nOld key id: {AWS_KEY_ID}\n",
    "web/.npmrc": "registry=https://registry.example.com/\n",
    ".env.example": "DB_PASSWORD=change-me-placeholder\n",
    ".gitignore": "!.env\n",  # a re-include in .gitignore does not bring a secret back
}


def repository(tmp_path, project: str):
    repo = write_tree(tmp_path / "shop", {**SECRET_FILES, **ORDINARY_FILES})
    (repo / "notes").mkdir()
    (repo / "notes/env-copy.txt").symlink_to("../.env")
    config = {"version": 1, "project": {"name": project}, "indexing": {"include_secrets": [".env.example"]}}
    write_tree(repo, {".codebase-mcp/config.json": json.dumps(config)})
    return repo


async def search(client, project: str, query: str) -> list[dict]:
    found = await client.call_tool("search_code", {"query": query, "project_id": project,
                                                   "mode": "lexical", "limit": 50})
    return found.data["results"]


@pytest.mark.slow
async def test_secret_files_and_credential_chunks_are_left_out_and_counted(tmp_path):
    project = f"secrets-{uuid.uuid4().hex[:8]}"
    repo = repository(tmp_path, project)

    async with stdio_client() as client:
        started = (await client.call_tool("start_indexing_background", {"repo_path": str(repo),
                                                                        "project_id": project})).data
        status = await wait_for_job(client, started["job_id"], timeout=600)  # a shared machine can be slow
        assert status["status"] == "completed", status
        summary = status["summary"]
        assert summary["skipped_by_reason"]["secret"] == len(SECRET_FILES) + 1  # and the symlink to .env
        assert summary["chunks_skipped_by_reason"] == {"secret": 2}  # github_client and the deploy note
        assert summary["chunks_skipped"] == 2
        assert "2 left out for holding credentials" in status["status_message"]

        everything = [r for query in ("password", DB_PASSWORD, "hunter2", "PRIVATE KEY", "deploykey",
                                      "aws_access_key_id", "authToken", "github client token",
                                      "Old key id")
                      for r in await search(client, project, query)]
        served = {r["file_path"] for r in everything}
        assert not served & {*SECRET_FILES, "notes/env-copy.txt"}
        for result in everything:
            for secret in (DB_PASSWORD, GITHUB_TOKEN, AWS_KEY_ID, "PRIVATE KEY", "deploykey"):
                assert secret not in result["content"], result

        kept = {r["file_path"] for r in await search(client, project, "storefront")}
        assert {"app.py", "settings.py"} <= kept  # the rest of settings.py is still indexed
        assert [r["file_path"] for r in await search(client, project, "placeholder")] == [".env.example"]
        assert "web/.npmrc" in {r["file_path"] for r in await search(client, project, "registry")}


def test_a_malformed_re_include_list_is_a_clear_error(tmp_path):
    repo = write_tree(tmp_path / "repo", {".codebase-mcp/config.json": '{"indexing": {"include_secrets": ".env"}}'})

    with pytest.raises(RepositoryConfigError, match=r"include_secrets.*must be a list of gitignore-style globs"):
        list_candidates(repo, ScanOptions(), SkipCounter())


def test_the_indexer_option_re_includes_a_secret_too(tmp_path):
    repo = write_tree(tmp_path / "repo", {"test/fixtures/sample.pem": "fixture\n", "other.pem": "x\n"})
    skips = SkipCounter()

    paths = [c.path for c in list_candidates(repo, ScanOptions(include_secrets=("test/fixtures/*.pem",)), skips)]

    assert paths == ["test/fixtures/sample.pem"]
    assert skips.counts == {"secret": 1}


def test_on_kubernetes_the_count_of_chunks_left_out_reaches_the_run_status():
    from codebase_operator import transitions

    report = {"ok": True, "summary": {"files_indexed": 2, "chunks_created": 5, "chunks_skipped": 3,
                                      "chunks_skipped_by_reason": {"secret": 3}}}
    assert transitions.summary(report) == {"filesIndexed": 2, "chunksCreated": 5, "chunksSkipped": 3}


def test_the_gateway_passes_the_secret_and_chunk_settings_to_its_indexers(monkeypatch, tmp_path):
    from codebase_gateway.control_plane.indexer_process import indexer_environment

    settings = {"CODEBASE_MCP_INCLUDE_SECRETS": ".env.example", "CODEBASE_MCP_MAX_CHUNKS_PER_FILE": "500",
                "CODEBASE_MCP_MAX_CHUNKS_PER_RUN": "9000"}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)

    env = indexer_environment(database_url="postgresql://x@db/p", project_id="p", source=tmp_path,
                              mode="incremental", run_id="r")

    assert settings.items() <= env.items()
