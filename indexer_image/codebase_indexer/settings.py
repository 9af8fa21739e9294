"""Configuration read from the environment, in one place."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"
LOCK_WAIT_ENV = "CODEBASE_PROJECT_LOCK_WAIT_SECONDS"
DEFAULT_LOCK_WAIT_SECONDS = 60.0


def project_lock_wait_seconds() -> float:
    """How long a run waits while another run indexes its project: `$CODEBASE_PROJECT_LOCK_WAIT_SECONDS`."""
    configured = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        seconds = float(configured) if configured else DEFAULT_LOCK_WAIT_SECONDS
    except ValueError:
        raise ValueError(f"{LOCK_WAIT_ENV} must be a number of seconds, got {configured!r}") from None
    if seconds < 0:
        raise ValueError(f"{LOCK_WAIT_ENV} must be 0 or more seconds, got {configured!r}")
    return seconds


def home_dir() -> Path:
    """Where local state lives: `$CODEBASE_MCP_HOME`, default `~/.codebase-mcp`."""
    configured = os.environ.get("CODEBASE_MCP_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".codebase-mcp"


@dataclass(frozen=True)
class EmbeddingSettings:
    """Which embedding provider to use.

    provider: "local" (sentence-transformers, offline), "openai" (any
    OpenAI-compatible /v1/embeddings) or "ollama" (/api/embed).
    """

    provider: str = "local"
    model: str | None = None  # local: a model name or a directory; remote: the served model
    url: str | None = None  # remote providers: base URL, e.g. http://tei:8080
    api_key: str | None = None
    batch_size: int = 32
    timeout_seconds: float = 60.0

    @classmethod
    def from_env(cls) -> EmbeddingSettings:
        env = os.environ
        return cls(
            provider=env.get("CODEBASE_MCP_EMBEDDING_PROVIDER", "local").strip().lower(),
            model=env.get("CODEBASE_MCP_EMBEDDING_MODEL") or None,
            url=env.get("CODEBASE_MCP_EMBEDDING_URL") or None,
            api_key=env.get("CODEBASE_MCP_EMBEDDING_API_KEY") or None,
            batch_size=int(env.get("CODEBASE_MCP_EMBEDDING_BATCH_SIZE", "32")),
        )
