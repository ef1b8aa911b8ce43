package serve // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/serve"

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/cli"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// Options is the parsed `vllmgen serve` command line.
type Options struct {
	Listen       string
	Config       Config
	Protocol     otlpsend.Protocol
	Endpoint     string // normalized; empty disables tracing
	SpanConfig   SpanExporterConfig
	RequestLog   string
	ShutdownWait time.Duration
	// Timing says where request timing comes from, for the start-up line.
	Timing string
}

// envOr returns the environment variable's value, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// ParseFlags parses the arguments after `serve`. Flag names follow `vllm serve` where vLLM has one: the OTLP
// endpoint is vLLM's own --otlp-traces-endpoint, not the --otlp-endpoint of the project's other tools, so that a
// `vllm serve` command line works unchanged against the emulator.
func ParseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := cli.NewFlagSet("vllmgen serve", "Usage: vllmgen serve [flags]\n\nServes an OpenAI-compatible streaming endpoint (/v1/completions, /v1/chat/completions) that\nbehaves like vLLM, exports vLLM's llm_request span per finished request, and serves vLLM's\nPrometheus metrics on GET /metrics.", stderr)
	var (
		host        = fs.String("host", "127.0.0.1", "listen address")
		port        = fs.Int("port", 8000, "listen port (0 = any free port, printed on stderr)")
		model       = fs.String("served-model-name", "meta-llama/Llama-3.1-8B-Instruct", "model name requests must use")
		profile     = fs.String("profile", "chat", "timing distributions: chat | batch | mixed")
		seed        = fs.Uint64("seed", 0, "seed for the timing draws (0 = from the clock)")
		maxSeqs     = fs.Int("max-num-seqs", DefaultMaxNumSeqs, "requests decoding at once; the rest queue")
		maxTokens   = fs.Int64("default-max-tokens", DefaultMaxTokens, "output tokens when a request sets no max_tokens")
		stragEvery  = fs.Int("straggler-every", 0, "every Nth request waits --straggler-delay longer in the queue (0 = none)")
		stragDelay  = fs.Duration("straggler-delay", 2*time.Second, "extra queue time of a straggler")
		otlp        = cli.OTLPFlags(fs, "otlp-traces-endpoint", "empty = no tracing; --otlp-protocol defaults to OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", envOr("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"))
		delay       = fs.Duration("otlp-export-delay", bspDelay(), "batch delay of span exports (default OTEL_BSP_SCHEDULE_DELAY, else 5s as vLLM's SDK)")
		service     = fs.String("service-name", envOr("OTEL_SERVICE_NAME", "unknown_service"), "resource service.name (default OTEL_SERVICE_NAME, else the SDK's unknown_service)")
		fixPrefill  = fs.Duration("fixed-prefill", 0, "every request's prefill takes exactly this long, with no queue time (replaces --profile; for benchmarks)")
		fixTPOT     = fs.Duration("fixed-tpot", 0, "every output token takes exactly this long (replaces --profile; for benchmarks)")
		requestLog  = fs.String("request-log", "", "write one JSON line per request (plan and measured values) to this file")
		shutdownFor = fs.Duration("shutdown-timeout", 10*time.Second, "on SIGTERM/Ctrl-C, how long in-flight requests may finish")
	)
	if err := cli.Parse(fs, args); err != nil {
		return Options{}, err
	}
	prof, err := workload.ParseProfile(*profile)
	if err != nil {
		return Options{}, fmt.Errorf("--profile: %w", err)
	}
	if *port < 0 || *port > 65535 {
		return Options{}, fmt.Errorf("--port: %d is not a port", *port)
	}
	if *maxSeqs <= 0 {
		return Options{}, fmt.Errorf("--max-num-seqs: must be positive, got %d", *maxSeqs)
	}
	if *maxTokens <= 0 {
		return Options{}, fmt.Errorf("--default-max-tokens: must be positive, got %d", *maxTokens)
	}
	if *stragEvery < 0 || *stragDelay < 0 {
		return Options{}, errors.New("--straggler-every and --straggler-delay must not be negative")
	}
	if *fixPrefill < 0 || *fixTPOT < 0 {
		return Options{}, errors.New("--fixed-prefill and --fixed-tpot must not be negative")
	}
	if *delay <= 0 {
		return Options{}, fmt.Errorf("--otlp-export-delay: must be positive, got %s", *delay)
	}
	proto, endpoint, err := otlp.Parse()
	if err != nil {
		return Options{}, err
	}
	opts := Options{
		Listen:   net.JoinHostPort(*host, strconv.Itoa(*port)),
		Protocol: proto,
		Config: Config{
			Model: *model, Profile: prof, Seed: *seed, MaxNumSeqs: *maxSeqs, DefaultMaxTokens: *maxTokens,
			StragglerEvery: *stragEvery, StragglerDelay: *stragDelay,
		},
		SpanConfig:   SpanExporterConfig{Model: *model, ServiceName: *service, ExportDelay: *delay},
		RequestLog:   *requestLog,
		ShutdownWait: *shutdownFor,
	}
	if *fixPrefill > 0 || *fixTPOT > 0 {
		opts.Config.Timing = FixedTiming(*fixPrefill, *fixTPOT)
		opts.Timing = fmt.Sprintf("fixed: prefill %s, %s per token", *fixPrefill, *fixTPOT)
	} else {
		opts.Timing = "profile " + prof.String()
	}
	if opts.Config.Seed == 0 {
		opts.Config.Seed = uint64(time.Now().UnixNano())
	}
	if otlp.Given() {
		opts.Endpoint = endpoint
	}
	return opts, nil
}

func bspDelay() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("OTEL_BSP_SCHEDULE_DELAY")); err == nil && ms > 0 {
		return time.Duration(ms) * time.Millisecond
	}
	return DefaultExportDelay
}

// Main runs `vllmgen serve` with the arguments after `serve` until ctx ends and returns the exit code.
func Main(ctx context.Context, args []string, _, stderr io.Writer) int {
	opts, err := ParseFlags(args, stderr)
	if err != nil {
		return cli.UsageExit("vllmgen serve", err, stderr)
	}
	if err := Serve(ctx, opts, stderr); err != nil {
		fmt.Fprintf(stderr, "vllmgen serve: %v\n", err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

// Serve listens, serves until ctx ends, then lets in-flight requests finish (bounded) and flushes spans.
func Serve(ctx context.Context, opts Options, stderr io.Writer) error {
	cfg := opts.Config
	if opts.RequestLog != "" {
		f, err := os.Create(opts.RequestLog)
		if err != nil {
			return err
		}
		defer f.Close()
		cfg.RequestLog = f
	}
	if opts.Endpoint != "" {
		exp, err := otlpsend.New(opts.Protocol, opts.Endpoint)
		if err != nil {
			return err
		}
		cfg.Spans = NewSpanExporter(exp, opts.SpanConfig)
	}
	srv, err := New(cfg)
	if err != nil {
		return err
	}
	server, err := engine.Listen(opts.Listen, srv)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "vllmgen serve: model %s on http://%s (%s, max-num-seqs %d, seed %d, tracing %s)\n",
		cfg.Model, server.Addr(), opts.Timing, cfg.MaxNumSeqs, cfg.Seed, orNone(opts.Endpoint))
	select {
	case <-server.Done():
		err = server.Err()
	case <-ctx.Done():
		err = server.Shutdown(opts.ShutdownWait)
	}
	total := srv.Engine().Metrics().Total()
	fmt.Fprintf(stderr, "vllmgen serve: requests finished %d, aborted %d\n", total.Finished, total.Aborted)
	if cfg.Spans != nil {
		_ = cfg.Spans.Close()
		exported, dropped, failed := cfg.Spans.Counts()
		fmt.Fprintf(stderr, "vllmgen serve: spans exported %d, dropped %d, failed %d\n", exported, dropped, failed)
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return "off"
	}
	return s
}
