package jaeger

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

const (
	traceA  = "0af7651916cd43dd8448eb211c80319c"
	parentA = "b7ad6b7169203331"
)

type tag struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value any    `json:"value"`
}

// serverSpanTags is an llm_request span as Jaeger shows it after the vllm processor.
func serverSpanTags() []tag {
	return []tag{
		{"gen_ai.latency.time_to_first_token", "float64", 0.09},
		{"gen_ai.latency.e2e", "float64", 0.5},
		{"gen_ai.latency.time_in_queue", "float64", 0.01},
		{"gen_ai.latency.time_in_model_prefill", "float64", 0.07},
		{"gen_ai.latency.time_in_model_decode", "float64", 0.4},
		{"gen_ai.latency.time_in_model_inference", "float64", 0.47},
		{"gen_ai.usage.prompt_tokens", "int64", 10},
		{"gen_ai.usage.completion_tokens", "int64", 5},
		{"gen_ai.request.id", "string", "cmpl-1"},
		{"vllm.request.time_per_output_token", "float64", 0.1},
		{"vllm.slo.met", "bool", false},
		{"vllm.slo.violations", "string", `["tpot"]`},
	}
}

func traceJSON(spans ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"data": []any{map[string]any{"traceID": traceA, "spans": spans}}, "total": 0, "limit": 0, "offset": 0, "errors": nil})
	return b
}

func span(name, id, parent string, tags []tag) map[string]any {
	s := map[string]any{"traceID": traceA, "spanID": id, "operationName": name, "tags": tags, "processID": "p1"}
	if parent != "" {
		s["references"] = []any{map[string]any{"refType": "CHILD_OF", "traceID": traceA, "spanID": parent}}
	}
	return s
}

// standIn is a stand-in for Jaeger's query service: it serves /api/traces/{id} from a map, answering 404
// until a trace has been asked for `after` times, and can be slow.
type standIn struct {
	mu     sync.Mutex
	traces map[string][]byte
	after  int
	delay  time.Duration
	calls  atomic.Int64
	status int
}

func (s *standIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.calls.Add(1)
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return
		}
	}
	if s.status != 0 {
		http.Error(w, "backend unavailable", s.status)
		return
	}
	id, ok := strings.CutPrefix(r.URL.Path, "/api/traces/")
	s.mu.Lock()
	body, found := s.traces[id]
	s.mu.Unlock()
	if !ok || !found || int(n) <= s.after {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func startStandIn(t *testing.T, s *standIn) string {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestFetch(t *testing.T) {
	other := span("llm_request", "1111111111111111", "2222222222222222", []tag{{"gen_ai.latency.e2e", "float64", 9.0}})
	client := span("text_completion m", parentA, "", nil)
	server := span("llm_request", "3333333333333333", parentA, serverSpanTags())
	s := &standIn{traces: map[string][]byte{traceA: traceJSON(client, other, server)}}
	c := New(startStandIn(t, s), time.Second)
	sv, err := c.Fetch(context.Background(), traceA, parentA)
	require.NoError(t, err)
	tpot, met := 0.1, false
	assert.Equal(t, &record.Server{
		Queue: 0.01, Prefill: 0.07, Decode: 0.4, Inference: 0.47, E2E: 0.5, TTFT: 0.09, PromptTokens: 10, OutputTokens: 5,
		TPOT: &tpot, SLOMet: &met, SLOViolations: []string{"tpot"}, RequestID: "cmpl-1",
	}, sv, "the llm_request span under the client span, not the other one")
}

func TestFetchV0DerivedValues(t *testing.T) {
	tags := []tag{
		{"gen_ai.latency.time_to_first_token", "float64", 0.2},
		{"gen_ai.latency.e2e", "float64", 1.0},
		{"gen_ai.latency.time_in_queue", "float64", 0.05},
		{"vllm.request.prefill.duration", "float64", 0.15},
		{"vllm.request.decode.duration", "float64", 0.8},
		{"vllm.request.inference.duration", "float64", 0.95},
	}
	s := &standIn{traces: map[string][]byte{traceA: traceJSON(span("llm_request", "3333333333333333", parentA, tags))}}
	sv, err := New(startStandIn(t, s), time.Second).Fetch(context.Background(), traceA, parentA)
	require.NoError(t, err)
	assert.Equal(t, [3]float64{0.15, 0.8, 0.95}, [3]float64{sv.Prefill, sv.Decode, sv.Inference})
	assert.Nil(t, sv.TPOT, "no processor values: absent, not zero")
	assert.Nil(t, sv.SLOMet)
}

func TestFetchErrors(t *testing.T) {
	bad := []tag{{"gen_ai.latency.e2e", "string", "soon"}, {"gen_ai.latency.time_to_first_token", "float64", 0.1}, {"gen_ai.latency.time_in_queue", "float64", 0.0}}
	tests := []struct {
		name   string
		s      *standIn
		target error
		msg    string
	}{
		{"not found", &standIn{}, ErrNotYet, "HTTP 404"},
		{"trace without server span", &standIn{traces: map[string][]byte{traceA: traceJSON(span("text_completion m", parentA, "", nil))}}, ErrNotYet, "no llm_request span"},
		{"span of the wrong type", &standIn{traces: map[string][]byte{traceA: traceJSON(span("llm_request", "3333333333333333", parentA, bad))}}, ErrBadSpan, "gen_ai.latency.e2e: not a number"},
		{"span without latencies", &standIn{traces: map[string][]byte{traceA: traceJSON(span("llm_request", "3333333333333333", parentA, nil))}}, ErrBadSpan, "no gen_ai.latency.e2e"},
		{"HTTP 503", &standIn{status: 503}, nil, "HTTP 503"},
		{"malformed JSON", &standIn{traces: map[string][]byte{traceA: []byte(`{"data": [`)}}, nil, "malformed Jaeger response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(startStandIn(t, tt.s), time.Second).Fetch(context.Background(), traceA, parentA)
			require.Error(t, err)
			if tt.target != nil {
				assert.ErrorIs(t, err, tt.target)
			}
			assert.ErrorContains(t, err, tt.msg)
		})
	}
}

func recs(n int) []record.Record {
	out := make([]record.Record, n)
	for i := range out {
		out[i] = record.Record{Success: true, TraceID: traceA, SpanID: parentA}
	}
	return out
}

func TestJoinRetriesUntilTheSpanArrives(t *testing.T) {
	s := &standIn{traces: map[string][]byte{traceA: traceJSON(span("llm_request", "3333333333333333", parentA, serverSpanTags()))}, after: 3}
	rs := recs(1)
	rs = append(rs, record.Record{Success: false, TraceID: traceA, SpanID: parentA}) // failed requests are not joined
	joined, failed := Join(context.Background(), New(startStandIn(t, s), time.Second), rs,
		JoinConfig{Timeout: 10 * time.Second, RetryInterval: time.Millisecond, Workers: 1})
	assert.Equal(t, [2]int{1, 0}, [2]int{joined, failed})
	require.NotNil(t, rs[0].Server)
	assert.Equal(t, 0.09, rs[0].Server.TTFT)
	assert.Nil(t, rs[1].Server)
	assert.Empty(t, rs[1].ServerError)
	assert.Equal(t, int64(4), s.calls.Load(), "three 404s, then the trace")
}

func TestJoinJaegerDownOrSlow(t *testing.T) {
	down := "http://" + testkit.FreeLoopback(t)
	slow := startStandIn(t, &standIn{delay: time.Hour, traces: map[string][]byte{traceA: traceJSON()}})
	never := startStandIn(t, &standIn{})
	tests := []struct {
		name, url, msg string
	}{
		{"down", down, "connection refused"},
		{"slow", slow, "Client.Timeout"},
		{"trace never arrives", never, "HTTP 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := recs(3)
			joined, failed := Join(context.Background(), New(tt.url, 20*time.Millisecond), rs,
				JoinConfig{Timeout: 100 * time.Millisecond, RetryInterval: 10 * time.Millisecond, Workers: 3})
			assert.Equal(t, [2]int{0, 3}, [2]int{joined, failed})
			for _, r := range rs {
				assert.Nil(t, r.Server)
				assert.Contains(t, r.ServerError, "not joined before the timeout")
				assert.Contains(t, r.ServerError, tt.msg)
			}
		})
	}
}

func TestJoinBudgetRunsOutBeforeQuery(t *testing.T) {
	s := &standIn{delay: 50 * time.Millisecond}
	rs := recs(2)
	joined, failed := Join(context.Background(), New(startStandIn(t, s), time.Second), rs,
		JoinConfig{Timeout: 20 * time.Millisecond, RetryInterval: time.Millisecond, Workers: 1})
	assert.Equal(t, [2]int{0, 2}, [2]int{joined, failed})
	assert.Contains(t, rs[0].ServerError, "not joined before the timeout")
	assert.Contains(t, rs[1].ServerError, "not queried")
}

func TestJoinInterruptedDuringWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rs := recs(2)
	joined, failed := Join(ctx, New("http://127.0.0.1:1", time.Second), rs, JoinConfig{Wait: time.Hour, Timeout: time.Second})
	assert.Equal(t, [2]int{0, 2}, [2]int{joined, failed})
	assert.Equal(t, "join interrupted", rs[0].ServerError)
}

func TestStringList(t *testing.T) {
	assert.Equal(t, []string{"ttft", "tpot"}, stringList(json.RawMessage(`"[\"ttft\",\"tpot\"]"`)))
	assert.Equal(t, []string{"ttft"}, stringList(json.RawMessage(`["ttft"]`)))
	assert.Equal(t, []string{"ttft"}, stringList(json.RawMessage(`"ttft"`)))
	assert.Nil(t, stringList(json.RawMessage(`5`)))
}

// Payloads captured from Jaeger v2 (v1.76.0, memory storage) behind the collector: testdata/trace.json is the
// trace of one vllmbench request to the vLLM emulator — the client span and, under it, the llm_request span with
// the vllm processor's values (int64 tags as JSON numbers, the verdict as a JSON bool, the violations list as
// its JSON text in a string tag, the model as a process tag) — and testdata/trace_not_found.json is Jaeger's
// answer (HTTP 404) for a trace it does not hold.
const (
	capturedTrace  = "014db0101d168a40f99d205062db3d2b"
	capturedClient = "3298b4f983925c9b"
)

func TestFetchCapturedFromJaeger(t *testing.T) {
	trace, err := os.ReadFile(filepath.Join("testdata", "trace.json"))
	require.NoError(t, err)
	notFound, err := os.ReadFile(filepath.Join("testdata", "trace_not_found.json"))
	require.NoError(t, err)
	tpot, met := 0.026818, false
	tests := []struct {
		name    string
		status  int
		body    []byte
		parent  string
		want    *record.Server
		wantErr error
	}{
		{
			name: "server span under the client span", status: http.StatusOK, body: trace, parent: capturedClient,
			want: &record.Server{
				Queue: 1.512119, Prefill: 0.060332, Decode: 0.187726, Inference: 0.248058, E2E: 1.767681, TTFT: 1.579676,
				PromptTokens: 20, OutputTokens: 8, TPOT: &tpot, SLOMet: &met, SLOViolations: []string{"ttft"},
				RequestID: "cmpl-cee4b240880741cd93be01ee23c67a8f",
			},
		},
		{name: "under another span", status: http.StatusOK, body: trace, parent: "1111111111111111", wantErr: ErrNotYet},
		{name: "trace not in Jaeger", status: http.StatusNotFound, body: notFound, parent: capturedClient, wantErr: ErrNotYet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/traces/"+capturedTrace {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write(tt.body)
			}))
			t.Cleanup(srv.Close)
			sv, err := New(srv.URL, time.Second).Fetch(context.Background(), capturedTrace, tt.parent)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, sv)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, sv)
		})
	}
}
