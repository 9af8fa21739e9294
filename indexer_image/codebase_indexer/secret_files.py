"""Secrets in a repository: which files hold them (never indexed by default), how a repository
re-includes one, and which chunks carry a well-known credential (left out, counted).

A file is a secret by its path: environment files, private keys and key stores, cloud and
package-manager credentials, SSH and GnuPG folders, Terraform state. `.npmrc`, `.pypirc` and
friends are ordinary configuration unless they carry a token or password line, so they are
judged by content. Secrets are skipped with their own reason ("secret"); `.gitignore` and
the project ignore file cannot re-include them (a `!` there is usually about something else).

Re-including one on purpose is explicit, in the repository's own
`.codebase-mcp/config.json` (read by the indexer itself, so the CLI, the gateway and an
indexer Job on Kubernetes all honour it), or the indexer's `--include-secrets`:

    {"project": {"name": "shop"}, "indexing": {"include_secrets": [".env.example", "test/fixtures/*.pem"]}}

Patterns use gitignore syntax, matched against repository-relative paths.
"""
from __future__ import annotations

import bisect
import json
import os
import re
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from .credentials import CREDENTIAL_PATTERNS, find_credential
from .models import Chunk

CONFIG_PATH = ".codebase-mcp/config.json"
_MAX_CONFIG_BYTES = 64 * 1024

SECRET_PATTERNS: tuple[str, ...] = (
    # environment files
    ".env", ".env.*", "*.env", ".envrc",
    # SSH, GnuPG and other private keys, certificates with keys, key stores, password databases
    "id_rsa", "id_rsa.*", "id_dsa", "id_dsa.*", "id_ecdsa", "id_ecdsa.*", "id_ecdsa_sk*",
    "id_ed25519", "id_ed25519.*", "id_ed25519_sk*", ".ssh/", ".gnupg/",
    "*.pem", "*.key", "*.p12", "*.pfx", "*.p8", "*.ppk", "*.jks", "*.keystore", "*.kdbx", "*.kdb",
    # cloud, cluster and registry credentials
    "**/.aws/credentials", "**/.azure/", "**/.config/gcloud/", "application_default_credentials.json",
    "client_secret*.json", "**/.docker/config.json", "**/.kube/config",
    # network and database passwords, tokens of tools
    ".netrc", "_netrc", ".pgpass", ".my.cnf", ".git-credentials", ".htpasswd", ".vault-token",
    "**/.cargo/credentials", "**/.cargo/credentials.toml", "**/.gem/credentials",
    # infrastructure state, which stores every secret it created in clear text
    "*.tfstate", "*.tfstate.backup",
)

# Configuration files that are secrets only when they hold a credential line.
TOKEN_CONFIG_NAMES = frozenset({".npmrc", ".pypirc", ".yarnrc", ".yarnrc.yml", ".gemrc", "pip.conf", ".pip.conf"})
# A key that names a credential with a literal value (not a ${VARIABLE} reference), or a URL with a password.
_CREDENTIAL_LINE = re.compile(
    rb"(?im)^[ \t]*(?![#;])[^\n]*?(?:_authtoken|_auth|_password|password|npmauthtoken|token)[\"']?[ \t]*[=:]"
    rb"[ \t]*[\"']?(?!\$\{)[^\s\"']"
    rb"|://[^/\s:@]+:[^/\s@]+@")


class RepositoryConfigError(ValueError):
    """The repository's .codebase-mcp/config.json cannot be used; the message says how to fix it."""


class SecretRules:
    """The default secret patterns, minus what the repository re-includes on purpose."""

    def __init__(self, include_secrets: tuple[str, ...] = ()) -> None:
        self._secrets = GitIgnoreSpec.from_lines(SECRET_PATTERNS)
        self._included = GitIgnoreSpec.from_lines(include_secrets) if include_secrets else None

    def is_secret_path(self, rel_path: str) -> bool:
        """Whether a file at this repository-relative path is a secret by its name or folder."""
        return self._secrets.match_file(rel_path) and not self._included_on_purpose(rel_path)

    def may_hold_token(self, rel_path: str) -> bool:
        """Whether the file is a secret if its content has a credential line (see has_credential_line)."""
        return PurePosixPath(rel_path).name in TOKEN_CONFIG_NAMES and not self._included_on_purpose(rel_path)

    def _included_on_purpose(self, rel_path: str) -> bool:
        return self._included is not None and self._included.match_file(rel_path)


def has_credential_line(data: bytes) -> bool:
    return _CREDENTIAL_LINE.search(data) is not None


def repository_include_secrets(root: str | Path) -> tuple[str, ...]:
    """`indexing.include_secrets` of the repository's own .codebase-mcp/config.json, if any."""
    path = Path(root) / CONFIG_PATH
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise RepositoryConfigError(f"cannot read {path}: {exc.strerror}; fix its permissions or remove it") from None
    with os.fdopen(descriptor, "rb") as stream:
        raw = stream.read(_MAX_CONFIG_BYTES + 1)
    if len(raw) > _MAX_CONFIG_BYTES:
        raise RepositoryConfigError(f"{path} is larger than {_MAX_CONFIG_BYTES} bytes; it is not a project config")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RepositoryConfigError(f"{path} is not valid JSON ({exc}); fix it or remove it") from None
    indexing = config.get("indexing") if isinstance(config, dict) else None
    if indexing is None:
        return ()
    patterns = indexing.get("include_secrets", []) if isinstance(indexing, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p.strip() for p in patterns):
        raise RepositoryConfigError(
            f'{path}: "indexing.include_secrets" must be a list of gitignore-style globs, '
            'for example {"indexing": {"include_secrets": [".env.example"]}}')
    return tuple(p.strip() for p in patterns)


def without_credentials(text: str, chunks: list[Chunk]) -> tuple[list[Chunk], int]:
    """The chunks that carry no well-known credential shape, and how many were left out.

    A chunk is left out when its own text holds one, or when its lines overlap one found in
    the whole file: a private key block cut between two chunks is then missed by neither.
    """
    spans = _credential_line_spans(text)
    kept = [chunk for chunk in chunks
            if not any(chunk.start_line <= last and first <= chunk.end_line for first, last in spans)
            and find_credential(chunk.content) is None]
    return kept, len(chunks) - len(kept)


def credential_lines(text: str) -> frozenset[int]:
    """1-based numbers of the lines a well-known credential occupies (kept out of grep's lines)."""
    return frozenset(line for first, last in _credential_line_spans(text) for line in range(first, last + 1))


def _credential_line_spans(text: str) -> list[tuple[int, int]]:
    """1-based (first, last) line of every credential in the text."""
    matches = [match.span() for pattern in CREDENTIAL_PATTERNS.values() for match in pattern.finditer(text)]
    if not matches:
        return []
    newlines = [match.start() for match in re.finditer("\n", text)]
    return [(bisect.bisect_left(newlines, start) + 1, bisect.bisect_left(newlines, max(start, end - 1)) + 1)
            for start, end in matches]
