// Command benche2e is the load benchmark behind `make bench-e2e`: it runs the otelcol-vllm binary pinned to one
// CPU core with several pipelines (configs/<name>.yaml) — a plain OTLP→OTLP traces pipeline (the floor), the floor
// plus contrib's span_metrics connector, the floor plus our vllm connector, and the floor plus our vllm processor
// and connector — and drives each with vllmgen at increasing span rates. For every rate it measures the
// collector's CPU time and peak RSS and whether every span was taken and delivered (vllmgen reached the rate,
// nothing refused or failed, the trace sink got every span). It prints a markdown table: the highest rate each
// pipeline sustained with no drops, CPU seconds per 10k spans at a rate all pipelines sustained, the ratio to the
// floor, and RSS.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

type options struct {
	collector    string
	vllmgen      string
	configDir    string
	pipelines    []string
	rates        []int
	step         time.Duration
	collectorCPU string
	loadCPUs     string
	workers      int
	batch        int
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-e2e:", err)
		os.Exit(1)
	}
}

func run() error {
	var o options
	var pipelines, rates string
	flag.StringVar(&o.collector, "collector", "_build/otelcol-vllm", "otelcol-vllm binary")
	flag.StringVar(&o.vllmgen, "vllmgen", "_build/vllmgen", "vllmgen binary")
	flag.StringVar(&o.configDir, "configs", "loadtest/configs", "directory with <pipeline>.yaml")
	flag.StringVar(&pipelines, "pipelines", "floor,span_metrics,vllm_connector,vllm", "pipelines to measure (loadtest/configs/<name>.yaml); the first is the floor")
	flag.StringVar(&rates, "rates", "10000,25000,50000,75000,100000,125000,150000,200000", "span rates (spans/s), increasing")
	flag.DurationVar(&o.step, "step", 10*time.Second, "how long each rate is held")
	flag.StringVar(&o.collectorCPU, "collector-cpu", "1", "taskset CPU list the collector is pinned to (one core)")
	flag.StringVar(&o.loadCPUs, "load-cpus", "0", "taskset CPU list for vllmgen (the trace sink runs in this process)")
	flag.IntVar(&o.workers, "workers", 4, "vllmgen --workers")
	flag.IntVar(&o.batch, "batch", 500, "vllmgen --batch (spans per export request)")
	flag.Parse()
	o.pipelines = strings.Split(pipelines, ",")
	for _, r := range strings.Split(rates, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || v <= 0 {
			return fmt.Errorf("bad rate %q", r)
		}
		o.rates = append(o.rates, v)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return errors.New("taskset (util-linux) is needed to pin the collector to one core")
	}
	// pin this process (the sink) away from the collector's core
	if err := exec.Command("taskset", "-pc", o.loadCPUs, strconv.Itoa(os.Getpid())).Run(); err != nil {
		return fmt.Errorf("pinning the benchmark to %s: %w", o.loadCPUs, err)
	}

	// The trace sink counts spans and keeps nothing; the pipelines send requests of up to --batch spans.
	s := &sink{Sink: &otlpsink.Sink{Discard: true, MaxRecvMsgSize: 64 << 20}}
	var stop func()
	var err error
	if s.endpoint, stop, err = otlpsink.ListenGRPC(s.Sink, ""); err != nil {
		return err
	}
	defer stop()
	results := map[string][]stepResult{}
	for _, p := range o.pipelines {
		fmt.Fprintf(os.Stderr, "== pipeline %s\n", p)
		res, err := benchPipeline(o, p, s)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", p, err)
		}
		results[p] = res
	}
	printTable(os.Stdout, o, results)
	return nil
}

// sink is the pipelines' OTLP/gRPC backend.
type sink struct {
	*otlpsink.Sink
	endpoint string
}

// ---- one pipeline ----

type stepResult struct {
	targetRate   int
	achievedRate float64
	sent         int64
	delivered    int64
	cpuSeconds   float64
	peakRSSMiB   float64
	problems     []string
}

func (r stepResult) ok() bool { return len(r.problems) == 0 }

func benchPipeline(o options, pipeline string, s *sink) ([]stepResult, error) {
	otlpPort, err := testkit.UnusedPort()
	if err != nil {
		return nil, err
	}
	telemetryPort, err := testkit.UnusedPort()
	if err != nil {
		return nil, err
	}
	otlp := fmt.Sprintf("127.0.0.1:%d", otlpPort)
	telemetry := fmt.Sprintf("http://127.0.0.1:%d/metrics", telemetryPort)
	cmd := exec.Command("taskset", "-c", o.collectorCPU, o.collector, "--config", filepath.Join(o.configDir, pipeline+".yaml"))
	cmd.Env = append(os.Environ(),
		"BENCH_OTLP_ENDPOINT="+otlp,
		"BENCH_SINK_ENDPOINT="+s.endpoint,
		"BENCH_TELEMETRY_PORT="+strconv.Itoa(telemetryPort),
		"GOMAXPROCS=1", // one core: the Go runtime should not plan for more
	)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	collector, err := testkit.Launch(pipeline, cmd)
	if err != nil {
		return nil, err
	}
	defer collector.Stop()
	pid := collector.Pid() // taskset execs the collector: the same process
	if err := testkit.WaitHTTP(telemetry, 30*time.Second, func() error {
		if collector.Running() {
			return nil
		}
		return fmt.Errorf("the collector exited before its telemetry answered: %v", collector.Err())
	}); err != nil {
		return nil, err
	}
	// warm-up: first connections, allocations, series creation
	if _, err := sendLoad(o, otlp, 5000, 2*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)

	var out []stepResult
	for _, rate := range o.rates {
		r, err := measureStep(o, pid, otlp, telemetry, s, rate)
		if err != nil {
			return nil, err
		}
		status := "ok"
		if !r.ok() {
			status = strings.Join(r.problems, "; ")
		}
		fmt.Fprintf(os.Stderr, "%-13s %7d spans/s: achieved %9.0f, cpu %.2fs, %.3f s/10k spans, rss %.0f MiB: %s\n",
			pipeline, rate, r.achievedRate, r.cpuSeconds, r.cpuSeconds/float64(max(r.sent, 1))*1e4, r.peakRSSMiB, status)
		out = append(out, r)
		if !r.ok() {
			break
		}
	}
	return out, nil
}

func measureStep(o options, pid int, otlp, telemetry string, s *sink, rate int) (stepResult, error) {
	r := stepResult{targetRate: rate}
	before, err := testkit.ScrapeTelemetry(telemetry)
	if err != nil {
		return r, err
	}
	spansBefore := int64(s.SpanCount())
	cpuBefore, err := testkit.CPUTime(pid)
	if err != nil {
		return r, err
	}
	rss := testkit.WatchRSS(pid, 100*time.Millisecond)

	summary, err := sendLoad(o, otlp, rate, o.step)
	if err != nil {
		rss.Stop()
		return r, err
	}
	// let the batch processor and the exporters drain
	deadline := time.Now().Add(10 * time.Second)
	for int64(s.SpanCount())-spansBefore < summary.ExportedSpans && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cpuAfter, err := testkit.CPUTime(pid)
	r.peakRSSMiB = float64(rss.Stop()) / (1 << 20)
	if err != nil {
		return r, err
	}
	after, err := testkit.ScrapeTelemetry(telemetry)
	if err != nil {
		return r, err
	}
	r.cpuSeconds = (cpuAfter - cpuBefore).Seconds()
	r.sent = summary.ExportedSpans
	r.delivered = int64(s.SpanCount()) - spansBefore
	r.achievedRate = float64(summary.Total.Spans) / summary.ElapsedSeconds

	if r.achievedRate < 0.98*float64(rate) {
		r.problems = append(r.problems, fmt.Sprintf("vllmgen reached only %.0f spans/s", r.achievedRate))
	}
	if summary.FailedExports > 0 || summary.Total.FailedSpans > 0 {
		r.problems = append(r.problems, fmt.Sprintf("%d spans refused", summary.Total.FailedSpans))
	}
	if r.delivered != r.sent {
		r.problems = append(r.problems, fmt.Sprintf("sink got %d of %d spans", r.delivered, r.sent))
	}
	for _, m := range []string{"otelcol_receiver_refused_spans", "otelcol_exporter_enqueue_failed_spans", "otelcol_exporter_send_failed_spans",
		"otelcol_exporter_enqueue_failed_metric_points", "otelcol_exporter_send_failed_metric_points"} {
		if d := after.Value(m) - before.Value(m); d > 0 {
			r.problems = append(r.problems, fmt.Sprintf("%s +%.0f", m, d))
		}
	}
	return r, nil
}

type genSummary struct {
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	FailedExports  int64   `json:"failed_exports"`
	Total          struct {
		Spans         int64 `json:"spans"`
		ExportedSpans int64 `json:"exported_spans"`
		FailedSpans   int64 `json:"failed_spans"`
	} `json:"total"`
	ExportedSpans int64 `json:"-"`
}

// sendLoad runs vllmgen at rate spans/s (n-prob 0: one span per request) for d.
func sendLoad(o options, otlp string, rate int, d time.Duration) (genSummary, error) {
	cmd := exec.Command("taskset", "-c", o.loadCPUs, o.vllmgen,
		"--otlp-endpoint="+otlp, "--otlp-protocol=grpc", "--shape=v1", "--n-prob=0",
		"--rate="+strconv.Itoa(rate), "--duration="+d.String(), "--seed=1",
		"--models=llama-8b,qwen-7b,mistral-7b", "--workers="+strconv.Itoa(o.workers), "--batch="+strconv.Itoa(o.batch),
		"--summary=json")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return genSummary{}, fmt.Errorf("vllmgen: %w\n%s", err, stderr.String())
	}
	var s genSummary
	if err := json.Unmarshal(out, &s); err != nil {
		return s, fmt.Errorf("vllmgen summary: %w: %s", err, out)
	}
	s.ExportedSpans = s.Total.ExportedSpans
	return s, nil
}

// ---- report ----

func printTable(w io.Writer, o options, results map[string][]stepResult) {
	// the reference rate for the CPU comparison: the highest rate every pipeline sustained
	ref := 0
	for _, rate := range o.rates {
		all := true
		for _, p := range o.pipelines {
			if !sustained(results[p], rate) {
				all = false
			}
		}
		if all {
			ref = rate
		}
	}
	floor := o.pipelines[0]
	floorCPU := cpuPer10k(results[floor], ref)
	fmt.Fprintf(w, "\nCollector pinned to CPU %s (GOMAXPROCS=1), vllmgen on CPU %s, %s per rate, rates %v spans/s.\n",
		o.collectorCPU, o.loadCPUs, o.step, o.rates)
	fmt.Fprintf(w, "CPU per 10k spans and RSS at %d spans/s, the highest rate every pipeline sustained.\n\n", ref)
	fmt.Fprintln(w, "| pipeline | max sustained spans/s (no drops) | first failure | CPU s per 10k spans | CPU vs floor | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---:|---|---:|---:|---:|")
	for _, p := range o.pipelines {
		res := results[p]
		best := 0
		failure := "none up to the highest rate"
		for _, r := range res {
			if r.ok() {
				best = r.targetRate
			} else {
				failure = fmt.Sprintf("%d: %s", r.targetRate, strings.Join(r.problems, "; "))
			}
		}
		cpu := cpuPer10k(res, ref)
		ratio := "–"
		if floorCPU > 0 && cpu > 0 {
			ratio = fmt.Sprintf("%.2f×", cpu/floorCPU)
		}
		fmt.Fprintf(w, "| %s | %d | %s | %.3f | %s | %.0f |\n", p, best, failure, cpu, ratio, rssAt(res, ref))
	}
}

func sustained(res []stepResult, rate int) bool {
	for _, r := range res {
		if r.targetRate == rate {
			return r.ok()
		}
	}
	return false
}

func cpuPer10k(res []stepResult, rate int) float64 {
	for _, r := range res {
		if r.targetRate == rate && r.sent > 0 {
			return r.cpuSeconds / float64(r.sent) * 1e4
		}
	}
	return 0
}

func rssAt(res []stepResult, rate int) float64 {
	for _, r := range res {
		if r.targetRate == rate {
			return r.peakRSSMiB
		}
	}
	return 0
}
