// Package send is `vllmgen` (or `vllmgen send`): it generates vLLM requests (package workload), plays them on
// the emulated vLLM engine (package engine: /metrics, aborts, lost and unsampled spans), sends the spans that
// leave the server over OTLP (package otlpsend) at a paced rate, and prints the expected values of what it sent.
package send // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/cli"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// Options is a parsed and validated command line.
type Options struct {
	Protocol otlpsend.Protocol
	// Endpoint is normalized: host:port for gRPC, a full URL for HTTP.
	Endpoint string
	Shape    workload.Shape
	Profile  workload.Profile
	Anchor   workload.Anchor
	// Count is the number of API requests; 0 means no limit (Duration then ends the run).
	Count    int64
	Duration time.Duration
	// Rate is requests per second; 0 sends as fast as possible.
	Rate        float64
	Models      []string
	ServiceName string
	Resource    []workload.KeyValue
	// Seed is the seed in use; SeedFromClock says it was taken from the clock because --seed was 0.
	Seed          uint64
	SeedFromClock bool
	NProb         float64
	GreedyProb    float64
	Batch         int
	Workers       int
	Timeout       time.Duration
	SLO           workload.SLO
	JSONSummary   bool
	DryRun        bool
	VLLM          VLLMOptions
	Sampling      SamplingOptions
}

// SamplingOptions is the head sampling a vLLM server's SDK does at the source.
type SamplingOptions struct {
	// Enabled is set by --sample-ratio; without it spans are sent as before, all of them, with no tracestate.
	Enabled bool
	// Ratio is the probability a finished request's span is sent (0 < Ratio ≤ 1).
	Ratio float64
	// TraceState says whether sent spans carry the OTEP 235 threshold (ot=th:…) or no tracestate.
	TraceState headsample.Mode
}

// sampler returns the head sampler, or nil when sampling is off.
func (s SamplingOptions) sampler() (*headsample.Sampler, error) {
	if !s.Enabled {
		return nil, nil
	}
	return headsample.New(s.Ratio, s.TraceState)
}

// VLLMOptions is what vllmgen plays of the vLLM server itself, beyond its spans: its /metrics endpoint, requests
// whose span is lost, and requests the client aborts.
type VLLMOptions struct {
	// MetricsListen is the address /metrics is served on; empty serves nothing.
	MetricsListen string
	// MetricsLinger is how long /metrics stays up after the send ends; 0 means until SIGINT/SIGTERM.
	MetricsLinger time.Duration
	// SpanLoss is the fraction of finished requests whose span is not sent.
	SpanLoss float64
	// AbortFraction is the fraction of requests the client aborts before they finish.
	AbortFraction float64
}

// Defaults that the README documents.
const (
	defaultModel      = "meta-llama/Llama-3.1-8B-Instruct"
	defaultCount      = 100
	defaultBatch      = 100
	defaultNProb      = 0.05
	defaultGreedyProb = 0.1
	maxBatch          = 100_000
	maxWorkers        = 256
)

func defaultWorkers() int { return min(4, max(1, runtime.NumCPU())) }

// ParseFlags parses args (without the program name). Usage and flag errors go to stderr; -h returns
// flag.ErrHelp.
func ParseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := cli.NewFlagSet("vllmgen", "Usage: vllmgen [send] [flags]\n       vllmgen serve [flags]   (a vLLM emulator; see vllmgen serve -h)\n\nSends vLLM llm_request spans over OTLP, shaped exactly as vLLM emits them, and prints the\nexpected TTFT/TPOT/E2E/queue/prefill/decode sums and SLO outcomes of what it sent.", stderr)
	var (
		otlp       = cli.OTLPFlags(fs, "otlp-endpoint", "default 127.0.0.1:4317 for grpc, http://127.0.0.1:4318/v1/traces for http/protobuf", string(otlpsend.ProtocolGRPC))
		shape      = fs.String("shape", "v1", "span shape: v1 (scope vllm.tracing.otel) | v1-legacy-scope (scope vllm.llm_engine) | v0 | v0-detailed")
		count      = fs.Int64("count", 0, fmt.Sprintf("number of requests (API calls) to send (default %d when --duration is not given)", defaultCount))
		duration   = fs.Duration("duration", 0, "send for this long (e.g. 30s); with --count, whichever ends first")
		rate       = fs.Float64("rate", 0, "requests per second (0 = as fast as possible)")
		models     = fs.String("models", defaultModel, "comma-separated served models, one resource (server) each")
		service    = fs.String("service-name", "vllm-server", "resource service.name")
		resource   = fs.String("resource", "", "extra resource attributes k=v,k2=v2 (e.g. service.instance.id=gen-a)")
		seed       = fs.Uint64("seed", 0, "seed for reproducible values (0 = from the clock; the summary prints it)")
		profile    = fs.String("profile", "chat", "latency/token distributions: chat | batch | mixed")
		nProb      = fs.Float64("n-prob", defaultNProb, "probability that a request has n=2")
		greedyProb = fs.Float64("greedy-prob", defaultGreedyProb, "probability of temperature 0 (V1 then omits gen_ai.request.temperature)")
		batch      = fs.Int("batch", defaultBatch, "spans per OTLP export request")
		workers    = fs.Int("workers", defaultWorkers(), "concurrent exporters")
		timeout    = fs.Duration("timeout", 10*time.Second, "per-export timeout (gRPC waits this long for the collector to be ready)")
		anchor     = fs.String("anchor", "arrival", "span times: arrival (start = send time, end = start + e2e + delay) | finish (end = send time)")
		sloTTFT    = fs.Duration("slo-ttft", 0, "TTFT objective (a span meets it when TTFT ≤ threshold)")
		sloTPOT    = fs.Duration("slo-tpot", 0, "TPOT objective")
		sloE2E     = fs.Duration("slo-e2e", 0, "end-to-end latency objective")
		sloQueue   = fs.Duration("slo-queue", 0, "queue time objective")
		summary    = fs.String("summary", "text", "summary format: text | json (json goes to stdout)")
		dryRun     = fs.Bool("dry-run", false, "generate and summarise, send nothing (no pacing)")
		metrics    = fs.String("metrics-listen", "", "serve vLLM's own Prometheus /metrics for the requests sent on this address (e.g. 127.0.0.1:8000)")
		linger     = fs.Duration("metrics-linger", 30*time.Second, "keep serving /metrics this long after the send ends, so a scraper reads the final values (0 = until SIGINT/SIGTERM)")
		spanLoss   = fs.Float64("span-loss", 0, "fraction of finished requests whose span is not sent (as a full SDK export queue drops them); /metrics still counts them")
		abortFrac  = fs.Float64("abort-fraction", 0, "fraction of requests the client aborts: counted in /metrics as vLLM counts them, sent as no span")
		sampleRat  = fs.Float64("sample-ratio", 1, "head sampling: send a finished request's span with this probability (0 < R ≤ 1), decided from its trace id as an OTEP 235 sampler does; /metrics still counts every request. Not given: no sampling, no tracestate")
		sampleTS   = fs.String("sample-tracestate", "threshold", "with --sample-ratio: threshold (sent spans carry tracestate ot=th:<threshold>, as an OTEP 235 sampler writes it) | none (no tracestate, as the Python SDK's TraceIdRatioBased sampler sends them)")
	)
	if err := cli.Parse(fs, args); err != nil {
		return Options{}, err
	}

	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var o Options
	var err error
	o.Protocol, o.Endpoint, err = otlp.Parse()
	check(err)
	o.Shape, err = workload.ParseShape(*shape)
	check(err)
	o.Profile, err = workload.ParseProfile(*profile)
	check(err)
	o.Anchor, err = workload.ParseAnchor(*anchor)
	check(err)

	o.Count, o.Duration, o.Rate = *count, *duration, *rate
	switch {
	case o.Count < 0:
		check(fmt.Errorf("--count must not be negative, got %d", o.Count))
	case o.Duration < 0:
		check(fmt.Errorf("--duration must not be negative, got %v", o.Duration))
	case o.Count == 0 && o.Duration == 0:
		o.Count = defaultCount
	}
	if math.IsNaN(o.Rate) || math.IsInf(o.Rate, 0) || o.Rate < 0 {
		check(fmt.Errorf("--rate must be a non-negative number, got %v", o.Rate))
	}

	o.Models = splitList(*models)
	if len(o.Models) == 0 {
		check(errors.New("--models needs at least one model"))
	}
	o.ServiceName = *service
	o.Resource, err = parseResource(*resource)
	check(err)

	o.Seed = *seed
	if o.Seed == 0 {
		o.Seed, o.SeedFromClock = uint64(time.Now().UnixNano()), true
	}
	o.NProb, o.GreedyProb = *nProb, *greedyProb
	for _, p := range []struct {
		flag  string
		value float64
	}{{"--n-prob", o.NProb}, {"--greedy-prob", o.GreedyProb}} {
		if !(p.value >= 0 && p.value <= 1) {
			check(fmt.Errorf("%s must be within [0, 1], got %v", p.flag, p.value))
		}
	}
	o.Batch, o.Workers, o.Timeout = *batch, *workers, *timeout
	if o.Batch < 1 || o.Batch > maxBatch {
		check(fmt.Errorf("--batch must be within [1, %d], got %d", maxBatch, o.Batch))
	}
	if o.Workers < 1 || o.Workers > maxWorkers {
		check(fmt.Errorf("--workers must be within [1, %d], got %d", maxWorkers, o.Workers))
	}
	if o.Timeout <= 0 {
		check(fmt.Errorf("--timeout must be positive, got %v", o.Timeout))
	}
	o.SLO = workload.SLO{TTFT: *sloTTFT, TPOT: *sloTPOT, E2E: *sloE2E, Queue: *sloQueue}
	check(o.SLO.Validate())

	switch *summary {
	case "text":
	case "json":
		o.JSONSummary = true
	default:
		check(fmt.Errorf("--summary must be text or json, got %q", *summary))
	}
	o.DryRun = *dryRun
	o.VLLM = VLLMOptions{MetricsListen: *metrics, MetricsLinger: *linger, SpanLoss: *spanLoss, AbortFraction: *abortFrac}
	check(o.VLLM.validate())
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.Sampling = SamplingOptions{Enabled: set["sample-ratio"], Ratio: *sampleRat}
	if _, err := headsample.New(o.Sampling.Ratio, headsample.ModeThreshold); err != nil {
		check(fmt.Errorf("--sample-ratio: %w", err))
	}
	o.Sampling.TraceState, err = headsample.ParseMode(*sampleTS)
	if err != nil {
		check(fmt.Errorf("--sample-tracestate: %w", err))
	} else if set["sample-tracestate"] && !o.Sampling.Enabled {
		check(errors.New("--sample-tracestate needs --sample-ratio"))
	}
	if o.DryRun && o.Duration > 0 && o.Count == 0 && o.Rate == 0 {
		check(errors.New("--dry-run does not pace: with --duration it needs --rate (it then generates rate × duration requests)"))
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	return o, nil
}

func (v VLLMOptions) validate() error {
	var errs []error
	if v.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(v.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("--metrics-listen: want host:port, got %q", v.MetricsListen))
		}
	}
	if v.MetricsLinger < 0 {
		errs = append(errs, fmt.Errorf("--metrics-linger must not be negative, got %v", v.MetricsLinger))
	}
	for _, p := range []struct {
		flag  string
		value float64
	}{{"--span-loss", v.SpanLoss}, {"--abort-fraction", v.AbortFraction}} {
		if !(p.value >= 0 && p.value <= 1) {
			errs = append(errs, fmt.Errorf("%s must be within [0, 1], got %v", p.flag, p.value))
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func parseResource(s string) ([]workload.KeyValue, error) {
	var out []workload.KeyValue
	for _, pair := range splitList(s) {
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--resource: %q is not key=value", pair)
		}
		out = append(out, workload.KeyValue{Key: k, Value: strings.TrimSpace(v)})
	}
	return out, nil
}
