// Package bench compares the vllm connector and processor with contrib's span_metrics connector and with a
// bare loop that only reads the vLLM attributes, on the same batch. It is its own module so that contrib's
// connector does not enter the main go.mod.
package benchpeers // import "github.com/otelcol-vllm/otelcol-vllm/workshop/benchpeers"
