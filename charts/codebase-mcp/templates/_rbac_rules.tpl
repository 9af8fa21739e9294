{{/* RBAC rules, kept in one place. Operator rules mirror operator/rbac.yaml. */}}

{{- define "codebase-mcp.operatorClusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{- define "codebase-mcp.operatorRules" -}}
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects, indexingruns]
  verbs: [get, list, watch, patch]
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects/status, indexingruns/status]
  verbs: [get, patch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end }}

{{- define "codebase-mcp.gatewayRules" -}}
- apiGroups: [codebase.mcp.dev]
  resources: [codebaseprojects, indexingruns]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
