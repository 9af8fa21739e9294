{{/* Names, labels and images shared by every template. */}}

{{- define "codebase-mcp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "codebase-mcp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's object name: <fullname>-<component>, within 63 characters. */}}
{{- define "codebase-mcp.componentName" -}}
{{- printf "%s-%s" (include "codebase-mcp.fullname" .root | trunc (int (sub 62 (len .component))) | trimSuffix "-") .component }}
{{- end }}

{{- define "codebase-mcp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: codebase-mcp
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Selector labels of a component; call with (dict "root" $ "component" "gateway"). */}}
{{- define "codebase-mcp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "codebase-mcp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "codebase-mcp.componentLabels" -}}
{{ include "codebase-mcp.labels" .root }}
{{ include "codebase-mcp.selectorLabels" . }}
{{- end }}

{{/* repository:tag or repository@digest; tag defaults to the chart's appVersion. */}}
{{- define "codebase-mcp.image" -}}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag | toString) }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.serviceAccount" -}}
{{- include "codebase-mcp.componentName" (dict "root" .root "component" .component) }}
{{- end }}

{{/* Secrets holding the gateway token and the admin database URL. */}}
{{- define "codebase-mcp.tokenSecretName" -}}
{{- default (include "codebase-mcp.componentName" (dict "root" . "component" "gateway-token")) .Values.gateway.auth.existingSecret }}
{{- end }}

{{- define "codebase-mcp.tokenSecretKey" -}}
{{- if .Values.gateway.auth.existingSecret }}{{ .Values.gateway.auth.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{- define "codebase-mcp.postgresqlName" -}}
{{- include "codebase-mcp.componentName" (dict "root" . "component" "postgresql") }}
{{- end }}

{{- define "codebase-mcp.adminSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- include "codebase-mcp.componentName" (dict "root" . "component" "postgresql-admin") }}
{{- else }}
{{- required "postgresql.enabled=false needs externalDatabase.existingSecret: a Secret with the admin database URL" .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.adminSecretKey" -}}
{{- if .Values.postgresql.enabled }}url{{ else }}{{ .Values.externalDatabase.existingSecretKey }}{{ end }}
{{- end }}

{{/* The namespaces the operator reconciles: the release namespace first, then the extra ones. */}}
{{- define "codebase-mcp.watchNamespaces" -}}
{{- $namespaces := list .Release.Namespace }}
{{- range .Values.operator.extraWatchNamespaces }}
{{- if not (has . $namespaces) }}{{ $namespaces = append $namespaces . }}{{ end }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* The workspace volume (same definition in the gateway and, through the operator's flags, the indexer Jobs). */}}
{{- define "codebase-mcp.workspaceVolume" -}}
- name: workspace
{{- if eq .Values.workspace.type "hostPath" }}
  hostPath:
    path: {{ .Values.workspace.hostPath.path }}
    type: {{ .Values.workspace.hostPath.type }}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ required "workspace.type=persistentVolumeClaim needs workspace.persistentVolumeClaim.claimName" .Values.workspace.persistentVolumeClaim.claimName }}
    readOnly: {{ .Values.workspace.readOnly }}
{{- end }}
{{- end }}

{{/* Environment for the embedding provider (the gateway embeds queries and writes it into new projects' specs). */}}
{{- define "codebase-mcp.embeddingEnv" -}}
- name: CODEBASE_MCP_EMBEDDING_PROVIDER
  value: {{ .Values.embedding.provider | quote }}
{{- with .Values.embedding.model }}
- name: CODEBASE_MCP_EMBEDDING_MODEL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.embedding.url }}
- name: CODEBASE_MCP_EMBEDDING_URL
  value: {{ . | quote }}
{{- end }}
{{- if .Values.embedding.apiKeySecret.name }}
- name: CODEBASE_MCP_EMBEDDING_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.embedding.apiKeySecret.name }}
      key: {{ .Values.embedding.apiKeySecret.key }}
{{- end }}
{{- end }}

{{/* Host names the gateway answers to: its Service's DNS names, then gateway.allowedHosts. A JSON list. */}}
{{- define "codebase-mcp.gatewayHosts" -}}
{{- $svc := include "codebase-mcp.componentName" (dict "root" . "component" "gateway") }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | concat .Values.gateway.allowedHosts | uniq | toJson }}
{{- end }}
