package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/aggregate"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/sweep"
)

// DefaultSweepDir is where a sweep writes its results without --result-dir.
const DefaultSweepDir = "results"

// sweepPercentiles are a sweep's --metric-percentiles unless given: the report draws p50 and p99.
var sweepPercentiles = []float64{50, 90, 99}

// cutFlag removes --name VALUE (or --name=VALUE) from args and returns its value.
func cutFlag(args []string, name string) (string, []string, bool) {
	rest := make([]string, 0, len(args))
	value, found := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--"+name || a == "-"+name:
			if i+1 < len(args) {
				value, found = args[i+1], true
				i++
			} else {
				found = true
			}
		case strings.HasPrefix(a, "--"+name+"=") || strings.HasPrefix(a, "-"+name+"="):
			_, value, _ = strings.Cut(a, "=")
			found = true
		default:
			rest = append(rest, a)
		}
	}
	return value, rest, found
}

const sweepUsage = `Usage: vllmbench sweep --config combos.yaml [flags of a single run]

Runs every combination of the configuration's input_output, concurrency_prompts and request_rates, writes
each result JSON into --result-dir (default results/), skips combinations whose result exists, and aggregates
the folder into aggregate.csv and aggregate.json. The flags are those of a single run (vllmbench -h).`

// SweepOptions are `vllmbench sweep`'s parsed command line and configuration.
type SweepOptions struct {
	Base   Options // the single-run flags every run starts from
	Combos []sweep.Combination
}

// ParseSweep reads `vllmbench sweep --config FILE [single-run flags]`. A list of the configuration replaces the
// flags of that axis (input_output: --random-input-len/--random-output-len; concurrency_prompts:
// --max-concurrency/--num-prompts; request_rates: --request-rate); giving both is an error.
func ParseSweep(args []string, stderr io.Writer) (SweepOptions, error) {
	path, rest, _ := cutFlag(args, "config")
	if path == "" {
		fmt.Fprintln(stderr, sweepUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return SweepOptions{}, flag.ErrHelp
		}
		return SweepOptions{}, errors.New("--config: required")
	}
	o, err := ParseFlags(rest, stderr)
	if err != nil {
		return SweepOptions{}, err
	}
	cfg, err := sweep.Load(path)
	if err != nil {
		return SweepOptions{}, err
	}
	var errs []error
	conflict := func(list string, flags ...string) {
		for _, f := range flags {
			if o.explicit[f] {
				errs = append(errs, fmt.Errorf("--%s: the configuration's %s sets it", f, list))
			}
		}
	}
	if len(cfg.InputOutput) > 0 {
		conflict("input_output", "random-input-len", "random-output-len")
		if o.DatasetName != "random" {
			errs = append(errs, errors.New("input_output: only with the random dataset"))
		}
	}
	if len(cfg.ConcurrencyPrompts) > 0 {
		conflict("concurrency_prompts", "max-concurrency", "num-prompts")
	}
	if len(cfg.Rates) > 0 {
		conflict("request_rates", "request-rate")
	}
	if cfg.ParsedGoodput != nil {
		conflict("goodput", "goodput")
		o.Goodput = cfg.ParsedGoodput
	}
	if o.explicit["result-filename"] {
		errs = append(errs, errors.New("--result-filename: a sweep names each result after its combination"))
	}
	if cfg.Model != "" && !o.explicit["model"] {
		o.Model = cfg.Model
	}
	if cfg.BaseURL != "" && !o.explicit["base-url"] {
		o.BaseURL = cfg.BaseURL
	}
	if len(cfg.Metadata) > 0 {
		m := maps.Clone(cfg.Metadata)
		maps.Copy(m, o.Metadata) // the command line wins
		o.Metadata = m
	}
	if !o.explicit["metric-percentiles"] {
		o.Percentiles = sweepPercentiles
	}
	if o.ResultDir == "" {
		o.ResultDir = DefaultSweepDir
	}
	o.SaveResult = true
	o.discardInterrupted = true
	d := sweep.Defaults{MaxConcurrency: o.MaxConcurrency, NumPrompts: o.NumPrompts, RequestRate: o.RequestRate}
	if o.DatasetName == "random" {
		d.InputLen, d.OutputLen = o.RandomInput, o.RandomOutput
	}
	return SweepOptions{Base: o, Combos: cfg.Combinations(d)}, errors.Join(errs...)
}

// SweepResult says what a sweep did.
type SweepResult struct {
	Ran, Skipped, Failed int
	Interrupted          bool
	Files                []string // the aggregate's files
}

// RunSweep runs every combination whose result JSON is not in the results folder yet, printing one progress
// line per combination on progress, then aggregates the folder.
func RunSweep(ctx context.Context, so SweepOptions, progress, stderr io.Writer) (SweepResult, error) {
	var res SweepResult
	dir := so.Base.ResultDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	n := len(so.Combos)
	for i, c := range so.Combos {
		if ctx.Err() != nil {
			res.Interrupted = true
			break
		}
		name := c.FileName()
		prefix := fmt.Sprintf("[%d/%d] %s", i+1, n, c)
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			res.Skipped++
			fmt.Fprintf(progress, "%s: skipped, %s exists\n", prefix, name)
			continue
		}
		o := so.Base
		o.MaxConcurrency, o.NumPrompts, o.RequestRate, o.ResultFilename = c.MaxConcurrency, c.NumPrompts, c.RequestRate, name
		if c.InputLen > 0 {
			o.RandomInput, o.RandomOutput = c.InputLen, c.OutputLen
		}
		began := time.Now()
		out, err := Run(ctx, o, io.Discard, stderr)
		switch {
		case err != nil:
			res.Failed++
			fmt.Fprintf(progress, "%s: failed: %v\n", prefix, err)
			continue
		case out.Interrupted:
			res.Interrupted = true
			fmt.Fprintf(progress, "%s: interrupted, no result kept\n", prefix)
		default:
			res.Ran++
			if out.Summary.Completed == 0 {
				res.Failed++
			}
			fmt.Fprintf(progress, "%s: %s in %s -> %s\n", prefix, describe(out.Summary), time.Since(began).Round(100*time.Millisecond), name)
		}
		if res.Interrupted {
			break
		}
	}
	if res.Ran+res.Skipped > 0 {
		files, _, err := aggregate.Write(dir)
		if err != nil {
			return res, err
		}
		res.Files = files
	}
	return res, nil
}

// describe is a run's figures on its progress line.
func describe(s metrics.Summary) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d ok, %d failed, %.2f req/s, %.1f output tok/s", s.Completed, s.Failed, s.RequestThroughput, s.OutputThroughput)
	if s.HasGoodput && s.Completed+s.Failed > 0 {
		fmt.Fprintf(&b, ", goodput %.0f%%", 100*float64(s.GoodCompleted)/float64(s.Completed+s.Failed))
	}
	fmt.Fprintf(&b, ", median TTFT %.1f ms", s.Stats["ttft"].Median)
	if s.Joined > 0 {
		fmt.Fprintf(&b, ", server queue %.0f%% / prefill %.0f%% / decode %.0f%% of e2e", 100*s.ServerShare[metrics.PhaseQueue],
			100*s.ServerShare[metrics.PhasePrefill], 100*s.ServerShare[metrics.PhaseDecode])
	}
	return b.String()
}

// SweepMain is `vllmbench sweep`.
func SweepMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	so, err := ParseSweep(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench sweep: %v\n", err)
		return ExitUsage
	}
	res, err := RunSweep(ctx, so, stdout, stderr)
	for _, f := range res.Files {
		fmt.Fprintf(stderr, "vllmbench sweep: wrote %s\n", f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench sweep: %v\n", err)
		return ExitFailed
	}
	fmt.Fprintf(stderr, "vllmbench sweep: %d run, %d skipped (result exists), %d failed, of %d combinations\n",
		res.Ran, res.Skipped, res.Failed, len(so.Combos))
	switch {
	case res.Interrupted:
		return ExitInterrupted
	case res.Failed > 0:
		return ExitFailed
	}
	return ExitOK
}

// AggregateMain is `vllmbench aggregate RESULTS_DIR`.
func AggregateMain(args []string, stderr io.Writer) int {
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "Usage: vllmbench aggregate RESULTS_DIR\n\nWrites RESULTS_DIR/aggregate.csv and aggregate.json: one row per result JSON in the folder.")
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return ExitOK
		}
		return ExitUsage
	}
	files, runs, err := aggregate.Write(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "vllmbench aggregate: %v\n", err)
		return ExitFailed
	}
	for _, f := range files {
		fmt.Fprintf(stderr, "vllmbench aggregate: wrote %s (%d runs)\n", f, len(runs))
	}
	return ExitOK
}
