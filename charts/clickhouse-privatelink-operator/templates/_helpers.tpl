{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "chpl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "chpl.fullname" -}}
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

{{- define "chpl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chpl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chpl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "chpl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clickhouse-privatelink-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "chpl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chpl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "chpl.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* True (non-empty) in cluster-wide mode: no watchNamespaces given. */}}
{{- define "chpl.clusterWide" -}}
{{- if not .Values.watchNamespaces }}true{{ end }}
{{- end }}

{{/* Namespaces that get the ClickHouse API key Secret: the ones asked for, else the namespaces where the
operator reads Secrets (rbac.secretNamespaces), else the watched ones, else (cluster-wide) the release's. */}}
{{- define "chpl.apiKeyNamespaces" -}}
{{- $apiKey := .Values.clickhouse.apiKey }}
{{- if $apiKey.namespaces }}
{{- toJson $apiKey.namespaces }}
{{- else if .Values.rbac.secretNamespaces }}
{{- toJson .Values.rbac.secretNamespaces }}
{{- else if .Values.watchNamespaces }}
{{- toJson .Values.watchNamespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/* The Secret names the operator may read: clickhouse.apiKey.secretName always, then rbac.secretNames. */}}
{{- define "chpl.secretNames" -}}
{{- toJson (concat (list .Values.clickhouse.apiKey.secretName) (.Values.rbac.secretNames | default list) | uniq) }}
{{- end }}

{{/* The one rule that lets the operator read API key Secrets. */}}
{{- define "chpl.secretRule" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
  {{- if not .Values.rbac.allowAllSecrets }}
  resourceNames: {{ include "chpl.secretNames" . }}
  {{- end }}
{{- if .Values.operator.watchSecrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["list", "watch"]
{{- end }}
{{- end }}

{{/* Settings that cannot work together fail the rendering, with the reason. */}}
{{- define "chpl.validate" -}}
{{- $rbac := .Values.rbac }}
{{- if and $rbac.allowAllSecrets $rbac.secretNames }}
{{- fail "rbac.secretNames has no effect with rbac.allowAllSecrets: true (any Secret may be read): set one of them" }}
{{- end }}
{{- if and .Values.watchNamespaces $rbac.secretNamespaces }}
{{- range $rbac.secretNamespaces }}
{{- if not (has . $.Values.watchNamespaces) }}
{{- fail (printf "rbac.secretNamespaces: %q is not in watchNamespaces: the operator serves no resource there, so it never reads a Secret there" .) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.operator.watchSecrets (include "chpl.clusterWide" .) $rbac.secretNamespaces }}
{{- fail "operator.watchSecrets: true cannot work with rbac.secretNamespaces in cluster-wide mode: the operator watches Secrets in every namespace it serves (all of them), and Roles in a few namespaces grant no cluster-wide list or watch (every watch would be refused, 403). Set watchNamespaces to serve those namespaces only, leave rbac.secretNamespaces empty, or leave operator.watchSecrets off (a changed key is then read at the next drift check)" }}
{{- end }}
{{- if .Values.clickhouse.apiKey.create }}
{{- $readable := $rbac.secretNamespaces | default .Values.watchNamespaces }}
{{- range include "chpl.apiKeyNamespaces" . | fromJsonArray }}
{{- if and $readable (not (has . $readable)) }}
{{- fail (printf "clickhouse.apiKey.namespaces: %q is not a namespace where the operator may read Secrets (%s): it could not use the Secret made there" . (join ", " $readable)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart renders the kopf peering CRDs itself. */}}
{{- define "chpl.rendersPeeringCrds" -}}
{{- if and .Values.crds.enabled .Values.crds.kopfPeering.enabled }}true{{ end }}
{{- end }}

{{/* Pull secrets: imagePullSecrets, then a parent chart's global.imagePullSecrets (objects or plain names),
as a JSON list of {name: ...} without repeats. */}}
{{- define "chpl.imagePullSecrets" -}}
{{- $secrets := list }}
{{- $global := (.Values.global | default dict).imagePullSecrets | default list }}
{{- range concat (.Values.imagePullSecrets | default list) $global }}
{{- if kindIs "string" . }}
{{- $secrets = append $secrets (dict "name" .) }}
{{- else }}
{{- $secrets = append $secrets (dict "name" .name) }}
{{- end }}
{{- end }}
{{- toJson ($secrets | uniq) }}
{{- end }}
