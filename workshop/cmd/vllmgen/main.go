// Command vllmgen plays vLLM without a GPU, over one emulated vLLM engine: `vllmgen` (or `vllmgen send`) forges
// vLLM's llm_request spans, shaped exactly as each vLLM version emits them, pushes them over OTLP and prints the
// expected metric values of what it sent (optionally serving vLLM's own /metrics for those requests); `vllmgen
// serve` is an emulated vLLM OpenAI-compatible server that exports a span per request it serves. See README.md.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen"

import (
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmgen"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Signals, arguments and the exit code: toolmain.Run, as every command of the workshop.
func main() { toolmain.Run(vllmgen.Main) }
