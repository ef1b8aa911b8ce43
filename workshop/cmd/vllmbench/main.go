// Command vllmbench benchmarks an OpenAI-compatible streaming endpoint (vLLM) the way vLLM's serving
// benchmark does, traces every request with W3C trace context, and joins each request with the server's
// llm_request span from Jaeger. See README.md.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench"

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"
)

func main() {
	// The first Ctrl-C stops sending and lets in-flight requests finish briefly, then the partial summary is
	// printed; restoring the default handling lets a second Ctrl-C end the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
