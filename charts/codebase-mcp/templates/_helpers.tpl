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

{{/* Where the operator's admin database URL comes from: "bundled", "url" (a Secret with the whole URL) or "parts". */}}
{{- define "codebase-mcp.adminDatabaseSource" -}}
{{- if .Values.postgresql.enabled }}bundled
{{- else if .Values.externalDatabase.existingSecret }}url
{{- else if and .Values.externalDatabase.host .Values.externalDatabase.user .Values.externalDatabase.passwordSecret.name }}parts
{{- else }}
{{- fail "postgresql.enabled=false needs an external database: externalDatabase.existingSecret (a Secret holding the admin URL), or externalDatabase.host, .user and .passwordSecret.name" }}
{{- end }}
{{- end }}

{{/* The Secret with the bundled PostgreSQL's admin credentials, or the user's Secret with the admin URL. */}}
{{- define "codebase-mcp.adminSecretName" -}}
{{- if .Values.postgresql.enabled }}
{{- include "codebase-mcp.componentName" (dict "root" . "component" "postgresql-admin") }}
{{- else }}
{{- .Values.externalDatabase.existingSecret }}
{{- end }}
{{- end }}

{{- define "codebase-mcp.adminSecretKey" -}}
{{- if .Values.postgresql.enabled }}url{{ else }}{{ .Values.externalDatabase.existingSecretKey }}{{ end }}
{{- end }}

{{/* The operator reads the admin URL from this file (--admin-database-url-file). */}}
{{- define "codebase-mcp.adminUrlDir" -}}/var/run/secrets/codebase-mcp/admin-database{{- end }}
{{- define "codebase-mcp.adminUrlFile" -}}{{ include "codebase-mcp.adminUrlDir" . }}/url{{- end }}
{{- define "codebase-mcp.adminPasswordDir" -}}/var/run/secrets/codebase-mcp/admin-password{{- end }}

{{/* The operator's volumes holding the admin URL: the Secret itself, or an in-memory folder the init container fills. */}}
{{- define "codebase-mcp.adminDatabaseVolumes" -}}
{{- if eq (include "codebase-mcp.adminDatabaseSource" .) "parts" }}
- name: admin-database
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
- name: admin-password
  secret:
    secretName: {{ .Values.externalDatabase.passwordSecret.name }}
    defaultMode: 0440
    items:
      - key: {{ .Values.externalDatabase.passwordSecret.key }}
        path: password
{{- else }}
- name: admin-database
  secret:
    secretName: {{ include "codebase-mcp.adminSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ include "codebase-mcp.adminSecretKey" . }}
        path: url
{{- end }}
{{- end }}

{{/* externalDatabase given as parts: the URL is assembled (password percent-encoded) into the operator's in-memory volume. */}}
{{- define "codebase-mcp.adminUrlInitContainer" -}}
{{- $db := .Values.externalDatabase -}}
- name: admin-database-url
  image: {{ include "codebase-mcp.image" (dict "root" . "image" .Values.operator.image) }}
  imagePullPolicy: {{ .Values.operator.image.pullPolicy }}
  command: [python, -c]
  args:
    - |
      {{- .Files.Get "files/admin_url.py" | nindent 6 }}
  env:
    - name: DB_HOST
      value: {{ $db.host | quote }}
    - name: DB_PORT
      value: {{ $db.port | quote }}
    - name: DB_USER
      value: {{ $db.user | quote }}
    - name: DB_NAME
      value: {{ $db.database | quote }}
    - name: DB_SSLMODE
      value: {{ $db.sslmode | quote }}
    - name: PASSWORD_FILE
      value: {{ include "codebase-mcp.adminPasswordDir" . }}/password
    - name: URL_FILE
      value: {{ include "codebase-mcp.adminUrlFile" . }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
  resources:
    requests: {cpu: 10m, memory: 32Mi}
    limits: {memory: 64Mi}
  volumeMounts:
    - name: admin-database
      mountPath: {{ include "codebase-mcp.adminUrlDir" . }}
    - name: admin-password
      mountPath: {{ include "codebase-mcp.adminPasswordDir" . }}
      readOnly: true
{{- end }}

{{/* Where the operator, the bundled PostgreSQL and the admin Secret run: operator.namespace, else the release's.
A namespace of their own keeps the admin Secret out of reach of every Role in the namespaces of projects. */}}
{{- define "codebase-mcp.systemNamespace" -}}
{{- default .Release.Namespace .Values.operator.namespace }}
{{- end }}

{{/* The namespace of a component's pods; call with (dict "root" $ "component" "operator"). */}}
{{- define "codebase-mcp.componentNamespace" -}}
{{- if has .component (list "operator" "postgresql") }}
{{- include "codebase-mcp.systemNamespace" .root }}
{{- else }}
{{- .root.Release.Namespace }}
{{- end }}
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
    claimName: {{ include "codebase-mcp.workspaceClaimName" . }}
    readOnly: {{ .Values.workspace.readOnly }}
{{- end }}
{{- end }}

{{/* The workspace claim: the user's, or the one the chart creates. */}}
{{- define "codebase-mcp.workspaceClaimName" -}}
{{- default (include "codebase-mcp.componentName" (dict "root" . "component" "workspace")) .Values.workspace.persistentVolumeClaim.claimName }}
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

{{/* "true" when something scrapes the gateway's /metrics: a ServiceMonitor, or annotations with --metrics-public. */}}
{{- define "codebase-mcp.gatewayScraped" -}}
{{- if or .Values.metrics.serviceMonitor.enabled .Values.gateway.metricsPublic }}true{{ end }}
{{- end }}

{{/* Scrape annotations of a pod: call with (dict "port" PORT "enabled" BOOL); user podAnnotations win. */}}
{{- define "codebase-mcp.scrapeAnnotations" -}}
{{- if .enabled }}
{{- toJson (dict "prometheus.io/scrape" "true" "prometheus.io/port" (toString .port) "prometheus.io/path" "/metrics") }}
{{- else }}{}{{ end }}
{{- end }}
