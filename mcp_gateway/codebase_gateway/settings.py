"""The gateway's settings (`codebase-mcp serve`), declared once.

Flags and environment names derive from the fields (codebase_indexer.configuration): the field
`max_database_connections` is `--max-database-connections` and `CODEBASE_MCP_MAX_DATABASE_CONNECTIONS`.
The README's table of options is rendered from these fields (tests/unit/test_settings.py).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from codebase_indexer.configuration import InvalidSetting, section, setting
from codebase_indexer.connections import DEFAULT_MAX_CONNECTIONS, DEFAULT_STATEMENT_TIMEOUT
from codebase_indexer.settings import EmbeddingSettings, LocalSettings
from codebase_indexer.shards import MAX_SHARDS

# A save usually arrives as several events within a few milliseconds; half a second coalesces an
# editor's save and a `git checkout` alike without making the index feel late.
DEFAULT_DEBOUNCE_SECONDS = 0.5
DEFAULT_QUERY_THREADS = 1


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    """Everything `codebase-mcp serve` is configured with."""

    transport: str = setting("stdio", choices=("stdio", "http"),
                             help="stdio for an editor that launches the gateway; Streamable HTTP for a shared one")
    host: str = setting("127.0.0.1", help="HTTP: the bind address")
    port: int = setting(8000, help="HTTP: the port")
    path: str = setting("/mcp", help="HTTP: the endpoint path")
    token: str | None = setting(
        None, flag=False, secret=True, default_text="required over HTTP",
        help="HTTP: the bearer token, a generated secret of 32+ characters "
             "(`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`); a short, repetitive or "
             "low-entropy token is refused at start; a request without it gets 401")
    no_auth: bool = setting(False, env=False,
                            help="HTTP without a token; only on a loopback address")
    allowed_hosts: tuple[str, ...] = setting(
        (), flag="--allowed-host", metavar="NAME[:PORT]",
        default_text="`localhost`, `127.0.0.1`, `[::1]` and `--host`",
        help="HTTP: a Host name clients use; any other Host gets 403 (DNS-rebinding protection, with or "
             "without a token). `*` allows any Host and needs the token")
    allowed_origins: tuple[str, ...] = setting(
        (), flag="--allowed-origin", metavar="ORIGIN", default_text="the allowed hosts' own pages",
        help="HTTP: a browser origin (`https://app.example.com`) allowed to call; a request with any "
             "other `Origin` gets 403")
    metrics_public: bool = setting(
        False, help="HTTP: `GET /metrics` (Prometheus text) answers without the bearer token, for a "
                    "scraper; the Host/Origin check still applies, and every other route still needs the token")
    control_plane: str = setting(
        "local", choices=("local", "kubernetes"),
        help="local: embedded PostgreSQL and indexer processes; kubernetes: CodebaseProject/IndexingRun "
             "resources run by the operator")
    allowed_roots: tuple[str, ...] = setting(
        (), flag="--allowed-root", metavar="DIR", separator=os.pathsep,
        default_text="stdio: anywhere the user can read; kubernetes: the workspace; "
                     "**HTTP with the local control plane: required**",
        help="repositories and working directories must be under one of them; a path outside gets one "
             "error whether or not it exists, and an error never shows where a symbolic link leads. "
             "The search for `.codebase-mcp/config.json` stops at the root")
    max_concurrent_runs: int = setting(
        2, metavar="N", help="local: indexer processes this gateway runs at once; later runs wait in a queue")
    parallelism: int = setting(
        1, metavar="N", help="local: indexer processes per run (1 to 64), each indexing its share of the files, "
                             "as the pods of a Kubernetes run of parallelism N do (docs/sharding.md)")
    watch: bool = setting(True, flag="--no-watch",
                          help="local: keep every repository the registry knows fresh, re-indexing it "
                               "incrementally when its files change; `--no-watch` (or `false`) turns it off")
    watch_debounce: float = setting(DEFAULT_DEBOUNCE_SECONDS, metavar="SECONDS",
                                    help="local: a run starts once a repository's files stop changing for this long")
    namespace: str | None = setting(None, default_text="the pod's, else `default`",
                                    help="kubernetes: the namespace of the resources")
    workspace_root: Path = setting(Path("/workspace"),
                                   help="kubernetes: the directory mounted into indexer pods")
    max_database_connections: int = setting(
        DEFAULT_MAX_CONNECTIONS, metavar="N",
        help="ceiling on all the gateway's PostgreSQL connections (jobs registry, provisioning, searches), "
             "whatever the number of projects; the least recently used idle project pool is closed when "
             "another needs room; at least 4")
    statement_timeout: float = setting(
        DEFAULT_STATEMENT_TIMEOUT, metavar="SECONDS",
        help="longest a query may run; a search cut off by it gets an error that says how to narrow it; 0 = none")
    query_threads: int = setting(
        DEFAULT_QUERY_THREADS, metavar="N",
        help="local embedding model: CPU threads that embed a search's query; one leaves the other cores to "
             "PostgreSQL, which searches beside it (docs/retrieval-quality.md)")
    log_level: str = setting("WARNING", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                             help="how much the gateway logs to stderr")
    local: LocalSettings = section(LocalSettings)
    embedding: EmbeddingSettings = section(EmbeddingSettings)

    def __post_init__(self) -> None:
        if self.max_concurrent_runs < 1:
            raise InvalidSetting(f"--max-concurrent-runs must be a whole number of at least 1, "
                                 f"got {self.max_concurrent_runs}")
        if not 1 <= self.parallelism <= MAX_SHARDS:
            raise InvalidSetting(f"--parallelism must be a whole number from 1 to {MAX_SHARDS} (shards per run), "
                                 f"got {self.parallelism}")
        if self.query_threads < 1:
            raise InvalidSetting(f"--query-threads must be a whole number of at least 1, got {self.query_threads}")
        if not 0 < self.port < 65536:
            raise InvalidSetting(f"--port must be a TCP port (1-65535), got {self.port}")
