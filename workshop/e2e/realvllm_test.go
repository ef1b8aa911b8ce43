package e2e

// The conformance test against a real vLLM: vLLM for CPU serves a tiny model and sends its spans to the built
// collector, which sends the enriched spans to a real Jaeger and the derived metrics to a metrics sink and a
// real Prometheus. The requests are the mix a fleet sees (completions and chat, streamed and not, n=2, stopped by
// max_tokens, stopped by EOS, one token, a client that disconnects mid-stream, a prompt longer than the context);
// then every number the collector derived is compared with vLLM's own /metrics for the same requests.
//
// With REALVLLM_RECORD=DIR the test also writes what vLLM sent (OTLP JSON spans, /metrics text, response
// bodies) into DIR: that is how testdata/vllm/ was recorded (see its README).

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

const (
	realVLLMJob      = "vllm-cpu"
	realVLLMModel    = "tiny-llama"
	realVLLMInstance = "vllm-cpu-0"
	// realVLLMRounds is how often the request mix is sent: enough requests for the histograms and the coverage
	// rule's window, few enough for two CPU cores.
	realVLLMRounds = 3
	// realVLLMWindow replaces the coverage rule's [5m] window. The rule is read once a whole window has passed
	// since a first request showed on both sides, so both counters have samples across the window and rate()
	// extrapolates neither: the test's traffic fits in it.
	realVLLMWindow    = "60s"
	realVLLMWindowDur = 60 * time.Second
)

// eosToken is the id of </s> in make_tiny_model.py's tokenizer (the second special token).
const eosToken = 1

// longPrompt is far longer than the tiny model's 512-token context: vLLM refuses it before it is scheduled.
var longPrompt = strings.Repeat("the quick kalomi runs over the lazy saneti ", 200)

// requestMix is one round of the requests a fleet sees, each with the finish reason vLLM must give it.
func requestMix() []*vllmCall {
	return []*vllmCall{
		{name: "completion, max_tokens", path: "/v1/completions",
			body: map[string]any{"prompt": "the kalomi of the runeti is", "max_tokens": 12, "ignore_eos": true}},
		{name: "completion streamed", path: "/v1/completions", stream: true,
			body: map[string]any{"prompt": "once upon a time in the zevo", "max_tokens": 16, "ignore_eos": true}},
		{name: "chat", path: "/v1/chat/completions",
			body: map[string]any{"messages": []map[string]string{{"role": "user", "content": "tell me about the sati"}}, "max_tokens": 10, "ignore_eos": true}},
		{name: "chat streamed", path: "/v1/chat/completions", stream: true,
			body: map[string]any{"messages": []map[string]string{{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is an orus"}}, "max_tokens": 14, "ignore_eos": true}},
		{name: "n=2", path: "/v1/completions",
			body: map[string]any{"prompt": "two answers to the question of the kami", "max_tokens": 8, "n": 2, "ignore_eos": true, "temperature": 0.8}},
		{name: "one token", path: "/v1/completions",
			body: map[string]any{"prompt": "a single word:", "max_tokens": 1}},
		{name: "stops on EOS", path: "/v1/chat/completions",
			// the logit bias makes </s> the first token sampled: finish reason stop, one output token
			body: map[string]any{"messages": []map[string]string{{"role": "user", "content": "say nothing"}}, "max_tokens": 20, "logit_bias": map[string]int{fmt.Sprint(eosToken): 100}}},
		{name: "client disconnects", path: "/v1/completions", stream: true, abortAt: 3,
			body: map[string]any{"prompt": "a very long story about the voru", "max_tokens": 400, "ignore_eos": true}},
		{name: "prompt longer than the context", path: "/v1/completions",
			body: map[string]any{"prompt": longPrompt, "max_tokens": 4}},
	}
}

// finishingMix is what finishes; abortAndReject is what does not: a client that goes away mid-stream (vLLM
// sends no span and counts no finished request) and a prompt longer than the context (refused with 400).
func finishingMix() []*vllmCall {
	var out []*vllmCall
	for _, c := range requestMix() {
		if c.abortAt == 0 && c.name != "prompt longer than the context" {
			out = append(out, c)
		}
	}
	return out
}

func abortAndReject() []*vllmCall {
	var out []*vllmCall
	for _, c := range requestMix() {
		if c.abortAt > 0 || c.name == "prompt longer than the context" {
			out = append(out, c)
		}
	}
	return out
}

// llmRequestSpans indexes the llm_request spans of what a trace sink received by trace id, and counts the rest
// (vLLM's startup spans: INTERNAL spans of its engine and worker processes).
// vllmSpan is a span vLLM sent, with its resource and scope name.
type vllmSpan struct {
	span     ptrace.Span
	resource pcommon.Map
	scope    string
}

func llmRequestSpans(all []ptrace.Traces) (byTrace map[string][]vllmSpan, others int) {
	byTrace = map[string][]vllmSpan{}
	for _, td := range all {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			rs := td.ResourceSpans().At(i)
			for j := 0; j < rs.ScopeSpans().Len(); j++ {
				ss := rs.ScopeSpans().At(j)
				for k := 0; k < ss.Spans().Len(); k++ {
					sp := ss.Spans().At(k)
					if sp.Name() != "llm_request" {
						others++
						continue
					}
					rec := vllmSpan{span: ptrace.NewSpan(), resource: pcommon.NewMap(), scope: ss.Scope().Name()}
					sp.CopyTo(rec.span)
					rs.Resource().Attributes().CopyTo(rec.resource)
					byTrace[sp.TraceID().String()] = append(byTrace[sp.TraceID().String()], rec)
				}
			}
		}
	}
	return byTrace, others
}

func spanDouble(t *testing.T, s ptrace.Span, key string) float64 {
	t.Helper()
	v, ok := s.Attributes().Get(key)
	require.True(t, ok, "span %s has no %s", s.SpanID(), key)
	require.Equal(t, pcommon.ValueTypeDouble, v.Type(), key)
	return v.Double()
}

func spanInt(t *testing.T, s ptrace.Span, key string) int64 {
	t.Helper()
	v, ok := s.Attributes().Get(key)
	require.True(t, ok, "span %s has no %s", s.SpanID(), key)
	require.Equal(t, pcommon.ValueTypeInt, v.Type(), key)
	return v.Int()
}

func TestRealVLLM(t *testing.T) {
	venv := requireVLLM(t)
	modelDir := tinyModel(t, venv)
	jaeger := startJaeger(t)
	enriched := &otlpsink.Sink{}
	raw := &otlpsink.Sink{}
	sink := &otlpsink.Sink{}
	prom := startPrometheusWithRules(t, realVLLMWindow, "")
	vllmPort := testkit.FreePort(t)
	c := startCollector(t, "collector-0", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "realvllm.yaml")}, map[string]string{
		"E2E_JAEGER_OTLP_ENDPOINT":    jaeger.otlpGRPC,
		"E2E_TRACE_SINK_ENDPOINT":     otlpsink.StartGRPC(t, enriched),
		"E2E_RAW_TRACE_SINK_ENDPOINT": otlpsink.StartGRPC(t, raw),
		"E2E_METRICS_SINK_ENDPOINT":   otlpsink.StartGRPC(t, sink),
		"E2E_REMOTE_WRITE_URL":        prom.remoteWriteURL(),
		"E2E_VLLM_JOB":                realVLLMJob,
		"E2E_VLLM_METRICS_TARGET":     testkit.Loopback(vllmPort),
	})
	since := time.Now().Add(-time.Minute)
	// as the README tells users to start vLLM
	v := vllmServeOn(t, vllmPort, venv, modelDir, realVLLMModel, "grpc://"+c.otlpGRPC, []string{
		"OTEL_SERVICE_NAME=" + realVLLMJob,
		"OTEL_RESOURCE_ATTRIBUTES=service.instance.id=" + realVLLMInstance + ",gen_ai.request.model=" + realVLLMModel,
		"OTEL_EXPORTER_OTLP_TRACES_INSECURE=true",
	}, "--enable-per-request-metrics")

	// Phase 1: requests that finish. The first ones are sent alone and awaited on both sides of the coverage rule.
	var finished []*vllmCall
	wantReasons := map[string]float64{}
	// one request of each operation, so that every series the coverage rule adds exists before the window
	for _, call := range finishingMix()[:3] {
		require.Contains(t, []string{"completion, max_tokens", "completion streamed", "chat"}, call.name)
		if call.name == "completion streamed" {
			continue
		}
		v.do(t, call)
		require.Equal(t, 200, call.status, "%s: %s", call.name, call.raw)
		finished = append(finished, call)
		wantReasons[call.reasons[0]]++
	}
	prom.waitScalar(t, `count(vllm_requests_total{job="`+realVLLMJob+`"} == 1)`, 2, time.Minute)
	prom.waitScalar(t, `sum(vllm:request_success_total{job="`+realVLLMJob+`"})`, 2, time.Minute)
	// Both series are scraped or flushed every second: after 2.5 s each has a sample at 1 in the 1.5 s before the
	// traffic, where the coverage window will start.
	time.Sleep(2500 * time.Millisecond)
	coverageReadable := time.Now().Add(realVLLMWindowDur - 1500*time.Millisecond)
	for round := 0; round < realVLLMRounds; round++ {
		for _, call := range finishingMix() {
			v.do(t, call)
			require.Equal(t, 200, call.status, "%s: %s", call.name, call.raw)
			finished = append(finished, call)
			for _, r := range call.reasons {
				wantReasons[r]++
			}
		}
	}
	var wantSpans float64
	for _, n := range wantReasons {
		wantSpans += n
	}
	families, metricsText := v.metrics(t)
	for reason, want := range wantReasons {
		assert.Equal(t, want, vllmrequesttest.VLLMCounter(families, "vllm:request_success_total", map[string]string{"finished_reason": reason}),
			"vLLM counted the finish reasons the client saw (%s)", reason)
	}
	require.Equal(t, wantSpans, vllmrequesttest.VLLMCounter(families, "vllm:request_success_total", nil))
	// every finished request has exactly one span, with the trace the client's traceparent started
	require.Eventually(t, func() bool {
		spans, _ := llmRequestSpans(raw.TraceRequests())
		n := 0
		for _, s := range spans {
			n += len(s)
		}
		return float64(n) >= wantSpans
	}, 30*time.Second, 100*time.Millisecond, "vLLM's spans at the collector")
	waitTotal(t, sink, "vllm.requests", nil, wantSpans, 0)

	phase1 := raw.TraceRequests()
	rawSpans, startupSpans := llmRequestSpans(phase1)
	t.Logf("%d finished requests, %d llm_request spans, %d startup spans", len(finished), int(wantSpans), startupSpans)
	t.Run("one span per finished request, in the client's trace", func(t *testing.T) {
		for _, call := range finished {
			spans := rawSpans[call.traceID]
			if !assert.Len(t, spans, len(call.reasons), "%s: one span per choice", call.name) {
				continue
			}
			for _, s := range spans {
				assert.Equal(t, call.parentID, s.span.ParentSpanID().String(), "%s: the traceparent's span is the parent", call.name)
				assert.Equal(t, ptrace.SpanKindServer, s.span.Kind())
				assert.Equal(t, "vllm.tracing.otel", s.scope)
				assert.Equal(t, int64(0), int64(s.span.Status().Code()), "no status on a finished request")
				completion := spanInt(t, s.span, "gen_ai.usage.completion_tokens")
				if call.usage != nil {
					assert.Equal(t, call.usage["completion_tokens"], float64(completion*int64(len(call.reasons))), "%s: usage and span agree", call.name)
					assert.Equal(t, call.usage["prompt_tokens"], float64(spanInt(t, s.span, "gen_ai.usage.prompt_tokens")), call.name)
				}
			}
		}
	})

	t.Run("nothing refused, unknown or malformed", func(t *testing.T) {
		for metric, want := range map[string]float64{
			"otelcol_connector_vllm_spans_recognized":   wantSpans,
			"otelcol_processor_vllm_spans_recognized":   wantSpans,
			"otelcol_connector_vllm_fields_rejected":    0,
			"otelcol_processor_vllm_fields_rejected":    0,
			"otelcol_connector_vllm_operations_unknown": 0,
			"otelcol_connector_vllm_attributes_dropped": 0,
			"otelcol_receiver_refused_spans":            0,
		} {
			assert.Equal(t, want, c.telemetryValue(t, metric), metric)
		}
		assert.Equal(t, wantSpans+float64(startupSpans), c.telemetryValue(t, "otelcol_connector_vllm_spans_seen"), "the startup spans are seen and ignored")
	})

	t.Run("the collector's histograms equal vLLM's", func(t *testing.T) {
		for _, pair := range vllmrequesttest.HistogramPairs {
			want, ok := vllmrequesttest.VLLMHistogram(families, pair.VLLM)
			require.True(t, ok, "vLLM has no %s", pair.VLLM)
			match := map[string]any{}
			if pair.TokenType != "" {
				match["gen_ai.token.type"] = pair.TokenType
			}
			got := sink.Histogram(pair.Connector, match)
			assert.Empty(t, vllmrequesttest.Differences(want, got, 0.001), "%s against %s", pair.Connector, pair.VLLM)
			assert.Positive(t, want.Count, pair.VLLM)
		}
		for tokenType, family := range map[string]string{"input": "vllm:request_prompt_tokens", "output": "vllm:request_generation_tokens"} {
			want, _ := vllmrequesttest.VLLMHistogram(families, family)
			got, _, _ := sink.Total("vllm.tokens", map[string]any{"gen_ai.token.type": tokenType})
			assert.Equal(t, want.Sum, got, "%s tokens", tokenType)
		}
	})

	t.Run("per-request metrics in the response body are the span's engine times", func(t *testing.T) {
		checked := 0
		for _, call := range finished {
			if call.metrics == nil || len(rawSpans[call.traceID]) != 1 {
				continue
			}
			s := rawSpans[call.traceID][0].span
			ms := func(key string) float64 {
				v, ok := call.metrics[key].(float64)
				require.True(t, ok, "%s: metrics.%s = %v", call.name, key, call.metrics[key])
				return v
			}
			// vLLM's time_to_first_token_ms runs from scheduling to the first token: the span's prefill, not its TTFT
			assert.InDelta(t, spanDouble(t, s, "gen_ai.latency.time_in_model_prefill")*1000, ms("time_to_first_token_ms"), 1e-6, call.name)
			assert.InDelta(t, spanDouble(t, s, "gen_ai.latency.time_in_queue")*1000, ms("queue_time_ms"), 1e-6, call.name)
			assert.InDelta(t, spanDouble(t, s, "gen_ai.latency.time_in_model_decode")*1000, ms("generation_time_ms"), 1e-6, call.name)
			checked++
		}
		assert.Positive(t, checked)
	})

	t.Run("enriched spans in Jaeger with the SLO verdict their values imply", func(t *testing.T) {
		byTrace := map[string][]foundSpan{}
		var missing []string
		require.Eventually(t, func() bool {
			found := jaeger.search(t, realVLLMJob, map[string]string{"gen_ai.request.model": realVLLMModel}, since)
			clear(byTrace)
			for _, f := range found {
				if f.span.OperationName == "llm_request" {
					byTrace[f.span.TraceID] = append(byTrace[f.span.TraceID], f)
				}
			}
			missing = missing[:0]
			for _, call := range finished {
				if len(byTrace[call.traceID]) < len(rawSpans[call.traceID]) {
					missing = append(missing, call.name+" "+call.traceID)
				}
			}
			return len(missing) == 0
		}, 30*time.Second, 500*time.Millisecond, "traces missing in Jaeger: %v", missing)
		for _, call := range finished {
			spans := byTrace[call.traceID]
			require.Len(t, spans, len(rawSpans[call.traceID]), call.name)
			for _, f := range spans {
				i := slices.IndexFunc(rawSpans[call.traceID], func(r vllmSpan) bool { return r.span.SpanID().String() == f.span.SpanID })
				require.GreaterOrEqual(t, i, 0, "%s: Jaeger's span %s is one vLLM sent", call.name, f.span.SpanID)
				sent := rawSpans[call.traceID][i].span
				met, ok := f.tag("vllm.slo.met")
				require.True(t, ok, "%s: no vllm.slo.met", call.name)
				assert.Equal(t, len(sloViolations(t, sent)) == 0, met.Value, "%s: %v", call.name, f.span.Tags)
				op, _ := f.tag("gen_ai.operation.name")
				want := "text_completion"
				if strings.HasSuffix(call.path, "/chat/completions") {
					want = "chat"
				}
				assert.Equal(t, want, op.Value, call.name)
				if _, ok := f.tag("vllm.request.time_per_output_token"); !ok && spanInt(t, sent, "gen_ai.usage.completion_tokens") >= 2 {
					t.Errorf("%s: no TPOT on a span with two or more output tokens: %v", call.name, f.span.Tags)
				}
			}
		}
	})

	t.Run("span coverage rule reads 1", func(t *testing.T) {
		prom.waitScalar(t, `sum(vllm_requests_total{job="`+realVLLMJob+`"})`, wantSpans, time.Minute)
		prom.waitScalar(t, `sum(vllm:request_success_total{job="`+realVLLMJob+`"})`, wantSpans, time.Minute)
		require.True(t, time.Now().Before(coverageReadable.Add(-2*time.Second)),
			"the traffic outlasted the coverage window (%s); lengthen realVLLMWindow", realVLLMWindow)
		time.Sleep(time.Until(coverageReadable))
		expr := `job_model:vllm_span_coverage:ratio_rate5m{job="` + realVLLMJob + `"}`
		samples := prom.query(t, expr)
		require.Len(t, samples, 1, "%s: %v", expr, samples)
		assert.Equal(t, realVLLMModel, samples[0].Metric["gen_ai_request_model"], "the rule joins vLLM's model_name with the connector's model")
		// rate() scales each side's increase by the window over its sampled interval: with one sample a second
		// in a 60 s window the two sides differ by at most 2/58 from that alone
		assert.InDelta(t, 1, samples[0].float(t), 0.05, "finished requests with a span / finished requests")
	})

	// Phase 2: a client that disconnects mid-stream and a prompt over the context.
	spansBefore := enriched.SpanCount()
	ttftBefore, _ := vllmrequesttest.VLLMHistogram(families, "vllm:time_to_first_token_seconds")
	var aborted, rejected int
	for _, call := range abortAndReject() {
		v.do(t, call)
		switch {
		case call.abortAt > 0:
			require.Equal(t, 200, call.status)
			aborted++
		default:
			assert.Equal(t, 400, call.status, "%s: %s", call.name, call.raw)
			rejected++
		}
	}
	// vLLM notices the disconnect at its next output; give it and a span export time to show
	require.Eventually(t, func() bool {
		after, _ := v.metrics(t)
		h, _ := vllmrequesttest.VLLMHistogram(after, "vllm:time_to_first_token_seconds")
		return h.Count == ttftBefore.Count+uint64(aborted) && vllmrequesttest.VLLMGauge(after, "vllm:num_requests_running") == 0
	}, 30*time.Second, 200*time.Millisecond, "vLLM observes the aborted request's TTFT and stops running it")
	time.Sleep(2 * time.Second) // a span would leave vLLM within 200 ms and the collector within 1 s
	after, _ := v.metrics(t)
	t.Run("aborted and rejected requests: no span, not finished, TTFT still observed by vLLM", func(t *testing.T) {
		assert.Equal(t, spansBefore, enriched.SpanCount(), "no span for an aborted or a rejected request (vLLM %s)", "0.32")
		assert.Equal(t, wantSpans, vllmrequesttest.VLLMCounter(after, "vllm:request_success_total", nil), "neither is a finished request")
		assert.Zero(t, vllmrequesttest.VLLMCounter(after, "vllm:request_success_total", map[string]string{"finished_reason": "abort"}))
		total, _, _ := sink.Total("vllm.requests", nil)
		assert.Equal(t, wantSpans, total)
		assert.Equal(t, 1, aborted)
		assert.Equal(t, 1, rejected)
	})

	t.Run("vllmbench beside vLLM's own benchmark", func(t *testing.T) {
		compareWithVLLMBench(t, venv, modelDir, v)
	})

	if dir := os.Getenv("REALVLLM_RECORD"); dir != "" {
		recordRealVLLM(t, dir, phase1, metricsText, finished)
	}
}

// recordRealVLLM writes what vLLM sent in phase 1 as fixtures: its spans as OTLP JSON, its /metrics text and the
// response bodies.
func recordRealVLLM(t *testing.T, dir string, traces []ptrace.Traces, metricsText []byte, calls []*vllmCall) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	all := ptrace.NewTraces()
	for _, td := range traces {
		td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
	}
	spans, err := (&ptrace.JSONMarshaler{}).MarshalTraces(all)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "spans.json"), spans, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "metrics.txt"), metricsText, 0o644))
	var lines []string
	for _, c := range calls {
		line, err := json.Marshal(map[string]any{
			"name": c.name, "path": c.path, "request": c.body, "stream": c.stream, "trace_id": c.traceID,
			"status": c.status, "finish_reasons": c.reasons, "usage": c.usage, "metrics": c.metrics,
		})
		require.NoError(t, err)
		lines = append(lines, string(line))
	}
	sort.Strings(lines)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "responses.jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	t.Logf("recorded into %s", dir)
}

// benchClaims are the result keys vllmbench claims with vLLM's meaning and units (vllm/benchmarks/serve.py).
var benchClaims = []string{
	"completed", "total_input_tokens", "total_output_tokens", "request_throughput", "output_throughput",
	"total_token_throughput", "duration",
	"mean_ttft_ms", "median_ttft_ms", "std_ttft_ms", "p99_ttft_ms",
	"mean_tpot_ms", "median_tpot_ms", "std_tpot_ms", "p99_tpot_ms",
	"mean_itl_ms", "median_itl_ms", "std_itl_ms", "p99_itl_ms",
	"mean_e2el_ms", "median_e2el_ms", "std_e2el_ms", "p99_e2el_ms",
}

// The benchmarks' workload: prompts long enough that prefill, not the clients' own overhead per request (a few
// milliseconds of Python in vLLM's), sets the TTFT.
const (
	benchInput   = 256
	benchOutput  = 24
	benchPrompts = 16
)

// benchServerMetrics are, per latency a benchmark reports, the vLLM histogram that observes the same value on the
// server for the same requests.
var benchServerMetrics = map[string]string{
	"mean_ttft_ms": "vllm:time_to_first_token_seconds",
	"mean_tpot_ms": "vllm:request_time_per_output_token_seconds",
	"mean_itl_ms":  "vllm:inter_token_latency_seconds",
	"mean_e2el_ms": "vllm:e2e_request_latency_seconds",
}

// compareWithVLLMBench runs vLLM's `vllm bench serve` and vllmbench, one after the other, with the same random
// workload against the same vLLM: one request at a time, so the server's speed alone sets the latencies. Each
// benchmark's mean latencies are checked against what vLLM's own /metrics observed for that benchmark's requests
// (the histograms' sum and count over the run): a benchmark measures what the server did, plus the client's own
// small overhead. Comparing the two benchmarks with each other directly would also compare two time windows of a
// shared machine; they are logged side by side.
func compareWithVLLMBench(t *testing.T, venv, modelDir string, v *realVLLM) {
	dir := t.TempDir()
	workload := []string{"--base-url", v.base, "--model", realVLLMModel, "--tokenizer", modelDir,
		"--dataset-name", "random", "--random-input-len", fmt.Sprint(benchInput), "--random-output-len", fmt.Sprint(benchOutput), "--num-prompts", fmt.Sprint(benchPrompts),
		"--request-rate", "inf", "--max-concurrency", "1", "--seed", "7",
		"--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
		"--save-result", "--result-dir", dir, "--disable-tqdm"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// serverMeans runs a benchmark and returns vLLM's mean of each benchServerMetrics histogram over its requests, in ms.
	serverMeans := func(cmd *exec.Cmd) map[string]float64 {
		before, _ := v.metrics(t)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s:\n%s", cmd.Path, out)
		after, _ := v.metrics(t)
		means := map[string]float64{}
		for key, name := range benchServerMetrics {
			b, okBefore := vllmrequesttest.VLLMHistogram(before, name)
			a, okAfter := vllmrequesttest.VLLMHistogram(after, name)
			require.True(t, okBefore && okAfter, "vLLM's /metrics has %s", name)
			require.Greater(t, a.Count, b.Count, "%s observed the benchmark's requests", name)
			means[key] = (a.Sum - b.Sum) / float64(a.Count-b.Count) * 1000
		}
		return means
	}
	theirs := exec.CommandContext(ctx, filepath.Join(venv, "bin", "vllm"), append([]string{"bench", "serve",
		"--ignore-eos", "--result-filename", "vllm.json"}, workload...)...)
	theirs.Env = append(os.Environ(), offlineEnv...)
	serverForTheirs := serverMeans(theirs)
	// vllmbench's random dataset sets ignore_eos itself, as vLLM's does with --ignore-eos
	ours := exec.CommandContext(ctx, vllmbench(t), append([]string{"--result-filename", "vllmbench.json"}, workload...)...)
	serverForOurs := serverMeans(ours)

	read := func(name string) map[string]any {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m), name)
		return m
	}
	want, got := read("vllm.json"), read("vllmbench.json")
	for _, key := range benchClaims {
		_, inTheirs := want[key]
		_, inOurs := got[key]
		assert.True(t, inTheirs, "vLLM's result has %s", key)
		assert.True(t, inOurs, "vllmbench's result has %s", key)
	}
	for _, key := range []string{"completed", "total_output_tokens"} {
		assert.Equal(t, want[key], got[key], key)
	}
	assert.Equal(t, float64(benchPrompts), got["completed"])
	assert.Equal(t, float64(benchPrompts*benchInput), got["total_input_tokens"], "vllmbench's prompts have exactly --random-input-len tokens")
	// vLLM's random dataset keeps a prompt that is still a token off after its rounds of re-encoding
	assert.InDelta(t, float64(benchPrompts*benchInput), want["total_input_tokens"], benchPrompts, "vLLM's prompts are --random-input-len tokens, give or take one")
	assert.Equal(t, float64(benchPrompts*benchOutput), got["total_output_tokens"])
	for _, key := range []string{"mean_ttft_ms", "mean_tpot_ms", "mean_itl_ms", "mean_e2el_ms"} {
		w, _ := want[key].(float64)
		g, _ := got[key].(float64)
		assert.InEpsilon(t, serverForTheirs[key], w, 0.2, "%s: vLLM's benchmark %.2f ms, the server %.2f ms over its requests", key, w, serverForTheirs[key])
		assert.InEpsilon(t, serverForOurs[key], g, 0.2, "%s: vllmbench %.2f ms, the server %.2f ms over its requests", key, g, serverForOurs[key])
		t.Logf("%s: vLLM's benchmark %.2f ms (server %.2f), vllmbench %.2f ms (server %.2f)", key, w, serverForTheirs[key], g, serverForOurs[key])
	}
}

// TestRealVLLMOverOTLPHTTP starts vLLM with its spans sent over OTLP/HTTP, as the README's instructions for
// that protocol say, and checks that a chat and a completion request each arrive as one enriched span in the
// client's trace.
func TestRealVLLMOverOTLPHTTP(t *testing.T) {
	venv := requireVLLM(t)
	modelDir := tinyModel(t, venv)
	sink := &otlpsink.Sink{}
	c := startCollector(t, "collector-http", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "realvllm-http.yaml")},
		map[string]string{"E2E_TRACE_SINK_ENDPOINT": otlpsink.StartGRPC(t, sink)})
	v := vllmServeOn(t, testkit.FreePort(t), venv, modelDir, realVLLMModel, "http://"+c.otlpHTTP+"/v1/traces", []string{
		"OTEL_SERVICE_NAME=" + realVLLMJob,
		"OTEL_RESOURCE_ATTRIBUTES=gen_ai.request.model=" + realVLLMModel,
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
	})
	calls := finishingMix()[:3:3]
	calls = slices.DeleteFunc(calls, func(c *vllmCall) bool { return c.stream })
	for _, call := range calls {
		v.do(t, call)
		require.Equal(t, 200, call.status, "%s: %s", call.name, call.raw)
	}
	var spans map[string][]vllmSpan
	require.Eventually(t, func() bool {
		spans, _ = llmRequestSpans(sink.TraceRequests())
		return len(spans) >= len(calls)
	}, 30*time.Second, 100*time.Millisecond)
	for _, call := range calls {
		require.Len(t, spans[call.traceID], 1, call.name)
		s := spans[call.traceID][0]
		assert.Equal(t, call.parentID, s.span.ParentSpanID().String(), call.name)
		met, ok := s.span.Attributes().Get("vllm.slo.met")
		assert.True(t, ok, "%s: enriched by the processor", call.name)
		assert.Equal(t, pcommon.ValueTypeBool, met.Type())
		model, _ := s.span.Attributes().Get("gen_ai.request.model")
		assert.Equal(t, realVLLMModel, model.Str())
	}
	assert.Zero(t, c.telemetryValue(t, "otelcol_receiver_refused_spans"))
}
