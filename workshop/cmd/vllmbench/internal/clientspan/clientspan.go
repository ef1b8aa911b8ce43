// Package clientspan is vllmbench's client span per request, made with the OpenTelemetry Go SDK. The span is
// started when the request is sent; its context goes in the request's traceparent header (W3C trace
// context), so vLLM's llm_request span is its child and the user's view and the server's are one trace. The
// spans are exported over OTLP (gRPC or HTTP/protobuf) through a batch span processor when an endpoint is
// given by --otlp-endpoint or by the standard OTEL_EXPORTER_OTLP_* environment variables.
package clientspan // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/clientspan"

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// ScopeName is the instrumentation scope of the client spans.
const ScopeName = "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench"

// Client-side attributes of the span (seconds), beside the GenAI and HTTP semantic-convention ones.
const (
	AttrTTFT     = "vllmbench.time_to_first_token"
	AttrTPOT     = "vllmbench.time_per_output_token"
	AttrE2EL     = "vllmbench.e2e"
	AttrITLCount = "vllmbench.inter_token_latency.count"
	AttrITLMax   = "vllmbench.inter_token_latency.max"
	AttrIndex    = "vllmbench.request.index"
)

// DefaultServiceName is the resource's service.name unless OTEL_SERVICE_NAME (or service.name in
// OTEL_RESOURCE_ATTRIBUTES) says otherwise.
const DefaultServiceName = "vllmbench"

// Propagator writes a span's context into the request's headers. vLLM reads W3C trace context
// (traceparent) only, so no other format is offered.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Protocol is the OTLP transport.
type Protocol string

const (
	ProtocolGRPC Protocol = "grpc"
	ProtocolHTTP Protocol = "http/protobuf"
)

// The environment variables read here; the SDK's exporters read the others (headers, timeout, TLS,
// compression, and the endpoint itself) on their own.
const (
	envTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
	envEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	envTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envTracesExporter = "OTEL_TRACES_EXPORTER"
)

// ParseProtocol converts an --otlp-protocol value (or an OTEL_EXPORTER_OTLP_PROTOCOL one): grpc, or
// http/protobuf with http as its alias.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "grpc":
		return ProtocolGRPC, nil
	case "http", "http/protobuf":
		return ProtocolHTTP, nil
	}
	return "", fmt.Errorf("unknown OTLP protocol %q (want grpc, or http/protobuf alias http)", s)
}

// NormalizeEndpoint turns an --otlp-endpoint value into the URL the SDK exporter takes. gRPC: host:port
// (plaintext), http://host:port or grpc://host:port (plaintext), https://host:port (TLS). HTTP: host:port or
// an http(s) URL; /v1/traces is added when the URL has no path.
func (p Protocol) NormalizeEndpoint(endpoint string) (string, error) {
	if p == ProtocolGRPC {
		scheme, hostPort := "http", endpoint
		if s, rest, ok := strings.Cut(endpoint, "://"); ok {
			switch s {
			case "http", "grpc":
			case "https":
				scheme = "https"
			default:
				return "", fmt.Errorf("gRPC endpoint %q: scheme %q is not supported (http, grpc or https)", endpoint, s)
			}
			hostPort = strings.TrimSuffix(rest, "/")
		}
		if _, _, err := net.SplitHostPort(hostPort); err != nil {
			return "", fmt.Errorf("gRPC endpoint %q: want host:port: %w", endpoint, err)
		}
		return scheme + "://" + hostPort, nil
	}
	raw := endpoint
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("HTTP endpoint %q: want http(s)://host:port[/path]", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Config is where the spans go. The zero Config reads the environment only.
type Config struct {
	// Endpoint is a normalized --otlp-endpoint (see NormalizeEndpoint); it overrides the environment's
	// endpoint. Empty: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, and no export when
	// neither is set (or OTEL_TRACES_EXPORTER is none).
	Endpoint string
	// Protocol is --otlp-protocol. Empty: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, grpc.
	Protocol Protocol
}

// exporting reports whether the spans are exported at all.
func (c Config) exporting() bool {
	if c.Endpoint != "" {
		return true
	}
	if strings.TrimSpace(os.Getenv(envTracesExporter)) == "none" {
		return false
	}
	return os.Getenv(envTracesEndpoint) != "" || os.Getenv(envEndpoint) != ""
}

// EffectiveProtocol is the flag's protocol, else the environment's, else gRPC (the project's default).
func (c Config) EffectiveProtocol() (Protocol, error) {
	if c.Protocol != "" {
		return c.Protocol, nil
	}
	for _, env := range []string{envTracesProtocol, envProtocol} {
		if v := strings.TrimSpace(os.Getenv(env)); v != "" {
			p, err := ParseProtocol(v)
			if err != nil {
				return "", fmt.Errorf("%s: %w", env, err)
			}
			return p, nil
		}
	}
	return ProtocolGRPC, nil
}

// newExporter builds the SDK's OTLP exporter. Options are passed only for what a flag set, so the
// exporter's own reading of the environment (headers, timeout, TLS, compression, endpoint) stands otherwise.
func newExporter(ctx context.Context, c Config) (sdktrace.SpanExporter, error) {
	p, err := c.EffectiveProtocol()
	if err != nil {
		return nil, err
	}
	if p == ProtocolGRPC {
		var opts []otlptracegrpc.Option
		if c.Endpoint != "" {
			opts = append(opts, otlptracegrpc.WithEndpointURL(c.Endpoint))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	var opts []otlptracehttp.Option
	if c.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(c.Endpoint))
	}
	return otlptracehttp.New(ctx, opts...)
}

// Target describes what the spans are about.
type Target struct {
	Model string
	// Operation is gen_ai.operation.name: text_completion or chat.
	Operation string
	// URL is the endpoint requested.
	URL string
}

// Provider starts and ends the client spans. Without an exporter it still gives every request its trace
// and span id (the traceparent vLLM's span points to, which the Jaeger join looks up).
type Provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	name   string
	attrs  []attribute.KeyValue
	count  *counter // nil when nothing is exported
}

// New returns a provider for target, exporting as c says. Shut it down to flush the spans.
func New(ctx context.Context, c Config, target Target) (*Provider, error) {
	if !c.exporting() {
		return newProvider(target, nil, nil), nil
	}
	exp, err := newExporter(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("OTLP exporter: %w", err)
	}
	// Later detectors win: OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override the default service name.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)), resource.WithFromEnv())
	if err != nil {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("resource: %w", err)
	}
	return newProvider(target, exp, res), nil
}

// newProvider builds the tracer provider; exp nil: no export. The batch span processor takes its sizes and
// delays from the environment (OTEL_BSP_*), as the SDK does by default.
func newProvider(target Target, exp sdktrace.SpanExporter, res *resource.Resource) *Provider {
	p := &Provider{name: target.Operation + " " + target.Model}
	var opts []sdktrace.TracerProviderOption
	if exp != nil {
		p.count = &counter{SpanExporter: exp}
		// The counter sees each span the batch processor is handed (first) and each export's result, so the
		// spans dropped on a full queue are what remains.
		opts = append(opts, sdktrace.WithSpanProcessor(p.count.endProcessor()), sdktrace.WithBatcher(p.count))
	}
	if res != nil {
		opts = append(opts, sdktrace.WithResource(res))
	}
	p.tp = sdktrace.NewTracerProvider(opts...)
	p.tracer = p.tp.Tracer(ScopeName)
	p.attrs = []attribute.KeyValue{
		attribute.String("gen_ai.operation.name", target.Operation),
		attribute.String("gen_ai.request.model", target.Model),
		attribute.String("http.request.method", http.MethodPost),
		attribute.String("url.full", target.URL),
	}
	if u, err := url.Parse(target.URL); err == nil {
		if h := u.Hostname(); h != "" {
			p.attrs = append(p.attrs, attribute.String("server.address", h))
		}
		if port, _ := strconv.ParseInt(u.Port(), 10, 64); port > 0 {
			p.attrs = append(p.attrs, attribute.Int64("server.port", port))
		}
	}
	return p
}

// Start starts a request's client span at its send time, following the GenAI client conventions (name
// "{operation} {model}", kind CLIENT) with the HTTP client attributes.
func (p *Provider) Start(ctx context.Context, sendTime time.Time) (context.Context, trace.Span) {
	return p.tracer.Start(ctx, p.name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(sendTime),
		trace.WithAttributes(p.attrs...))
}

// End ends the span of the finished (or failed) request rec at rec.SendTime + rec.Elapsed, with what the
// client measured.
func (p *Provider) End(span trace.Span, rec *record.Record) {
	span.SetAttributes(attribute.Int(AttrIndex, rec.Index))
	if rec.HTTPStatus != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", rec.HTTPStatus))
	}
	if rec.ResponseID != "" {
		span.SetAttributes(attribute.String("gen_ai.response.id", rec.ResponseID))
	}
	if !rec.Success {
		span.SetStatus(codes.Error, rec.Error)
		errType := "_OTHER"
		if rec.HTTPStatus >= 400 {
			errType = strconv.Itoa(rec.HTTPStatus)
		}
		span.SetAttributes(attribute.String("error.type", errType))
	} else {
		var maxITL float64
		for _, v := range rec.ITL {
			maxITL = max(maxITL, v)
		}
		span.SetAttributes(
			attribute.Int64("gen_ai.usage.input_tokens", rec.PromptTokens),
			attribute.Int64("gen_ai.usage.output_tokens", rec.OutputTokens),
			attribute.Float64(AttrTTFT, rec.TTFT),
			attribute.Float64(AttrTPOT, rec.TPOT),
			attribute.Float64(AttrE2EL, rec.E2EL),
			attribute.Int(AttrITLCount, len(rec.ITL)),
			attribute.Float64(AttrITLMax, maxITL),
		)
	}
	span.End(trace.WithTimestamp(rec.SendTime.Add(rec.Elapsed)))
}

// Stats says what became of the sampled spans: exported, failed to export, or dropped because the batch
// processor's queue was full (the backend slower than the benchmark); LastErr is the last export error.
type Stats struct {
	Exported, Failed, Dropped int
	LastErr                   error
}

// Shutdown flushes the queued spans (within ctx) and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) (Stats, error) {
	err := p.tp.Shutdown(ctx)
	if p.count == nil {
		return Stats{}, err
	}
	return p.count.stats(), err
}

// counter wraps the exporter and counts the spans handed to the batch processor and the result of each export.
type counter struct {
	sdktrace.SpanExporter

	mu                      sync.Mutex
	ended, exported, failed int
	lastErr                 error
}

func (c *counter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.SpanExporter.ExportSpans(ctx, spans)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed += len(spans)
		c.lastErr = err
	} else {
		c.exported += len(spans)
	}
	return err
}

func (c *counter) stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Exported: c.exported, Failed: c.failed, Dropped: max(0, c.ended-c.exported-c.failed), LastErr: c.lastErr}
	if s.Dropped > 0 && s.LastErr == nil {
		s.LastErr = fmt.Errorf("%d spans dropped: the export queue was full, or the flush ran out of time", s.Dropped)
	}
	return s
}

// endProcessor is a span processor counting the sampled spans that end (the ones the batch processor queues).
func (c *counter) endProcessor() sdktrace.SpanProcessor { return endCounter{c} }

type endCounter struct{ c *counter }

func (e endCounter) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e endCounter) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	e.c.mu.Lock()
	e.c.ended++
	e.c.mu.Unlock()
}
func (e endCounter) Shutdown(context.Context) error   { return nil }
func (e endCounter) ForceFlush(context.Context) error { return nil }
