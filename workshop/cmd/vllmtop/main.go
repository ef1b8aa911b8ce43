// Command vllmtop is a full-screen terminal view of an otelcol-vllm collector's status API
// (GET /api/v1/metrics of the vllm_status exporter): per-model rows, per-GPU rows and firing alerts, refreshed
// every few seconds. `q` quits; `1`, `5`, `f` pick the 1, 5 or 15 minute window; `r` refreshes now. --once prints
// one plain-text snapshot and exits, for scripts and for terminals without a full-screen mode.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmtop"

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmtop/internal/app"
)

func main() {
	// SIGINT or SIGTERM ends the view as `q` does; restoring the default handling then lets a second one end
	// the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := app.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
