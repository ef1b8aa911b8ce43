package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// ---- reading a trace back from Jaeger ----

// jaegerReference is a span's parent (CHILD_OF) or link in Jaeger's JSON.
type jaegerReference struct {
	RefType string `json:"refType"`
	TraceID string `json:"traceID"`
	SpanID  string `json:"spanID"`
}

type jaegerSpanWithRefs struct {
	jaegerSpan
	References []jaegerReference `json:"references"`
}

type jaegerTraceWithRefs struct {
	Spans     []jaegerSpanWithRefs     `json:"spans"`
	Processes map[string]jaegerProcess `json:"processes"`
}

// trace returns one trace from Jaeger's /api/traces/{traceID}.
func (j *jaegerServer) trace(traceID string) (jaegerTraceWithRefs, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(j.query + "/api/traces/" + traceID)
	if err != nil {
		return jaegerTraceWithRefs{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return jaegerTraceWithRefs{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return jaegerTraceWithRefs{}, fmt.Errorf("jaeger /api/traces/%s: HTTP %d: %s", traceID, resp.StatusCode, body)
	}
	var parsed struct {
		Data []jaegerTraceWithRefs `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&parsed); err != nil || len(parsed.Data) != 1 {
		return jaegerTraceWithRefs{}, fmt.Errorf("jaeger /api/traces/%s: not one trace (%v): %s", traceID, err, body)
	}
	return parsed.Data[0], nil
}

// waitTrace waits until Jaeger holds spans spans of traceID: vllmbench's join waits for the server spans only,
// and its client spans, flushed after the last request, reach Jaeger through the collector's batch a moment later.
func (j *jaegerServer) waitTrace(t *testing.T, traceID string, spans int) jaegerTraceWithRefs {
	t.Helper()
	var trace jaegerTraceWithRefs
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		got, err := j.trace(traceID)
		require.NoError(c, err)
		require.Len(c, got.Spans, spans)
		trace = got
	}, 10*time.Second, 100*time.Millisecond, "trace %s in Jaeger", traceID)
	return trace
}

// ---- the commands under test ----

var vllmbenchCmd builtCommand

// vllmbench builds cmd/vllmbench once per test binary, beside vllmgen.
func vllmbench(t *testing.T) string { return vllmbenchCmd.get(t, "vllmbench") }

// benchRecord is the part of vllmbench's saved per-request record (.jsonl) the test reads.
type benchRecord struct {
	TTFT         float64   `json:"ttft"`
	ITL          []float64 `json:"itl"`
	TPOT         float64   `json:"tpot"`
	E2EL         float64   `json:"e2el"`
	Success      bool      `json:"success"`
	Error        string    `json:"error"`
	PromptTokens int64     `json:"prompt_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	TraceID      string    `json:"trace_id"`
	SpanID       string    `json:"span_id"`
	ServerError  string    `json:"server_error"`
	Server       *struct {
		Queue, Prefill, Decode, Inference, E2E, TTFT float64
		TPOT                                         *float64 `json:"tpot"`
		SLOMet                                       *bool    `json:"slo_met"`
		OutputTokens                                 int64    `json:"output_tokens"`
	} `json:"server"`
}

// emulatorOutcome is a line of `vllmgen serve --request-log`.
type emulatorOutcome struct {
	TraceID      string  `json:"trace_id"`
	ParentSpanID string  `json:"parent_span_id"`
	Straggler    bool    `json:"straggler"`
	TTFT         float64 `json:"time_to_first_token"`
	Error        string  `json:"error"`
}

func readJSONLines[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var v T
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v), sc.Text())
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	return out
}

// numpy's default (linear) percentile and population σ, in ms, computed here independently of vllmbench.
func npPercentile(values []float64, p float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(values))
	pos := p / 100 * float64(len(s)-1)
	lo := int(pos)
	hi := min(lo+1, len(s)-1)
	return (s[lo] + (s[hi]-s[lo])*(pos-float64(lo))) * 1000
}

func npMeanStd(values []float64) (mean, std float64) {
	for _, v := range values {
		mean += v
	}
	mean /= float64(len(values))
	for _, v := range values {
		std += (v - mean) * (v - mean)
	}
	return mean * 1000, math.Sqrt(std/float64(len(values))) * 1000
}

// TestBenchmarkClientThroughTheCollector drives the vLLM emulator with vllmbench through the built collector:
// the emulator's llm_request spans (parented on vllmbench's traceparent) and vllmbench's client spans go to
// the collector, whose vllm processor adds SLO verdicts, and on to a real Jaeger v2; vllmbench then joins every
// request with its server span through Jaeger's query API (Jaeger down, slow or never having the trace is covered
// by the unit tests of cmd/vllmbench/internal/jaeger). Every fourth request the emulator receives is a straggler (1.5 s extra queue)
// against a 1 s TTFT objective, so the good requests are known exactly.
func TestBenchmarkClientThroughTheCollector(t *testing.T) {
	jaeger := startJaeger(t)
	c := startCollector(t, "bench", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "bench.yaml")},
		map[string]string{"E2E_JAEGER_ENDPOINT": jaeger.otlpGRPC})
	dir := t.TempDir()
	requestLog := filepath.Join(dir, "emulator.jsonl")
	emuPort := testkit.FreePort(t)
	emu := testkit.StartProcess(t, "vllmgen serve", nil, vllmgen(t), "serve", "--port", strconv.Itoa(emuPort),
		"--served-model-name", "e2e/model", "--profile", "chat", "--seed", "5", "--straggler-every", "4",
		"--straggler-delay", "1500ms", "--otlp-traces-endpoint", c.otlpGRPC, "--otlp-export-delay", "100ms",
		"--service-name", "vllm-emulator", "--request-log", requestLog)
	base := "http://" + testkit.Loopback(emuPort)
	emu.WaitHTTP(t, base+"/health", 30*time.Second)

	const requests = 24
	stdout := run(t, 3*time.Minute, dir, vllmbench(t), "--base-url", base, "--model", "e2e/model",
		"--num-prompts", strconv.Itoa(requests), "--random-input-len", "20", "--random-output-len", "8",
		"--request-rate", "40", "--seed", "1", "--goodput", "ttft:1000", "tpot:200",
		"--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,99",
		"--save-detailed", "--result-dir", dir, "--result-filename", "result.json",
		"--otlp-endpoint", c.otlpGRPC, "--jaeger-url", jaeger.query, "--jaeger-wait", "300ms",
		"--jaeger-timeout", "60s", "--jaeger-retry-interval", "100ms", "--disable-tqdm")
	summary := string(stdout)
	require.Contains(t, summary, "============ Serving Benchmark Result ============")

	recs := readJSONLines[benchRecord](t, filepath.Join(dir, "result.jsonl"))
	require.Len(t, recs, requests)
	emu.Stop() // flushes the request log
	outcomes := map[string]emulatorOutcome{}
	for _, o := range readJSONLines[emulatorOutcome](t, requestLog) {
		outcomes[o.TraceID] = o
	}
	require.Len(t, outcomes, requests)

	// every record has client and server values; the client sees at least what the server measured
	var good int
	for i, r := range recs {
		require.True(t, r.Success, "record %d: %s", i, r.Error)
		require.NotNil(t, r.Server, "record %d: %s", i, r.ServerError)
		assert.Positive(t, r.TTFT)
		assert.Positive(t, r.E2EL)
		assert.Equal(t, int64(8), r.OutputTokens)
		assert.Equal(t, int64(20), r.PromptTokens)
		assert.Len(t, r.ITL, 7)
		assert.Positive(t, r.Server.TTFT)
		assert.Positive(t, r.Server.Prefill)
		assert.Positive(t, r.Server.Decode)
		assert.Equal(t, r.OutputTokens, r.Server.OutputTokens)
		assert.GreaterOrEqual(t, r.TTFT, r.Server.TTFT, "record %d: client TTFT ≥ server TTFT", i)
		assert.GreaterOrEqual(t, r.E2EL, r.Server.E2E, "record %d: client E2EL ≥ server e2e", i)
		o, ok := outcomes[r.TraceID]
		require.True(t, ok, "the emulator served trace %s", r.TraceID)
		assert.Equal(t, r.SpanID, o.ParentSpanID, "the server span's parent is the client span")
		// the processor's values made it through Jaeger
		require.NotNil(t, r.Server.TPOT, "record %d: the vllm processor's TPOT", i)
		require.NotNil(t, r.Server.SLOMet, "record %d: the vllm processor's SLO verdict", i)
		assert.Equal(t, !o.Straggler, *r.Server.SLOMet, "record %d: the processor's verdict matches the emulator's plan", i)
		if !o.Straggler {
			good++
		}
	}
	assert.Equal(t, requests/4*3, good)

	// in Jaeger, every request is one trace of two spans: vllmbench's client span and, under it, the emulator's
	// server span with the processor's verdict
	for i, r := range recs {
		trace := jaeger.waitTrace(t, r.TraceID, 2)
		kinds := map[string]int{}
		for _, sp := range trace.Spans {
			found := foundSpan{span: sp.jaegerSpan, process: trace.Processes[sp.ProcessID]}
			kind, _ := found.tag("span.kind")
			kinds[fmt.Sprint(kind.Value)]++
			assert.Equal(t, r.TraceID, sp.TraceID, "record %d", i)
			switch kind.Value {
			case "client":
				assert.Equal(t, "vllmbench", found.process.ServiceName, "record %d", i)
				assert.Equal(t, "text_completion e2e/model", sp.OperationName, "record %d", i)
				assert.Equal(t, r.SpanID, sp.SpanID, "record %d", i)
				assert.Empty(t, sp.References, "record %d: the client span is the root", i)
				_, enriched := found.tag("vllm.slo.met")
				assert.False(t, enriched, "record %d: the vllm processor leaves the client span alone", i)
			case "server":
				assert.Equal(t, "vllm-emulator", found.process.ServiceName, "record %d", i)
				assert.Equal(t, "llm_request", sp.OperationName, "record %d", i)
				assert.Equal(t, []jaegerReference{{RefType: "CHILD_OF", TraceID: r.TraceID, SpanID: r.SpanID}}, sp.References,
					"record %d: the server span's parent is the client span", i)
				met, ok := found.tag("vllm.slo.met")
				if assert.True(t, ok, "record %d: the processor's verdict", i) {
					assert.Equal(t, jaegerTag{Key: "vllm.slo.met", Type: "bool", Value: !outcomes[r.TraceID].Straggler}, met, "record %d", i)
				}
			}
		}
		assert.Equal(t, map[string]int{"client": 1, "server": 1}, kinds, "record %d: span kinds", i)
	}

	// the result JSON has every key, and its numbers equal an independent computation from the records
	data, err := os.ReadFile(filepath.Join(dir, "result.json"))
	require.NoError(t, err)
	var res map[string]any
	require.NoError(t, json.Unmarshal(data, &res))
	keys := []string{"duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
		"request_goodput", "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "errors"}
	for _, m := range []string{"ttft", "tpot", "itl", "e2el"} {
		keys = append(keys, "mean_"+m+"_ms", "median_"+m+"_ms", "std_"+m+"_ms", "p50_"+m+"_ms", "p99_"+m+"_ms")
	}
	for _, k := range keys {
		assert.Contains(t, res, k)
	}
	duration := res["duration"].(float64)
	var ttfts, tpots, itls, e2els, gaps []float64
	var input, output float64
	var goodByValue int
	for _, r := range recs {
		ttfts = append(ttfts, r.TTFT)
		tpot := (r.E2EL - r.TTFT) / float64(r.OutputTokens-1)
		tpots = append(tpots, tpot)
		itls = append(itls, r.ITL...)
		e2els = append(e2els, r.E2EL)
		gaps = append(gaps, r.TTFT-r.Server.TTFT)
		input += float64(r.PromptTokens)
		output += float64(r.OutputTokens)
		if r.TTFT <= 1.0 && tpot <= 0.2 {
			goodByValue++
		}
	}
	assert.Equal(t, good, goodByValue, "goodput equals the emulator's known outcomes")
	assert.Equal(t, float64(requests), res["completed"])
	assert.Equal(t, 0.0, res["failed"])
	assert.Equal(t, input, res["total_input_tokens"])
	assert.Equal(t, output, res["total_output_tokens"])
	assert.InDelta(t, float64(requests)/duration, res["request_throughput"], 1e-9)
	assert.InDelta(t, float64(good)/duration, res["request_goodput"], 1e-9)
	assert.InDelta(t, output/duration, res["output_throughput"], 1e-9)
	assert.InDelta(t, (input+output)/duration, res["total_token_throughput"], 1e-9)
	for name, values := range map[string][]float64{"ttft": ttfts, "tpot": tpots, "itl": itls, "e2el": e2els, "ttft_gap": gaps} {
		mean, std := npMeanStd(values)
		assert.InDelta(t, mean, res["mean_"+name+"_ms"], 1e-6, name)
		assert.InDelta(t, std, res["std_"+name+"_ms"], 1e-6, name)
		assert.InDelta(t, npPercentile(values, 50), res["median_"+name+"_ms"], 1e-6, name)
		assert.InDelta(t, npPercentile(values, 99), res["p99_"+name+"_ms"], 1e-6, name)
	}
	assert.Equal(t, float64(requests), res["server_joined"])
	assert.Len(t, res["ttfts"], requests)

	// the printed summary shows the same figures
	assert.Contains(t, summary, fmt.Sprintf("%-40s %-10d", "Successful requests:", requests))
	assert.Contains(t, summary, fmt.Sprintf("%-40s %-10.2f", "Request goodput (req/s):", float64(good)/duration))
	assert.Contains(t, summary, fmt.Sprintf("%-40s %-10.2f", "P99 TTFT (ms):", npPercentile(ttfts, 99)))
	assert.Contains(t, summary, fmt.Sprintf("%-40s %-10d", "Requests joined with the server span:", requests))
}
