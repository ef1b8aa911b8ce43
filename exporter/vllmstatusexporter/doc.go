// Package vllmstatusexporter serves a live status page, a JSON API and nothing else: it keeps a sliding window
// of the vllm connector's, the nvml receiver's and vLLM's own metrics and answers GET /api/v1/metrics and GET /.
//
//go:generate mdatagen metadata.yaml
package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"
