package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/clientspan"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/tokens"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

func TestParseFlags(t *testing.T) {
	o, err := ParseFlags([]string{"--base-url", "http://h:1", "--model", "m", "--num-prompts", "5", "--request-rate", "2.5",
		"--goodput", "ttft:200", "tpot:50", "e2el:5000", "--metric-percentiles", "50,99", "--percentile-metrics", "ttft,e2el",
		"--max-concurrency", "4", "--save-detailed", "--otlp-endpoint", "http://c:4317", "--seed", "9"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, metrics.Goodput{"ttft": 200, "tpot": 50, "e2el": 5000}, o.Goodput)
	assert.Equal(t, 2.5, o.RequestRate)
	assert.Equal(t, []float64{50, 99}, o.Percentiles)
	assert.Equal(t, []string{"ttft", "e2el"}, o.Metrics)
	assert.True(t, o.SaveResult, "--save-detailed implies --save-result")
	assert.Equal(t, "http://c:4317", o.OTLPEndpoint, "gRPC, plaintext")
	assert.Equal(t, clientspan.ProtocolGRPC, o.OTLPProtocol)
	assert.Equal(t, uint64(9), o.Seed)

	// --otlp-endpoint's form follows the protocol: the flag's, else the environment's
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	o, err = ParseFlags([]string{"--otlp-endpoint", "c:4318"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://c:4318/v1/traces", o.OTLPEndpoint)
	assert.Equal(t, clientspan.ProtocolHTTP, o.OTLPProtocol)
	o, err = ParseFlags([]string{"--otlp-endpoint", "c:4317", "--otlp-protocol", "grpc"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "http://c:4317", o.OTLPEndpoint)
	o, err = ParseFlags([]string{"--otlp-protocol", "http"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, clientspan.ProtocolHTTP, o.OTLPProtocol, "the endpoint may come from the environment")
	assert.Empty(t, o.OTLPEndpoint)

	o, err = ParseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Empty(t, o.OTLPProtocol, "no flag: the environment decides")
	assert.True(t, math.IsInf(o.RequestRate, 1))
	assert.Equal(t, []string{"ttft", "tpot", "itl"}, o.Metrics)
	assert.Equal(t, []float64{99}, o.Percentiles)
	assert.Equal(t, "/v1/completions", o.Endpoint)
	assert.Equal(t, 1000, o.NumPrompts)

	o, err = ParseFlags([]string{"--dataset-path", "p.jsonl"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "custom", o.DatasetName)

	// --metadata takes several space-separated values, as vLLM's does, and a value may hold spaces or '='
	o, err = ParseFlags([]string{"--metadata", "config=A", "gpu=H100 80GB", "note=a=b", "--goodput", "ttft:200", "--seed", "3"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"config": "A", "gpu": "H100 80GB", "note": "a=b"}, o.Metadata)
	assert.Equal(t, metrics.Goodput{"ttft": 200}, o.Goodput)
	assert.Equal(t, uint64(3), o.Seed)
	_, err = ParseFlags([]string{"--metadata", "=x"}, io.Discard)
	assert.ErrorContains(t, err, "--metadata")
}

func TestParseFlagsNamesTheKey(t *testing.T) {
	tests := map[string][]string{
		"--endpoint":           {"--endpoint", "/v1/embeddings"},
		"--num-prompts":        {"--num-prompts", "0"},
		"--request-rate":       {"--request-rate", "fast"},
		"--burstiness":         {"--burstiness", "0"},
		"--max-concurrency":    {"--max-concurrency", "-1"},
		"--goodput":            {"--goodput", "queue:100"},
		"--percentile-metrics": {"--percentile-metrics", "ttft,foo"},
		"--metric-percentiles": {"--metric-percentiles", "150"},
		"--dataset-name":       {"--dataset-name", "sharegpt"},
		"--dataset-path":       {"--dataset-name", "custom"},
		"--otlp-protocol":      {"--otlp-protocol", "http/json"},
		"--otlp-endpoint":      {"--otlp-endpoint", "nohost"},
		"--jaeger-url":         {"--jaeger-url", "localhost:16686"},
		"--random-input-len":   {"--random-input-len", "0"},
	}
	for key, args := range tests {
		t.Run(key, func(t *testing.T) {
			_, err := ParseFlags(args, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), key)
		})
	}
	_, err := ParseFlags([]string{"stray"}, io.Discard)
	assert.ErrorContains(t, err, "stray")
	var stderr bytes.Buffer
	assert.Equal(t, ExitUsage, Main(context.Background(), []string{"--num-prompts", "0"}, io.Discard, &stderr))
	assert.Contains(t, stderr.String(), "--num-prompts: must be positive")
	assert.Equal(t, ExitOK, Main(context.Background(), []string{"-h"}, io.Discard, io.Discard))
}

// fakeVLLM streams max_tokens tokens with a usage chunk; block makes it wait for the request's end instead.
type fakeVLLM struct {
	block    bool
	noUsage  bool // end the stream without a usage chunk
	requests atomic.Int64
	status   int
	// onRequest, when set, is called with the number of the completion request that just arrived (from 1).
	onRequest func(n int64)

	mu           sync.Mutex
	traceparents []string
}

func (f *fakeVLLM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"fake/model"}]}`)
		return
	}
	f.mu.Lock()
	f.traceparents = append(f.traceparents, r.Header.Get("traceparent"))
	f.mu.Unlock()
	if n := f.requests.Add(1); f.onRequest != nil {
		f.onRequest(n)
	}
	var req struct {
		Model     string `json:"model"`
		Prompt    string `json:"prompt"`
		MaxTokens int    `json:"max_tokens"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	if f.status != 0 {
		http.Error(w, "nope", f.status)
		return
	}
	if f.block {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for range req.MaxTokens {
		fmt.Fprintf(w, "data: {\"id\":\"cmpl-x\",\"choices\":[{\"index\":0,\"text\":\" t\"}]}\n\n")
		w.(http.Flusher).Flush()
	}
	if f.noUsage {
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
		return
	}
	fmt.Fprintf(w, "data: {\"id\":\"cmpl-x\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n",
		len(strings.Fields(req.Prompt)), req.MaxTokens)
}

func startFake(t *testing.T, f *fakeVLLM) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestMainRunsAndSaves(t *testing.T) {
	f := &fakeVLLM{}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--base-url", startFake(t, f), "--num-prompts", "6", "--random-input-len", "4",
		"--random-output-len", "3", "--goodput", "e2el:60000", "--save-detailed", "--result-dir", dir, "--result-filename", "r.json"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	assert.Equal(t, int64(6), f.requests.Load())
	out := stdout.String()
	assert.Contains(t, out, "Successful requests:                     6")
	assert.Contains(t, out, "Total input tokens:                      24")
	assert.Contains(t, out, "Total generated tokens:                  18")
	assert.Contains(t, out, "Request goodput (req/s):")
	data, err := os.ReadFile(filepath.Join(dir, "r.json"))
	require.NoError(t, err)
	var res map[string]any
	require.NoError(t, json.Unmarshal(data, &res))
	assert.Equal(t, 6.0, res["completed"])
	assert.Equal(t, "fake/model", res["model_id"], "the model comes from /v1/models")
	assert.Len(t, res["itls"], 6)
	assert.FileExists(t, filepath.Join(dir, "r.csv"))
	assert.FileExists(t, filepath.Join(dir, "r.jsonl"))
}

// TestClientSpans: every request carries the traceparent of its client span, whose ids the record keeps,
// and the spans reach the OTLP endpoint (here OTLP/HTTP) before Main returns, with OTEL_SERVICE_NAME honoured.
func TestClientSpans(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "bench-test")
	var mu sync.Mutex
	spans := map[string]ptrace.Span{} // by traceparent
	var services []string
	otlp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil || r.URL.Path != "/v1/traces" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.Traces().ResourceSpans().All() {
			name, _ := rs.Resource().Attributes().Get("service.name")
			services = append(services, name.Str())
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					c := ptrace.NewSpan()
					sp.CopyTo(c)
					spans["00-"+sp.TraceID().String()+"-"+sp.SpanID().String()+"-01"] = c
				}
			}
		}
	}))
	t.Cleanup(otlp.Close)
	f := &fakeVLLM{}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--base-url", startFake(t, f), "--model", "m", "--num-prompts", "4",
		"--random-input-len", "2", "--random-output-len", "3", "--otlp-protocol", "http", "--otlp-endpoint", otlp.URL,
		"--save-detailed", "--result-dir", dir, "--result-filename", "r.json"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	data, err := os.ReadFile(filepath.Join(dir, "r.jsonl"))
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Len(t, spans, 4)
	require.Len(t, f.traceparents, 4)
	for _, tp := range f.traceparents {
		sp, ok := spans[tp]
		require.True(t, ok, "the server saw traceparent %s, which names an exported client span", tp)
		assert.Equal(t, "text_completion m", sp.Name())
		assert.Contains(t, string(data), `"trace_id":"`+sp.TraceID().String()+`"`)
		assert.Contains(t, string(data), `"span_id":"`+sp.SpanID().String()+`"`)
	}
	assert.Equal(t, []string{"bench-test"}, slices.Compact(services))
	assert.NotContains(t, stderr.String(), "client spans:", "nothing failed")
}

// TestTokenizerWithoutUsage: with --tokenizer, random prompts are exactly --random-input-len tokens, and a
// server that sends no usage still gives successful requests, counted with the tokenizer.
func TestTokenizerWithoutUsage(t *testing.T) {
	const fixture = "../tokens/testdata/llama3"
	tok, err := tokens.Load(fixture)
	require.NoError(t, err)
	f := &fakeVLLM{noUsage: true}
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--base-url", startFake(t, f), "--num-prompts", "6", "--random-input-len", "32",
		"--random-output-len", "3", "--tokenizer", fixture, "--save-detailed", "--result-dir", dir, "--result-filename", "r.json"}, &stdout, &stderr)
	require.Equal(t, ExitOK, code, stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "Successful requests:                     6")
	assert.Contains(t, out, "Total input tokens:                      192", "6 prompts of exactly 32 tokens, BOS included")
	assert.Contains(t, out, fmt.Sprintf("Total generated tokens:                  %-10d", 6*tok.Count(" t t t")))
	data, err := os.ReadFile(filepath.Join(dir, "r.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, 6, strings.Count(string(data), `"output_tokens_source":"tokenizer"`))

	_, err = Run(context.Background(), Options{BaseURL: "http://127.0.0.1:1", Model: "m", Tokenizer: t.TempDir()}, io.Discard, io.Discard)
	assert.ErrorContains(t, err, "--tokenizer")
}

func TestServerErrorsAreFailedRequestsAndTheSummaryIsPrinted(t *testing.T) {
	for _, status := range []int{400, 503} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(context.Background(), []string{"--base-url", startFake(t, &fakeVLLM{status: status}), "--model", "m", "--num-prompts", "3",
				"--random-input-len", "2", "--random-output-len", "2"}, &stdout, &stderr)
			assert.Equal(t, ExitFailed, code)
			assert.Contains(t, stdout.String(), "Successful requests:                     0")
			assert.Contains(t, stdout.String(), "Failed requests:                         3")
			assert.Contains(t, stderr.String(), "no request succeeded")
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	url := "http://" + testkit.FreeLoopback(t)
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--base-url", url, "--model", "m", "--num-prompts", "2", "--random-input-len", "2",
		"--random-output-len", "2"}, &stdout, &stderr)
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, stdout.String(), "Failed requests:                         2")

	// without --model the model lookup fails first: a clear error, no summary
	stdout.Reset()
	stderr.Reset()
	code = Main(context.Background(), []string{"--base-url", url, "--num-prompts", "1"}, &stdout, &stderr)
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, stderr.String(), "GET /v1/models failed")
}

func TestJaegerDownCountsFailedJoins(t *testing.T) {
	jaegerURL := "http://" + testkit.FreeLoopback(t)
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	code := Main(context.Background(), []string{"--base-url", startFake(t, &fakeVLLM{}), "--model", "m", "--num-prompts", "3",
		"--random-input-len", "2", "--random-output-len", "2", "--jaeger-url", jaegerURL, "--jaeger-wait", "0s",
		"--jaeger-timeout", "50ms", "--jaeger-retry-interval", "10ms", "--save-result", "--result-dir", dir, "--result-filename", "r.json"}, &stdout, &stderr)
	assert.Equal(t, ExitOK, code, "the client-side benchmark stands; the joins are reported as failed")
	assert.Contains(t, stdout.String(), "Successful requests:                     3")
	assert.Contains(t, stdout.String(), "Server joins failed:                     3")
	data, err := os.ReadFile(filepath.Join(dir, "r.json"))
	require.NoError(t, err)
	var res map[string]any
	require.NoError(t, json.Unmarshal(data, &res))
	assert.Equal(t, 3.0, res["server_join_failed"])
	assert.Equal(t, 0.0, res["server_joined"])
}

func TestInterruptPrintsPartialSummary(t *testing.T) {
	f := &fakeVLLM{block: true}
	ctx, cancel := context.WithCancel(context.Background())
	base := startFake(t, f)
	go func() {
		for f.requests.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		cancel() // Ctrl-C while two requests are in flight and the third waits for a free slot
	}()
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	code := Main(ctx, []string{"--base-url", base, "--model", "m", "--num-prompts", "3",
		"--random-input-len", "2", "--random-output-len", "2", "--drain-timeout", "10ms", "--max-concurrency", "2",
		"--save-detailed", "--result-dir", dir, "--result-filename", "r.json"}, &stdout, &stderr)
	assert.Equal(t, ExitInterrupted, code)
	assert.Contains(t, stderr.String(), "interrupted: 2 of 3 requests sent")
	assert.Contains(t, stdout.String(), "Failed requests:                         2", "the in-flight requests were cancelled after --drain-timeout")
	assert.Contains(t, stdout.String(), "Serving Benchmark Result")
	data, err := os.ReadFile(filepath.Join(dir, "r.json"))
	require.NoError(t, err, "the partial result is saved")
	var res struct {
		Failed int      `json:"failed"`
		Errors []string `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(data, &res))
	assert.Equal(t, 2, res.Failed)
	require.Len(t, res.Errors, 2)
	for _, e := range res.Errors {
		assert.True(t, strings.HasPrefix(e, "interrupted: "), e)
	}
}
