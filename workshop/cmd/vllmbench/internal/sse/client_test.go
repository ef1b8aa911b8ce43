package sse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/dataset"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/tokens"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

const (
	tokenChunk = `data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" hi","finish_reason":null}]}` + "\n\n"
	usageChunk = `data: {"id":"cmpl-1","object":"text_completion","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}` + "\n\n"
	done       = "data: [DONE]\n\n"
)

// sseServer answers every request with status and body, after checking what the client sent.
func sseServer(t *testing.T, status int, body string, check func(*http.Request, map[string]any)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var payload map[string]any
		if err := json.NewDecoder(r.Body).Decode(&payload); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if check != nil {
			check(r, payload)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(status)
		for _, part := range strings.SplitAfter(body, "\n\n") {
			_, _ = io.WriteString(w, part)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

var prompt = dataset.Prompt{Text: "a b c", OutputLen: 3, IgnoreEOS: true}

func do(t *testing.T, url, endpoint string) record.Record {
	t.Helper()
	return doWith(t, url, endpoint, nil)
}

// testTracer is a Tracer over the OpenTelemetry SDK that records the spans.
type testTracer struct {
	tracer trace.Tracer
	spans  *tracetest.SpanRecorder
}

func newTestTracer() testTracer {
	spans := tracetest.NewSpanRecorder()
	return testTracer{tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)).Tracer("test"), spans: spans}
}

func (tt testTracer) Start(ctx context.Context, sendTime time.Time) (context.Context, trace.Span) {
	return tt.tracer.Start(ctx, "request", trace.WithTimestamp(sendTime))
}

func (tt testTracer) End(span trace.Span, rec *record.Record) {
	span.End(trace.WithTimestamp(rec.SendTime.Add(rec.Elapsed)))
}

// doWith sends prompt, traced, with count as the client's token counter (nil: none).
func doWith(t *testing.T, url, endpoint string, count func(string) int) record.Record {
	t.Helper()
	c, err := New(url, endpoint, "m", 4)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	if count != nil {
		c.CountTokensWith(count)
	}
	tt := newTestTracer()
	c.TraceWith(tt, propagation.TraceContext{})
	var rec record.Record
	c.Do(context.Background(), prompt, &rec)
	// one span per request, from the send time to the end, with the ids the record carries
	ended := tt.spans.Ended()
	require.Len(t, ended, 1)
	assert.Equal(t, rec.SendTime, ended[0].StartTime())
	assert.Equal(t, rec.SendTime.Add(rec.Elapsed), ended[0].EndTime())
	assert.Equal(t, rec.TraceID, ended[0].SpanContext().TraceID().String())
	assert.Equal(t, rec.SpanID, ended[0].SpanContext().SpanID().String())
	return rec
}

func TestCompleteStream(t *testing.T) {
	var got map[string]any
	var traceparent string
	srv := sseServer(t, 200, tokenChunk+": comment\n\n"+tokenChunk+tokenChunk+usageChunk+done, func(r *http.Request, p map[string]any) {
		got, traceparent = p, r.Header.Get("traceparent")
	})
	rec := do(t, srv.URL, EndpointCompletions)
	require.True(t, rec.Success, rec.Error)
	assert.Equal(t, 200, rec.HTTPStatus)
	assert.Empty(t, rec.Error)
	assert.Equal(t, "cmpl-1", rec.ResponseID)
	assert.Equal(t, int64(7), rec.PromptTokens)
	assert.Equal(t, int64(3), rec.OutputTokens)
	assert.Equal(t, record.OutputTokensUsage, rec.OutputTokensSource)
	assert.Len(t, rec.ITL, 2, "three token chunks, two gaps")
	assert.Greater(t, rec.TTFT, 0.0)
	assert.GreaterOrEqual(t, rec.E2EL, rec.TTFT)
	assert.InDelta(t, (rec.E2EL-rec.TTFT)/2, rec.TPOT, 1e-12)
	assert.Regexp(t, "^[0-9a-f]{32}$", rec.TraceID)
	assert.Regexp(t, "^[0-9a-f]{16}$", rec.SpanID)
	assert.Equal(t, "00-"+rec.TraceID+"-"+rec.SpanID+"-01", traceparent, "W3C traceparent, sampled, naming the client span")
	assert.Equal(t, map[string]any{
		"model": "m", "prompt": "a b c", "max_tokens": 3.0, "ignore_eos": true, "temperature": 0.0, "stream": true,
		"stream_options": map[string]any{"include_usage": true},
	}, got)
}

func TestChatStream(t *testing.T) {
	var got map[string]any
	role := `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	tok := `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":" x"}}]}` + "\n\n"
	usage := `data: {"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}` + "\n\n"
	srv := sseServer(t, 200, role+tok+usage+done, func(_ *http.Request, p map[string]any) { got = p })
	rec := do(t, srv.URL, EndpointChatCompletions)
	require.True(t, rec.Success, rec.Error)
	assert.Equal(t, int64(1), rec.OutputTokens)
	assert.Equal(t, 0.0, rec.TPOT, "one output token: TPOT 0")
	assert.Len(t, rec.ITL, 1, "the role chunk counts as the first chunk, as in vLLM's benchmark")
	assert.Equal(t, []any{map[string]any{"role": "user", "content": "a b c"}}, got["messages"])
	assert.Equal(t, 3.0, got["max_completion_tokens"])
	assert.NotContains(t, got, "max_tokens")
}

func TestBadStreams(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string
	}{
		{"HTTP 404", 404, `{"error":{"message":"The model m does not exist.","code":404}}`, `HTTP 404: {"error":{"message":"The model m does not exist."`},
		{"HTTP 500", 500, "boom", "HTTP 500: boom"},
		{"HTTP 429", 429, "slow down", "HTTP 429: slow down"},
		{"malformed chunk", 200, tokenChunk + "data: {not json}\n\n" + usageChunk + done, "malformed chunk"},
		{"stream cut mid-way", 200, tokenChunk + tokenChunk, "stream ended before data: [DONE]"},
		{"stream cut mid-line", 200, tokenChunk + `data: {"id":"cmpl-1","cho`, "stream ended before data: [DONE]"},
		{"no output chunk", 200, usageChunk + done, "no output chunk"},
		{"error event", 200, tokenChunk + `data: {"error":{"message":"engine died"}}` + "\n\n", "server error in stream: engine died"},
		{"empty body", 200, "", "stream ended before data: [DONE]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := sseServer(t, tt.status, tt.body, nil)
			rec := do(t, srv.URL, EndpointCompletions)
			assert.False(t, rec.Success)
			assert.Equal(t, tt.status, rec.HTTPStatus)
			assert.Contains(t, rec.Error, tt.wantErr)
			assert.True(t, rec.Sent)
		})
	}
}

func TestConnectionCutByServer(t *testing.T) {
	// the server hijacks the connection and closes it after one chunk, without ending the chunked body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", len(tokenChunk), tokenChunk)
		_ = buf.Flush()
	}))
	t.Cleanup(srv.Close)
	rec := do(t, srv.URL, EndpointCompletions)
	assert.False(t, rec.Success)
	assert.Contains(t, rec.Error, "stream ended before data: [DONE]")
}

func TestUnreachableServer(t *testing.T) {
	addr := testkit.FreeLoopback(t)
	rec := do(t, "http://"+addr, EndpointCompletions)
	assert.False(t, rec.Success)
	assert.Equal(t, 0, rec.HTTPStatus)
	assert.Contains(t, rec.Error, "connection refused")
}

func TestLongEventIsBounded(t *testing.T) {
	huge := "data: " + strings.Repeat("x", maxEventBytes+10) + "\n\n"
	srv := sseServer(t, 200, huge, nil)
	rec := do(t, srv.URL, EndpointCompletions)
	assert.False(t, rec.Success)
	assert.Contains(t, rec.Error, "event longer than")
}

func TestNewRejects(t *testing.T) {
	_, err := New("http://x", "/v1/embeddings", "m", 1)
	assert.ErrorContains(t, err, "/v1/embeddings")
	_, err = New("http://x", EndpointCompletions, "", 1)
	assert.ErrorContains(t, err, "model")
}

// completion is a streamed /v1/completions chunk: text, finish reason (null when empty), usage (none when
// empty), as vLLM writes them.
func completion(text, finish, usage string) string {
	if finish == "" {
		finish = "null"
	} else {
		finish = `"` + finish + `"`
	}
	u := ""
	if usage != "" {
		u = `,"usage":` + usage
	}
	return `data: {"id":"cmpl-2","object":"text_completion","choices":[{"index":0,"text":` + fmt.Sprintf("%q", text) +
		`,"logprobs":null,"finish_reason":` + finish + `}]` + u + "}\n\n"
}

func usage(prompt, completion int) string {
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}`, prompt, completion, prompt+completion)
}

// TestUsageWhereverItComes: the usage is read from whichever chunk carries it, the last one winning; without
// any the request still succeeds, its output counted with the tokenizer when there is one, else one token
// per content chunk, and the record says which.
func TestUsageWhereverItComes(t *testing.T) {
	tok, err := tokens.Load("../tokens/testdata/gpt2")
	require.NoError(t, err)
	// four content chunks and vLLM's empty final chunk with the finish reason
	words := []string{" the", " server", " token", "izer"}
	streamed := strings.Join(words, "")
	tokenizerCount := tok.Count(streamed)
	require.NotEqual(t, 4, tokenizerCount, "the fixture counts the text differently from the chunks, so the test tells them apart")
	body := func(usageOf func(i int) string, final, trailer string) string {
		var b strings.Builder
		for i, w := range words {
			b.WriteString(completion(w, "", usageOf(i)))
		}
		b.WriteString(final)
		b.WriteString(trailer)
		return b.String() + done
	}
	none := func(int) string { return "" }
	tests := []struct {
		name       string
		body       string
		tokenizer  bool
		wantPrompt int64
		wantOutput int64
		wantSource string
	}{
		{
			name:       "choice-less last chunk (OpenAI)",
			body:       body(none, completion("", "length", ""), `data: {"id":"cmpl-2","choices":[],"usage":`+usage(11, 4)+"}\n\n"),
			wantPrompt: 11, wantOutput: 4, wantSource: record.OutputTokensUsage,
		},
		{
			name:       "final choice chunk with the finish reason",
			body:       body(none, completion("", "length", usage(11, 4)), ""),
			wantPrompt: 11, wantOutput: 4, wantSource: record.OutputTokensUsage,
		},
		{
			name: "every chunk, growing (continuous usage stats)",
			body: body(func(i int) string { return usage(11, i+1) }, completion("", "length", usage(11, 4)),
				`data: {"id":"cmpl-2","choices":[],"usage":`+usage(11, 4)+"}\n\n"),
			wantPrompt: 11, wantOutput: 4, wantSource: record.OutputTokensUsage,
		},
		{
			name:       "every chunk, no final usage: the last one wins",
			body:       body(func(i int) string { return usage(11, i+1) }, completion("", "length", ""), ""),
			wantPrompt: 11, wantOutput: 4, wantSource: record.OutputTokensUsage,
		},
		{
			name:       "absent, no tokenizer: one token per content chunk",
			body:       body(none, completion("", "length", ""), ""),
			wantPrompt: 5, wantOutput: 4, wantSource: record.OutputTokensChunks,
		},
		{
			name:       "absent, tokenizer: its count of the streamed text",
			body:       body(none, completion("", "length", ""), ""),
			tokenizer:  true,
			wantPrompt: 5, wantOutput: int64(tokenizerCount), wantSource: record.OutputTokensTokenizer,
		},
		{
			name:       "tokenizer given, usage present: usage wins",
			body:       body(none, completion("", "length", usage(11, 4)), ""),
			tokenizer:  true,
			wantPrompt: 11, wantOutput: 4, wantSource: record.OutputTokensUsage,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := sseServer(t, 200, tt.body, nil)
			var count func(string) int
			if tt.tokenizer {
				count = tok.Count
			}
			c, err := New(srv.URL, EndpointCompletions, "m", 4)
			require.NoError(t, err)
			t.Cleanup(c.Close)
			if count != nil {
				c.CountTokensWith(count)
			}
			var rec record.Record
			c.Do(context.Background(), dataset.Prompt{Text: "a b c d e", InputLen: 5, OutputLen: 4}, &rec)
			require.True(t, rec.Success, rec.Error)
			assert.Empty(t, rec.Error)
			assert.Equal(t, tt.wantPrompt, rec.PromptTokens)
			assert.Equal(t, tt.wantOutput, rec.OutputTokens)
			assert.Equal(t, tt.wantSource, rec.OutputTokensSource)
			assert.Len(t, rec.ITL, 4, "five choice chunks")
			assert.InDelta(t, (rec.E2EL-rec.TTFT)/float64(tt.wantOutput-1), rec.TPOT, 1e-12)
		})
	}
}

func TestChatWithoutUsageCountsContent(t *testing.T) {
	tok, err := tokens.Load("../tokens/testdata/llama3")
	require.NoError(t, err)
	role := `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}` + "\n\n"
	var body strings.Builder
	body.WriteString(role)
	for _, w := range []string{"Hello", ",", " café", " 12345"} {
		fmt.Fprintf(&body, `data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{"content":%q}}]}`+"\n\n", w)
	}
	body.WriteString(`data: {"id":"chatcmpl-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" + done)
	srv := sseServer(t, 200, body.String(), nil)

	rec := doWith(t, srv.URL, EndpointChatCompletions, tok.Count)
	require.True(t, rec.Success, rec.Error)
	assert.Equal(t, int64(tok.Count("Hello, café 12345")), rec.OutputTokens)
	assert.Equal(t, int64(len(tok.Encode("Hello, café 12345"))), rec.OutputTokens)
	assert.Greater(t, rec.OutputTokens, int64(4))
	assert.Equal(t, record.OutputTokensTokenizer, rec.OutputTokensSource)

	rec = doWith(t, srv.URL, EndpointChatCompletions, nil)
	require.True(t, rec.Success, rec.Error)
	assert.Equal(t, int64(4), rec.OutputTokens, "the role chunk and the empty finish chunk carry no content")
	assert.Equal(t, record.OutputTokensChunks, rec.OutputTokensSource)
}
