// Package app is vllmbench's command line: flags, the paced run, the server join and the output.
package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/clientspan"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/sse"
)

// Options is a parsed and validated command line.
type Options struct {
	BaseURL        string
	Endpoint       string
	Model          string
	NumPrompts     int
	RequestRate    float64
	Burstiness     float64
	MaxConcurrency int
	DatasetName    string
	DatasetPath    string
	RandomInput    int
	RandomOutput   int
	Seed           uint64
	Tokenizer      string
	Goodput        metrics.Goodput
	Metrics        []string
	Percentiles    []float64
	SaveResult     bool
	SaveDetailed   bool
	ResultDir      string
	ResultFilename string
	// OTLPProtocol is --otlp-protocol, resolved from the environment when --otlp-endpoint is given alone;
	// empty: the environment's (see clientspan.Config).
	OTLPProtocol clientspan.Protocol
	// OTLPEndpoint is --otlp-endpoint, normalized; empty: the environment's OTEL_EXPORTER_OTLP_*ENDPOINT,
	// and no export of the client spans when none is set.
	OTLPEndpoint  string
	JaegerURL     string
	JaegerWait    time.Duration
	JaegerTimeout time.Duration
	JaegerRetry   time.Duration
	DisableTqdm   bool
	DrainTimeout  time.Duration
	// Metadata is --metadata KEY=VALUE ..., stored in the result JSON.
	Metadata map[string]string

	// discardInterrupted: write no result files when the run is interrupted (a sweep's runs).
	discardInterrupted bool
	// explicit names the flags given on the command line (a sweep's config must not contradict them).
	explicit map[string]bool
}

// multiValue are the flags that take several space-separated values, as vLLM's do, and what one value looks like.
var multiValue = map[string]*regexp.Regexp{
	"goodput":  regexp.MustCompile(`^[a-z0-9]+:[0-9.eE+-]+$`), // KEY:MS
	"metadata": regexp.MustCompile(`^[^-=\s][^=\s]*=`),        // KEY=VALUE
}

// joinMultiValue rewrites "--goodput ttft:200 tpot:50" into "--goodput=ttft:200\x00tpot:50" (and --metadata
// likewise) for the flag package; the values are split again at NUL.
func joinMultiValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name := strings.TrimLeft(a, "-")
		item, ok := multiValue[name]
		if !ok || !strings.HasPrefix(a, "-") {
			out = append(out, a)
			continue
		}
		var items []string
		for i+1 < len(args) && item.MatchString(args[i+1]) {
			items = append(items, args[i+1])
			i++
		}
		if len(items) == 0 {
			out = append(out, a) // the flag package reports the missing value
			continue
		}
		out = append(out, "--"+name+"="+strings.Join(items, "\x00"))
	}
	return out
}

// ParseMetadata reads KEY=VALUE items (separated by NUL, or by commas and spaces when typed in one value).
func ParseMetadata(s string) (map[string]string, error) {
	sep := func(r rune) bool { return r == 0 }
	if !strings.ContainsRune(s, 0) {
		sep = func(r rune) bool { return r == ',' || r == ' ' }
	}
	out := map[string]string{}
	for _, item := range strings.FieldsFunc(s, sep) {
		k, v, ok := strings.Cut(item, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", item)
		}
		out[k] = strings.TrimSpace(v)
	}
	return out, nil
}

// ParseFlags parses args (without the program name); -h returns flag.ErrHelp.
func ParseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("vllmbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vllmbench [flags]\n\nBenchmarks an OpenAI-compatible streaming endpoint (vLLM) with the rules of vLLM's serving\nbenchmark, traces every request (traceparent) and can join each with the server's llm_request span.\n\nFlags:")
		fs.PrintDefaults()
	}
	var o Options
	var rate, goodput, pmetrics, percentiles, otlpProto, metadata string
	fs.StringVar(&o.BaseURL, "base-url", "http://127.0.0.1:8000", "server base URL")
	fs.StringVar(&o.Endpoint, "endpoint", sse.EndpointCompletions, "API endpoint: /v1/completions or /v1/chat/completions")
	fs.StringVar(&o.Model, "model", "", "model name (default: the first model of GET /v1/models)")
	fs.IntVar(&o.NumPrompts, "num-prompts", 1000, "number of requests")
	fs.StringVar(&rate, "request-rate", "inf", "requests per second (Poisson with --burstiness 1), or inf to send all at once")
	fs.Float64Var(&o.Burstiness, "burstiness", 1.0, "gamma shape of the gaps between requests (1 = Poisson, < 1 burstier)")
	fs.IntVar(&o.MaxConcurrency, "max-concurrency", 0, "most requests in flight at once (0 = unlimited)")
	fs.StringVar(&o.DatasetName, "dataset-name", "random", "random (synthetic prompts) or custom (--dataset-path JSONL)")
	fs.StringVar(&o.DatasetPath, "dataset-path", "", `JSONL file of {"prompt": "...", "output_len": N} lines (implies --dataset-name custom)`)
	fs.IntVar(&o.RandomInput, "random-input-len", 1024, "random dataset: prompt length in tokens (exact with --tokenizer, else words ≈ tokens)")
	fs.IntVar(&o.RandomOutput, "random-output-len", 128, "random dataset: output tokens (max_tokens, ignore_eos)")
	fs.Uint64Var(&o.Seed, "seed", 0, "seed of the random prompts and arrival times")
	fs.StringVar(&o.Tokenizer, "tokenizer", "", "the model's tokenizer.json, or a directory holding it: random prompts of exact token lengths, exact token counts")
	fs.StringVar(&goodput, "goodput", "", "goodput objectives KEY:MS ... (ttft, tpot, e2el), e.g. --goodput ttft:200 tpot:50 e2el:5000")
	fs.StringVar(&pmetrics, "percentile-metrics", "ttft,tpot,itl", "metrics to print percentiles of: ttft,tpot,itl,e2el")
	fs.StringVar(&percentiles, "metric-percentiles", "99", "comma-separated percentiles, e.g. 50,90,99")
	fs.BoolVar(&o.SaveResult, "save-result", false, "write the result JSON")
	fs.BoolVar(&o.SaveDetailed, "save-detailed", false, "with --save-result: per-request lists in the JSON, and a per-request CSV and JSONL beside it")
	fs.StringVar(&o.ResultDir, "result-dir", "", "directory of the result files (default: current directory)")
	fs.StringVar(&o.ResultFilename, "result-filename", "", "result JSON file name (default: {backend}-{rate}qps[-concurrency{n}]-{model}-{date}.json)")
	fs.StringVar(&o.OTLPEndpoint, "otlp-endpoint", "", "export a client span per request to this OTLP endpoint: gRPC host:port or http(s)://host:port, or an OTLP/HTTP URL\n(/v1/traces added when it has no path) (default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; none: no export)")
	fs.StringVar(&otlpProto, "otlp-protocol", "", "grpc | http/protobuf (alias http) (default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)")
	fs.StringVar(&o.JaegerURL, "jaeger-url", "", "Jaeger query URL (e.g. http://127.0.0.1:16686): join each request with its server span")
	fs.DurationVar(&o.JaegerWait, "jaeger-wait", 6*time.Second, "wait after the last request before querying Jaeger (vLLM exports spans in 5 s batches)")
	fs.DurationVar(&o.JaegerTimeout, "jaeger-timeout", 60*time.Second, "time budget of the whole join after --jaeger-wait")
	fs.DurationVar(&o.JaegerRetry, "jaeger-retry-interval", time.Second, "pause before querying a missing trace again")
	fs.BoolVar(&o.DisableTqdm, "disable-tqdm", false, "no progress bar on stderr")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 5*time.Second, "after Ctrl-C, how long in-flight requests may finish")
	fs.StringVar(&metadata, "metadata", "", "KEY=VALUE ... stored in the result JSON, e.g. --metadata config=A gpu=H100")
	if err := fs.Parse(joinMultiValue(args)); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.explicit = set
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf("--"+key+": "+format, a...)) }
	if o.Endpoint != sse.EndpointCompletions && o.Endpoint != sse.EndpointChatCompletions {
		bad("endpoint", "%q is not %s or %s", o.Endpoint, sse.EndpointCompletions, sse.EndpointChatCompletions)
	}
	if o.NumPrompts <= 0 {
		bad("num-prompts", "must be positive, got %d", o.NumPrompts)
	}
	if rate == "inf" {
		o.RequestRate = math.Inf(1)
	} else if v, err := strconv.ParseFloat(rate, 64); err != nil || !(v > 0) {
		bad("request-rate", "want a positive number or inf, got %q", rate)
	} else {
		o.RequestRate = v
	}
	if !(o.Burstiness > 0) || math.IsInf(o.Burstiness, 0) {
		bad("burstiness", "must be a positive number, got %v", o.Burstiness)
	}
	if o.MaxConcurrency < 0 {
		bad("max-concurrency", "must not be negative, got %d", o.MaxConcurrency)
	}
	if o.DatasetPath != "" && !set["dataset-name"] {
		o.DatasetName = "custom"
	}
	switch o.DatasetName {
	case "random":
		if o.DatasetPath != "" {
			bad("dataset-path", "is not used with --dataset-name random")
		}
		if o.RandomInput <= 0 {
			bad("random-input-len", "must be positive, got %d", o.RandomInput)
		}
		if o.RandomOutput <= 0 {
			bad("random-output-len", "must be positive, got %d", o.RandomOutput)
		}
	case "custom":
		if o.DatasetPath == "" {
			bad("dataset-path", "is required with --dataset-name custom")
		}
	default:
		bad("dataset-name", "%q is not random or custom", o.DatasetName)
	}
	if goodput != "" {
		g, err := metrics.ParseGoodput(strings.ReplaceAll(goodput, "\x00", " "))
		if err != nil {
			bad("goodput", "%v", err)
		}
		o.Goodput = g
	}
	var err error
	if metadata != "" {
		if o.Metadata, err = ParseMetadata(metadata); err != nil {
			bad("metadata", "%v", err)
		}
	}
	if o.Metrics, err = metrics.ParseMetrics(pmetrics); err != nil {
		bad("percentile-metrics", "%v", err)
	}
	if o.Percentiles, err = metrics.ParsePercentiles(percentiles); err != nil {
		bad("metric-percentiles", "%v", err)
	}
	if o.SaveDetailed && !o.SaveResult {
		o.SaveResult = true // --save-detailed alone would otherwise be silently ignored
	}
	if otlpProto != "" {
		if o.OTLPProtocol, err = clientspan.ParseProtocol(otlpProto); err != nil {
			bad("otlp-protocol", "%v", err)
		}
	}
	if o.OTLPEndpoint != "" && (otlpProto == "" || o.OTLPProtocol != "") {
		// The endpoint's form depends on the protocol, the flag's or else the environment's.
		if o.OTLPProtocol, err = (clientspan.Config{Protocol: o.OTLPProtocol}).EffectiveProtocol(); err != nil {
			bad("otlp-protocol", "%v", err)
		} else if o.OTLPEndpoint, err = o.OTLPProtocol.NormalizeEndpoint(o.OTLPEndpoint); err != nil {
			bad("otlp-endpoint", "%v", err)
		}
	}
	if o.JaegerURL != "" && !strings.HasPrefix(o.JaegerURL, "http://") && !strings.HasPrefix(o.JaegerURL, "https://") {
		bad("jaeger-url", "want an http(s) URL, got %q", o.JaegerURL)
	}
	if o.JaegerWait < 0 || o.JaegerTimeout <= 0 || o.JaegerRetry <= 0 {
		bad("jaeger-wait", "--jaeger-wait must not be negative, --jaeger-timeout and --jaeger-retry-interval must be positive")
	}
	if o.DrainTimeout < 0 {
		bad("drain-timeout", "must not be negative")
	}
	return o, errors.Join(errs...)
}
