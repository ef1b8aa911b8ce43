// Command vllmbench benchmarks an OpenAI-compatible streaming endpoint (vLLM) the way vLLM's serving
// benchmark does, traces every request with W3C trace context, and joins each request with the server's
// llm_request span from Jaeger. See README.md.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench"

import (
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Signals, arguments and the exit code: toolmain.Run, as every command of the workshop.
func main() { toolmain.Run(app.Main) }
