// Command vllmgen sends vLLM request spans (llm_request) over OTLP, shaped exactly as vLLM emits them, and
// prints the expected metric values of what it sent. See README.md.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen"

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/app"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/emulator"
)

func main() {
	// The first SIGINT/SIGTERM stops sending and lets in-flight exports finish; restoring the default
	// handling then lets a second one end the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	var code int
	if len(os.Args) > 1 && os.Args[1] == "serve" { // `vllmgen serve`: the vLLM emulator
		code = emulator.Main(ctx, os.Args[2:], os.Stderr)
	} else {
		code = app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}
