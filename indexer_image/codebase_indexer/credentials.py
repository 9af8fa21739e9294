"""Well-known credential shapes: found in repository text (left out of the index) and
redacted from every message that leaves a process (logs, status, Events, errors).

The patterns are deliberately specific (a prefix and a length a provider documents), so
ordinary code is not mistaken for a secret; generic high-entropy detection is not tried.
"""
from __future__ import annotations

import re

REDACTED = "***"

# name → pattern; each matches the credential itself (what `redact` replaces).
CREDENTIAL_PATTERNS: dict[str, re.Pattern[str]] = {
    "private-key": re.compile(
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*\Z)"),
    "aws-access-key-id": re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b"),
    "aws-secret-access-key": re.compile(
        r"(?i)(?<![A-Za-z0-9])aws_?secret_?access_?key\b[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
    "github-token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
    "slack-token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,250}\b"),
    "slack-webhook": re.compile(r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+"),
    "stripe-key": re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,255}\b"),
    "google-api-key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    "openai-api-key": re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}\b"),
}

# scheme://user:password@host, or scheme://token@host: the userinfo is a credential.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@:]*(?::[^/\s@]*)?)@")
# Authorization headers and bearer tokens that end up in exception text.
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{8,}")


def find_credential(text: str) -> str | None:
    """The name of the first well-known credential shape in `text`, or None."""
    for name, pattern in CREDENTIAL_PATTERNS.items():
        if pattern.search(text):
            return name
    return None


def redact(text: str) -> str:
    """`text` with URL userinfo, bearer tokens and well-known credential shapes replaced by ***."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{_redacted_userinfo(m['userinfo'])}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    for pattern in CREDENTIAL_PATTERNS.values():
        text = pattern.sub(REDACTED, text)
    return text


def _redacted_userinfo(userinfo: str) -> str:
    # Keep a user name that is plainly a name (git@, postgres:***@) so messages stay useful;
    # a lone token in the user position (https://ghp_x@github.com) is the secret itself.
    user, has_password, _ = userinfo.partition(":")
    if has_password:
        return f"{user}:{REDACTED}" if user else REDACTED
    return user if user.isidentifier() and find_credential(user) is None and len(user) < 20 else REDACTED
