package serve

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

const testModel = "test/model"

// fixedTiming makes every request take prefill 2 ms and 1 ms per token, generating max_tokens tokens.
func fixedTiming(_ *rand.Rand, _, maxTokens int64) workload.ServingTiming {
	return workload.ServingTiming{Prefill: 2 * time.Millisecond, Frontend: 200 * time.Microsecond, TPOT: time.Millisecond, OutputTokens: maxTokens}
}

type outcomes struct {
	mu  sync.Mutex
	all []Outcome
}

func (o *outcomes) add(out Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all = append(o.all, out)
}

func (o *outcomes) list() []Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Outcome(nil), o.all...)
}

func startServer(t *testing.T, mutate func(*Config)) (*httptest.Server, *outcomes) {
	t.Helper()
	got := &outcomes{}
	cfg := Config{Model: testModel, MaxNumSeqs: 8, Timing: fixedTiming, Seed: 1, OnFinish: got.add}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs, got
}

func post(t *testing.T, url, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// events returns the data payloads of an SSE body.
func events(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, data)
		}
	}
	require.NoError(t, sc.Err())
	return out
}

func TestStreamCompletions(t *testing.T) {
	hs, got := startServer(t, nil)
	resp := post(t, hs.URL+"/v1/completions",
		`{"model":"test/model","prompt":"one two three four","max_tokens":3,"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/event-stream; charset=utf-8", resp.Header.Get("Content-Type"))
	evs := events(t, resp.Body)
	require.Len(t, evs, 5) // 3 tokens, usage, [DONE]
	assert.Equal(t, "[DONE]", evs[4])
	var finish []any
	var id string
	for _, ev := range evs[:3] {
		var c struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Model   string `json:"model"`
			Choices []struct {
				Text         string `json:"text"`
				FinishReason any    `json:"finish_reason"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(ev), &c), ev)
		assert.Equal(t, "text_completion", c.Object)
		assert.Equal(t, testModel, c.Model)
		require.Len(t, c.Choices, 1)
		assert.Equal(t, " tok", c.Choices[0].Text)
		finish = append(finish, c.Choices[0].FinishReason)
		id = c.ID
	}
	assert.Equal(t, []any{nil, nil, "length"}, finish)
	assert.True(t, strings.HasPrefix(id, "cmpl-"), id)
	var usage struct {
		Choices []any          `json:"choices"`
		Usage   map[string]int `json:"usage"`
	}
	require.NoError(t, json.Unmarshal([]byte(evs[3]), &usage))
	assert.Empty(t, usage.Choices)
	assert.Equal(t, map[string]int{"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}, usage.Usage)

	outs := got.list()
	require.Len(t, outs, 1)
	o := outs[0]
	assert.Equal(t, id, o.RequestID)
	assert.Equal(t, int64(4), o.PromptTokens)
	assert.Equal(t, int64(3), o.CompletionTokens)
	assert.Empty(t, o.Error)
	// sleeps never end early, so each phase lasts at least its planned time
	assert.GreaterOrEqual(t, o.Prefill, 0.002)
	assert.GreaterOrEqual(t, o.Decode, 0.002)
	assert.InDelta(t, o.Prefill+o.Decode, o.Inference, 1e-9)
	assert.GreaterOrEqual(t, o.TTFT, o.Queue+o.Prefill)
	assert.GreaterOrEqual(t, o.E2E, o.TTFT) // not e2e ≥ ttft + decode: a late first write is followed by catch-up (vLLM does not guarantee it either)
}

func TestStreamChatSendsRoleFirstAndStopsWithoutIgnoreEOS(t *testing.T) {
	hs, _ := startServer(t, func(c *Config) {
		c.Timing = func(r *rand.Rand, p, m int64) workload.ServingTiming {
			tm := fixedTiming(r, p, m)
			tm.OutputTokens = 2 // the natural length ends before max_tokens
			return tm
		}
	})
	resp := post(t, hs.URL+"/v1/chat/completions",
		`{"model":"test/model","messages":[{"role":"user","content":"hi there"}],"max_completion_tokens":5,"stream":true}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	evs := events(t, resp.Body)
	require.Len(t, evs, 4) // role, 2 tokens, [DONE]: no usage chunk without include_usage
	assert.Contains(t, evs[0], `"delta":{"role":"assistant","content":""}`)
	assert.Contains(t, evs[1], `"delta":{"content":" tok"}`)
	assert.Contains(t, evs[2], `"finish_reason":"stop"`)
	assert.Contains(t, evs[2], `"object":"chat.completion.chunk"`)
	assert.Contains(t, evs[2], `"id":"chatcmpl-`)
	assert.Equal(t, "[DONE]", evs[3])
}

func TestNonStreaming(t *testing.T) {
	hs, _ := startServer(t, nil)
	resp := post(t, hs.URL+"/v1/completions", `{"model":"test/model","prompt":"a b","max_tokens":2}`, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var body struct {
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Choices, 1)
	assert.Equal(t, " tok tok", body.Choices[0].Text)
	assert.Equal(t, 2, body.Usage["completion_tokens"])
}

func TestBadRequests(t *testing.T) {
	hs, got := startServer(t, nil)
	tests := []struct {
		name, path, body string
		status           int
		errType          string
	}{
		{"unknown model", "/v1/completions", `{"model":"other","prompt":"a","stream":true}`, 404, "NotFoundError"},
		{"invalid JSON", "/v1/completions", `{"model":`, 400, "BadRequestError"},
		{"prompt not a string", "/v1/completions", `{"model":"test/model","prompt":[1,2]}`, 400, "BadRequestError"},
		{"no messages", "/v1/chat/completions", `{"model":"test/model","messages":[]}`, 400, "BadRequestError"},
		{"max_tokens 0", "/v1/completions", `{"model":"test/model","prompt":"a","max_tokens":0}`, 400, "BadRequestError"},
		{"n 2", "/v1/completions", `{"model":"test/model","prompt":"a","n":2}`, 400, "BadRequestError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, hs.URL+tt.path, tt.body, nil)
			assert.Equal(t, tt.status, resp.StatusCode)
			var body struct {
				Error struct {
					Type    string `json:"type"`
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, tt.errType, body.Error.Type)
			assert.Equal(t, tt.status, body.Error.Code)
			assert.NotEmpty(t, body.Error.Message)
		})
	}
	assert.Empty(t, got.list(), "rejected requests never reach the engine")
}

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name, header  string
		ok, sampled   bool
		trace, parent string
	}{
		{"sampled", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true, true, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"},
		{"not sampled", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", true, false, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"},
		{"future version with extra field", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-xyz", true, true, "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"},
		{"empty", "", false, false, "", ""},
		{"version ff", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false, false, "", ""},
		{"zero trace id", "00-00000000000000000000000000000000-b7ad6b7169203331-01", false, false, "", ""},
		{"zero span id", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", false, false, "", ""},
		{"short trace id", "00-0af7651916cd43dd-b7ad6b7169203331-01", false, false, "", ""},
		{"not hex", "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01", false, false, "", ""},
		{"version 00 with extra field", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x", false, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, ok := parseTraceparent(tt.header)
			require.Equal(t, tt.ok, ok)
			if !ok {
				return
			}
			assert.Equal(t, tt.sampled, tp.sampled)
			assert.Equal(t, tt.trace, hex.EncodeToString(tp.traceID[:]))
			assert.Equal(t, tt.parent, hex.EncodeToString(tp.spanID[:]))
		})
	}
}

func TestSpanExport(t *testing.T) {
	sink := &otlpsink.Sink{}
	addr := otlpsink.StartGRPC(t, sink)
	exp, err := otlpsend.NewGRPC(addr)
	require.NoError(t, err)
	spans := NewSpanExporter(exp, SpanExporterConfig{Model: testModel, ServiceName: "vllm-test", ExportDelay: 10 * time.Millisecond})
	hs, got := startServer(t, func(c *Config) { c.Spans = spans })

	const body = `{"model":"test/model","prompt":"a b c","max_tokens":4,"temperature":0,"top_p":0.9,"stream":true,"stream_options":{"include_usage":true}}`
	sampled := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	io.Copy(io.Discard, post(t, hs.URL+"/v1/completions", body, map[string]string{"traceparent": sampled}).Body)
	io.Copy(io.Discard, post(t, hs.URL+"/v1/completions", body, map[string]string{"traceparent": "00-1af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}).Body)
	io.Copy(io.Discard, post(t, hs.URL+"/v1/completions", body, nil).Body)
	require.NoError(t, spans.Close())
	exported, dropped, failed := spans.Counts()
	assert.Equal(t, [3]int64{2, 0, 0}, [3]int64{exported, dropped, failed}, "the unsampled request has no span")

	outs := got.list()
	require.Len(t, outs, 3)
	byTrace := map[string]Outcome{}
	for _, o := range outs {
		byTrace[o.TraceID] = o
	}
	td := sink.Traces()
	require.Equal(t, 2, td.SpanCount())
	rs := td.ResourceSpans().At(0)
	res := rs.Resource().Attributes().AsRaw()
	assert.Equal(t, "vllm-test", res["service.name"])
	assert.Equal(t, "vllm.llm_engine", res["vllm.instrumenting_module_name"])
	assert.NotEmpty(t, res["vllm.process_id"])
	assert.Equal(t, testModel, res["gen_ai.request.model"])
	assert.Equal(t, "vllm.tracing.otel", rs.ScopeSpans().At(0).Scope().Name())

	var parented, root int
	var all []ptrace.Span
	for _, rs := range td.ResourceSpans().All() { // the two spans may come in two exports
		for _, sp := range rs.ScopeSpans().At(0).Spans().All() {
			all = append(all, sp)
		}
	}
	for _, sp := range all {
		assert.Equal(t, "llm_request", sp.Name())
		assert.Equal(t, ptrace.SpanKindServer, sp.Kind())
		o, ok := byTrace[sp.TraceID().String()]
		require.True(t, ok, "span trace %s matches a request", sp.TraceID())
		assert.Equal(t, o.SpanID, sp.SpanID().String())
		if sp.TraceID().String() == "0af7651916cd43dd8448eb211c80319c" {
			parented++
			assert.Equal(t, "b7ad6b7169203331", sp.ParentSpanID().String(), "parent = the incoming context")
		} else {
			root++
			assert.True(t, sp.ParentSpanID().IsEmpty())
		}
		a := sp.Attributes().AsRaw()
		assert.Equal(t, o.RequestID, a["gen_ai.request.id"])
		assert.Equal(t, int64(3), a["gen_ai.usage.prompt_tokens"])
		assert.Equal(t, int64(4), a["gen_ai.usage.completion_tokens"])
		assert.Equal(t, int64(4), a["gen_ai.request.max_tokens"])
		assert.Equal(t, 0.9, a["gen_ai.request.top_p"])
		assert.NotContains(t, a, "gen_ai.request.temperature", "greedy: vLLM omits a zero temperature")
		assert.InDelta(t, o.TTFT, a["gen_ai.latency.time_to_first_token"], 1e-6)
		assert.InDelta(t, o.E2E, a["gen_ai.latency.e2e"], 1e-6)
		assert.InDelta(t, o.Queue, a["gen_ai.latency.time_in_queue"], 1e-6)
		assert.InDelta(t, o.Prefill, a["gen_ai.latency.time_in_model_prefill"], 1e-6)
		assert.InDelta(t, o.Decode, a["gen_ai.latency.time_in_model_decode"], 1e-6)
		assert.InDelta(t, o.Inference, a["gen_ai.latency.time_in_model_inference"], 2e-6)
		assert.GreaterOrEqual(t, float64(sp.EndTimestamp()-sp.StartTimestamp())/1e9, a["gen_ai.latency.e2e"].(float64))
	}
	assert.Equal(t, [2]int{1, 1}, [2]int{parented, root})
}

func TestConcurrencyLimitQueues(t *testing.T) {
	hs, got := startServer(t, func(c *Config) { c.MaxNumSeqs = 1 })
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(hs.URL+"/v1/completions", "application/json",
				strings.NewReader(`{"model":"test/model","prompt":"a","max_tokens":5,"stream":true}`))
			if assert.NoError(t, err) {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	outs := got.list()
	require.Len(t, outs, 2)
	first, second := outs[0], outs[1]
	// which one arrives first is up to the goroutines; the other waits for whatever is left of it
	if first.ArrivalUnixNano > second.ArrivalUnixNano {
		first, second = second, first
	}
	at := func(o Outcome, afterArrival float64) float64 {
		return float64(o.ArrivalUnixNano-first.ArrivalUnixNano)/1e9 + afterArrival
	}
	// with one slot, the second request is scheduled only after the first one's last token
	assert.GreaterOrEqual(t, at(second, second.Queue), at(first, first.Queue+first.Prefill+first.Decode))
}

func TestStragglers(t *testing.T) {
	hs, got := startServer(t, func(c *Config) { c.StragglerEvery = 2; c.StragglerDelay = 20 * time.Millisecond })
	for range 4 {
		resp := post(t, hs.URL+"/v1/completions", `{"model":"test/model","prompt":"a","max_tokens":1,"stream":true}`, nil)
		io.Copy(io.Discard, resp.Body)
	}
	var stragglers int
	for _, o := range got.list() {
		if o.Straggler {
			stragglers++
			assert.GreaterOrEqual(t, o.Queue, 0.020)
		}
	}
	assert.Equal(t, 2, stragglers)
}

func TestClientGoneGetsNoSpan(t *testing.T) {
	sink := &otlpsink.Sink{}
	exp, err := otlpsend.NewGRPC(otlpsink.StartGRPC(t, sink))
	require.NoError(t, err)
	spans := NewSpanExporter(exp, SpanExporterConfig{Model: testModel, ExportDelay: 10 * time.Millisecond})
	hs, got := startServer(t, func(c *Config) {
		c.Spans = spans
		c.Timing = func(r *rand.Rand, p, m int64) workload.ServingTiming {
			tm := fixedTiming(r, p, m)
			tm.TPOT = 50 * time.Millisecond
			return tm
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/completions",
		strings.NewReader(`{"model":"test/model","prompt":"a","max_tokens":100,"stream":true}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	line, err := bufio.NewReader(resp.Body).ReadString('\n') // the first token arrived
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "data: "))
	cancel()
	resp.Body.Close()
	require.Eventually(t, func() bool { return len(got.list()) == 1 }, 10*time.Second, 5*time.Millisecond)
	assert.Contains(t, got.list()[0].Error, "client disconnected")
	require.NoError(t, spans.Close())
	assert.Equal(t, 0, sink.SpanCount(), "vLLM exports no span for aborted requests")
}

func TestRequestLog(t *testing.T) {
	var buf syncBuffer
	hs, _ := startServer(t, func(c *Config) { c.RequestLog = &buf })
	resp := post(t, hs.URL+"/v1/completions", `{"model":"test/model","prompt":"a b","max_tokens":2,"stream":true}`,
		map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	io.Copy(io.Discard, resp.Body)
	var o Outcome
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &o))
	assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", o.TraceID)
	assert.Equal(t, "b7ad6b7169203331", o.ParentSpanID)
	assert.Equal(t, int64(2), o.CompletionTokens)
	assert.True(t, o.Sampled)
	assert.Equal(t, "length", o.FinishReason)
	assert.Positive(t, o.ArrivalUnixNano)
	assert.Empty(t, o.Error)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no model":           {MaxNumSeqs: 1},
		"zero max-num-seqs":  {Model: "m"},
		"negative straggler": {Model: "m", MaxNumSeqs: 1, StragglerEvery: -1},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(cfg)
			assert.Error(t, err)
		})
	}
}

func TestModelsAndHealth(t *testing.T) {
	hs, _ := startServer(t, nil)
	resp, err := http.Get(hs.URL + "/v1/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&models))
	require.Len(t, models.Data, 1)
	assert.Equal(t, testModel, models.Data[0].ID)
	health, err := http.Get(hs.URL + "/health")
	require.NoError(t, err)
	health.Body.Close()
	assert.Equal(t, http.StatusOK, health.StatusCode)
	metrics, err := http.Post(hs.URL+"/metrics", "text/plain", nil)
	require.NoError(t, err)
	metrics.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, metrics.StatusCode, "/metrics is read-only")
}

func TestSameSeedSameDraws(t *testing.T) {
	ids := func() string {
		hs, got := startServer(t, func(c *Config) { c.Seed = 42; c.Timing = nil; c.Profile = workload.ProfileChat })
		resp := post(t, hs.URL+"/v1/completions", `{"model":"test/model","prompt":"a","max_tokens":1,"stream":true}`, nil)
		io.Copy(io.Discard, resp.Body)
		return got.list()[0].RequestID
	}
	assert.Equal(t, ids(), ids())
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	e := &SpanExporter{queue: make(chan workload.Record, 2)} // no export loop: the queue only fills
	for range 5 {
		e.Add(workload.Record{})
	}
	_, dropped, _ := e.Counts()
	assert.Equal(t, int64(3), dropped)
}
