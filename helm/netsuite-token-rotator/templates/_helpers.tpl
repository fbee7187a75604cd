{{/* Names, labels and the config.toml rendering shared by the templates. */}}

{{/* The chart name, or nameOverride. */}}
{{- define "ntr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Resource names: fullnameOverride, or the release name with the chart name unless it contains it. */}}
{{- define "ntr.fullname" -}}
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

{{- define "ntr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The standard app.kubernetes.io labels. */}}
{{- define "ntr.labels" -}}
helm.sh/chart: {{ include "ntr.chart" . }}
{{ include "ntr.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: netsuite-token-rotator
{{- end }}

{{/* The labels that select the pod; never change them on upgrade. */}}
{{- define "ntr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ntr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ntr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ntr.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ntr.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "ntr.stateClaimName" -}}
{{- default (printf "%s-state" (include "ntr.fullname" .)) .Values.state.persistence.existingClaim }}
{{- end }}

{{/*
A TOML value: strings as JSON strings (JSON's escapes are TOML basic-string escapes), numbers
as integers (the schema allows integers only), booleans, inline tables with sorted keys,
arrays. Empty strings never reach here: "ntr.toml.keys" skips them as "not set".
*/}}
{{/* A TOML value; keys of inline tables are quoted, since a dotted key such as
     deployment.environment.name would otherwise nest tables. */}}
{{- define "ntr.toml.value" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ ternary "true" "false" . }}
{{- else if or (kindIs "float64" .) (kindIs "int" .) (kindIs "int64" .) }}{{ int64 . }}
{{- else if kindIs "map" . }}{ {{- $first := true }}{{ range $k, $v := . }}{{ if not $first }},{{ end }}{{ $first = false }} {{ toJson $k }} = {{ include "ntr.toml.value" $v }}{{ end }} }
{{- else if kindIs "slice" . }}[{{ range $i, $v := . }}{{ if $i }}, {{ end }}{{ include "ntr.toml.value" $v }}{{ end }}]
{{- else }}{{ fail (printf "config: cannot write a %s as TOML" (kindOf .)) }}
{{- end }}
{{- end }}

{{/* `key = value` lines of a map, keys sorted, skipping empty strings and the keys in .skip. */}}
{{- define "ntr.toml.keys" -}}
{{- $skip := .skip | default list }}
{{- range $k, $v := .map }}
{{- if and (not (has $k $skip)) (not (and (kindIs "string" $v) (eq $v ""))) }}
{{ $k }} = {{ include "ntr.toml.value" $v }}
{{- end }}
{{- end }}
{{- end }}

{{/*
config.toml. Secret values are references ({ env = .. } / { file = .. }), never values.
The sections are written as tables; any other top-level key the schema lets through (one the
daemon gained after this template was written) is written too, not dropped: a value (a list of
tables is an array of inline tables) before the first table, as TOML wants, a map as a table
after the sections.
*/}}
{{- define "ntr.configToml" -}}
{{- $c := .Values.config -}}
{{- $sections := list "daemon" "telemetry" "netsuite" "alerts" "freeze" "integrations" -}}
# Rendered by the netsuite-token-rotator Helm chart from .Values.config; edit the values, not this.
{{- range $k, $v := $c }}
{{- if and (not (has $k $sections)) (not (kindIs "map" $v)) (not (and (kindIs "string" $v) (eq $v ""))) }}
{{ $k }} = {{ include "ntr.toml.value" $v }}
{{- end }}
{{- end }}

[daemon]
listen = {{ printf "0.0.0.0:%d" (int64 .Values.containerPort) | toJson }}
{{- include "ntr.toml.keys" (dict "map" ($c.daemon | default dict)) }}

[telemetry]
{{- include "ntr.toml.keys" (dict "map" ($c.telemetry | default dict)) }}

[netsuite]
{{- include "ntr.toml.keys" (dict "map" ($c.netsuite | default dict)) }}
{{- range $k, $v := $c }}
{{- if and (not (has $k $sections)) (kindIs "map" $v) }}

[{{ $k }}]
{{- include "ntr.toml.keys" (dict "map" $v) }}
{{- end }}
{{- end }}
{{- range $c.alerts }}

[[alerts]]
{{- include "ntr.toml.keys" (dict "map" .) }}
{{- end }}
{{- range $c.freeze }}

[[freeze]]
{{- include "ntr.toml.keys" (dict "map" .) }}
{{- end }}
{{- range $c.integrations }}

[[integrations]]
{{- include "ntr.toml.keys" (dict "map" . "skip" (list "login" "m2m" "expect" "store")) }}
{{- with .login }}

[integrations.login]
{{- include "ntr.toml.keys" (dict "map" .) }}
{{- end }}
{{- with .m2m }}

[integrations.m2m]
{{- include "ntr.toml.keys" (dict "map" .) }}
{{- end }}
{{- with .expect }}

[integrations.expect]
{{- include "ntr.toml.keys" (dict "map" .) }}
{{- end }}

[integrations.store]
{{- include "ntr.toml.keys" (dict "map" .store) }}
{{- end }}
{{- end }}
