{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "dora-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release name, plus the chart name unless the release name already holds it. */}}
{{- define "dora-exporter.fullname" -}}
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

{{- define "dora-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dora-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dora-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dora-exporter.labels" -}}
helm.sh/chart: {{ include "dora-exporter.chart" . }}
{{ include "dora-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dora-exporter
{{- end }}

{{- define "dora-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dora-exporter.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dora-exporter.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The exporter's config file: the user's `config` plus the keys the chart owns (data_dir, store.path, http),
which must agree with the volume mount and the container ports.
*/}}
{{- define "dora-exporter.config" -}}
{{- $cfg := deepCopy .Values.config }}
{{- $_ := set $cfg "data_dir" "/data" }}
{{- $store := deepCopy (default (dict) $cfg.store) }}
{{- if not $store.path }}
{{- $_ := set $store "path" "/data/dora.db" }}
{{- end }}
{{- $_ := set $cfg "store" $store }}
{{- $http := dict "listen" (printf "0.0.0.0:%d" (int .Values.service.ports.metrics)) "webhook_listen" (printf "0.0.0.0:%d" (int .Values.service.ports.webhooks)) }}
{{- range $listener, $prefix := dict "http" "" "webhooks" "webhook_" }}
{{- $tls := get $.Values.tls $listener }}
{{- if $tls.existingSecret }}
{{- $section := dict "cert_file" (printf "%s/tls.crt" $tls.mountPath) "key_file" (printf "%s/tls.key" $tls.mountPath) "client_auth_type" $tls.clientAuthType "min_version" $tls.minVersion }}
{{- if ne $tls.clientAuthType "NoClientCert" }}
{{- $_ := set $section "client_ca_file" (printf "%s/ca.crt" $tls.mountPath) }}
{{- end }}
{{- $_ := set $http (printf "%stls" $prefix) $section }}
{{- end }}
{{- with get $.Values.basicAuthUsers $listener }}
{{- $_ := set $http (printf "%sbasic_auth_users" $prefix) . }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "http" $http }}
{{- toYaml $cfg }}
{{- end }}

{{/* Rule files under alerts/: YAML files with a top-level `groups` key (promtool test files are skipped). */}}
{{- define "dora-exporter.ruleFiles" -}}
{{- $files := list }}
{{- range $path, $_ := .Files.Glob "alerts/*.{yaml,yml}" }}
{{- $doc := $.Files.Get $path | fromYaml }}
{{- if and (hasKey $doc "groups") (not (hasKey $doc "tests")) }}
{{- $files = append $files $path }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/* A Kubernetes object name made from a file name: lower case, [a-z0-9-] only. */}}
{{- define "dora-exporter.fileSlug" -}}
{{- $stem := base . | trimSuffix (ext .) | lower }}
{{- regexReplaceAll "[^a-z0-9-]+" $stem "-" | trimAll "-" }}
{{- end }}

{{/* Checks that a schema cannot express (they span several keys). */}}
{{- define "dora-exporter.validate" -}}
{{- $gh := .Values.secrets.github }}
{{- if and $gh.token.existingSecret $gh.app.existingSecret }}
{{- fail "secrets.github: set either token.existingSecret or app.existingSecret, not both" }}
{{- end }}
{{- if and $gh.app.existingSecret (not $gh.app.id) }}
{{- fail "secrets.github.app.id is required with secrets.github.app.existingSecret" }}
{{- end }}
{{- if and .Values.config.github (dig "enabled" false .Values.config.github) (not (or $gh.token.existingSecret $gh.app.existingSecret)) }}
{{- fail "config.github.enabled needs secrets.github.token.existingSecret or secrets.github.app.existingSecret" }}
{{- end }}
{{- if and .Values.ingress.enabled (not (or .Values.secrets.argocdWebhookToken.existingSecret .Values.secrets.githubWebhookSecret.existingSecret)) }}
{{- fail "ingress.enabled exposes the webhooks: set secrets.argocdWebhookToken.existingSecret and/or secrets.githubWebhookSecret.existingSecret" }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.host is required when ingress.enabled" }}
{{- end }}
{{- end }}
