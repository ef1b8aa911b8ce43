{{/*
The collector config, before extraConfig is merged over it. Every ${env:...} it reads is set on the container
by daemonset.yaml. Exporters and the pipelines that use them follow the exporters.* values.
*/}}
{{- define "otelcol-vllm.baseConfig" -}}
{{- $v := .Values }}
{{- $mem := include "otelcol-vllm.memoryLimiterMiB" . | fromJson }}
{{- $slo := dict }}
{{- range $key := list "ttft" "tpot" "e2e" "queue" }}
{{- with get $v.slo $key }}{{ $_ := set $slo $key . }}{{ end }}
{{- end }}
{{- $rw := $v.exporters.remoteWrite }}
{{- $scrape := $v.exporters.prometheus }}
{{- $jaeger := $v.exporters.jaeger }}
{{- $otlp := $v.exporters.otlp }}
{{- $traceExporters := list }}
{{- $metricsExporters := list }}
{{- if $jaeger.enabled }}
{{- $_ := required "exporters.jaeger.endpoint is required when exporters.jaeger.enabled is true" $jaeger.endpoint }}
{{- $traceExporters = append $traceExporters "otlp_grpc/jaeger" }}
{{- end }}
{{- if $otlp.enabled }}
{{- $_ := required "exporters.otlp.endpoint is required when exporters.otlp.enabled is true" $otlp.endpoint }}
{{- if not (or $otlp.traces $otlp.metrics) }}
{{- fail "exporters.otlp.enabled is true, but neither exporters.otlp.traces nor exporters.otlp.metrics is" }}
{{- end }}
{{- if $otlp.traces }}{{ $traceExporters = append $traceExporters "otlp_grpc/otlp" }}{{ end }}
{{- if $otlp.metrics }}{{ $metricsExporters = append $metricsExporters "otlp_grpc/otlp" }}{{ end }}
{{- end }}
{{- if $rw.enabled }}
{{- $_ := required "exporters.remoteWrite.endpoint is required when exporters.remoteWrite.enabled is true" $rw.endpoint }}
{{- $metricsExporters = prepend $metricsExporters "prometheus_remote_write" }}
{{- end }}
{{- if $scrape.enabled }}
{{- $metricsExporters = append $metricsExporters "prometheus" }}
{{- end }}
{{- /* sampled: the metrics see every span, the trace exporters a sample (a forward fan-out) */}}
{{- $sampled := and $traceExporters (lt (float64 $v.sampling.tracePercentage) 100.0) }}
{{- if not $metricsExporters }}
{{- fail "no metrics exporter: enable exporters.remoteWrite, exporters.prometheus, or exporters.otlp with exporters.otlp.metrics" }}
{{- end }}
extensions:
  health_check:
    endpoint: ${env:MY_POD_IP}:{{ $v.ports.health }}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:MY_POD_IP}:{{ $v.ports.otlpGrpc }}
      http:
        endpoint: ${env:MY_POD_IP}:{{ $v.ports.otlpHttp }}
  nvml:
    collection_interval: {{ $v.nvml.collectionInterval }}
    kubernetes:
      {{- if $v.gpu.podResources.enabled }}
      pod_resources_socket: {{ printf "%s/kubelet.sock" $v.gpu.podResources.path }}
      {{- else }}
      pod_resources_socket: "" # no pod attribution
      {{- end }}
    metrics:
      hw.status:
        enabled: true
  {{- if $v.vllmMetrics.enabled }}
  prometheus:
    config:
      scrape_configs:
        - job_name: vllm
          scrape_interval: {{ $v.vllmMetrics.scrapeInterval }}
          kubernetes_sd_configs:
            - role: pod
              selectors:
                - role: pod
                  field: spec.nodeName=${env:K8S_NODE_NAME}
          relabel_configs:
            - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
              action: keep
              regex: "true"
            - source_labels: [__meta_kubernetes_pod_phase]
              action: keep
              regex: Running
            - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
              action: replace
              regex: ([^:]+)(?::\d+)?;(\d+)
              replacement: $$1:$$2
              target_label: __address__
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: instance
            # job = the pod's app.kubernetes.io/name, which vLLM also sets as OTEL_SERVICE_NAME (the job of the
            # span-derived metrics), so that the span coverage rule joins both sides
            - source_labels: [__meta_kubernetes_pod_label_app_kubernetes_io_name]
              regex: (.+)
              target_label: job
            - source_labels: [__meta_kubernetes_namespace]
              target_label: k8s_namespace_name
            # the pod labels of the GPU metrics, for the energy-per-token rules
            - source_labels: [__meta_kubernetes_pod_name]
              target_label: k8s_pod_name
  {{- end }}

processors:
  memory_limiter:
    check_interval: {{ $v.memoryLimiter.checkInterval }}
    limit_mib: {{ $mem.limit }}
    spike_limit_mib: {{ $mem.spike }}
  vllm:
    slo: {{ $slo | toJson }}
    {{- if $sampled }}
    sampling_priority: true
  probabilistic_sampler:
    mode: proportional
    sampling_percentage: {{ $v.sampling.tracePercentage }}
    {{- end }}
  resource/node:
    attributes:
      - key: service.name
        value: nvml
        action: upsert
      - key: service.instance.id
        value: ${env:K8S_NODE_NAME}
        action: upsert
  # a vLLM request span is about 1 KB, a data point at most about 1.5 KB: 1,000 a request stays under 4 MiB
  batch:
    send_batch_size: 1000
    send_batch_max_size: 1000

connectors:
  {{- if $sampled }}
  forward: {}
  {{- end }}
  vllm:
    slo: {{ $slo | toJson }}
    sampling:
      ratio: {{ $v.sampling.sourceRatio }}
    exemplars:
      enabled: {{ $v.connector.exemplars }}
    resource_attributes: {{ $v.connector.resourceAttributes | toJson }}

exporters:
  {{- if $rw.enabled }}
  prometheus_remote_write:
    endpoint: {{ $rw.endpoint | quote }}
    # the pod of a vLLM server's request metrics, as labels, so they join its GPU metrics (energy per token)
    resource_constant_labels:
      included: [k8s.pod.name, k8s.namespace.name]
    # while Prometheus is down, at most queue_size requests of at most 1 MiB wait in memory
    remote_write_queue:
      queue_size: 64
    {{- with $rw.headers }}
    headers: {{ . | toJson }}
    {{- end }}
    {{- with $rw.tls }}
    tls: {{ . | toJson }}
    {{- end }}
  {{- end }}
  {{- if $scrape.enabled }}
  prometheus:
    endpoint: ${env:MY_POD_IP}:{{ $v.ports.prometheus }}
    # exemplars (trace ids) are only written in the OpenMetrics format
    enable_open_metrics: true
    resource_constant_labels:
      included: [k8s.pod.name, k8s.namespace.name]
  {{- end }}
  {{- if $jaeger.enabled }}
  otlp_grpc/jaeger:
    endpoint: {{ $jaeger.endpoint | quote }}
    {{- with $jaeger.tls }}
    tls: {{ . | toJson }}
    {{- end }}
  {{- end }}
  {{- if $otlp.enabled }}
  otlp_grpc/otlp:
    endpoint: {{ $otlp.endpoint | quote }}
    # cumulative metrics in order, and at most queue_size requests in memory while the backend is down
    sending_queue:
      num_consumers: 1
      queue_size: 64
    {{- with $otlp.headers }}
    headers: {{ . | toJson }}
    {{- end }}
    {{- with $otlp.tls }}
    tls: {{ . | toJson }}
    {{- end }}
  {{- end }}

service:
  extensions: [health_check]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: ${env:MY_POD_IP}
                port: {{ $v.ports.metrics }}
  pipelines:
    {{- if $sampled }}
    traces:
      receivers: [otlp]
      processors: [memory_limiter, vllm]
      exporters: [forward]
    traces/metrics:
      receivers: [forward]
      exporters: [vllm]
    traces/sampled:
      receivers: [forward]
      processors: [probabilistic_sampler, batch]
      exporters: {{ $traceExporters | toJson }}
    {{- else }}
    traces:
      receivers: [otlp]
      processors: [memory_limiter, vllm, batch]
      exporters: {{ prepend $traceExporters "vllm" | toJson }}
    {{- end }}
    metrics/vllm:
      receivers: {{ ternary (list "vllm" "prometheus") (list "vllm") (and $v.vllmMetrics.enabled true) | toJson }}
      # no batch: the connector sends requests of at most 1 MiB, a batch would merge them past 4 MiB
      processors: [memory_limiter]
      exporters: {{ $metricsExporters | toJson }}
    metrics/gpu:
      receivers: [nvml]
      processors: [memory_limiter, resource/node, batch]
      exporters: {{ $metricsExporters | toJson }}
{{- end }}

{{/* The collector config as the ConfigMap holds it: the base config with extraConfig merged over it. */}}
{{- define "otelcol-vllm.config" -}}
{{- $config := include "otelcol-vllm.baseConfig" . | fromYaml }}
{{- if hasKey $config "Error" }}
{{- fail (printf "the rendered collector config is no YAML: %s" $config.Error) }}
{{- end }}
{{- mustMergeOverwrite $config (deepCopy .Values.extraConfig) | toYaml }}
{{- end }}
