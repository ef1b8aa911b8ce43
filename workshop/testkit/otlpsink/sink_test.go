package otlpsink

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"
)

// exporter sends OTLP to a sink over one protocol, as a collector's otlp_grpc or otlp_http exporter does
// (gzip-compressed): its error is the transport's (a gRPC status, or the HTTP status for a refusal).
type exporter interface {
	traces(td ptrace.Traces) (ptraceotlp.ExportResponse, error)
	metrics(md pmetric.Metrics) error
}

type grpcExporter struct {
	traceClient  ptraceotlp.GRPCClient
	metricClient pmetricotlp.GRPCClient
}

func newGRPCExporter(t *testing.T, endpoint string) exporter {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(grpcgzip.Name), grpc.MaxCallSendMsgSize(64<<20)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return grpcExporter{ptraceotlp.NewGRPCClient(conn), pmetricotlp.NewGRPCClient(conn)}
}

func (g grpcExporter) traces(td ptrace.Traces) (ptraceotlp.ExportResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return g.traceClient.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
}

func (g grpcExporter) metrics(md pmetric.Metrics) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := g.metricClient.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md))
	return err
}

type httpExporter struct{ base string }

type httpStatusError int

func (e httpStatusError) Error() string { return http.StatusText(int(e)) }

func (h httpExporter) post(path string, body []byte) ([]byte, error) {
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(body)
	_ = zw.Close()
	req, err := http.NewRequest(http.MethodPost, h.base+path, &zipped)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, httpStatusError(resp.StatusCode)
	}
	return out, nil
}

func (h httpExporter) traces(td ptrace.Traces) (ptraceotlp.ExportResponse, error) {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return ptraceotlp.NewExportResponse(), err
	}
	out, err := h.post("/v1/traces", body)
	resp := ptraceotlp.NewExportResponse()
	if err == nil {
		err = resp.UnmarshalProto(out)
	}
	return resp, err
}

func (h httpExporter) metrics(md pmetric.Metrics) error {
	body, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	if err != nil {
		return err
	}
	_, err = h.post("/v1/metrics", body)
	return err
}

// protocols start a sink and an exporter to it.
var protocols = []struct {
	name  string
	start func(t *testing.T, s *Sink) exporter
	// refused says whether err is this protocol's refusal: gRPC Unavailable, HTTP 503
	refused func(err error) bool
}{
	{"grpc", func(t *testing.T, s *Sink) exporter { return newGRPCExporter(t, StartGRPC(t, s)) },
		func(err error) bool { return status.Code(err) == codes.Unavailable }},
	{"http", func(t *testing.T, s *Sink) exporter { return httpExporter{StartHTTP(t, s)} },
		func(err error) bool { return err == httpStatusError(http.StatusServiceUnavailable) }},
}

// requestSpans is n spans of one resource.
func requestSpans(n int, service string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := spans.AppendEmpty()
		s.SetName("llm_request")
		s.SetTraceID(pcommon.TraceID{byte(i + 1)})
		s.SetSpanID(pcommon.SpanID{byte(i + 1)})
		s.Attributes().PutInt("gen_ai.usage.prompt_tokens", int64(100+i))
	}
	return td
}

func TestTraces(t *testing.T) {
	for _, p := range protocols {
		for _, tt := range []struct {
			name         string
			sink         *Sink
			wantRefused  bool
			wantRejected int64
			wantKept     bool
		}{
			{name: "accepted", sink: &Sink{}, wantKept: true},
			{name: "partial success", sink: &Sink{RejectSpans: 2}, wantRejected: 2, wantKept: true},
			{name: "refused", sink: &Sink{Fail: true}, wantRefused: true},
			{name: "counted, not kept", sink: &Sink{Discard: true}},
		} {
			t.Run(p.name+"/"+tt.name, func(t *testing.T) {
				sink := tt.sink
				exp := p.start(t, sink)
				first, second := requestSpans(3, "vllm-a"), requestSpans(2, "vllm-b")
				for _, td := range []ptrace.Traces{first, second} {
					resp, err := exp.traces(td)
					if tt.wantRefused {
						assert.True(t, p.refused(err), "refused: %v", err)
						continue
					}
					require.NoError(t, err)
					assert.Equal(t, tt.wantRejected, resp.PartialSuccess().RejectedSpans())
				}
				assert.Equal(t, 2, sink.Requests())
				if tt.wantRefused {
					assert.Zero(t, sink.SpanCount())
					assert.Empty(t, sink.TraceRequests())
					return
				}
				assert.Equal(t, 5, sink.SpanCount())
				if !tt.wantKept {
					assert.Empty(t, sink.TraceRequests())
					return
				}
				require.Len(t, sink.TraceRequests(), 2)
				assert.NoError(t, ptracetest.CompareTraces(first, sink.TraceRequests()[0]))
				assert.NoError(t, ptracetest.CompareTraces(second, sink.TraceRequests()[1]))
				merged := requestSpans(3, "vllm-a")
				second.ResourceSpans().At(0).CopyTo(merged.ResourceSpans().AppendEmpty())
				assert.NoError(t, ptracetest.CompareTraces(merged, sink.Traces()))
				sink.WaitForSpans(t, 5, time.Second)
			})
		}
	}
}

func TestSetFailWhileServing(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			sink := &Sink{}
			exp := p.start(t, sink)
			sink.SetFail(true)
			_, err := exp.traces(requestSpans(1, "vllm"))
			assert.True(t, p.refused(err), "refused: %v", err)
			assert.True(t, p.refused(exp.metrics(cumulative("a", 1))), "metrics refused too")
			sink.SetFail(false)
			_, err = exp.traces(requestSpans(1, "vllm"))
			require.NoError(t, err)
			assert.Equal(t, 1, sink.SpanCount())
			assert.Equal(t, 3, sink.Requests())
		})
	}
}

// cumulative is a flush of the vllm connector: vllm.requests of two models (llama at llama, qwen at 10) and a
// duration histogram of llama's (count llama).
func cumulative(instance string, llama int64) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("collector.instance.id", instance)
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	requests := ms.AppendEmpty()
	requests.SetName("vllm.requests")
	sum := requests.SetEmptySum()
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sum.SetIsMonotonic(true)
	for model, v := range map[string]int64{"llama-8b": llama, "qwen-7b": 10} {
		dp := sum.DataPoints().AppendEmpty()
		dp.Attributes().PutStr("gen_ai.request.model", model)
		dp.Attributes().PutBool("vllm.slo.met", true)
		dp.SetIntValue(v)
	}
	duration := ms.AppendEmpty()
	duration.SetName("gen_ai.server.request.duration")
	h := duration.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dp := h.DataPoints().AppendEmpty()
	dp.Attributes().PutStr("gen_ai.request.model", "llama-8b")
	dp.SetCount(uint64(llama))
	dp.SetSum(1.5 * float64(llama))
	dp.ExplicitBounds().FromRaw([]float64{1, 2})
	dp.BucketCounts().FromRaw([]uint64{0, uint64(llama), 0})
	return md
}

// TestMetricsKeepTheHighestPoint sends cumulative flushes out of order, as a persistent queue resends an older
// request after a restart: each series keeps its highest point.
func TestMetricsKeepTheHighestPoint(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			sink := &Sink{}
			exp := p.start(t, sink)
			for _, flush := range []pmetric.Metrics{cumulative("a", 3), cumulative("a", 7), cumulative("a", 5), cumulative("b", 4)} {
				require.NoError(t, exp.metrics(flush))
			}
			assert.Equal(t, 4, sink.Requests())
			assert.EqualValues(t, 4*3, sink.DataPointCount())

			for _, tt := range []struct {
				name, metric string
				match        map[string]any
				value, sum   float64
				series       int
			}{
				{"every series", "vllm.requests", nil, 7 + 10 + 4 + 10, 0, 4},
				{"a point attribute", "vllm.requests", map[string]any{"gen_ai.request.model": "llama-8b"}, 7 + 4, 0, 2},
				{"a bool attribute", "vllm.requests", map[string]any{"vllm.slo.met": true}, 31, 0, 4},
				{"a resource attribute", "vllm.requests", map[string]any{"collector.instance.id": "a"}, 17, 0, 2},
				{"both", "vllm.requests", map[string]any{"collector.instance.id": "b", "gen_ai.request.model": "qwen-7b"}, 10, 0, 1},
				{"no such value", "vllm.requests", map[string]any{"gen_ai.request.model": "mistral"}, 0, 0, 0},
				{"a histogram's count and sum", "gen_ai.server.request.duration", nil, 7 + 4, 1.5 * 11, 2},
			} {
				value, sum, series := sink.Total(tt.metric, tt.match)
				assert.Equal(t, [3]float64{tt.value, tt.sum, float64(tt.series)}, [3]float64{value, sum, float64(series)}, tt.name)
			}
			h := sink.Histogram("gen_ai.server.request.duration", map[string]any{"collector.instance.id": "a"})
			assert.EqualValues(t, 7, h.Count)
			assert.InDelta(t, 10.5, h.Sum, 1e-9)
			assert.Equal(t, map[float64]uint64{1: 0, 2: 7}, h.Cumulative)
			assert.Equal(t, []string{"mistral"}, sink.Missing("vllm.requests", "gen_ai.request.model", []string{"llama-8b", "mistral", "qwen-7b"}))
		})
	}
}

// TestGRPCMessageLimit: by default the sink takes what a default collector's otlp receiver takes, at most 4 MiB.
func TestGRPCMessageLimit(t *testing.T) {
	big := requestSpans(1, "vllm")
	big.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("gen_ai.prompt", strings.Repeat("x", 5<<20))
	for _, tt := range []struct {
		name     string
		sink     *Sink
		wantCode codes.Code
	}{
		{"gRPC's default", &Sink{}, codes.ResourceExhausted},
		{"raised", &Sink{MaxRecvMsgSize: 64 << 20}, codes.OK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := grpc.NewClient(StartGRPC(t, tt.sink), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
			require.NoError(t, err)
			defer conn.Close()
			_, err = ptraceotlp.NewGRPCClient(conn).Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(big))
			assert.Equal(t, tt.wantCode, status.Code(err), "%v", err)
		})
	}
}

func TestHTTPRefusesWhatIsNotOTLP(t *testing.T) {
	base := StartHTTP(t, &Sink{TracesPath: "/custom/traces"})
	for _, tt := range []struct {
		name, method, path, contentType string
		want                            int
	}{
		{"the configured traces path", http.MethodPost, "/custom/traces", "application/x-protobuf", http.StatusOK},
		{"metrics", http.MethodPost, "/v1/metrics", "application/x-protobuf", http.StatusOK},
		{"the standard path, moved", http.MethodPost, "/v1/traces", "application/x-protobuf", http.StatusNotFound},
		{"JSON", http.MethodPost, "/custom/traces", "application/json", http.StatusBadRequest},
		{"GET", http.MethodGet, "/v1/metrics", "", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, base+tt.path, nil)
			require.NoError(t, err)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tt.want, resp.StatusCode)
		})
	}
}

// TestListenGRPC is the program's variant: it serves until stopped.
func TestListenGRPC(t *testing.T) {
	sink := &Sink{Discard: true}
	endpoint, stop, err := ListenGRPC(sink, "")
	require.NoError(t, err)
	defer stop()
	exp := newGRPCExporter(t, endpoint)
	_, err = exp.traces(requestSpans(4, "vllm"))
	require.NoError(t, err)
	require.NoError(t, exp.metrics(cumulative("a", 1)))
	assert.Equal(t, 4, sink.SpanCount())
	assert.EqualValues(t, 3, sink.DataPointCount())
	_, _, series := sink.Total("vllm.requests", nil)
	assert.Zero(t, series, "Discard keeps no series")
}
