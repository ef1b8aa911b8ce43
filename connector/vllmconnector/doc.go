// Package vllmconnector turns vLLM request spans into GenAI latency, token and SLO metrics.
//
//go:generate mdatagen metadata.yaml
package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
