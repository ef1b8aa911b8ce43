{{/* The chart's name, and the full name of the release's objects (at most 63 characters, DNS labels). */}}
{{- define "otelcol-vllm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "otelcol-vllm.fullname" -}}
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

{{- define "otelcol-vllm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "otelcol-vllm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-agent
{{- end }}

{{- define "otelcol-vllm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "otelcol-vllm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: otelcol-vllm
{{- end }}

{{- define "otelcol-vllm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "otelcol-vllm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container memory limit in bytes. Accepts the Kubernetes quantity forms a memory limit is written in: an
integer or decimal number with no suffix (bytes) or one of Ki, Mi, Gi, Ti, k, M, G, T. Anything else fails
the render, naming the key: the memory_limiter's limits are computed from this value.
*/}}
{{- define "otelcol-vllm.memoryLimitBytes" -}}
{{- $v := .Values.resources.limits.memory }}
{{- if not $v }}
{{- fail "resources.limits.memory is required: the memory_limiter's limits are computed from it" }}
{{- end }}
{{- if or (kindIs "float64" $v) (kindIs "int64" $v) (kindIs "int" $v) }}
{{- $v = printf "%.0f" (float64 $v) }}
{{- end }}
{{- $q := toString $v }}
{{- if not (regexMatch `^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$` $q) }}
{{- fail (printf "resources.limits.memory %q: want a number of bytes, optionally with one of the suffixes Ki, Mi, Gi, Ti, k, M, G, T" $q) }}
{{- end }}
{{- $number := regexReplaceAll `[A-Za-z]+$` $q "" }}
{{- $suffix := regexReplaceAll `^[0-9.]+` $q "" }}
{{- $multiplier := get (dict "" 1.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12) $suffix }}
{{- mulf (float64 $number) $multiplier }}
{{- end }}

{{/* memory_limiter's limit_mib and spike_limit_mib: the given percentages of the container memory limit. */}}
{{- define "otelcol-vllm.memoryLimiterMiB" -}}
{{- $bytes := float64 (include "otelcol-vllm.memoryLimitBytes" .) }}
{{- $m := .Values.memoryLimiter }}
{{- if or (le (float64 $m.limitPercentage) 0.0) (gt (float64 $m.limitPercentage) 100.0) }}
{{- fail (printf "memoryLimiter.limitPercentage %v: want a value in (0, 100]" $m.limitPercentage) }}
{{- end }}
{{- if or (lt (float64 $m.spikeLimitPercentage) 0.0) (ge (float64 $m.spikeLimitPercentage) (float64 $m.limitPercentage)) }}
{{- fail (printf "memoryLimiter.spikeLimitPercentage %v: want a value in [0, limitPercentage %v)" $m.spikeLimitPercentage $m.limitPercentage) }}
{{- end }}
{{- $limit := floor (divf (mulf $bytes (float64 $m.limitPercentage)) 104857600.0) | int64 }}
{{- $spike := floor (divf (mulf $bytes (float64 $m.spikeLimitPercentage)) 104857600.0) | int64 }}
{{- if or (lt $limit 1) (le $limit $spike) }}
{{- fail (printf "resources.limits.memory %v is too small for the memory_limiter: limit_mib %d, spike_limit_mib %d (limit_mib must be above spike_limit_mib)" .Values.resources.limits.memory $limit $spike) }}
{{- end }}
{{- dict "limit" $limit "spike" $spike | toJson }}
{{- end }}
