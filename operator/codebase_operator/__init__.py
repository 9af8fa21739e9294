"""codebase-operator: reconciles CodebaseProject → database and IndexingRun → Job → status.

Layers, from the outside in:
- `command`: the CLI (`codebase-operator`, `codebase-mcp operator`).
- `handlers`: the kopf registry; thin handlers that delegate.
- `codebase_projects`, `indexing_runs`: the reconcile steps of each kind, with their side effects (API, database).
- `kube`: pykube classes and the client (blocking calls run in threads).
- `jobs`, `transitions`, `conditions`: pure functions (Job manifests, status changes).
"""
from codebase_indexer.contract import API_VERSION, GROUP, VERSION

__all__ = ["API_VERSION", "GROUP", "VERSION"]
