// Package otlpspan exports vllmbench's client span per request over OTLP (gRPC or HTTP/protobuf). The span
// has the trace and span id the request's traceparent carried, so vLLM's llm_request span is its child and
// the user's view and the server's are one trace.
package otlpspan // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/otlpspan"

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// ScopeName is the instrumentation scope of the client spans.
const ScopeName = "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench"

// Client-side attributes of the span (seconds), beside the GenAI and HTTP semantic-convention ones.
const (
	AttrTTFT       = "vllmbench.time_to_first_token"
	AttrTPOT       = "vllmbench.time_per_output_token"
	AttrE2EL       = "vllmbench.e2e"
	AttrITLCount   = "vllmbench.inter_token_latency.count"
	AttrITLMax     = "vllmbench.inter_token_latency.max"
	AttrIndex      = "vllmbench.request.index"
	batchSize      = 512
	queueSize      = 16 * batchSize
	exportTimeout  = 10 * time.Second
	maxRespBody    = 64 << 10
	defaultService = "vllmbench"
)

// Protocol is the OTLP transport: "grpc" or "http".
type Protocol string

const (
	ProtocolGRPC Protocol = "grpc"
	ProtocolHTTP Protocol = "http"
)

// ParseProtocol converts an --otlp-protocol value.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "grpc":
		return ProtocolGRPC, nil
	case "http", "http/protobuf":
		return ProtocolHTTP, nil
	}
	return "", fmt.Errorf("unknown OTLP protocol %q (want grpc or http)", s)
}

// NormalizeEndpoint returns host:port for gRPC (an http:// or grpc:// scheme is dropped; plaintext), or a
// full URL ending in /v1/traces for HTTP.
func (p Protocol) NormalizeEndpoint(endpoint string) (string, error) {
	if p == ProtocolGRPC {
		hostPort := endpoint
		if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
			if scheme != "http" && scheme != "grpc" {
				return "", fmt.Errorf("gRPC endpoint %q: scheme %q is not supported (plaintext only)", endpoint, scheme)
			}
			hostPort = strings.TrimSuffix(rest, "/")
		}
		if _, _, err := net.SplitHostPort(hostPort); err != nil {
			return "", fmt.Errorf("gRPC endpoint %q: want host:port: %w", endpoint, err)
		}
		return hostPort, nil
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

// Target describes what the spans are about.
type Target struct {
	Model string
	// Operation is gen_ai.operation.name: text_completion or chat.
	Operation string
	// URL is the endpoint requested.
	URL string
}

// Exporter sends client spans in batches from one goroutine. Add never blocks the benchmark: when the queue
// is full (the backend is slower than the benchmark), the span is dropped and counted.
type Exporter struct {
	send     func(context.Context, ptrace.Traces) error
	close    func() error
	resource pcommon.Resource
	target   Target
	host     string
	port     int64
	queue    chan record.Record
	done     chan struct{}

	mu                        sync.Mutex
	exported, failed, dropped int
	lastErr                   error
}

// New connects an exporter (lazily, for gRPC) to a normalized endpoint.
func New(p Protocol, endpoint string, target Target) (*Exporter, error) {
	e := &Exporter{target: target, queue: make(chan record.Record, queueSize), done: make(chan struct{})}
	switch p {
	case ProtocolGRPC:
		conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("gRPC client for %s: %w", endpoint, err)
		}
		client := ptraceotlp.NewGRPCClient(conn)
		e.send = func(ctx context.Context, td ptrace.Traces) error {
			// Fail fast on an unreachable endpoint rather than wait out the timeout for every batch.
			resp, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
			if err == nil && resp.PartialSuccess().RejectedSpans() > 0 {
				err = fmt.Errorf("%d spans rejected: %s", resp.PartialSuccess().RejectedSpans(), resp.PartialSuccess().ErrorMessage())
			}
			return err
		}
		e.close = conn.Close
	case ProtocolHTTP:
		client := &http.Client{}
		e.send = func(ctx context.Context, td ptrace.Traces) error { return postHTTP(ctx, client, endpoint, td) }
		e.close = func() error { client.CloseIdleConnections(); return nil }
	default:
		return nil, fmt.Errorf("unknown protocol %q", p)
	}
	if u, err := url.Parse(target.URL); err == nil {
		e.host = u.Hostname()
		e.port, _ = strconv.ParseInt(u.Port(), 10, 64)
	}
	e.resource = pcommon.NewResource()
	e.resource.Attributes().PutStr("service.name", defaultService)
	go e.loop()
	return e, nil
}

func postHTTP(ctx context.Context, client *http.Client, endpoint string, td ptrace.Traces) error {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxRespBody))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, endpoint, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Add queues the client span of a finished (or failed) request.
func (e *Exporter) Add(rec record.Record) {
	select {
	case e.queue <- rec:
	default:
		e.mu.Lock()
		e.dropped++
		e.mu.Unlock()
	}
}

func (e *Exporter) loop() {
	defer close(e.done)
	ticker := time.NewTicker(time.Second)
	defer ticker.Stop()
	batch := make([]record.Record, 0, batchSize)
	flush := func() {
		if len(batch) > 0 {
			e.export(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case rec, ok := <-e.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, rec)
			if len(batch) == batchSize {
				flush()
			}
		case <-ticker.C:
			flush()
		}
	}
}

func (e *Exporter) export(batch []record.Record) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	e.resource.CopyTo(rs.Resource())
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(ScopeName)
	spans := ss.Spans()
	spans.EnsureCapacity(len(batch))
	for i := range batch {
		e.fill(spans.AppendEmpty(), &batch[i])
	}
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	err := e.send(ctx, td)
	cancel()
	e.mu.Lock()
	if err != nil {
		e.failed += len(batch)
		e.lastErr = err
	} else {
		e.exported += len(batch)
	}
	e.mu.Unlock()
}

// fill writes one client span: GenAI client conventions (name "{operation} {model}", kind CLIENT), HTTP
// client attributes, and what the client measured.
func (e *Exporter) fill(span ptrace.Span, rec *record.Record) {
	var tid pcommon.TraceID
	var sid pcommon.SpanID
	_, _ = hex.Decode(tid[:], []byte(rec.TraceID))
	_, _ = hex.Decode(sid[:], []byte(rec.SpanID))
	span.SetTraceID(tid)
	span.SetSpanID(sid)
	span.SetName(e.target.Operation + " " + e.target.Model)
	span.SetKind(ptrace.SpanKindClient)
	span.SetStartTimestamp(pcommon.NewTimestampFromTime(rec.SendTime))
	span.SetEndTimestamp(pcommon.NewTimestampFromTime(rec.SendTime.Add(rec.Elapsed)))
	a := span.Attributes()
	a.PutStr("gen_ai.operation.name", e.target.Operation)
	a.PutStr("gen_ai.request.model", e.target.Model)
	a.PutStr("http.request.method", http.MethodPost)
	a.PutStr("url.full", e.target.URL)
	if e.host != "" {
		a.PutStr("server.address", e.host)
	}
	if e.port > 0 {
		a.PutInt("server.port", e.port)
	}
	a.PutInt(AttrIndex, int64(rec.Index))
	if rec.HTTPStatus != 0 {
		a.PutInt("http.response.status_code", int64(rec.HTTPStatus))
	}
	if rec.ResponseID != "" {
		a.PutStr("gen_ai.response.id", rec.ResponseID)
	}
	if !rec.Success {
		span.Status().SetCode(ptrace.StatusCodeError)
		span.Status().SetMessage(rec.Error)
		errType := "_OTHER"
		if rec.HTTPStatus >= 400 {
			errType = strconv.Itoa(rec.HTTPStatus)
		}
		a.PutStr("error.type", errType)
		return
	}
	a.PutInt("gen_ai.usage.input_tokens", rec.PromptTokens)
	a.PutInt("gen_ai.usage.output_tokens", rec.OutputTokens)
	a.PutDouble(AttrTTFT, rec.TTFT)
	a.PutDouble(AttrTPOT, rec.TPOT)
	a.PutDouble(AttrE2EL, rec.E2EL)
	a.PutInt(AttrITLCount, int64(len(rec.ITL)))
	var maxITL float64
	for _, v := range rec.ITL {
		maxITL = max(maxITL, v)
	}
	a.PutDouble(AttrITLMax, maxITL)
}

// Close sends what is queued and reports how many spans were exported and failed (export errors and spans
// dropped on a full queue), with the last export error.
func (e *Exporter) Close() (exported, failed int, lastErr error) {
	close(e.queue)
	<-e.done
	_ = e.close()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dropped > 0 && e.lastErr == nil {
		e.lastErr = fmt.Errorf("%d spans dropped: the export queue was full", e.dropped)
	}
	return e.exported, e.failed + e.dropped, e.lastErr
}
