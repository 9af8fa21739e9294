"""Item 8: credentials never leave a process in a message (status, Events, errors, logs)."""
from __future__ import annotations

import pytest

from codebase_indexer.credentials import find_credential, redact


@pytest.mark.parametrize("message, secret", [
    ("git clone https://alice:hunter2pass@git.example.com/r.git failed", "hunter2pass"),
    ("fatal: https://ghp_0123456789abcdefghijABCDEFGHIJ012345@github.com/o/r.git", "ghp_0123456789abcdefghij"),
    ("could not reach postgresql://cb_owner:Zx9pQ2mm@db:5432/cb_proj_x", "Zx9pQ2mm"),
    ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("AWS AKIAIOSFODNN7EXAMPLE in config", "AKIAIOSFODNN7EXAMPLE"),
    ("token xoxb-123456789012-abcdefghijkl in a log", "xoxb-123456789012"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
])
def test_redact_removes_the_credential_and_keeps_the_rest(message, secret):
    redacted = redact(message)
    assert secret not in redacted
    assert "***" in redacted
    assert redacted.split()[0] == message.split()[0]  # the message stays readable


def test_a_plain_user_name_is_kept():
    assert redact("ssh://git@github.com/o/r.git") == "ssh://git@github.com/o/r.git"


@pytest.mark.parametrize("text, kind", [
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", "private-key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA", "private-key"),
    ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "aws-secret-access-key"),
    ("GITHUB_TOKEN=github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github-token"),
])
def test_find_credential_names_the_shape(text, kind):
    assert find_credential(text) == kind


@pytest.mark.parametrize("code", [
    "def get_token(self):\n    return self._token\n",
    "API_KEY = os.environ['API_KEY']\n",
    "const sk = 'sk_test';  // placeholder\n",
    "BEGIN_PRIVATE = '-----BEGIN PUBLIC KEY-----'\n",
])
def test_ordinary_code_is_not_a_credential(code):
    assert find_credential(code) is None
