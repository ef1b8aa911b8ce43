// Command vllmtop is a full-screen terminal view of an otelcol-vllm collector's status API
// (GET /api/v1/metrics of the vllm_status exporter): per-model rows, per-GPU rows and firing alerts, refreshed
// every few seconds. `q` quits; `1`, `5`, `f` pick the 1, 5 or 15 minute window; `r` refreshes now. --once prints
// one plain-text snapshot and exits, for scripts and for terminals without a full-screen mode.
package main // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmtop"

import (
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmtop/internal/app"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/internal/toolmain"
)

// Signals, arguments and the exit code: toolmain.Run, as every command of the workshop.
func main() { toolmain.Run(app.Main) }
