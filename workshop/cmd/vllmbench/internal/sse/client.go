// Package sse is vllmbench's streaming client for OpenAI-compatible completion endpoints: it sends one
// request with stream=true and stream_options.include_usage, reads the server-sent events and records what
// the user sees (TTFT, every inter-token latency, end-to-end latency, the token counts of the usage the
// server reports, or counted when it reports none).
package sse // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/sse"

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/dataset"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// Endpoints vllmbench drives.
const (
	EndpointCompletions     = "/v1/completions"
	EndpointChatCompletions = "/v1/chat/completions"
)

// Client sends requests to one endpoint. It is safe for concurrent use.
type Client struct {
	url   string
	chat  bool
	model string
	http  *http.Client
	// count counts the tokens of the streamed text when the server reports no usage; nil: one token per
	// content chunk.
	count func(string) int
	// tracer and propagator trace each request; nil: no span, no traceparent.
	tracer     Tracer
	propagator propagation.TextMapPropagator
}

// Tracer starts a request's client span at its send time, and ends it once the request ended and its record
// is complete (clientspan.Provider).
type Tracer interface {
	Start(ctx context.Context, sendTime time.Time) (context.Context, trace.Span)
	End(span trace.Span, rec *record.Record)
}

// New returns a client for baseURL + endpoint. connections bounds the idle keep-alive connections kept.
func New(baseURL, endpoint, model string, connections int) (*Client, error) {
	if endpoint != EndpointCompletions && endpoint != EndpointChatCompletions {
		return nil, fmt.Errorf("endpoint %q: want %s or %s", endpoint, EndpointCompletions, EndpointChatCompletions)
	}
	if model == "" {
		return nil, errors.New("model must not be empty")
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = max(100, connections)
	transport.MaxIdleConnsPerHost = max(100, connections)
	transport.DisableCompression = true // vLLM does not compress; gzip would delay chunks
	return &Client{
		url:   strings.TrimSuffix(baseURL, "/") + endpoint,
		chat:  endpoint == EndpointChatCompletions,
		model: model,
		http:  &http.Client{Transport: transport},
	}, nil
}

// Chat reports whether the client talks to /v1/chat/completions.
func (c *Client) Chat() bool { return c.chat }

// URL is the full endpoint URL.
func (c *Client) URL() string { return c.url }

// CountTokensWith makes the client count the output tokens of a stream without usage with count (a
// tokenizer's count of the streamed text) instead of one token per content chunk. Call it before Do.
func (c *Client) CountTokensWith(count func(text string) int) { c.count = count }

// TraceWith makes the client trace every request with t: the span's context goes in the request's headers
// through p (traceparent with propagation.TraceContext), and its ids in the record. Call it before Do.
func (c *Client) TraceWith(t Tracer, p propagation.TextMapPropagator) { c.tracer, c.propagator = t, p }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// body is the request payload vLLM's benchmark sends (greedy, streaming, usage at the end).
type body struct {
	Model               string        `json:"model"`
	Prompt              string        `json:"prompt,omitempty"`
	Messages            []chatMessage `json:"messages,omitempty"`
	MaxTokens           int           `json:"max_tokens,omitempty"`
	MaxCompletionTokens int           `json:"max_completion_tokens,omitempty"`
	Temperature         float64       `json:"temperature"`
	Stream              bool          `json:"stream"`
	StreamOptions       streamOptions `json:"stream_options"`
	IgnoreEOS           bool          `json:"ignore_eos,omitempty"`
}

func (c *Client) payload(p dataset.Prompt) ([]byte, error) {
	b := body{Model: c.model, Stream: true, StreamOptions: streamOptions{IncludeUsage: true}, IgnoreEOS: p.IgnoreEOS}
	if c.chat {
		b.Messages = []chatMessage{{Role: "user", Content: p.Text}}
		b.MaxCompletionTokens = p.OutputLen
	} else {
		b.Prompt = p.Text
		b.MaxTokens = p.OutputLen
	}
	return json.Marshal(b)
}

// chunk is the part of a streamed chunk the client reads.
type chunk struct {
	ID      string `json:"id"`
	Choices []struct {
		Index int     `json:"index"`
		Text  *string `json:"text"`
		Delta *struct {
			Content *string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// Limits on what a server may send.
const (
	maxEventBytes = 1 << 20
	maxErrorBody  = 2 << 10
)

// Do sends prompt and fills rec (timings, tokens, status, error, and with TraceWith the trace and span id of
// the request's client span, whose context the request's headers carry). rec.Success
// is set only for a complete stream: HTTP 200, at least one choice chunk and data: [DONE]. The token counts
// are the usage of the last chunk that carries one, wherever it is (a choice-less last chunk as OpenAI
// specifies, the final choice chunk, or every chunk with vLLM's continuous usage stats); without any, the
// output is counted as vLLM's benchmark does (see CountTokensWith) and the prompt is the dataset's count.
func (c *Client) Do(ctx context.Context, p dataset.Prompt, rec *record.Record) {
	payload, err := c.payload(p)
	if err != nil {
		rec.Error = "encoding request: " + err.Error()
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(payload))
	if err != nil {
		rec.Error = err.Error()
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	start := time.Now()
	rec.SendTime = start
	rec.Sent = true
	if c.tracer != nil {
		// The span starts at the send time itself; starting it and writing its traceparent take a few
		// microseconds of the measured latencies, as building the request does in vLLM's benchmark.
		spanCtx, span := c.tracer.Start(ctx, start)
		c.propagator.Inject(spanCtx, propagation.HeaderCarrier(req.Header))
		if sc := span.SpanContext(); sc.IsValid() {
			rec.TraceID, rec.SpanID = sc.TraceID().String(), sc.SpanID().String()
		}
		defer func() { c.tracer.End(span, rec) }() // deferred first, so it runs after Elapsed is set
	}
	defer func() { rec.Elapsed = time.Since(start) }()
	resp, err := c.http.Do(req)
	if err != nil {
		rec.Error = err.Error()
		return
	}
	defer resp.Body.Close()
	rec.HTTPStatus = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		rec.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		return
	}
	if err := c.read(resp.Body, start, p, rec); err != nil {
		rec.Error = err.Error()
		return
	}
	rec.Success = true
}

// read consumes the event stream. Any chunk with a choice marks a token (the first one is TTFT, as in the
// benchmark, so a chat stream's role-only first chunk counts); the last usage seen gives the token counts.
func (c *Client) read(r io.Reader, start time.Time, p dataset.Prompt, rec *record.Record) error {
	br := bufio.NewReaderSize(r, 16<<10)
	var last time.Time
	var gotUsage, gotToken bool
	var text strings.Builder // the streamed text, for counting when no usage comes
	contentChunks := 0
	rec.ITL = make([]float64, 0, 32) // [] rather than null for a one-token answer, as vLLM writes it
	var ch chunk
	for {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("stream ended before data: [DONE]")
			}
			return fmt.Errorf("reading stream: %w", err)
		}
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // blank separators, comments (":"), event:/id: fields
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			break
		}
		now := time.Now()
		ch = chunk{}
		if err := json.Unmarshal(data, &ch); err != nil {
			return fmt.Errorf("malformed chunk %q: %w", truncate(data), err)
		}
		if ch.Error != nil {
			return fmt.Errorf("server error in stream: %s", ch.Error.Message)
		}
		if rec.ResponseID == "" {
			rec.ResponseID = ch.ID
		}
		if len(ch.Choices) > 0 {
			if !gotToken {
				rec.TTFT = now.Sub(start).Seconds()
				gotToken = true
			} else {
				rec.ITL = append(rec.ITL, now.Sub(last).Seconds())
			}
			last = now
			if s := ch.content(); s != "" {
				text.WriteString(s)
				contentChunks++
			}
		}
		if ch.Usage != nil {
			rec.PromptTokens = ch.Usage.PromptTokens
			rec.OutputTokens = ch.Usage.CompletionTokens
			gotUsage = true
		}
	}
	rec.E2EL = time.Since(start).Seconds()
	if !gotToken {
		return errors.New("stream had no output chunk")
	}
	switch {
	case gotUsage:
		rec.OutputTokensSource = record.OutputTokensUsage
	case c.count != nil:
		rec.OutputTokens = int64(c.count(text.String()))
		rec.PromptTokens = int64(p.InputLen)
		rec.OutputTokensSource = record.OutputTokensTokenizer
	default:
		rec.OutputTokens = int64(contentChunks)
		rec.PromptTokens = int64(p.InputLen)
		rec.OutputTokensSource = record.OutputTokensChunks
	}
	if rec.OutputTokens > 1 {
		rec.TPOT = (rec.E2EL - rec.TTFT) / float64(rec.OutputTokens-1)
	}
	return nil
}

// content is the text of the chunk's first choice (index 0: vllmbench asks for one), completions' text or
// chat's delta content.
func (ch *chunk) content() string {
	for _, c := range ch.Choices {
		if c.Index != 0 {
			continue
		}
		if c.Text != nil {
			return *c.Text
		}
		if c.Delta != nil && c.Delta.Content != nil {
			return *c.Delta.Content
		}
	}
	return ""
}

// readLine returns one line without its end of line, bounded by maxEventBytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		buf := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(buf) > maxEventBytes {
				return nil, fmt.Errorf("event longer than %d bytes", maxEventBytes)
			}
			line, err = br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		if len(buf) > maxEventBytes {
			return nil, fmt.Errorf("event longer than %d bytes", maxEventBytes)
		}
		line = buf
	}
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, io.EOF // a cut stream, whether mid-line or not
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

func truncate(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
