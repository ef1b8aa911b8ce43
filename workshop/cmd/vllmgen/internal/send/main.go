package send // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"

import (
	"context"
	"fmt"
	"io"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/cli"
)

// Exit codes, as every subcommand's.
const (
	ExitOK     = cli.ExitOK
	ExitFailed = cli.ExitFailed // some span was not delivered (the summary is printed first)
	ExitUsage  = cli.ExitUsage
)

// Main runs `vllmgen` send with args (the flags, without the program and subcommand names) and returns the
// process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := ParseFlags(args, stderr)
	if err != nil {
		return cli.UsageExit("vllmgen", err, stderr)
	}
	res, err := Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "vllmgen: %v\n", err)
		return ExitFailed
	}
	defer lingerMetrics(ctx, res, stderr)
	summary := NewSummary(res)
	if opts.JSONSummary {
		err = summary.WriteJSON(stdout)
	} else {
		err = summary.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmgen: writing summary: %v\n", err)
		return ExitFailed
	}
	if res.Failed() {
		fmt.Fprintf(stderr, "vllmgen: %d of %d spans were not delivered (%d failed export requests)\n",
			res.Tally.Total.FailedSpans, res.Tally.Total.Spans, res.FailedExports)
		return ExitFailed
	}
	return ExitOK
}

// lingerMetrics keeps vLLM's /metrics up after the summary, so that a scraper reads the final values.
func lingerMetrics(ctx context.Context, res *Result, stderr io.Writer) {
	if addr := res.MetricsAddr(); addr != "" && ctx.Err() == nil {
		until := "until SIGINT/SIGTERM"
		if d := res.Options.VLLM.MetricsLinger; d > 0 {
			until = "for " + d.String() + " (SIGINT/SIGTERM stops earlier)"
		}
		fmt.Fprintf(stderr, "vllmgen: serving vLLM /metrics on http://%s/metrics %s\n", addr, until)
	}
	res.LingerMetrics(ctx)
}
