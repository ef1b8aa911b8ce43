package e2e

// Enriched traces in a real Jaeger: the distribution, started without arguments on its embedded default with
// OTELCOL_VLLM_JAEGER_ENDPOINT set, sends the vllm processor's spans to Jaeger v2 (memory storage, config in
// testdata/jaeger.yaml), and the test reads them back through Jaeger's query API: every request span with
// vLLM's attributes unchanged and the processor's additions right, and the tag search `vllm.slo.met=false`
// returning exactly the requests that broke the SLO. The verdicts are computed here from the sent spans' raw
// latencies, not by the code under test, and their counts must equal vllmgen's own.

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

type jaegerServer struct {
	proc     *testkit.Process
	otlpGRPC string // host:port of Jaeger's OTLP/gRPC receiver
	query    string // base URL of the query API
}

// startJaeger runs Jaeger v2 on testdata/jaeger.yaml with its OTLP receiver and query API on free loopback ports.
func startJaeger(t *testing.T) *jaegerServer {
	t.Helper()
	bin := testkit.Tool(t, testkit.Jaeger)
	queryHTTP := testkit.FreeLoopback(t)
	j := &jaegerServer{otlpGRPC: testkit.FreeLoopback(t), query: "http://" + queryHTTP}
	env := []string{
		"E2E_JAEGER_OTLP_GRPC_ENDPOINT=" + j.otlpGRPC,
		"E2E_JAEGER_QUERY_HTTP_ENDPOINT=" + queryHTTP,
		"E2E_JAEGER_QUERY_GRPC_ENDPOINT=" + testkit.FreeLoopback(t),
	}
	j.proc = testkit.StartProcess(t, "jaeger", env, bin, "--config", filepath.Join(workshopRoot(t), "e2e", "testdata", "jaeger.yaml"))
	j.proc.WaitHTTP(t, j.query+"/api/services", 60*time.Second)
	return j
}

// The JSON of Jaeger's /api/traces: resource attributes are the process' tags, span attributes the span's tags.
type jaegerTag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"` // json.Number, string or bool
}

type jaegerSpan struct {
	TraceID       string      `json:"traceID"`
	SpanID        string      `json:"spanID"`
	OperationName string      `json:"operationName"`
	ProcessID     string      `json:"processID"`
	Tags          []jaegerTag `json:"tags"`
}

type jaegerProcess struct {
	ServiceName string      `json:"serviceName"`
	Tags        []jaegerTag `json:"tags"`
}

type jaegerTrace struct {
	TraceID   string                   `json:"traceID"`
	Spans     []jaegerSpan             `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

// foundSpan is a span Jaeger returned, with its process.
type foundSpan struct {
	span    jaegerSpan
	process jaegerProcess
}

func (s foundSpan) tag(key string) (jaegerTag, bool) {
	for _, tag := range s.span.Tags {
		if tag.Key == key {
			return tag, true
		}
	}
	return jaegerTag{}, false
}

// search runs a trace search for service (tags: exact-match tag filters, nil for none) over spans that started
// after since, and returns every span of every trace found, by span ID.
func (j *jaegerServer) search(t *testing.T, service string, tags map[string]string, since time.Time) map[string]foundSpan {
	t.Helper()
	params := url.Values{
		"service": {service},
		"start":   {strconv.FormatInt(since.UnixMicro(), 10)},
		"end":     {strconv.FormatInt(time.Now().Add(time.Hour).UnixMicro(), 10)},
		"limit":   {"100000"},
	}
	if tags != nil {
		encoded, err := json.Marshal(tags)
		require.NoError(t, err)
		params.Set("tags", string(encoded))
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(j.query + "/api/traces?" + params.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "jaeger /api/traces?%s: %s", params.Encode(), body)
	var parsed struct {
		Data   []jaegerTrace `json:"data"`
		Errors []struct {
			Msg string `json:"msg"`
		} `json:"errors"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	require.NoError(t, dec.Decode(&parsed), "jaeger answered: %s", body)
	require.Empty(t, parsed.Errors)
	out := map[string]foundSpan{}
	for _, trace := range parsed.Data {
		for _, span := range trace.Spans {
			out[span.SpanID] = foundSpan{span: span, process: trace.Processes[span.ProcessID]}
		}
	}
	return out
}

// sameValue reports whether a Jaeger tag holds the attribute value sent over OTLP.
func sameValue(v pcommon.Value, tag jaegerTag) bool {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return tag.Type == "string" && tag.Value == v.Str()
	case pcommon.ValueTypeBool:
		return tag.Type == "bool" && tag.Value == v.Bool()
	case pcommon.ValueTypeInt:
		n, ok := tag.Value.(json.Number)
		return tag.Type == "int64" && ok && n.String() == strconv.FormatInt(v.Int(), 10)
	case pcommon.ValueTypeDouble:
		n, ok := tag.Value.(json.Number)
		if !ok || tag.Type != "float64" {
			return false
		}
		f, err := n.Float64()
		return err == nil && f == v.Double()
	default:
		return false
	}
}

// The embedded default's objectives (defaultSLO, as vllmgen flags), in seconds.
var defaultSLOSeconds = struct{ ttft, tpot, e2e float64 }{ttft: 0.2, tpot: 0.05, e2e: 5}

// sloViolations computes from a sent V1 span's raw latencies which objectives of the embedded default it breaks:
// TTFT and E2E as sent, TPOT as vLLM defines it (decode time over output tokens − 1, for ≥ 2 output tokens).
// vllmgen's values never fall on a threshold.
func sloViolations(t *testing.T, span ptrace.Span) []string {
	t.Helper()
	attrs := span.Attributes()
	double := func(key string) float64 {
		v, ok := attrs.Get(key)
		require.True(t, ok, "sent span %s has no %s", span.SpanID(), key)
		return v.Double()
	}
	var out []string
	if double("gen_ai.latency.time_to_first_token") > defaultSLOSeconds.ttft {
		out = append(out, "ttft")
	}
	completion, ok := attrs.Get("gen_ai.usage.completion_tokens")
	require.True(t, ok)
	if n := completion.Int(); n >= 2 && double("gen_ai.latency.time_in_model_decode")/float64(n-1) > defaultSLOSeconds.tpot {
		out = append(out, "tpot")
	}
	if double("gen_ai.latency.e2e") > defaultSLOSeconds.e2e {
		out = append(out, "e2e")
	}
	return out
}

func TestJaegerTagSearch(t *testing.T) {
	jaeger := startJaeger(t)
	// no arguments: the embedded default, with Jaeger switched on
	c := startCollector(t, "jaeger", nil, map[string]string{
		"OTELCOL_VLLM_JAEGER_ENDPOINT":       jaeger.otlpGRPC,
		"OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT": "",
	})
	proxy := startRecordingProxy(t, c.otlpGRPC)
	since := time.Now().Add(-time.Minute)
	s := sendRun(t, genRun{seed: 31, count: 200, protocol: "grpc", shape: "v1", models: "llama-8b,qwen-7b",
		resource: "service.instance.id=vllm-0", slo: defaultSLO}, proxy.endpoint, c.otlpHTTP)
	sent := indexSpans(proxy.traces())
	require.Len(t, sent, int(s.Total.Spans))

	// what the test itself says about each span, checked against vllmgen's counts
	violations := map[string][]string{}
	breakers := map[string]bool{}
	perObjective := map[string]int64{}
	for id, rec := range sent {
		v := sloViolations(t, rec.span)
		violations[id.String()] = v
		if len(v) > 0 {
			breakers[id.String()] = true
		}
		for _, o := range v {
			perObjective[o]++
		}
	}
	require.EqualValues(t, s.Total.SLO["all"].Violated, len(breakers), "SLO breakers: the test's count vs vllmgen's")
	for _, o := range []string{"ttft", "tpot", "e2e"} {
		require.EqualValues(t, s.Total.SLO[o].Violated, perObjective[o], "%s violations: the test's count vs vllmgen's", o)
	}
	require.NotEmpty(t, breakers, "the run must break the SLO for the tag search to mean something")
	require.Less(t, len(breakers), len(sent), "the run must also meet the SLO")

	var all map[string]foundSpan
	require.Eventually(t, func() bool {
		all = jaeger.search(t, "vllm-server", nil, since)
		return len(all) >= len(sent)
	}, 30*time.Second, 250*time.Millisecond, "Jaeger never held all %d spans", len(sent))
	require.Len(t, all, len(sent), "Jaeger holds spans that were not sent")

	t.Run("every span with vLLM's attributes and the processor's", func(t *testing.T) {
		for id, rec := range sent {
			got, ok := all[id.String()]
			if !assert.True(t, ok, "span %s is not in Jaeger", id) {
				continue
			}
			span := rec.span
			assert.Equal(t, span.Name(), got.span.OperationName)
			assert.Equal(t, span.TraceID().String(), got.span.TraceID)
			assert.Equal(t, "vllm-server", got.process.ServiceName)
			for key, v := range span.Attributes().All() {
				tag, ok := got.tag(key)
				if assert.True(t, ok, "span %s lost %s", id, key) {
					assert.True(t, sameValue(v, tag), "span %s %s: sent %s, Jaeger has %v (%s)", id, key, v.AsString(), tag.Value, tag.Type)
				}
			}
			wantTag := func(key string, want pcommon.Value) {
				t.Helper()
				tag, ok := got.tag(key)
				if assert.True(t, ok, "span %s has no %s", id, key) {
					assert.True(t, sameValue(want, tag), "span %s %s: want %s, Jaeger has %v (%s)", id, key, want.AsString(), tag.Value, tag.Type)
				}
			}
			wantTag("gen_ai.provider.name", pcommon.NewValueStr("vllm"))
			requestID, _ := span.Attributes().Get("gen_ai.request.id")
			operation := "text_completion"
			if strings.HasPrefix(requestID.Str(), "chatcmpl-") {
				operation = "chat"
			}
			wantTag("gen_ai.operation.name", pcommon.NewValueStr(operation))
			model, ok := rec.resource.Attributes().Get("gen_ai.request.model")
			require.True(t, ok, "V1 spans carry the model on the resource")
			wantTag("gen_ai.request.model", model)

			v := violations[id.String()]
			wantTag("vllm.slo.met", pcommon.NewValueBool(len(v) == 0))
			tag, has := got.tag("vllm.slo.violations")
			if assert.Equal(t, len(v) > 0, has, "span %s: vllm.slo.violations present for violations %v", id, v) && has {
				var names []string
				if s, ok := tag.Value.(string); assert.True(t, ok, "vllm.slo.violations: %v", tag.Value) {
					require.NoError(t, json.Unmarshal([]byte(s), &names), "vllm.slo.violations: %s", s)
				}
				assert.ElementsMatch(t, v, names, "span %s", id)
			}

			completion, _ := span.Attributes().Get("gen_ai.usage.completion_tokens")
			tpot, hasTPOT := got.tag("vllm.request.time_per_output_token")
			if assert.Equal(t, completion.Int() >= 2, hasTPOT, "span %s: TPOT with %d output tokens", id, completion.Int()) && hasTPOT {
				decode, _ := span.Attributes().Get("gen_ai.latency.time_in_model_decode")
				n, _ := tpot.Value.(json.Number)
				f, err := n.Float64()
				require.NoError(t, err)
				assert.True(t, closeEnough(f, decode.Double()/float64(completion.Int()-1)), "span %s TPOT %v", id, f)
			}
		}
	})

	t.Run("tag search vllm.slo.met=false returns exactly the breakers", func(t *testing.T) {
		found := jaeger.search(t, "vllm-server", map[string]string{"vllm.slo.met": "false"}, since)
		assert.Equal(t, slices.Sorted(maps.Keys(breakers)), slices.Sorted(maps.Keys(found)))
	})
	t.Run("tag search vllm.slo.met=true returns the others", func(t *testing.T) {
		found := jaeger.search(t, "vllm-server", map[string]string{"vllm.slo.met": "true"}, since)
		assert.Len(t, found, len(sent)-len(breakers))
		for id := range found {
			assert.False(t, breakers[id], "span %s broke the SLO but matched vllm.slo.met=true", id)
		}
	})
	t.Run("tag search on vllm.slo.violations returns the spans with exactly that list", func(t *testing.T) {
		// the most frequent list of broken objectives in this run (a string list attribute is held and matched as
		// its JSON text, e.g. ["e2e"])
		byList := map[string]map[string]bool{}
		for id, v := range violations {
			if len(v) == 0 {
				continue
			}
			encoded, err := json.Marshal(v)
			require.NoError(t, err)
			if byList[string(encoded)] == nil {
				byList[string(encoded)] = map[string]bool{}
			}
			byList[string(encoded)][id] = true
		}
		lists := slices.Sorted(maps.Keys(byList))
		require.NotEmpty(t, lists)
		list := slices.MaxFunc(lists, func(a, b string) int { return len(byList[a]) - len(byList[b]) })
		found := jaeger.search(t, "vllm-server", map[string]string{"vllm.slo.violations": list}, since)
		assert.Equal(t, slices.Sorted(maps.Keys(byList[list])), slices.Sorted(maps.Keys(found)), "vllm.slo.violations=%s", list)
		t.Logf("vllm.slo.violations=%s: %d spans (lists in this run: %v)", list, len(found), lists)
	})
	t.Run("collector telemetry", func(t *testing.T) {
		// the exporter counts a request once Jaeger has answered it, a moment after Jaeger stored its spans
		assert.Eventually(t, func() bool { return c.telemetryValue(t, "otelcol_exporter_sent_spans") == float64(len(sent)) },
			10*time.Second, 100*time.Millisecond, "otelcol_exporter_sent_spans of the Jaeger exporter")
		for _, m := range []string{"otelcol_receiver_refused_spans", "otelcol_receiver_failed_spans", "otelcol_exporter_send_failed_spans"} {
			assert.Zero(t, c.telemetryValue(t, m), m)
		}
	})
}
