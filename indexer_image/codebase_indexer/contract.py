"""The API contract between the operator, the gateway and the tests: its names, in one place.

The CRDs (crds/) define the API; these are the names the Python side uses to speak it. The
operator, the gateway's kubernetes control plane and tests/support import them from here, and
tests/operator/test_api_contract.py checks them against the CRDs. It lives in the data plane
because every other package already depends on it (and the data plane on neither).
"""
from __future__ import annotations

GROUP = "codebase.mcp.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

PROJECT_KIND, PROJECTS = "CodebaseProject", "codebaseprojects"
RUN_KIND, RUNS = "IndexingRun", "indexingruns"

# Labels: the project and run an object belongs to; a Secret that a project may use.
PROJECT_LABEL = f"{GROUP}/project"
RUN_LABEL = f"{GROUP}/run"
USABLE_LABEL = f"{GROUP}/usable"
# Annotations the gateway puts on the runs it creates, to answer with the original tools' values.
PROJECT_ID_ANNOTATION = f"{GROUP}/project-id"
REPO_PATH_ANNOTATION = f"{GROUP}/repo-path"
FINALIZER = f"{GROUP}/finalizer"
# `kubectl annotate cbp NAME codebase.mcp.dev/refresh=now`: the operator starts a run, then removes it.
REFRESH_ANNOTATION = f"{GROUP}/refresh"
# On the runs the operator creates by itself: what started them (manual, interval).
TRIGGER_LABEL = f"{GROUP}/trigger"

# The key of a project's Secrets (owner and reader) that holds its database URL.
DATABASE_URL_KEY = "url"
# Every project database's name starts with this (identifiers.project_names derives the rest).
DATABASE_PREFIX = "cb_proj_"
