// Package e2e runs the built otelcol-vllm distribution against a real Prometheus (Debian's package, remote-write
// receiver and exemplar storage on) and an OTLP trace sink, feeds it spans from cmd/vllmgen, and checks that
// what Prometheus stores equals what was sent. It needs OTELCOL_VLLM_BIN and PROMETHEUS (set by `make test`)
// and skips without them.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// SLO objectives: the same in testdata/collector.yaml and in vllmgen's flags, so vllmgen's expected outcomes
// apply.
var sloFlags = []string{"--slo-ttft=200ms", "--slo-tpot=50ms", "--slo-e2e=5s", "--slo-queue=100ms"}

// genRun is one vllmgen invocation. The runs are deterministic for a seed, so the single-collector test and the
// scale-out test send exactly the same spans. Both runs come from the same vLLM server (service.instance.id), in
// two span shapes whose resources differ in attributes that do not become Prometheus labels: in the scale-out
// test the spans of one server are split between two collectors, which is where series would collide.
type genRun struct {
	seed     int
	count    int
	protocol string
	shape    string
	models   string
	resource string
	// slo are vllmgen's objective flags; nil means sloFlags (the objectives of testdata/collector.yaml)
	slo []string
}

var workloadRuns = []genRun{
	{seed: 11, count: 150, protocol: "grpc", shape: "v1", models: "llama-8b,qwen-7b", resource: "service.instance.id=vllm-0"},
	{seed: 12, count: 90, protocol: "http/protobuf", shape: "v1-legacy-scope", models: "llama-8b,qwen-7b", resource: "service.instance.id=vllm-0"},
	// V0 spans: the model comes from the span, prefill/decode/inference are derived from TTFT, queue and E2E
	{seed: 13, count: 60, protocol: "grpc", shape: "v0-detailed", models: "llama-8b,qwen-7b", resource: "service.instance.id=vllm-0"},
}

// ---- what Prometheus must hold ----

// Every Prometheus name the tests confirm, with the OTel metric it comes from (remote-write translation: dots
// to underscores, unit suffix, _total for monotonic sums, {token} dropped).
const (
	promRequests         = "vllm_requests_total"                         // vllm.requests
	promTokens           = "vllm_tokens_total"                           // vllm.tokens
	promSLORequests      = "vllm_slo_requests_total"                     // vllm.slo.requests
	promTTFT             = "gen_ai_server_time_to_first_token_seconds"   // gen_ai.server.time_to_first_token
	promTPOT             = "gen_ai_server_time_per_output_token_seconds" // gen_ai.server.time_per_output_token
	promRequestDuration  = "gen_ai_server_request_duration_seconds"      // gen_ai.server.request.duration
	promQueue            = "vllm_request_queue_duration_seconds"         // vllm.request.queue.duration
	promPrefill          = "vllm_request_prefill_duration_seconds"       // vllm.request.prefill.duration
	promDecode           = "vllm_request_decode_duration_seconds"        // vllm.request.decode.duration
	promInference        = "vllm_request_inference_duration_seconds"     // vllm.request.inference.duration
	promRequestTokens    = "vllm_request_tokens"                         // vllm.request.tokens
	promDecodeThroughput = "vllm_request_decode_throughput_per_second"   // vllm.request.decode.throughput
	promScheduler        = "vllm_request_scheduler_duration_seconds"     // vllm.request.scheduler.duration (V0)
	promModelForward     = "vllm_request_model_forward_duration_seconds" // vllm.request.model_forward.duration (V0)
	promModelExecute     = "vllm_request_model_execute_duration_seconds" // vllm.request.model_execute.duration (V0)
)

// latencyHistograms ties each latency histogram to vllmgen's summary and to the span attributes it observes: the
// first one a span has (V1 spans carry prefill/decode/inference, on V0 spans the vllm processor adds them).
var latencyHistograms = []struct {
	prom      string
	stat      func(r report) stat
	spanAttrs []string
}{
	{promTTFT, func(r report) stat { return r.TTFT }, []string{"gen_ai.latency.time_to_first_token"}},
	{promTPOT, func(r report) stat { return r.TPOT }, []string{"vllm.request.time_per_output_token"}}, // added by the processor
	{promRequestDuration, func(r report) stat { return r.E2E }, []string{"gen_ai.latency.e2e"}},
	{promQueue, func(r report) stat { return r.Queue }, []string{"gen_ai.latency.time_in_queue"}},
	{promPrefill, func(r report) stat { return r.Prefill }, []string{"gen_ai.latency.time_in_model_prefill", "vllm.request.prefill.duration"}},
	{promDecode, func(r report) stat { return r.Decode }, []string{"gen_ai.latency.time_in_model_decode", "vllm.request.decode.duration"}},
	{promInference, func(r report) stat { return r.Inference }, []string{"gen_ai.latency.time_in_model_inference", "vllm.request.inference.duration"}},
}

// ---- vllmgen summary ----

type stat struct {
	Count int64 `json:"count"`
	SumUS int64 `json:"sum_us"`
}

type outcome struct {
	Met      int64 `json:"met"`
	Violated int64 `json:"violated"`
}

type report struct {
	Requests         int64              `json:"requests"`
	Spans            int64              `json:"spans"`
	ExportedSpans    int64              `json:"exported_spans"`
	FailedSpans      int64              `json:"failed_spans"`
	PromptTokens     int64              `json:"prompt_tokens"`
	CompletionTokens int64              `json:"completion_tokens"`
	TTFT             stat               `json:"ttft"`
	TPOT             stat               `json:"tpot"`
	E2E              stat               `json:"e2e"`
	Queue            stat               `json:"queue"`
	Prefill          stat               `json:"prefill"`
	Decode           stat               `json:"decode"`
	Inference        stat               `json:"inference"`
	SLO              map[string]outcome `json:"slo"`
}

type summary struct {
	Total  report            `json:"total"`
	Models map[string]report `json:"models"`
}

func (r *report) add(o report) {
	r.Requests += o.Requests
	r.Spans += o.Spans
	r.ExportedSpans += o.ExportedSpans
	r.FailedSpans += o.FailedSpans
	r.PromptTokens += o.PromptTokens
	r.CompletionTokens += o.CompletionTokens
	for _, p := range []struct{ dst, src *stat }{
		{&r.TTFT, &o.TTFT}, {&r.TPOT, &o.TPOT}, {&r.E2E, &o.E2E}, {&r.Queue, &o.Queue},
		{&r.Prefill, &o.Prefill}, {&r.Decode, &o.Decode}, {&r.Inference, &o.Inference},
	} {
		p.dst.Count += p.src.Count
		p.dst.SumUS += p.src.SumUS
	}
	if r.SLO == nil {
		r.SLO = map[string]outcome{}
	}
	for k, v := range o.SLO {
		cur := r.SLO[k]
		cur.Met += v.Met
		cur.Violated += v.Violated
		r.SLO[k] = cur
	}
}

func (s *summary) add(o summary) {
	s.Total.add(o.Total)
	if s.Models == nil {
		s.Models = map[string]report{}
	}
	for m, r := range o.Models {
		cur := s.Models[m]
		cur.add(r)
		s.Models[m] = cur
	}
}

// sendRun runs vllmgen against endpoint (host:port; for http the /v1/traces URL is built here) and returns
// its summary. Every span must have been exported.
func sendRun(t *testing.T, r genRun, grpcEndpoint, httpEndpoint string) summary {
	t.Helper()
	var endpoint string
	switch r.protocol {
	case "grpc":
		endpoint = grpcEndpoint
	case "http/protobuf":
		endpoint = "http://" + httpEndpoint + "/v1/traces"
	default:
		t.Fatalf("genRun.protocol %q: want grpc or http/protobuf", r.protocol)
	}
	args := append([]string{
		"--otlp-endpoint=" + endpoint, "--otlp-protocol=" + r.protocol, "--shape=" + r.shape,
		"--count=" + strconv.Itoa(r.count), "--seed=" + strconv.Itoa(r.seed), "--models=" + r.models,
		"--resource=" + r.resource, "--batch=50", "--summary=json",
	}, sloFlags...)
	if r.slo != nil {
		args = append(args[:len(args)-len(sloFlags)], r.slo...)
	}
	out := run(t, 2*time.Minute, "", vllmgen(t), args...)
	var s summary
	require.NoError(t, json.Unmarshal(out, &s), "vllmgen summary: %s", out)
	require.Equal(t, s.Total.Spans, s.Total.ExportedSpans, "vllmgen could not export every span: %s", out)
	require.Zero(t, s.Total.FailedSpans)
	return s
}

// ---- recording proxy: keeps a copy of what vllmgen sent, then forwards it to the collector ----

type recordingProxy struct {
	ptraceotlp.UnimplementedGRPCServer
	endpoint string
	next     ptraceotlp.GRPCClient

	mu   sync.Mutex
	sent []ptrace.Traces
}

func startRecordingProxy(t *testing.T, collectorGRPC string) *recordingProxy {
	t.Helper()
	conn, err := grpc.NewClient(collectorGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	p := &recordingProxy{next: ptraceotlp.NewGRPCClient(conn)}
	p.endpoint = testkit.ServeGRPC(t, testkit.ListenLoopback(t), func(srv *grpc.Server) { ptraceotlp.RegisterGRPCServer(srv, p) })
	return p
}

func (p *recordingProxy) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	td := ptrace.NewTraces()
	req.Traces().CopyTo(td)
	resp, err := p.next.Export(ctx, req)
	if err == nil {
		p.mu.Lock()
		p.sent = append(p.sent, td)
		p.mu.Unlock()
	}
	return resp, err
}

func (p *recordingProxy) traces() []ptrace.Traces {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ptrace.Traces(nil), p.sent...)
}

// ---- span helpers ----

type spanRecord struct {
	resource pcommon.Resource
	scope    pcommon.InstrumentationScope
	span     ptrace.Span
}

func indexSpans(all []ptrace.Traces) map[pcommon.SpanID]spanRecord {
	out := map[pcommon.SpanID]spanRecord{}
	for _, td := range all {
		rss := td.ResourceSpans()
		for i := 0; i < rss.Len(); i++ {
			rs := rss.At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					span := ss.Spans().At(k)
					out[span.SpanID()] = spanRecord{resource: rs.Resource(), scope: ss.Scope(), span: span}
				}
			}
		}
	}
	return out
}

// attrValues collects, sorted, a numeric span attribute over all spans that carry one of keys (the first found).
func attrValues(spans map[pcommon.SpanID]spanRecord, keys ...string) []float64 {
	var out []float64
	for _, s := range spans {
		for _, key := range keys {
			v, ok := s.span.Attributes().Get(key)
			if !ok {
				continue
			}
			switch v.Type() {
			case pcommon.ValueTypeDouble:
				out = append(out, v.Double())
			case pcommon.ValueTypeInt:
				out = append(out, float64(v.Int()))
			}
			break
		}
	}
	sort.Float64s(out)
	return out
}

// ---- assertions on Prometheus ----

func closeEnough(got, want float64) bool {
	return math.Abs(got-want) <= 1e-6*math.Max(1, math.Abs(want))
}

// byLabel runs a query and returns its samples keyed by one label.
func byLabel(t *testing.T, prom *prometheusServer, expr, label string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, s := range prom.query(t, expr) {
		out[s.Metric[label]] = s.float(t)
	}
	return out
}

// expectation is a PromQL expression and the per-model values it must return.
type expectation struct {
	expr string
	want map[string]float64
}

// modelExpectations derives, from vllmgen's summaries, every per-model value Prometheus must hold.
func modelExpectations(want summary) []expectation {
	per := func(expr string, f func(r report) float64) expectation {
		e := expectation{expr: "sum by (gen_ai_request_model) (" + expr + ")", want: map[string]float64{}}
		for m, r := range want.Models {
			e.want[m] = f(r)
		}
		return e
	}
	exps := []expectation{
		per(promRequests, func(r report) float64 { return float64(r.Spans) }),
		per(promTokens+`{gen_ai_token_type="input"}`, func(r report) float64 { return float64(r.PromptTokens) }),
		per(promTokens+`{gen_ai_token_type="output"}`, func(r report) float64 { return float64(r.CompletionTokens) }),
		per(promRequestTokens+`_sum{gen_ai_token_type="input"}`, func(r report) float64 { return float64(r.PromptTokens) }),
		per(promRequestTokens+`_sum{gen_ai_token_type="output"}`, func(r report) float64 { return float64(r.CompletionTokens) }),
		per(promRequestTokens+`_count{gen_ai_token_type="input"}`, func(r report) float64 { return float64(r.Spans) }),
		per(promDecodeThroughput+`_count`, func(r report) float64 { return float64(r.TPOT.Count) }),
	}
	for _, h := range latencyHistograms {
		exps = append(exps,
			per(h.prom+"_count", func(r report) float64 { return float64(h.stat(r).Count) }),
			per(h.prom+"_sum", func(r report) float64 { return float64(h.stat(r).SumUS) / 1e6 }),
			per(h.prom+`_bucket{le="+Inf"}`, func(r report) float64 { return float64(h.stat(r).Count) }))
	}
	for _, objective := range []string{"ttft", "tpot", "e2e", "queue", "all"} {
		for _, met := range []bool{true, false} {
			expr := fmt.Sprintf(`%s{vllm_slo_objective=%q,vllm_slo_met="%t"}`, promSLORequests, objective, met)
			exps = append(exps, per(expr, func(r report) float64 {
				if met {
					return float64(r.SLO[objective].Met)
				}
				return float64(r.SLO[objective].Violated)
			}))
		}
	}
	return exps
}

// checkExpectations polls until every expectation holds (the last flush may still be on its way) and reports
// every mismatch otherwise.
func checkExpectations(t *testing.T, prom *prometheusServer, exps []expectation) {
	t.Helper()
	var failures []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		failures = failures[:0]
		for _, e := range exps {
			got := byLabel(t, prom, e.expr, "gen_ai_request_model")
			for m, w := range e.want {
				if w == 0 {
					// a zero counter may have no series at all
					if g, ok := got[m]; ok && g != 0 {
						failures = append(failures, fmt.Sprintf("%s{model=%s}: got %v, want 0", e.expr, m, g))
					}
					continue
				}
				if g, ok := got[m]; !ok || !closeEnough(g, w) {
					failures = append(failures, fmt.Sprintf("%s{model=%s}: got %v (present %t), want %v", e.expr, m, g, ok, w))
				}
			}
			for m := range got {
				if _, ok := e.want[m]; !ok {
					failures = append(failures, fmt.Sprintf("%s: unexpected model %q", e.expr, m))
				}
			}
		}
		if len(failures) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	assert.Empty(t, failures, "Prometheus differs from what vllmgen sent")
}

// checkBuckets compares every bucket of a histogram (a _bucket selector, summed over its series) with the
// values of the spans.
func checkBuckets(t *testing.T, prom *prometheusServer, selector string, values []float64) {
	t.Helper()
	buckets := byLabel(t, prom, "sum by (le) ("+selector+")", "le")
	require.NotEmpty(t, buckets, "%s has no series", selector)
	for leStr, got := range buckets {
		le, err := strconv.ParseFloat(leStr, 64)
		require.NoError(t, err)
		want := sort.Search(len(values), func(i int) bool { return values[i] > le }) // values <= le
		assert.Equal(t, float64(want), got, "%s le=%q", selector, leStr)
	}
}

// checkQuantiles checks that histogram_quantile lands in the bucket that holds the true quantile of the values.
func checkQuantiles(t *testing.T, prom *prometheusServer, promName string, values []float64) {
	t.Helper()
	bounds := []float64{}
	for leStr := range byLabel(t, prom, "sum by (le) ("+promName+"_bucket)", "le") {
		if le, err := strconv.ParseFloat(leStr, 64); err == nil && !math.IsInf(le, 1) {
			bounds = append(bounds, le)
		}
	}
	sort.Float64s(bounds)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got := prom.scalar(t, fmt.Sprintf("histogram_quantile(%v, sum by (le) (%s_bucket))", q, promName))
		rank := int(math.Ceil(q * float64(len(values))))
		truth := values[max(rank-1, 0)]
		upper := sort.SearchFloat64s(bounds, truth) // first bound >= truth
		require.Less(t, upper, len(bounds), "%s: true q%v %v is beyond the last bucket", promName, q, truth)
		lower := 0.0
		if upper > 0 {
			lower = bounds[upper-1]
		}
		assert.True(t, got >= lower && got <= bounds[upper],
			"histogram_quantile(%v, %s) = %v; the true quantile %v lies in bucket (%v, %v]", q, promName, got, truth, lower, bounds[upper])
	}
}

// checkExemplars checks that exemplars reached Prometheus and point at real spans with the observed value.
func checkExemplars(t *testing.T, prom *prometheusServer, spans map[pcommon.SpanID]spanRecord) {
	t.Helper()
	series := prom.exemplars(t, promTTFT+"_bucket")
	n := 0
	for _, s := range series {
		for _, ex := range s.Exemplars {
			n++
			var spanID pcommon.SpanID
			decoded, err := hexBytes(ex.Labels["span_id"], len(spanID))
			require.NoError(t, err, "exemplar labels %v", ex.Labels)
			copy(spanID[:], decoded)
			rec, ok := spans[spanID]
			require.True(t, ok, "exemplar points at span %s that was never sent", ex.Labels["span_id"])
			assert.Equal(t, rec.span.TraceID().String(), ex.Labels["trace_id"])
			ttft, ok := rec.span.Attributes().Get("gen_ai.latency.time_to_first_token")
			require.True(t, ok)
			value, err := strconv.ParseFloat(ex.Value, 64)
			require.NoError(t, err)
			assert.InDelta(t, ttft.Double(), value, 1e-9, "exemplar value of span %s", ex.Labels["span_id"])
		}
	}
	assert.Positive(t, n, "no exemplar reached Prometheus for %s", promTTFT)
}

func hexBytes(s string, n int) ([]byte, error) {
	if len(s) != 2*n {
		return nil, fmt.Errorf("%q is not %d hex bytes", s, n)
	}
	out := make([]byte, n)
	for i := range n {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		out[i] = byte(v)
	}
	return out, nil
}

// checkTracesIntact compares every span vllmgen sent with the span the trace sink received.
func checkTracesIntact(t *testing.T, sent, received map[pcommon.SpanID]spanRecord) {
	t.Helper()
	require.NotEmpty(t, sent)
	for id, orig := range sent {
		got, ok := received[id]
		if !assert.True(t, ok, "span %s never reached the trace sink", id) {
			continue
		}
		o, g := orig.span, got.span
		assert.Equal(t, o.Name(), g.Name())
		assert.Equal(t, o.TraceID(), g.TraceID())
		assert.Equal(t, o.ParentSpanID(), g.ParentSpanID())
		assert.Equal(t, o.Kind(), g.Kind())
		assert.Equal(t, o.StartTimestamp(), g.StartTimestamp())
		assert.Equal(t, o.EndTimestamp(), g.EndTimestamp())
		assert.Equal(t, o.Status().Code(), g.Status().Code())
		assert.Equal(t, orig.scope.Name(), got.scope.Name())
		assert.Equal(t, orig.resource.Attributes().AsRaw(), got.resource.Attributes().AsRaw(), "resource of span %s", id)
		for k, v := range o.Attributes().All() {
			gv, ok := g.Attributes().Get(k)
			if assert.True(t, ok, "span %s lost attribute %s", id, k) {
				assert.True(t, v.Equal(gv), "span %s attribute %s: sent %s, received %s", id, k, v.AsString(), gv.AsString())
			}
		}
		// what the vllm processor adds
		provider, _ := g.Attributes().Get("gen_ai.provider.name")
		assert.Equal(t, "vllm", provider.AsString(), "span %s", id)
		_, hasOperation := g.Attributes().Get("gen_ai.operation.name")
		assert.True(t, hasOperation, "span %s has no gen_ai.operation.name", id)
		_, hasSLO := g.Attributes().Get("vllm.slo.met")
		assert.True(t, hasSLO, "span %s has no vllm.slo.met", id)
		completion, _ := o.Attributes().Get("gen_ai.usage.completion_tokens")
		_, hasTPOT := g.Attributes().Get("vllm.request.time_per_output_token")
		assert.Equal(t, completion.Int() > 1, hasTPOT, "span %s: TPOT present with %d output tokens", id, completion.Int())
	}
}

// checkSinkTotals checks the enriched spans agree with vllmgen's expected SLO outcome.
func checkSinkTotals(t *testing.T, received map[pcommon.SpanID]spanRecord, want summary) {
	t.Helper()
	var met int64
	for _, s := range received {
		if v, ok := s.span.Attributes().Get("vllm.slo.met"); ok && v.Bool() {
			met++
		}
	}
	assert.Equal(t, want.Total.SLO["all"].Met, met, "spans with vllm.slo.met=true")
}

// checkDeployMetrics checks that every metric deploy/metrics.txt lists (the names its rules and dashboards
// query) exists in Prometheus after the run, for the sources this run has: the connector, and vLLM's /metrics
// (served by a fake here). GPU metrics (source nvml) are checked by TestGPUMetricsInPrometheus, which runs the
// nvml receiver on a fake libnvidia-ml.so.1.
func checkDeployMetrics(t *testing.T, prom *prometheusServer) {
	t.Helper()
	path := filepath.Join(repoRoot(t), "deploy", "metrics.txt")
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Log("deploy/metrics.txt does not exist; nothing to cross-check")
		return
	}
	require.NoError(t, err)
	have := map[string]bool{}
	for _, n := range prom.metricNames(t) {
		have[n] = true
	}
	checked := 0
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		name, source := fields[0], fields[1]
		if source != "connector" && source != "vllm" {
			continue
		}
		checked++
		assert.True(t, have[name], "deploy/metrics.txt lists %s (source %s), which Prometheus does not have after the run", name, source)
	}
	assert.Positive(t, checked, "deploy/metrics.txt lists no connector or vllm metric")
	t.Logf("deploy/metrics.txt: %d names from the connector and vLLM's /metrics found in Prometheus", checked)
}
