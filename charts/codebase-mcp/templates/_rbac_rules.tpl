{{/* RBAC rules, kept in one place. Operator rules mirror operator/rbac.yaml. */}}

{{- /* kopf follows CRDs at runtime. No namespaces rule: the chart passes exact namespace names, never globs. */}}
{{- define "codebase-mcp.operatorClusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
{{- end }}

{{- /* Exactly what codebase_operator calls; tests/chart/test_chart_operator_rbac.py derives it from the code. */}}
{{- define "codebase-mcp.operatorRules" -}}
# kopf watches both kinds and patches them (finalizers, progress annotations); kube.get reads them.
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects, indexingruns]
  verbs: [get, list, watch, patch]
# runs it starts itself (refresh annotation, spec.refresh); finished ones beyond spec.runHistory deleted
- apiGroups: [codebase.mcp.dev]
  resources: [indexingruns]
  verbs: [create, delete]
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects/status, indexingruns/status]
  verbs: [patch]
# one indexer Job per run: created, read, deleted on cancel; listed by label for the active-Job ceiling
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, create, delete]
# the Job's pods, for their termination message (the run summary)
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# the per-project credentials Secret (<project>-db). No resourceNames: those names exist only once a
# project does, and `create` cannot be limited by name. The Secrets the chart knows by name (the admin
# URL, the gateway token) reach pods as volumes and env through the kubelet and need no rule here.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{- /* Exactly what codebase_gateway's kubernetes control plane calls (tests/chart/test_chart_gateway_rbac.py). */}}
{{- define "codebase-mcp.gatewayRules" -}}
# declare projects (never rewritten) and runs; read their status
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects]
  verbs: [get, list, create]
# cancel_indexing_job sets spec.cancel
- apiGroups: [codebase.mcp.dev]
  resources: [indexingruns]
  verbs: [get, list, create, patch]
# a project's database URL, for search: read by name, never listed or watched (both return every
# Secret's data). No resourceNames: the per-project Secrets are named after projects created at run
# time, and RBAC has neither prefixes nor exclusions.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
