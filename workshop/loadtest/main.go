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
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // accept gzip from exporters that compress
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

	sink, err := startSink()
	if err != nil {
		return err
	}
	results := map[string][]stepResult{}
	for _, p := range o.pipelines {
		fmt.Fprintf(os.Stderr, "== pipeline %s\n", p)
		res, err := benchPipeline(o, p, sink)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", p, err)
		}
		results[p] = res
	}
	printTable(os.Stdout, o, results)
	return nil
}

// ---- sink: counts spans and metric data points, keeps nothing ----

type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	endpoint string
	spans    atomic.Int64
	metrics  metricSink
}

type metricSink struct {
	pmetricotlp.UnimplementedGRPCServer
	points atomic.Int64
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.spans.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

func (m *metricSink) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	m.points.Add(int64(req.Metrics().DataPointCount()))
	return pmetricotlp.NewExportResponse(), nil
}

func startSink() (*sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &sink{endpoint: l.Addr().String()}
	server := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	ptraceotlp.RegisterGRPCServer(server, s)
	pmetricotlp.RegisterGRPCServer(server, &s.metrics)
	go func() { _ = server.Serve(l) }()
	return s, nil
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func benchPipeline(o options, pipeline string, s *sink) ([]stepResult, error) {
	otlpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	telemetryPort, err := freePort()
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
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	if err := waitReady(telemetry, 30*time.Second); err != nil {
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
	before, err := telemetryValues(telemetry)
	if err != nil {
		return r, err
	}
	spansBefore := s.spans.Load()
	cpuBefore, err := cpuSeconds(pid)
	if err != nil {
		return r, err
	}
	stopRSS := make(chan struct{})
	peak := make(chan float64)
	go func() { peak <- sampleRSS(pid, stopRSS) }()

	summary, err := sendLoad(o, otlp, rate, o.step)
	if err != nil {
		close(stopRSS)
		<-peak
		return r, err
	}
	// let the batch processor and the exporters drain
	deadline := time.Now().Add(10 * time.Second)
	for s.spans.Load()-spansBefore < summary.ExportedSpans && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cpuAfter, err := cpuSeconds(pid)
	close(stopRSS)
	r.peakRSSMiB = <-peak
	if err != nil {
		return r, err
	}
	after, err := telemetryValues(telemetry)
	if err != nil {
		return r, err
	}
	r.cpuSeconds = cpuAfter - cpuBefore
	r.sent = summary.ExportedSpans
	r.delivered = s.spans.Load() - spansBefore
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
		if d := after[m] - before[m]; d > 0 {
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

func waitReady(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("collector telemetry %s not ready after %s", url, timeout)
}

// telemetryValues sums each metric of the collector's own Prometheus endpoint over its labels; a _total suffix
// is dropped so that names match whichever form the collector uses.
func telemetryValues(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		if j := strings.IndexByte(name, '{'); j >= 0 {
			name = name[:j]
		}
		out[strings.TrimSuffix(name, "_total")] += v
	}
	return out, sc.Err()
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds reads utime+stime of a process from /proc.
func cpuSeconds(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// the command name may hold spaces; fields after it start at the last ')'
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, err := strconv.ParseFloat(fields[11], 64)
	if err != nil {
		return 0, err
	}
	stime, err := strconv.ParseFloat(fields[12], 64)
	if err != nil {
		return 0, err
	}
	return (utime + stime) / clockTicks, nil
}

// sampleRSS returns the highest VmRSS seen (MiB) until stop closes.
func sampleRSS(pid int, stop <-chan struct{}) float64 {
	var peak float64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(raw), "\n") {
				if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					if kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64); err == nil {
						peak = max(peak, kb/1024)
					}
				}
			}
		}
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
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
