"""The fastmcp application: the tools of the original codebase-mcp, plus health and metrics.

Every tool resolves what it needs (session working directory, project config,
project identity) inside the call and hands the control plane plain data.
"""
from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AuthProvider
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.tools import ToolResult
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from codebase_indexer import grep as grep_plane
from codebase_indexer import symbols as symbol_plane
from codebase_indexer.credentials import redact
from codebase_indexer.embedding import EmbeddingError
from codebase_indexer.freshness import mark_stale, recorded_times
from codebase_indexer.grep import MAX_GREP_LIMIT, MAX_PATTERN_CHARS
from codebase_indexer.postgres import database_of
from codebase_indexer.search import MAX_ALTERNATIVES, MAX_GLOB_CHARS, MAX_LIMIT, SearchError, SearchMode
from codebase_indexer.search import search_code as run_search
from codebase_indexer.settings import DEFAULT_LOCAL_MODEL, EmbeddingSettings
from codebase_indexer.symbols import MAX_READ_LINES, MAX_SYMBOL_LIMIT, SymbolKind, SymbolMatch

from . import validation
from .control_plane.base import ControlPlane, JobStatus, RunRequest, UnknownJob, UnknownProject
from .embedder import LazyEmbedder
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import Metrics
from .project_resolution import ResolvedProject, find_config, resolve_project
from .sessions import WorkingDirectories, session_key, session_scope
from .validation import InvalidArgument

RepoPath = Annotated[str, Field(description="Absolute path of the repository to index")]
IndexedProjectId = Annotated[str | None, Field(description="Project name; default: from the working directory")]
ForceReindex = Annotated[bool, Field(description="Re-index every file, not only changed ones")]
ProjectId = Annotated[str | None, Field(description="Project name; default: from the working directory")]
FileType = Annotated[str | None, Field(description="File extension without the dot, e.g. 'py'")]
Directory = Annotated[str | None, Field(description="Directory prefix relative to the repository root")]
Language = Annotated[str | None, Field(description="Language, e.g. 'python', 'typescript'")]
PathGlob = Annotated[str | None, Field(max_length=MAX_GLOB_CHARS,
                                       description="Path glob relative to the repository root, e.g. 'src/**/*.py'")]
FilePath = Annotated[str, Field(max_length=1000, description="Path relative to the repository root, "
                                                            "as search results show it, e.g. 'src/app.py'")]
_PROGRESS_POLL_SECONDS = 0.5

INSTRUCTIONS = """\
Semantic code search over indexed repositories.
1. Optionally call set_working_directory with the absolute path of the project you work in:
   its .codebase-mcp/config.json names the project; otherwise the project is `default`.
2. Index a repository with index_repository (waits, reports progress) or
   start_indexing_background + get_indexing_status.
3. search_code with a natural-language query or an identifier; filter by language, file_type, directory.
4. grep_code for exact strings and regexes (every matching line, with the true total), find_symbol
   for where a name is defined, get_file_outline for a file's definitions, read_code for lines:
   they read the index, so they work where the repository is not on your disk.
"""


class _CallMetrics(Middleware):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def on_call_tool(self, context: MiddlewareContext, call_next: CallNext) -> ToolResult:
        failed = True
        started = time.perf_counter()
        try:
            result = await call_next(context)
            failed = bool(getattr(result, "is_error", False))
            return result
        finally:
            self._metrics.record_call(context.message.name, failed=failed, seconds=time.perf_counter() - started)


class _RedactedErrors(Middleware):
    """A tool's error text reaches the client without credentials (a token in a URL given as a path)."""

    async def on_call_tool(self, context: MiddlewareContext, call_next: CallNext) -> ToolResult:
        try:
            return await call_next(context)
        except Exception as exc:
            message = str(exc)
            if redact(message) == message:
                raise
            raise ToolError(redact(message)) from None


# The project's own errors whose text is written for the agent: a tool call raising one ends in
# a tool error with exactly that text (not fastmcp's "Error calling tool ..." wrapping, nor its
# error log with a traceback).
AGENT_ERRORS = (InvalidArgument, SearchError, EmbeddingError)


def _agent_errors(tool):
    """The one place where the project's errors become MCP tool errors."""
    @functools.wraps(tool)
    async def call(*args, **kwargs):
        try:
            return await tool(*args, **kwargs)
        except AGENT_ERRORS as exc:
            raise ToolError(str(exc)) from None
    return call


def _version() -> str | None:
    try:
        return importlib.metadata.version("codebase-mcp")
    except importlib.metadata.PackageNotFoundError:
        return None


async def _scrape_refusal(request: Request, auth: AuthProvider | None) -> Response | None:
    """A 401 for a /metrics request without the gateway's bearer token (None: let it through)."""
    if auth is None:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token and await auth.verify_token(token.strip()) is not None:
        return None
    return PlainTextResponse(
        "/metrics needs the gateway's bearer token (Authorization: Bearer $CODEBASE_MCP_TOKEN); "
        "start the gateway with --metrics-public to let scrapers in without it\n",
        status_code=401, headers={"WWW-Authenticate": 'Bearer realm="codebase-mcp metrics"'})


def create_server(control_plane: ControlPlane, *, allowed_roots: list[Path] | None = None,
                  auth: AuthProvider | None = None, embedder: LazyEmbedder | None = None,
                  metrics_public: bool = False) -> FastMCP:
    roots = list(allowed_roots) if allowed_roots else control_plane.default_allowed_roots()
    embedder = embedder or LazyEmbedder()
    metrics = Metrics()
    working_directories = WorkingDirectories()

    @asynccontextmanager
    async def lifespan(_server: FastMCP):
        await control_plane.start()
        try:
            yield {}
        finally:
            await control_plane.stop()

    mcp = FastMCP("codebase-mcp", version=_version(), instructions=INSTRUCTIONS, auth=auth, lifespan=lifespan,
                  middleware=[_CallMetrics(metrics), _RedactedErrors()], mask_error_details=False)

    def tool(function):
        return mcp.tool(_agent_errors(function))

    def resolve(ctx: Context, project_id: str | None) -> ResolvedProject:
        return resolve_project(project_id, working_directories.get(session_key(ctx)), roots)

    def run_request(ctx: Context, repo_path: str, project_id: str | None, force_reindex: bool) -> RunRequest:
        path = validation.directory_path(repo_path, roots, what="repo_path")
        return RunRequest(project=resolve(ctx, project_id), repo_path=path, force_reindex=bool(force_reindex))

    async def project_database(ctx: Context, project_id: str | None) -> tuple[ResolvedProject, str]:
        """The project as search_code resolves it, and its database as the read-only role."""
        project = resolve(ctx, project_id)
        try:
            return project, await control_plane.project_database_url(project.project_id)
        except UnknownProject:
            raise ToolError(f"project {project.project_id!r} has not been indexed yet: "
                            "index it with index_repository, or list_projects to see the indexed ones") from None

    async def job_status(job_id: str) -> JobStatus:
        try:
            return await control_plane.get_run(validation.job_id(job_id))
        except UnknownJob:
            raise ToolError(f"unknown job_id {job_id!r}: list_indexing_jobs shows the known jobs") from None

    async def mark_results_stale(project_id: str, url: str, results: list[dict]) -> None:
        """Each result's `stale`: did its file change on disk after it was indexed (freshness.py)."""
        root = await control_plane.source_root(project_id)
        recorded = {}
        if root is not None and results:
            async with control_plane.connection_budget.pool(url) as pool, pool.acquire() as conn:
                recorded = await recorded_times(conn, (r["file_path"] for r in results))
        mark_stale(results, root, recorded)

    @tool
    async def set_working_directory(
        directory: Annotated[str, Field(description="Absolute path of the directory you work in")],
        ctx: Context,
    ) -> dict:
        """Set this session's working directory; its nearest .codebase-mcp/config.json names the project.

        The result's `scope` says whom it applies to: `session` (this MCP session), `process` (stdio:
        this client's own gateway) or `shared` (sessionless HTTP: every client with this token).
        """
        path = validation.directory_path(directory, roots, what="directory")
        config = find_config(path, roots)  # a broken config is an error now, before the session depends on it
        scope = session_scope(ctx)
        working_directories.set(scope.key, path)
        return {
            "session_id": scope.key,
            "scope": scope.scope,
            "scope_description": f"this working directory applies to {scope.description}",
            "working_directory": str(path),
            "config_found": config is not None,
            "config_path": str(config.path) if config else None,
            "project_info": config.to_info() if config else None,
        }

    @tool
    async def start_indexing_background(
        repo_path: RepoPath,
        ctx: Context,
        project_id: IndexedProjectId = None,
        force_reindex: ForceReindex = False,
    ) -> dict:
        """Start indexing a repository in the background and return a job_id at once."""
        status = await control_plane.start_run(run_request(ctx, repo_path, project_id, force_reindex))
        return {
            "job_id": status.job_id,
            "status": status.status,
            "message": f"indexing of {status.repo_path} queued as {status.job_id}; "
                       "poll get_indexing_status with this job_id",
            "force_reindex": status.force_reindex,
            "project_id": status.project_id,
            "database_name": status.database_name,
        }

    @tool
    async def get_indexing_status(
        job_id: Annotated[str, Field(description="A job_id returned by start_indexing_background")],
        project_id: Annotated[str | None, Field(description="Accepted for compatibility; job ids are unique")] = None,
    ) -> dict:
        """Status and progress of an indexing job."""
        return (await job_status(job_id)).to_dict()

    @tool
    async def index_repository(
        repo_path: RepoPath,
        ctx: Context,
        project_id: IndexedProjectId = None,
        force_reindex: ForceReindex = False,
    ) -> dict:
        """Index a repository and wait for the result, reporting progress while it runs. A first index
        can take minutes, longer than many clients wait for one call: then use start_indexing_background
        and follow the job with get_indexing_status (a call cut off here leaves the run going)."""
        status = await control_plane.start_run(run_request(ctx, repo_path, project_id, force_reindex))
        job_id = status.job_id
        # The run belongs to the control plane: if this call is cancelled, the run goes on, and the
        # first notification names its job_id so that get_indexing_status can still follow it.
        await ctx.report_progress(0, None, f"{job_id}: {status.status_message}")
        while not status.finished:
            await asyncio.sleep(_PROGRESS_POLL_SECONDS)
            status = await control_plane.get_run(job_id)
            progress = status.progress
            await ctx.report_progress(progress["files_done"], progress["files_total"] or None,
                                      status.status_message)
        return status.to_dict()

    @tool
    async def search_code(
        query: Annotated[str, Field(description="What you are looking for, in natural language or identifiers")],
        ctx: Context,
        project_id: Annotated[str | None,
                              Field(description="Project name; default: from the working directory")] = None,
        repository_id: Annotated[
            str | None, Field(description="Accepted for compatibility; a project holds one repository")] = None,
        file_type: Annotated[str | None, Field(description="File extension without the dot, e.g. 'py'")] = None,
        directory: Annotated[str | None, Field(description="Directory prefix relative to the repository root")] = None,
        language: Annotated[str | None, Field(description="Language, e.g. 'python', 'typescript'")] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT, strict=True,
                                    description=f"Number of results, 1 to {MAX_LIMIT}")] = 10,
        mode: Annotated[SearchMode, Field(description="hybrid (default), semantic or lexical")] = "hybrid",
        alternatives: Annotated[list[str] | None, Field(
            max_length=MAX_ALTERNATIVES,
            description=f"Up to {MAX_ALTERNATIVES} other phrasings of the query or a hypothetical signature or "
                        "snippet of the code sought; the semantic search blends them with the query")] = None,
    ) -> dict:
        """Search indexed code; results carry path, line range, symbol, snippet, score and context."""
        text = validation.query(query)
        phrasings = validation.alternatives(alternatives)
        file_type, directory = validation.file_type(file_type), validation.directory_prefix(directory)
        project, url = await project_database(ctx, project_id)
        started = time.perf_counter()
        response = await run_search(
            url, await embedder.get(), text, project_id=project.project_id,
            database_name=database_of(url), language=language or None,
            file_type=file_type, directory=directory,
            limit=limit, mode=mode, budget=control_plane.connection_budget, alternatives=phrasings,
        )
        await mark_results_stale(project.project_id, url, response["results"])
        metrics.observe_search(time.perf_counter() - started)
        return validation.capped_search_response(response)

    @tool
    async def grep_code(
        pattern: Annotated[str, Field(min_length=1, max_length=MAX_PATTERN_CHARS,
                                      description="Text to find within a line; a regular expression with regex=true")],
        ctx: Context,
        regex: Annotated[bool, Field(description="Treat pattern as a PostgreSQL regular expression "
                                                 "(PCRE-like; \\b is a word boundary)")] = False,
        case_sensitive: Annotated[bool, Field(description="Match case exactly (default true)")] = True,
        project_id: ProjectId = None,
        language: Language = None,
        file_type: FileType = None,
        directory: Directory = None,
        path_glob: PathGlob = None,
        limit: Annotated[int, Field(ge=1, le=MAX_GREP_LIMIT, strict=True,
                                    description=f"Matches to return, 1 to {MAX_GREP_LIMIT}")] = 50,
    ) -> dict:
        """Every line matching a string or regex, in path and line order, with the enclosing definition;
        total_count is the true number of matching lines even when matches stop at the limit."""
        file_type, directory = validation.file_type(file_type), validation.directory_prefix(directory)
        project, url = await project_database(ctx, project_id)
        response = await grep_plane.grep_code(
            url, pattern, project_id=project.project_id, database_name=database_of(url), regex=regex,
            case_sensitive=case_sensitive, language=language or None, file_type=file_type,
            directory=directory, path_glob=path_glob or None, limit=limit, budget=control_plane.connection_budget)
        await mark_results_stale(project.project_id, url, response["matches"])
        return validation.capped_matches(response, "matches")

    @tool
    async def find_symbol(
        name: Annotated[str, Field(min_length=1, max_length=symbol_plane.MAX_NAME_CHARS,
                                   description="A symbol name, or a qualified one such as 'Client.send'")],
        ctx: Context,
        project_id: ProjectId = None,
        kind: Annotated[SymbolKind | None, Field(description="Only definitions of this kind")] = None,
        match: Annotated[SymbolMatch, Field(description="exact (default), prefix, or fuzzy "
                                                        "(case-insensitive, tolerates typos)")] = "exact",
        language: Language = None,
        limit: Annotated[int, Field(ge=1, le=MAX_SYMBOL_LIMIT, strict=True,
                                    description=f"Definitions to return, 1 to {MAX_SYMBOL_LIMIT}")] = 20,
    ) -> dict:
        """Where a name is defined: functions, methods, classes, fields, ... with file, lines and signature."""
        project, url = await project_database(ctx, project_id)
        response = await symbol_plane.find_symbol(
            url, name, project_id=project.project_id, database_name=database_of(url), kind=kind,
            match=match, language=language or None, limit=limit, budget=control_plane.connection_budget)
        return validation.capped_matches(response, "symbols")

    @tool
    async def get_file_outline(file_path: FilePath, ctx: Context, project_id: ProjectId = None) -> dict:
        """A file's definitions, nested (methods and fields under their class), with lines and signatures."""
        project, url = await project_database(ctx, project_id)
        response = await symbol_plane.get_file_outline(
            url, file_path, project_id=project.project_id, database_name=database_of(url),
            budget=control_plane.connection_budget)
        return validation.capped_listing(response, "symbols")

    @tool
    async def read_code(
        file_path: FilePath,
        ctx: Context,
        project_id: ProjectId = None,
        start_line: Annotated[int, Field(ge=1, strict=True, description="First line, 1-based")] = 1,
        end_line: Annotated[int | None, Field(ge=1, strict=True, description="Last line (default: the end; "
                                              f"at most {MAX_READ_LINES} lines a call)")] = None,
    ) -> dict:
        """Lines of an indexed file as stored in the index; `truncated` and `next_start_line` say how to go on."""
        project, url = await project_database(ctx, project_id)
        return await symbol_plane.read_code(
            url, file_path, project_id=project.project_id, database_name=database_of(url),
            start_line=start_line, end_line=end_line, max_chars=validation.MAX_RESPONSE_CHARS - 2_000,
            budget=control_plane.connection_budget)

    @tool
    async def list_indexing_jobs(
        project_id: Annotated[str | None, Field(description="Only this project's jobs")] = None,
        status: Annotated[str | None, Field(description="pending, running, completed, failed or cancelled")] = None,
        limit: Annotated[int, Field(ge=1, le=validation.MAX_LIST_LIMIT, strict=True,
                                    description=f"At most this many jobs (1 to {validation.MAX_LIST_LIMIT}), "
                                                "newest first")] = 20,
    ) -> dict:
        """Indexing jobs, newest first."""
        jobs = await control_plane.list_runs(
            project_id=validation.project_id(project_id), status=validation.job_state(status),
            limit=limit,
        )
        return validation.capped_listing({"jobs": [job.to_dict() for job in jobs], "total_count": len(jobs)},
                                         "jobs")

    @tool
    async def cancel_indexing_job(
        job_id: Annotated[str, Field(description="A job_id returned by start_indexing_background")],
    ) -> dict:
        """Cancel a pending or running indexing job; a finished job is returned unchanged."""
        try:
            return (await control_plane.cancel_run(validation.job_id(job_id))).to_dict()
        except UnknownJob:
            raise ToolError(f"unknown job_id {job_id!r}: list_indexing_jobs shows the known jobs") from None

    @tool
    async def list_projects() -> dict:
        """Projects with their database, readiness, last indexing time, files and chunks."""
        projects = await control_plane.list_projects()
        return validation.capped_listing(
            {"projects": [project.to_dict() for project in projects], "total_count": len(projects)}, "projects")

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)
    async def healthz(_request: Request) -> JSONResponse:
        """Liveness for HTTP probes (no token): the process is serving."""
        return JSONResponse({"ok": True})

    @mcp.custom_route("/readyz", methods=["GET"], include_in_schema=False)
    async def readyz(_request: Request) -> JSONResponse:
        """Readiness for HTTP probes (no token): the control plane reaches its database."""
        state = await control_plane.health()
        ready = bool(state.get("database_reachable"))
        return JSONResponse({"ok": ready, "control_plane": control_plane.name}, status_code=200 if ready else 503)

    @mcp.resource("health://status", mime_type="application/json")
    async def health() -> str:
        """Whether the gateway can serve: control plane, database, embedding model."""
        state = await control_plane.health()
        settings = EmbeddingSettings.from_env()
        loaded = embedder.loaded
        return json.dumps({
            "ok": bool(state.get("database_reachable")),
            "control_plane": control_plane.name,
            **state,
            "model": {
                "provider": settings.provider,
                "name": loaded.model_name if loaded else (settings.model or DEFAULT_LOCAL_MODEL),
                "loaded": loaded is not None,
            },
        })

    async def prometheus_text() -> str:
        try:
            counts = await control_plane.run_counts()
        except Exception:  # metrics must render even when the database is down
            counts = {}
        return metrics.render(counts, control_plane.connection_budget.usage())

    @mcp.resource("metrics://prometheus", mime_type="text/plain")
    async def prometheus() -> str:
        """Tool calls, errors and latency, runs by state, database connections, in Prometheus text format."""
        return await prometheus_text()

    @mcp.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def metrics_route(request: Request) -> Response:
        """The same text for Prometheus scrapers: the bearer token unless --metrics-public."""
        refusal = None if metrics_public else await _scrape_refusal(request, auth)
        if refusal is not None:
            return refusal
        return Response(await prometheus_text(), media_type=METRICS_CONTENT_TYPE)

    metrics.known_tools = frozenset(tool.__name__ for tool in (
        set_working_directory, start_indexing_background, get_indexing_status, index_repository,
        search_code, grep_code, find_symbol, get_file_outline, read_code, list_indexing_jobs,
        cancel_indexing_job, list_projects))
    return mcp
