package otlpspan

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

type sink struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans []ptrace.Span
}

func (s *sink) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.store(req.Traces())
	return ptraceotlp.NewExportResponse(), nil
}

func (s *sink) store(td ptrace.Traces) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				c := ptrace.NewSpan()
				sp.CopyTo(c)
				s.spans = append(s.spans, c)
			}
		}
	}
}

func startGRPC(t *testing.T, s *sink) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, s)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

func startHTTP(t *testing.T, s *sink, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if status != http.StatusOK {
			http.Error(w, "refused", status)
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.store(req.Traces())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

var sendTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testRecords() []record.Record {
	return []record.Record{
		{Index: 0, SendTime: sendTime, Elapsed: 500 * time.Millisecond, Success: true, HTTPStatus: 200, TraceID: "0af7651916cd43dd8448eb211c80319c",
			SpanID: "b7ad6b7169203331", ResponseID: "cmpl-1", PromptTokens: 10, OutputTokens: 3, TTFT: 0.1, TPOT: 0.2, E2EL: 0.5, ITL: []float64{0.15, 0.25}},
		{Index: 1, SendTime: sendTime, Elapsed: time.Millisecond, HTTPStatus: 404, Error: "HTTP 404: no such model",
			TraceID: "1af7651916cd43dd8448eb211c80319c", SpanID: "c7ad6b7169203331"},
	}
}

func TestExport(t *testing.T) {
	for _, proto := range []Protocol{ProtocolGRPC, ProtocolHTTP} {
		t.Run(string(proto), func(t *testing.T) {
			s := &sink{}
			endpoint := startGRPC(t, s)
			if proto == ProtocolHTTP {
				endpoint = startHTTP(t, s, http.StatusOK)
			}
			endpoint, err := proto.NormalizeEndpoint(endpoint)
			require.NoError(t, err)
			e, err := New(proto, endpoint, Target{Model: "m", Operation: "text_completion", URL: "http://vllm.example:8000/v1/completions"})
			require.NoError(t, err)
			for _, r := range testRecords() {
				e.Add(r)
			}
			exported, failed, lastErr := e.Close()
			require.NoError(t, lastErr)
			assert.Equal(t, [2]int{2, 0}, [2]int{exported, failed})
			require.Len(t, s.spans, 2)
			ok, bad := s.spans[0], s.spans[1]
			assert.Equal(t, "text_completion m", ok.Name())
			assert.Equal(t, ptrace.SpanKindClient, ok.Kind())
			assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", ok.TraceID().String())
			assert.Equal(t, "b7ad6b7169203331", ok.SpanID().String())
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
			assert.Equal(t, ptrace.StatusCodeError, bad.Status().Code())
			assert.Equal(t, "HTTP 404: no such model", bad.Status().Message())
			errType, _ := bad.Attributes().Get("error.type")
			assert.Equal(t, "404", errType.Str())
		})
	}
}

func TestExportFailureIsCounted(t *testing.T) {
	endpoint, err := ProtocolHTTP.NormalizeEndpoint(startHTTP(t, &sink{}, http.StatusServiceUnavailable))
	require.NoError(t, err)
	e, err := New(ProtocolHTTP, endpoint, Target{Model: "m", Operation: "chat", URL: "http://x/v1/chat/completions"})
	require.NoError(t, err)
	for _, r := range testRecords() {
		e.Add(r)
	}
	exported, failed, lastErr := e.Close()
	assert.Equal(t, [2]int{0, 2}, [2]int{exported, failed})
	assert.ErrorContains(t, lastErr, "HTTP 503")
}

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		p        Protocol
		in, want string
		wantErr  bool
	}{
		{ProtocolGRPC, "127.0.0.1:4317", "127.0.0.1:4317", false},
		{ProtocolGRPC, "http://otelcol:4317/", "otelcol:4317", false},
		{ProtocolGRPC, "https://otelcol:4317", "", true},
		{ProtocolGRPC, "otelcol", "", true},
		{ProtocolHTTP, "127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces", false},
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
	p, err := ParseProtocol("http/protobuf")
	require.NoError(t, err)
	assert.Equal(t, ProtocolHTTP, p)
	_, err = ParseProtocol("http/json")
	assert.Error(t, err)
}

func TestUnreachableGRPCFailsFastAndIsCounted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	e, err := New(ProtocolGRPC, addr, Target{Model: "m", Operation: "text_completion", URL: "http://x:1/v1/completions"})
	require.NoError(t, err)
	for _, r := range testRecords() {
		e.Add(r)
	}
	exported, failed, lastErr := e.Close()
	assert.Equal(t, [2]int{0, 2}, [2]int{exported, failed})
	assert.Error(t, lastErr)
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	e := &Exporter{queue: make(chan record.Record, 1), done: make(chan struct{}), close: func() error { return nil }}
	close(e.done) // no export loop: the queue only fills
	e.Add(record.Record{})
	e.Add(record.Record{})
	e.Add(record.Record{})
	exported, failed, lastErr := e.Close()
	assert.Equal(t, [2]int{0, 2}, [2]int{exported, failed})
	assert.ErrorContains(t, lastErr, "2 spans dropped")
}
