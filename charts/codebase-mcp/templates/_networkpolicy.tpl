{{/* NetworkPolicy peers and egress rules, shared by templates/networkpolicy.yaml. */}}

{{/* A component's pods of this release (in their namespace), as a peer. */}}
{{- define "codebase-mcp.np.componentPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "codebase-mcp.componentNamespace" . }}
  podSelector:
    matchLabels:
      {{- include "codebase-mcp.selectorLabels" . | nindent 6 }}
{{- end }}

{{/* The labels the operator gives indexer pods (codebase_operator/jobs.py: labels). */}}
{{- define "codebase-mcp.np.indexerLabels" -}}
app.kubernetes.io/name: codebase-indexer
app.kubernetes.io/part-of: codebase-mcp
{{- end }}

{{/* Indexer pods in every namespace the operator watches, as a peer. */}}
{{- define "codebase-mcp.np.indexerPeer" -}}
- namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values: {{ include "codebase-mcp.watchNamespaces" . }}
  podSelector:
    matchLabels:
      {{- include "codebase-mcp.np.indexerLabels" . | nindent 6 }}
{{- end }}

{{/* Egress to the database: the bundled PostgreSQL's pods, or the external one's port. */}}
{{- define "codebase-mcp.np.databaseEgress" -}}
{{- if .Values.postgresql.enabled }}
- to:
    {{- include "codebase-mcp.np.componentPeer" (dict "root" . "component" "postgresql") | trim | nindent 4 }}
  ports:
    - {port: 5432, protocol: TCP}
{{- else }}
- ports:
    - {port: {{ .Values.externalDatabase.port }}, protocol: TCP}
  {{- with .Values.networkPolicy.externalDatabase.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.np.dnsEgress" -}}
- to:
    {{- toYaml .Values.networkPolicy.dns.to | nindent 4 }}
  ports:
    {{- toYaml .Values.networkPolicy.dns.ports | nindent 4 }}
{{- end }}

{{- define "codebase-mcp.np.apiServerEgress" -}}
- ports:
    {{- toYaml .Values.networkPolicy.apiServer.ports | nindent 4 }}
  {{- with .Values.networkPolicy.apiServer.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Egress to embedding.url's port (the scheme's default when the URL names none); nothing without a URL. */}}
{{- define "codebase-mcp.np.embeddingEgress" -}}
{{- with .Values.embedding.url }}
{{- $url := urlParse . }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- if not $port }}{{ $port = ternary "443" "80" (eq $url.scheme "https") }}{{ end }}
- ports:
    - {port: {{ $port }}, protocol: TCP}
  {{- with $.Values.networkPolicy.embedding.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress to git hosts (indexers of git sources); nothing unless networkPolicy.git names ports or hosts. */}}
{{- define "codebase-mcp.np.gitEgress" -}}
{{- $rule := dict }}
{{- with .Values.networkPolicy.git.ports }}{{ $_ := set $rule "ports" . }}{{ end }}
{{- with .Values.networkPolicy.git.to }}{{ $_ := set $rule "to" . }}{{ end }}
{{- if $rule }}
{{- list $rule | toYaml }}
{{- end }}
{{- end }}
