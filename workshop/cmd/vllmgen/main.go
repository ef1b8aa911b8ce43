// Command vllmgen plays vLLM without a GPU, over one emulated vLLM engine: `vllmgen` (or `vllmgen send`) forges
// vLLM's llm_request spans, shaped exactly as each vLLM version emits them, pushes them over OTLP and prints the
// expected metric values of what it sent (optionally serving vLLM's own /metrics for those requests); `vllmgen
// serve` is an emulated vLLM OpenAI-compatible server that exports a span per request it serves. See README.md.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen"

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmgen"
)

func main() {
	// The first SIGINT/SIGTERM stops the run and lets in-flight work finish; restoring the default handling then
	// lets a second one end the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := vllmgen.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
