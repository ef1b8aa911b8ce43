// Package vllmprocessor enriches vLLM request spans with derived values (TPOT, decode throughput, V0
// prefill/decode) and SLO verdicts, so the traces kept in Jaeger show them and can be searched by them.
//
//go:generate mdatagen metadata.yaml
package vllmprocessor // import "github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"
