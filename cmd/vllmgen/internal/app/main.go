package app // import "github.com/otelcol-vllm/otelcol-vllm/cmd/vllmgen/internal/app"

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1 // some export failed (the summary is printed first)
	ExitUsage  = 2
)

// Main runs vllmgen with args (without the program name) and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts, err := ParseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmgen: %v\n", err)
		return ExitUsage
	}
	res, err := Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "vllmgen: %v\n", err)
		return ExitFailed
	}
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
