"""The indexer's settings and the embedding settings the gateway shares, declared once.

Flags and environment names derive from the fields (see configuration.py): the field
`max_file_size` is `--max-file-size` and `CODEBASE_MCP_MAX_FILE_SIZE`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import ClassVar

from .configuration import InvalidSetting, load, section, setting
from .scanning import DEFAULT_MAX_CHUNKS_PER_FILE, DEFAULT_MAX_CHUNKS_PER_RUN, DEFAULT_MAX_FILE_SIZE

DEFAULT_LOCAL_MODEL = "all-MiniLM-L6-v2"
DEFAULT_LOCK_WAIT_SECONDS = 60.0

# What every process that may load the local model runs with: it never downloads at run time
# (the weights ship in a package and are checked: model_integrity.py).
OFFLINE_MODEL_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def use_offline_model(environ: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set the offline-model variables in `environ` (default: this process) unless already set."""
    target = os.environ if environ is None else environ
    for name, value in OFFLINE_MODEL_ENVIRONMENT.items():
        target.setdefault(name, value)
    return target


@dataclasses.dataclass(frozen=True)
class LocalSettings:
    """A laptop's state and database; shared by the gateway and the terminal CLI."""

    home: Path = setting(Path.home() / ".codebase-mcp", flag=False, default_text="`~/.codebase-mcp`",
                         help="where local state lives: the embedded database, the runs registry, logs")
    admin_database_url: str | None = setting(
        None, flag=False, secret=True, old_env=("DATABASE_URL",), default_text="embedded PostgreSQL",
        help="local: a PostgreSQL server (with pgvector) to use instead of the embedded one; "
             "its role must be allowed to create roles and databases")


def local_settings(environ: Mapping[str, str] | None = None) -> LocalSettings:
    return load(LocalSettings, environ=environ)


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where local state lives: `$CODEBASE_MCP_HOME`, default `~/.codebase-mcp`."""
    return local_settings(environ).home


@dataclasses.dataclass(frozen=True)
class EmbeddingSettings:
    """Which embedding provider to use: "local" (sentence-transformers, offline), "openai" (any
    OpenAI-compatible /v1/embeddings) or "ollama" (/api/embed)."""

    env_prefix: ClassVar[str] = "CODEBASE_MCP_EMBEDDING_"
    flag_prefix: ClassVar[str] = "--embedding-"

    provider: str = setting("local", flag=False, choices=("local", "openai", "ollama"), parse=str.lower,
                            help="local (sentence-transformers on the CPU, offline), openai or ollama")
    model: str | None = setting(None, flag=False, default_text=f"`{DEFAULT_LOCAL_MODEL}` (local)",
                                help="local: a model name or directory; remote: the model the server serves")
    url: str | None = setting(None, flag=False, help="remote providers: the base URL, e.g. http://tei:8080")
    api_key: str | None = setting(None, flag=False, secret=True,
                                  help="remote providers: the API key (sent as a bearer token)")
    batch_size: int = setting(32, flag=False, help="chunks per embedding request")
    timeout_seconds: float = setting(60.0, flag=False, help="remote providers: seconds per request")

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InvalidSetting(f"{self.env_prefix}BATCH_SIZE must be at least 1, not {self.batch_size}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EmbeddingSettings:
        return load(cls, environ=environ)


@dataclasses.dataclass(frozen=True)
class IndexerSettings:
    """One indexing run (`codebase-indexer`), as a Kubernetes Job or a local process."""

    database_url: str | None = setting(None, secret=True, old_env=("CODEBASE_DATABASE_URL",),
                                       help="the project database URL (required)")
    project_id: str | None = setting(None, flag="--project", old_env=("CODEBASE_PROJECT_ID",),
                                     help="the project id (required)")
    source_path: str | None = setting(None, flag="--source", old_env=("CODEBASE_SOURCE_PATH",),
                                      help="the repository directory (this or --git-url)")
    git_url: str | None = setting(None, old_env=("CODEBASE_GIT_URL",),
                                  help="clone this repository instead of --source")
    git_ref: str | None = setting(None, old_env=("CODEBASE_GIT_REF",), help="the branch or tag to clone")
    git_commit: str | None = setting(None, help="with --git-url: check out this commit (full hex id) of the ref; "
                                                "the operator sets it so every shard of a run indexes one commit")
    git_username: str | None = setting(None, flag=False, secret=True, old_env=("CODEBASE_GIT_USERNAME",),
                                       help="git user name for a private repository")
    git_password: str | None = setting(None, flag=False, secret=True, old_env=("CODEBASE_GIT_PASSWORD",),
                                       help="git password or token for a private repository; "
                                            "git gets it through GIT_ASKPASS, never on a command line")
    work_dir: str | None = setting(None, old_env=("CODEBASE_WORK_DIR",),
                                   default_text="a temporary folder", help="where a git clone goes")
    index_mode: str = setting("incremental", flag="--mode", choices=("full", "incremental"), parse=str.lower,
                              old_env=("CODEBASE_INDEX_MODE",),
                              help="incremental re-embeds changed files only; full re-indexes everything")
    run_id: str | None = setting(None, old_env=("CODEBASE_RUN_ID",),
                                 help="the run's id in the project's index_runs table")
    termination_message_path: str | None = setting(None, old_env=("CODEBASE_TERMINATION_MESSAGE_PATH",),
                                                   help="also write the JSON result here (Kubernetes)")
    max_file_size: int = setting(DEFAULT_MAX_FILE_SIZE, old_env=("CODEBASE_MAX_FILE_SIZE",),
                                 help="bytes; a larger file is skipped (too_large)")
    max_chunks_per_file: int = setting(DEFAULT_MAX_CHUNKS_PER_FILE, old_env=("CODEBASE_MAX_CHUNKS_PER_FILE",),
                                       help="a file making more chunks is skipped (too_many_chunks)")
    max_chunks_per_run: int = setting(DEFAULT_MAX_CHUNKS_PER_RUN, old_env=("CODEBASE_MAX_CHUNKS_PER_RUN",),
                                      help="files past this many new chunks in one run are skipped "
                                           "(too_many_chunks); the next run picks them up")
    lock_wait_seconds: float = setting(DEFAULT_LOCK_WAIT_SECONDS,
                                       old_env=("CODEBASE_PROJECT_LOCK_WAIT_SECONDS",),
                                       help="how long to wait while another run indexes the project "
                                            "before failing")
    shard_index: int | None = setting(None, env=False, metavar="I",
                                      default_text="`$JOB_COMPLETION_INDEX` (Kubernetes sets it in an Indexed "
                                                   "Job's pods), else 0",
                                      help="this process's shard of the run, 0-based (docs/sharding.md)")
    shard_count: int = setting(1, metavar="N", help="how many shards the run has (1 to 64); each indexes its share "
                                                    "of the files (the run's assignment plan, by weight; see "
                                                    "sharding.md)")
    include: tuple[str, ...] = setting((), flag=True, old_env=("CODEBASE_INCLUDE",), metavar="GLOB",
                                       help="only files matching these globs are indexed")
    exclude: tuple[str, ...] = setting((), old_env=("CODEBASE_EXCLUDE",), metavar="GLOB",
                                       help="globs to leave out")
    include_secrets: tuple[str, ...] = setting((), old_env=("CODEBASE_INCLUDE_SECRETS",), metavar="GLOB",
                                               help="secret files (.env, keys, ...) to index on purpose; "
                                                    "added to .codebase-mcp/config.json "
                                                    "indexing.include_secrets")
    embedding: EmbeddingSettings = section(EmbeddingSettings)

    def __post_init__(self) -> None:
        if self.lock_wait_seconds < 0:
            raise InvalidSetting(f"--lock-wait-seconds must be 0 or more seconds, not {self.lock_wait_seconds}")
        for name in ("max_file_size", "max_chunks_per_file", "max_chunks_per_run"):
            if getattr(self, name) < 1:
                raise InvalidSetting(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")


def project_lock_wait_seconds(environ: Mapping[str, str] | None = None) -> float:
    """How long a run waits while another run indexes its project (`CODEBASE_MCP_LOCK_WAIT_SECONDS`)."""
    return load(IndexerSettings, environ=environ).lock_wait_seconds
