{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "cass-cdc-pg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, unless the release name already contains the chart name. A StatefulSet adds
"-<ordinal>" to pod names and its controller-revision-hash label value is "<name>-<hash>", so keep this
at most 52 characters.
*/}}
{{- define "cass-cdc-pg.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cass-cdc-pg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "cass-cdc-pg.labels" -}}
helm.sh/chart: {{ include "cass-cdc-pg.chart" . }}
{{ include "cass-cdc-pg.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cass-cdc-pg
{{- end }}

{{/*
Selector labels (immutable on a StatefulSet: never change them).
*/}}
{{- define "cass-cdc-pg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cass-cdc-pg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "cass-cdc-pg.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cass-cdc-pg.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cass-cdc-pg.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The headless Service that governs the StatefulSet (stable pod DNS names).
*/}}
{{- define "cass-cdc-pg.headlessName" -}}
{{- printf "%s-headless" (include "cass-cdc-pg.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fail early on settings the worker cannot run without (its built-in defaults point at a local dev stack).
*/}}
{{- define "cass-cdc-pg.validate" -}}
{{- if not .Values.config.kafka.bootstrapServers }}
{{- fail "config.kafka.bootstrapServers is required (CDC_KAFKA__BOOTSTRAP_SERVERS)" }}
{{- end }}
{{- if not .Values.config.cassandra.hosts }}
{{- fail "config.cassandra.hosts is required (CDC_CASSANDRA__HOSTS), e.g. --set 'config.cassandra.hosts={cassandra-0.cassandra}'" }}
{{- end }}
{{- if and (not .Values.secrets.postgresDsn.existingSecret) (not .Values.config.postgres.dsn) }}
{{- fail "secrets.postgresDsn.existingSecret (a Secret holding the PostgreSQL DSN) or config.postgres.dsn (no password: with vault.enabled) is required (CDC_POSTGRES__DSN)" }}
{{- end }}
{{- if and .Values.vault.enabled (not .Values.vault.addr) }}
{{- fail "vault.addr is required with vault.enabled (CDC_VAULT__ADDR)" }}
{{- end }}
{{- if and .Values.config.transforms (not .Values.secrets.transformHashKey.existingSecret) (not .Values.vault.references.transformHashKey) }}
{{- fail "secrets.transformHashKey.existingSecret is required with config.transforms (CDC_TRANSFORM_HASH_KEY)" }}
{{- end }}
{{- end }}
