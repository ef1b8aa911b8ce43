// Package vllmgen is the vllmgen command: Main dispatches to its two peer subcommands over one emulated vLLM
// engine, `vllmgen [send]` (package send: forge vLLM's spans and push them over OTLP) and `vllmgen serve`
// (package serve: an emulated vLLM OpenAI server).
package vllmgen // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmgen"

import (
	"context"
	"io"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/serve"
)

// Main runs vllmgen with args (without the program name) and returns the process exit code: cli.ExitOK,
// cli.ExitFailed or cli.ExitUsage. `send` is the default subcommand: `vllmgen [flags]` is `vllmgen send [flags]`.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return serve.Main(ctx, args[1:], stdout, stderr)
		case "send":
			return send.Main(ctx, args[1:], stdout, stderr)
		}
	}
	return send.Main(ctx, args, stdout, stderr)
}
