// Package benchpeers compares the vllm connector and processor with contrib's span_metrics connector, with a
// bare loop that only reads the vLLM attributes and with a loop that only writes the processor's attributes,
// on the same batch. It lives in the workshop module so that contrib's connector does not enter the product's
// go.mod.
package benchpeers // import "github.com/otelcol-vllm/otelcol-vllm/workshop/benchpeers"
