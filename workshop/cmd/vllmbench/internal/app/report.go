package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/report"
)

// ParseReport reads `vllmbench report RESULTS_DIR [flags]` (flags before or after the folder).
func ParseReport(args []string, stderr io.Writer) (report.Options, error) {
	fs := flag.NewFlagSet("vllmbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vllmbench report RESULTS_DIR [--compare OTHER_DIR] [flags]\n\nWrites one self-contained HTML report (every asset inline) and its charts as SVG files beside it.\n\nFlags:")
		fs.PrintDefaults()
	}
	var o report.Options
	fs.StringVar(&o.CompareDir, "compare", "", "a second results folder, overlaid on every chart, with a table of differences")
	fs.StringVar(&o.OutDir, "output", "", "folder of report.html and the charts (default RESULTS_DIR/report)")
	fs.Float64Var(&o.Target, "goodput-target", 0.9, "share of requests that must meet the goodput objectives for a load point to be within capacity")
	fs.StringVar(&o.Prometheus.URL, "prometheus-url", "", "Prometheus URL (http://host:9090): GPU utilisation and SM activity per load point")
	fs.StringVar(&o.GPUUtilQuery, "gpu-util-query", report.DefaultGPUUtilQuery, "PromQL of GPU utilisation (0..1) over a run; {{range}} is the run's length")
	fs.StringVar(&o.SMQuery, "sm-activity-query", report.DefaultSMQuery, "PromQL of SM activity (0..1) over a run; {{range}} is the run's length")
	// the folder may come first: flag parsing stops at the first non-flag argument
	var dirs []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(dirs) != 1 {
		fs.Usage()
		return o, errors.New("want one RESULTS_DIR")
	}
	o.Dir = dirs[0]
	if !(o.Target > 0 && o.Target <= 1) {
		return o, fmt.Errorf("--goodput-target: want a share in (0, 1], got %v", o.Target)
	}
	if u := o.Prometheus.URL; u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		return o, fmt.Errorf("--prometheus-url: want an http(s) URL, got %q", u)
	}
	o.Prometheus.Client = &http.Client{Timeout: 10 * time.Second}
	return o, nil
}

// ReportMain is `vllmbench report`.
func ReportMain(ctx context.Context, args []string, stderr io.Writer) int {
	o, err := ParseReport(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench report: %v\n", err)
		return ExitUsage
	}
	paths, err := report.Generate(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench report: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(stderr, "vllmbench report: wrote %s and %d charts beside it\n", paths[0], len(paths)-1)
	return ExitOK
}
