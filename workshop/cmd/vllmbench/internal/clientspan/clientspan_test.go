package clientspan

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// received is what an OTLP sink was sent: the spans, each resource's service.name and each scope's name.
type received struct {
	spans    []ptrace.Span
	services []string
	scopes   []string
}

func receivedBy(s *otlpsink.Sink) received {
	var r received
	for _, td := range s.TraceRequests() {
		for _, rs := range td.ResourceSpans().All() {
			name, _ := rs.Resource().Attributes().Get("service.name")
			r.services = append(r.services, name.AsString())
			for _, ss := range rs.ScopeSpans().All() {
				r.scopes = append(r.scopes, ss.Scope().Name())
				for _, span := range ss.Spans().All() {
					r.spans = append(r.spans, span)
				}
			}
		}
	}
	return r
}

// clearEnv unsets the OTLP environment for the test (t.Setenv restores it).
func clearEnv(t *testing.T) {
	for _, k := range []string{envTracesEndpoint, envEndpoint, envTracesProtocol, envProtocol, envTracesExporter,
		"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(k, "")
	}
}

var sendTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testRecords() []record.Record {
	return []record.Record{
		{Index: 0, SendTime: sendTime, Elapsed: 500 * time.Millisecond, Success: true, HTTPStatus: 200,
			ResponseID: "cmpl-1", PromptTokens: 10, OutputTokens: 3, TTFT: 0.1, TPOT: 0.2, E2EL: 0.5, ITL: []float64{0.15, 0.25}},
		{Index: 1, SendTime: sendTime, Elapsed: time.Millisecond, HTTPStatus: 404, Error: "HTTP 404: no such model"},
	}
}

var target = Target{Model: "m", Operation: "text_completion", URL: "http://vllm.example:8000/v1/completions"}

// emit traces recs as sse.Client.Do does: the span starts at the send time, its context goes in the headers
// (checked here to be the traceparent naming the span) and its ids in the record; it ends with the record.
func emit(t *testing.T, p *Provider, recs []record.Record) {
	t.Helper()
	for i := range recs {
		ctx, span := p.Start(context.Background(), recs[i].SendTime)
		sc := span.SpanContext()
		recs[i].TraceID, recs[i].SpanID = sc.TraceID().String(), sc.SpanID().String()
		h := http.Header{}
		Propagator.Inject(ctx, propagation.HeaderCarrier(h))
		assert.Equal(t, "00-"+recs[i].TraceID+"-"+recs[i].SpanID+"-01", h.Get("traceparent"))
		p.End(span, &recs[i])
	}
}

func TestExport(t *testing.T) {
	for _, proto := range []Protocol{ProtocolGRPC, ProtocolHTTP} {
		t.Run(string(proto), func(t *testing.T) {
			clearEnv(t)
			s := &otlpsink.Sink{}
			endpoint := otlpsink.StartGRPC(t, s)
			if proto == ProtocolHTTP {
				endpoint = otlpsink.StartHTTP(t, s)
			}
			endpoint, err := proto.NormalizeEndpoint(endpoint)
			require.NoError(t, err)
			p, err := New(context.Background(), Config{Endpoint: endpoint, Protocol: proto}, target)
			require.NoError(t, err)
			recs := testRecords()
			emit(t, p, recs)
			st, err := p.Shutdown(context.Background())
			require.NoError(t, err)
			require.NoError(t, st.LastErr)
			assert.Equal(t, Stats{Exported: 2}, st)
			require.Len(t, receivedBy(s).spans, 2)
			assert.Equal(t, []string{DefaultServiceName}, receivedBy(s).services)
			assert.Equal(t, []string{ScopeName}, receivedBy(s).scopes)
			ok, bad := receivedBy(s).spans[0], receivedBy(s).spans[1]
			assert.Equal(t, "text_completion m", ok.Name())
			assert.Equal(t, ptrace.SpanKindClient, ok.Kind())
			assert.Equal(t, recs[0].TraceID, ok.TraceID().String())
			assert.Equal(t, recs[0].SpanID, ok.SpanID().String())
			assert.True(t, ok.ParentSpanID().IsEmpty())
			assert.Equal(t, sendTime, ok.StartTimestamp().AsTime())
			assert.Equal(t, sendTime.Add(500*time.Millisecond), ok.EndTimestamp().AsTime())
			assert.Equal(t, map[string]any{
				"gen_ai.operation.name": "text_completion", "gen_ai.request.model": "m", "http.request.method": "POST",
				"url.full": "http://vllm.example:8000/v1/completions", "server.address": "vllm.example", "server.port": int64(8000),
				"vllmbench.request.index": int64(0), "http.response.status_code": int64(200), "gen_ai.response.id": "cmpl-1",
				"gen_ai.usage.input_tokens": int64(10), "gen_ai.usage.output_tokens": int64(3),
				AttrTTFT: 0.1, AttrTPOT: 0.2, AttrE2EL: 0.5, AttrITLCount: int64(2), AttrITLMax: 0.25,
			}, ok.Attributes().AsRaw())
			assert.Equal(t, ptrace.StatusCodeUnset, ok.Status().Code())
			assert.Equal(t, recs[1].TraceID, bad.TraceID().String())
			assert.Equal(t, recs[1].SpanID, bad.SpanID().String())
			assert.NotEqual(t, recs[0].TraceID, recs[1].TraceID, "one trace per request")
			assert.Equal(t, ptrace.StatusCodeError, bad.Status().Code())
			assert.Equal(t, "HTTP 404: no such model", bad.Status().Message())
			errType, _ := bad.Attributes().Get("error.type")
			assert.Equal(t, "404", errType.Str())
		})
	}
}

// keptExporter is the SDK's in-memory exporter whose spans outlive the provider's shutdown (the in-memory
// exporter's own Shutdown forgets them).
type keptExporter struct{ *tracetest.InMemoryExporter }

func (keptExporter) Shutdown(context.Context) error { return nil }

// With the SDK's in-memory exporter: the span as the SDK holds it (the same contract without OTLP).
func TestSpanInMemory(t *testing.T) {
	exp := keptExporter{tracetest.NewInMemoryExporter()}
	p := newProvider(Target{Model: "m", Operation: "chat", URL: "http://x/v1/chat/completions"}, exp, nil)
	recs := testRecords()
	recs[1].HTTPStatus, recs[1].Error = 0, "connection refused"
	emit(t, p, recs)
	st, err := p.Shutdown(context.Background())
	require.NoError(t, err)
	assert.Equal(t, Stats{Exported: 2}, st)
	got := exp.GetSpans()
	require.Len(t, got, 2)
	assert.Equal(t, "chat m", got[0].Name)
	assert.Equal(t, sendTime, got[0].StartTime)
	assert.Equal(t, sendTime.Add(500*time.Millisecond), got[0].EndTime)
	assert.Equal(t, recs[0].SpanID, got[0].SpanContext.SpanID().String())
	assert.False(t, got[0].Parent.IsValid())
	assert.Equal(t, ScopeName, got[0].InstrumentationScope.Name)
	attrs := map[string]any{}
	for _, kv := range got[1].Attributes {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
	}
	assert.Equal(t, map[string]any{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "http.request.method": "POST",
		"url.full": "http://x/v1/chat/completions", "server.address": "x", "vllmbench.request.index": int64(1),
		"error.type": "_OTHER",
	}, attrs, "no port in the URL: no server.port; no HTTP status: error.type _OTHER")
	assert.Equal(t, "connection refused", got[1].Status.Description)
}

// Without an endpoint (flag or environment) nothing is exported, but every request still gets its ids.
func TestNoExportStillGivesIDs(t *testing.T) {
	clearEnv(t)
	p, err := New(context.Background(), Config{}, target)
	require.NoError(t, err)
	assert.Nil(t, p.count)
	recs := testRecords()
	emit(t, p, recs)
	assert.Len(t, recs[0].TraceID, 32)
	st, err := p.Shutdown(context.Background())
	require.NoError(t, err)
	assert.Equal(t, Stats{}, st)

	t.Setenv(envEndpoint, "http://127.0.0.1:1")
	t.Setenv(envTracesExporter, "none")
	p, err = New(context.Background(), Config{}, target)
	require.NoError(t, err)
	assert.Nil(t, p.count, "OTEL_TRACES_EXPORTER=none")
	_, err = p.Shutdown(context.Background())
	require.NoError(t, err)
}

// The environment is read as by every OTel SDK client: the endpoint, the protocol, the service name; a flag
// overrides only what it sets.
func TestEnvironment(t *testing.T) {
	t.Run("traces endpoint and service name", func(t *testing.T) {
		clearEnv(t)
		s := &otlpsink.Sink{}
		t.Setenv(envTracesEndpoint, "http://"+otlpsink.StartGRPC(t, s))
		t.Setenv("OTEL_SERVICE_NAME", "bench-a")
		p, err := New(context.Background(), Config{}, target)
		require.NoError(t, err)
		emit(t, p, testRecords())
		st, err := p.Shutdown(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 2, st.Exported)
		assert.Len(t, receivedBy(s).spans, 2)
		assert.Equal(t, []string{"bench-a"}, receivedBy(s).services)
	})
	t.Run("base endpoint and protocol", func(t *testing.T) {
		clearEnv(t)
		s := &otlpsink.Sink{}
		t.Setenv(envEndpoint, otlpsink.StartHTTP(t, s)) // the SDK adds /v1/traces to the base endpoint
		t.Setenv(envProtocol, "http/protobuf")
		t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=bench-b")
		p, err := New(context.Background(), Config{}, target)
		require.NoError(t, err)
		emit(t, p, testRecords())
		st, err := p.Shutdown(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 2, st.Exported)
		assert.Equal(t, []string{"bench-b"}, receivedBy(s).services)
	})
	t.Run("the flag's endpoint wins", func(t *testing.T) {
		clearEnv(t)
		s := &otlpsink.Sink{}
		t.Setenv(envTracesEndpoint, "http://127.0.0.1:1")
		t.Setenv(envTracesProtocol, "http/protobuf")
		endpoint, err := ProtocolGRPC.NormalizeEndpoint(otlpsink.StartGRPC(t, s))
		require.NoError(t, err)
		p, err := New(context.Background(), Config{Endpoint: endpoint, Protocol: ProtocolGRPC}, target)
		require.NoError(t, err)
		emit(t, p, testRecords())
		st, err := p.Shutdown(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 2, st.Exported)
		assert.Len(t, receivedBy(s).spans, 2)
	})
	t.Run("protocol resolution", func(t *testing.T) {
		clearEnv(t)
		got, err := Config{}.EffectiveProtocol()
		require.NoError(t, err)
		assert.Equal(t, ProtocolGRPC, got, "the default")
		t.Setenv(envProtocol, "http/protobuf")
		got, _ = Config{}.EffectiveProtocol()
		assert.Equal(t, ProtocolHTTP, got)
		t.Setenv(envTracesProtocol, "grpc")
		got, _ = Config{}.EffectiveProtocol()
		assert.Equal(t, ProtocolGRPC, got, "the traces variable first")
		got, _ = Config{Protocol: ProtocolHTTP}.EffectiveProtocol()
		assert.Equal(t, ProtocolHTTP, got, "the flag first")
		t.Setenv(envTracesProtocol, "http/json")
		_, err = Config{}.EffectiveProtocol()
		assert.ErrorContains(t, err, envTracesProtocol)
	})
}

func TestExportFailureIsCounted(t *testing.T) {
	clearEnv(t)
	endpoint, err := ProtocolHTTP.NormalizeEndpoint(otlpsink.StartHTTP(t, &otlpsink.Sink{Fail: true}))
	require.NoError(t, err)
	// the SDK retries 503 until the batch processor's export timeout (read from the environment)
	t.Setenv("OTEL_BSP_EXPORT_TIMEOUT", "300")
	p, err := New(context.Background(), Config{Endpoint: endpoint, Protocol: ProtocolHTTP}, Target{Model: "m", Operation: "chat", URL: "http://x/v1/chat/completions"})
	require.NoError(t, err)
	emit(t, p, testRecords())
	st, err := p.Shutdown(context.Background())
	require.NoError(t, err)
	assert.Equal(t, [3]int{0, 2, 0}, [3]int{st.Exported, st.Failed, st.Dropped})
	assert.ErrorContains(t, st.LastErr, "OTLP sink refuses", "the backend's answer")
}

func TestUnreachableGRPCIsCounted(t *testing.T) {
	clearEnv(t)
	addr := testkit.FreeLoopback(t)
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "300")
	endpoint, err := ProtocolGRPC.NormalizeEndpoint(addr)
	require.NoError(t, err)
	p, err := New(context.Background(), Config{Endpoint: endpoint, Protocol: ProtocolGRPC}, target)
	require.NoError(t, err)
	emit(t, p, testRecords())
	start := time.Now()
	st, err := p.Shutdown(context.Background())
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 5*time.Second, "bounded by the export timeout")
	assert.Equal(t, [3]int{0, 2, 0}, [3]int{st.Exported, st.Failed, st.Dropped})
	assert.Error(t, st.LastErr)
}

// blockingExporter holds every export until released.
type blockingExporter struct {
	release chan struct{}
	keptExporter
}

func (b blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	<-b.release
	return b.keptExporter.ExportSpans(ctx, spans)
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	clearEnv(t)
	t.Setenv("OTEL_BSP_MAX_QUEUE_SIZE", "1") // read by the SDK's batch span processor
	t.Setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")
	exp := blockingExporter{release: make(chan struct{}), keptExporter: keptExporter{tracetest.NewInMemoryExporter()}}
	p := newProvider(target, exp, nil)
	var recs []record.Record
	for range 3 {
		recs = append(recs, testRecords()...)
	}
	emit(t, p, recs)
	close(exp.release)
	st, err := p.Shutdown(context.Background())
	require.NoError(t, err)
	assert.Equal(t, len(recs), st.Exported+st.Dropped)
	assert.Positive(t, st.Dropped)
	assert.Equal(t, st.Exported, len(exp.GetSpans()))
	assert.ErrorContains(t, st.LastErr, "spans dropped")
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		p        Protocol
		in, want string
		wantErr  bool
	}{
		{ProtocolGRPC, "127.0.0.1:4317", "http://127.0.0.1:4317", false},
		{ProtocolGRPC, "http://otelcol:4317/", "http://otelcol:4317", false},
		{ProtocolGRPC, "grpc://otelcol:4317", "http://otelcol:4317", false},
		{ProtocolGRPC, "https://otelcol:4317", "https://otelcol:4317", false},
		{ProtocolGRPC, "unix:///run/otel.sock", "", true},
		{ProtocolGRPC, "otelcol", "", true},
		{ProtocolHTTP, "127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces", false},
		{ProtocolHTTP, "http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces", false},
		{ProtocolHTTP, "https://c:4318/custom", "https://c:4318/custom", false},
		{ProtocolHTTP, "ftp://c", "", true},
	}
	for _, tt := range tests {
		got, err := tt.p.NormalizeEndpoint(tt.in)
		if tt.wantErr {
			assert.Error(t, err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, got)
	}
	for in, want := range map[string]Protocol{"grpc": ProtocolGRPC, "http": ProtocolHTTP, "http/protobuf": ProtocolHTTP} {
		p, err := ParseProtocol(in)
		require.NoError(t, err)
		assert.Equal(t, want, p)
	}
	_, err := ParseProtocol("http/json")
	assert.Error(t, err)
}
