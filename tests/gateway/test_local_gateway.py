"""Issue 4's scenarios on the local control plane: a real MCP client, embedded PostgreSQL and the real
model (in the indexer processes and for queries). The gateway runs in process where the wire does not
matter (`local_gateway`), as a subprocess over stdio and HTTP where it does (scope, tokens, sessions,
a gateway that dies)."""
from __future__ import annotations

import asyncio
import os
import signal
import uuid

import asyncpg
import pytest
from fastmcp.exceptions import ToolError

from codebase_indexer.identifiers import database_name
from codebase_indexer.postgres import database_url
from codebase_indexer.provisioning import project_database_exists

from .conftest import in_process_client, registry_job, stdio_client, wait_for_job, write_config, write_repo

BILLING = '''
def compute_invoice_total(line_items, tax_rate):
    """Sum the line items of an invoice and add the sales tax."""
    subtotal = sum(item.price * item.quantity for item in line_items)
    return round(subtotal * (1 + tax_rate), 2)
'''
WEATHER = '''
def fetch_weather_forecast(city):
    """Ask the meteorology service for tomorrow's temperature in a city."""
    return {"city": city, "temperature_celsius": 21}
'''
GREETER_JS = '''
export function greetVisitor(name) {
  // Welcome a visitor to the museum by name.
  return `Welcome to the museum, ${name}!`;
}
'''


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
async def test_original_bug_background_indexing_of_a_never_seen_project(stdio_gateway, tmp_path, postgres_url):
    """set_working_directory → config names a new project → background run → completed and searchable."""
    project = unique("never-seen")
    repo = write_repo(tmp_path / "billing-service", {"billing.py": BILLING, "web/greeter.js": GREETER_JS})
    write_config(repo, project)
    client = stdio_gateway

    session = (await client.call_tool("set_working_directory", {"directory": str(repo / "web")})).data
    assert session["config_found"] and session["project_info"] == {"name": project, "id": None}
    assert session["config_path"] == str(repo / ".codebase-mcp" / "config.json")
    assert session["scope"] == "process"  # stdio, sessionless protocol: this client's own gateway

    started = (await client.call_tool("start_indexing_background", {"repo_path": str(repo)})).data
    assert started["status"] == "pending" and started["project_id"] == project
    assert started["database_name"] == database_name(project)

    status = await wait_for_job(client, started["job_id"])
    assert status["status"] == "completed", status
    assert status["files_indexed"] == 2 and status["chunks_created"] >= 2
    assert status["progress"]["files_total"] == 2
    assert await project_database_exists(postgres_url, project)

    found = (await client.call_tool("search_code", {"query": "add sales tax to an invoice"})).data
    assert found["project_id"] == project
    assert found["results"][0]["file_path"] == "billing.py"
    assert found["results"][0]["symbol"] == "compute_invoice_total"

    projects = (await client.call_tool("list_projects", {})).data["projects"]
    listed = next(p for p in projects if p["name"] == project)
    assert listed["ready"] and listed["files"] == 2 and listed["chunks"] >= 2
    assert listed["database"] == database_name(project) and listed["last_indexed"]


@pytest.mark.slow
async def test_explicit_project_over_http_with_token(http_gateway, tmp_path):
    project = unique("explicit")
    repo = write_repo(tmp_path / "weather", {"weather.py": WEATHER})
    async with http_gateway.client() as client:
        status = (await client.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
        assert status["status"] == "completed" and status["project_id"] == project
        found = (await client.call_tool("search_code", {"query": "temperature forecast for a city",
                                                         "project_id": project, "limit": 3})).data
        assert [r["symbol"] for r in found["results"]][:1] == ["fetch_weather_forecast"]
        assert found["total_count"] == len(found["results"]) and found["truncated"] is False
        with pytest.raises(ToolError, match="has not been indexed"):
            await client.call_tool("search_code", {"query": "anything", "project_id": unique("unknown")})


@pytest.mark.slow
async def test_default_project_without_working_directory_or_id(http_gateway, tmp_path):
    repo = write_repo(tmp_path / "museum", {"greeter.js": GREETER_JS})
    async with http_gateway.client(mode="legacy") as client:  # a fresh session: no working directory
        status = (await client.call_tool("index_repository", {"repo_path": str(repo)})).data
        assert status["status"] == "completed" and status["project_id"] == "default"
        found = (await client.call_tool("search_code", {"query": "welcome a museum visitor",
                                                         "language": "javascript"})).data
        assert found["project_id"] == "default"
        assert any(r["symbol"] == "greetVisitor" for r in found["results"])


@pytest.mark.slow
async def test_index_repository_reports_progress_then_incremental_and_forced_runs(local_gateway, tmp_path):
    project = unique("progress")
    files = {f"pkg/module_{i}.py": f"def function_{i}(value):\n    return value * {i}\n" for i in range(12)}
    repo = write_repo(tmp_path / "many", files)
    notifications: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message):
        notifications.append((progress, total, message))

    first = (await local_gateway.call_tool("index_repository", {"repo_path": str(repo), "project_id": project},
                                           progress_handler=on_progress)).data
    assert first["status"] == "completed" and first["files_indexed"] == 12
    assert len(notifications) >= 2
    done = [p for p, _, _ in notifications]
    assert done == sorted(done), "progress never goes backwards"
    assert notifications[-1][:2] == (12, 12)
    assert "indexed 12 files" in notifications[-1][2]

    again = (await local_gateway.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
    assert again["status"] == "completed" and again["files_indexed"] == 0
    assert again["summary"]["files_unchanged"] == 12
    assert again["status_message"].startswith("no changes")

    forced = (await local_gateway.call_tool("index_repository", {
        "repo_path": str(repo), "project_id": project, "force_reindex": True})).data
    assert forced["status"] == "completed" and forced["force_reindex"] is True
    assert forced["files_indexed"] == 12


HOSTILE_CALLS = [
    ("set_working_directory", {"directory": "relative/path"}, "relative"),
    ("set_working_directory", {"directory": "/tmp/../etc"}, r"'\.\.'"),
    ("set_working_directory", {"directory": "/does/not/exist"}, "does not exist"),
    ("start_indexing_background", {"repo_path": "src"}, "relative"),
    ("start_indexing_background", {"repo_path": "/etc/passwd"}, "not a directory"),
    ("index_repository", {"repo_path": "/nonexistent/repo"}, "does not exist"),
    ("start_indexing_background", {"repo_path": "/tmp", "project_id": "x" * 300}, "invalid project_id"),
    ("start_indexing_background", {"repo_path": "/tmp", "project_id": "a\x00b"}, "invalid project_id"),
    ("search_code", {"query": "q", "limit": 0}, "limit"),
    ("search_code", {"query": "q", "limit": 100000}, "limit"),
    ("search_code", {"query": "x" * 5000}, "limit is 2000"),
    ("search_code", {"query": "   "}, "empty"),
    ("search_code", {"query": "q", "mode": "fuzzy"}, "mode"),
    ("search_code", {"query": "q", "file_type": ".py"}, "starts with a dot"),
    ("search_code", {"query": "q", "directory": "../outside"}, r"'\.\.'"),
    ("search_code", {"query": "q", "alternatives": ["a"] * 6}, "alternatives"),
    ("search_code", {"query": "q", "alternatives": ["fine", " "]}, r"alternatives\[1\] is empty"),
    ("get_indexing_status", {"job_id": "job-doesnotexist"}, "unknown job_id"),
    ("cancel_indexing_job", {"job_id": "'; DROP TABLE indexing_jobs; --"}, "unknown job_id"),
    ("list_indexing_jobs", {"status": "exploded"}, "status must be one of"),
    ("list_indexing_jobs", {"limit": -1}, "limit"),
]


@pytest.mark.parametrize("tool, arguments, message", HOSTILE_CALLS,
                         ids=[f"{t}-{m}" for t, _, m in HOSTILE_CALLS])
async def test_hostile_arguments_get_clear_errors_and_the_server_keeps_serving(local_gateway, tool, arguments,
                                                                                message):
    with pytest.raises(ToolError, match=message):
        await local_gateway.call_tool(tool, arguments)
    assert "projects" in (await local_gateway.call_tool("list_projects", {})).data


@pytest.mark.slow
async def test_hostile_repository_is_indexed_safely(local_gateway, tmp_path, postgres_url):
    project = "robert'); DROP TABLE chunks;--"
    repo = write_repo(tmp_path / "hostile", {
        "app/main.py": "def handle_request(path):\n    return open(path).read()\n",
        "data/blob.bin": bytes(range(256)) * 64,
        "docs/latin1.txt": "Caf\xe9 cr\xe8me br\xfbl\xe9e recipe for the dessert menu\n".encode("latin-1"),
        "100%_done/notes.md": "# Percent directory\nfinished_items_report lists what is done.\n",
        "big/huge.py": "x = 1\n" * (12 * 1024 * 1024 // 6),
    })
    (repo / "loop").symlink_to(repo, target_is_directory=True)
    (repo / "etc-link").symlink_to("/etc", target_is_directory=True)

    status = (await local_gateway.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
    assert status["status"] == "completed", status
    assert status["summary"]["files_skipped"] >= 2  # the binary and the 12 MB file at least
    assert status["files_indexed"] >= 3

    conn = await asyncpg.connect(database_url(postgres_url, database_name(project)))
    try:
        paths = {r["path"] for r in await conn.fetch("SELECT path FROM files")}
    finally:
        await conn.close()
    assert paths == {"app/main.py", "docs/latin1.txt", "100%_done/notes.md"}

    found = (await local_gateway.call_tool("search_code", {
        "query": "finished items report", "project_id": project, "directory": "100%_done"})).data
    assert {r["file_path"] for r in found["results"]} == {"100%_done/notes.md"}
    nothing = (await local_gateway.call_tool("search_code", {
        "query": "finished items report", "project_id": project, "directory": "100_"})).data
    assert nothing["results"] == []  # '%' and '_' are literal, not LIKE wildcards
    dessert = (await local_gateway.call_tool("search_code", {"query": "crème brûlée dessert", "project_id": project,
                                                              "limit": 1})).data
    assert dessert["results"][0]["file_path"] == "docs/latin1.txt"


@pytest.mark.slow
async def test_two_sessions_resolve_their_own_projects(http_gateway, tmp_path):
    """Two clients of one HTTP gateway, each with its own working directory and config."""
    alpha, beta = unique("alpha"), unique("beta")
    repo_a = write_repo(tmp_path / "a", {"weather.py": WEATHER})
    repo_b = write_repo(tmp_path / "b", {"billing.py": BILLING})
    write_config(repo_a, alpha)
    write_config(repo_b, beta)
    # mode="legacy": the handshake protocol that Claude Code and Claude Desktop speak, with sessions.
    async with http_gateway.client(mode="legacy") as a, http_gateway.client(mode="legacy") as b:
        session_a = (await a.call_tool("set_working_directory", {"directory": str(repo_a)})).data
        session_b = (await b.call_tool("set_working_directory", {"directory": str(repo_b)})).data
        assert session_a["session_id"] != session_b["session_id"]
        runs = await asyncio.gather(a.call_tool("index_repository", {"repo_path": str(repo_a)}),
                                    b.call_tool("index_repository", {"repo_path": str(repo_b)}))
        assert [run.data["project_id"] for run in runs] == [alpha, beta]
        assert all(run.data["status"] == "completed" for run in runs)

        from_a = (await a.call_tool("search_code", {"query": "invoice sales tax"})).data
        from_b = (await b.call_tool("search_code", {"query": "invoice sales tax"})).data
    assert from_a["project_id"] == alpha and {r["file_path"] for r in from_a["results"]} == {"weather.py"}
    assert from_b["project_id"] == beta and from_b["results"][0]["file_path"] == "billing.py"


@pytest.mark.slow
async def test_runs_of_one_project_queue_and_can_be_cancelled(local_gateway, tmp_path):
    project = unique("queue")
    repo = write_repo(tmp_path / "queued", {f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(30)})
    args = {"repo_path": str(repo), "project_id": project}
    first = (await local_gateway.call_tool("start_indexing_background", args)).data
    second = (await local_gateway.call_tool("start_indexing_background", args)).data
    await asyncio.sleep(1.0)
    status = (await local_gateway.call_tool("get_indexing_status", {"job_id": first["job_id"]})).data["status"]
    assert status == "running"
    status = (await local_gateway.call_tool("get_indexing_status", {"job_id": second["job_id"]})).data["status"]
    assert status == "pending"

    queued = (await local_gateway.call_tool("cancel_indexing_job", {"job_id": second["job_id"]})).data
    assert queued["status"] == "cancelled"
    running = (await local_gateway.call_tool("cancel_indexing_job", {"job_id": first["job_id"]})).data
    if running["status"] != "cancelled":
        running = await wait_for_job(local_gateway, first["job_id"], timeout=30)
    assert running["status"] == "cancelled"

    jobs = (await local_gateway.call_tool("list_indexing_jobs", {"project_id": project})).data["jobs"]
    assert {j["job_id"]: j["status"] for j in jobs} == {first["job_id"]: "cancelled", second["job_id"]: "cancelled"}
    again = (await local_gateway.call_tool("index_repository", args)).data
    assert again["status"] == "completed"  # the project is not stuck behind the cancelled runs


@pytest.mark.slow
async def test_a_run_left_by_a_dead_gateway_is_marked_failed_at_the_next_start(tmp_path, postgres_url):
    project = unique("orphan")
    repo = write_repo(tmp_path / "orphan", {f"m{i}.py": f"def g{i}():\n    return {i}\n" for i in range(30)})
    async with stdio_client() as doomed:
        job = (await doomed.call_tool("start_indexing_background",
                                      {"repo_path": str(repo), "project_id": project})).data
        await asyncio.sleep(1.0)
        owner = (await registry_job(postgres_url, job["job_id"]))["owner"]
        os.kill(int(owner.split(":")[1]), signal.SIGKILL)  # the gateway dies without any cleanup
        await asyncio.sleep(0.5)
    async with stdio_client() as fresh:
        status = (await fresh.call_tool("get_indexing_status", {"job_id": job["job_id"]})).data
        assert status["status"] == "failed"
        assert "gateway" in status["error_message"] and "stopped" in status["error_message"]
        rerun = (await fresh.call_tool("index_repository", {"repo_path": str(repo), "project_id": project})).data
        assert rerun["status"] == "completed"



async def test_health_and_metrics_resources(local_gateway):
    import json

    await local_gateway.call_tool("list_projects", {})
    with pytest.raises(ToolError):
        await local_gateway.call_tool("get_indexing_status", {"job_id": "job-unknown"})
    health = json.loads((await local_gateway.read_resource("health://status"))[0].text)
    assert health["ok"] is True and health["control_plane"] == "local"
    assert health["database_reachable"] is True and health["model"]["name"] == "all-MiniLM-L6-v2"
    metrics = (await local_gateway.read_resource("metrics://prometheus"))[0].text
    assert 'codebase_mcp_tool_calls_total{tool="list_projects"}' in metrics
    assert 'codebase_mcp_tool_errors_total{tool="get_indexing_status"}' in metrics
    assert "codebase_mcp_search_latency_seconds_bucket" in metrics
    assert "# TYPE codebase_mcp_indexing_runs gauge" in metrics


async def test_allowed_roots_confine_what_can_be_indexed(postgres_url, embedder, tmp_path):
    allowed = write_repo(tmp_path / "allowed" / "repo", {"a.py": "a = 1\n"})
    outside = write_repo(tmp_path / "elsewhere", {"b.py": "b = 2\n"})
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    async with in_process_client("--allowed-root", str(tmp_path / "allowed"), embedder=embedder) as client:
        for path in (outside, allowed / "escape"):
            with pytest.raises(ToolError, match="outside the allowed roots"):
                await client.call_tool("start_indexing_background", {"repo_path": str(path), "project_id": "p"})
        with pytest.raises(ToolError, match="outside the allowed roots"):
            await client.call_tool("set_working_directory", {"directory": str(outside)})
        session = (await client.call_tool("set_working_directory", {"directory": str(allowed)})).data
        assert session["working_directory"] == str(allowed) and session["config_found"] is False
