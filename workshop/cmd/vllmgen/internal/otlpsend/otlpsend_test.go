package otlpsend

import (
	"context"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

func TestNormalizeEndpoint(t *testing.T) {
	tests := []struct {
		protocol Protocol
		in       string
		want     string
		wantErr  string
	}{
		{ProtocolGRPC, "", "127.0.0.1:4317", ""},
		{ProtocolGRPC, "collector:4317", "collector:4317", ""},
		{ProtocolGRPC, "http://collector:4317", "collector:4317", ""},
		{ProtocolGRPC, "grpc://10.0.0.1:4317/", "10.0.0.1:4317", ""},
		{ProtocolGRPC, "https://collector:4317", "", "plaintext gRPC only"},
		{ProtocolGRPC, "collector", "", "want host:port"},
		{ProtocolGRPC, "dns:///collector:4317", "collector:4317", ""},
		{ProtocolGRPC, "dns://8.8.8.8/collector:4317", "", "no DNS server authority"},
		{ProtocolGRPC, "dns:///collector", "", "want host:port"},
		{ProtocolGRPC, "dns:/collector:4317", "", "want host:port"},
		{ProtocolHTTP, "", "http://127.0.0.1:4318/v1/traces", ""},
		{ProtocolHTTP, "collector:4318", "http://collector:4318/v1/traces", ""},
		{ProtocolHTTP, "http://collector:4318/", "http://collector:4318/v1/traces", ""},
		{ProtocolHTTP, "https://otlp.example/custom/traces", "https://otlp.example/custom/traces", ""},
		{ProtocolHTTP, "ftp://collector", "", "scheme must be http or https"},
		{ProtocolHTTP, "http://", "", "no host"},
	}
	for _, tt := range tests {
		t.Run(string(tt.protocol)+" "+tt.in, func(t *testing.T) {
			got, err := tt.protocol.NormalizeEndpoint(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseProtocol(t *testing.T) {
	for in, want := range map[string]Protocol{"grpc": ProtocolGRPC, "http/protobuf": ProtocolHTTP, "http": ProtocolHTTP} {
		p, err := ParseProtocol(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, p, in)
	}
	_, err := ParseProtocol("http/json")
	assert.ErrorContains(t, err, `unknown protocol "http/json"`)
}

func sampleTraces(spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "vllm-server")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("vllm.tracing.otel")
	for i := range spans {
		span := ss.Spans().AppendEmpty()
		span.SetName("llm_request")
		span.SetKind(ptrace.SpanKindServer)
		span.SetTraceID(pcommon.TraceID{1, byte(i + 1)})
		span.SetSpanID(pcommon.SpanID{2, byte(i + 1)})
		span.Attributes().PutDouble("gen_ai.latency.e2e", float64(i)+0.5)
	}
	return td
}

// startReceiver runs a receiver for protocol and returns the normalized endpoint to export to.
func startReceiver(t *testing.T, p Protocol, sink *otlpsink.Sink) string {
	if p == ProtocolGRPC {
		return otlpsink.StartGRPC(t, sink)
	}
	sink.TracesPath = "/v1/traces"
	endpoint, err := p.NormalizeEndpoint(otlpsink.StartHTTP(t, sink))
	require.NoError(t, err)
	return endpoint
}

func TestExport(t *testing.T) {
	tests := []struct {
		name         string
		rejectSpans  int64
		fail         bool
		wantRejected int64
		wantErr      bool
		wantStored   int
	}{
		{name: "accepted", wantStored: 3},
		{name: "partial success", rejectSpans: 2, wantRejected: 2, wantStored: 3},
		{name: "refused", fail: true, wantErr: true},
	}
	for _, p := range []Protocol{ProtocolGRPC, ProtocolHTTP} {
		for _, tt := range tests {
			t.Run(string(p)+"/"+tt.name, func(t *testing.T) {
				sink := &otlpsink.Sink{RejectSpans: tt.rejectSpans, Fail: tt.fail}
				exp, err := New(p, startReceiver(t, p, sink))
				require.NoError(t, err)
				defer func() { assert.NoError(t, exp.Close()) }()

				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				sent := sampleTraces(3)
				rejected, err := exp.Export(ctx, sent)
				if tt.wantErr {
					assert.Error(t, err)
				} else {
					require.NoError(t, err)
				}
				assert.Equal(t, tt.wantRejected, rejected)
				assert.Equal(t, 1, sink.Requests())
				require.Equal(t, tt.wantStored, sink.SpanCount())
				if tt.wantStored > 0 {
					assert.NoError(t, ptracetest.CompareTraces(sent, sink.Traces()))
				}
			})
		}
	}
}

func TestExportHonoursContext(t *testing.T) {
	// Nothing listens here: the gRPC exporter waits for the connection until the context ends.
	exp, err := NewGRPC("127.0.0.1:1")
	require.NoError(t, err)
	defer exp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = exp.Export(ctx, sampleTraces(1))
	assert.Error(t, err)
}
