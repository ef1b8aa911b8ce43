// Package jaeger joins vllmbench's records with the server's llm_request span, fetched by trace id from
// Jaeger's HTTP query API (GET /api/traces/{traceID}), waiting for the server's export delay and retrying
// until a deadline.
package jaeger // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/jaeger"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// SpanName is vLLM's request span.
const SpanName = "llm_request"

// Span attribute keys read from the server span: vLLM's, then the vllm processor's.
const (
	attrQueue      = "gen_ai.latency.time_in_queue"
	attrPrefill    = "gen_ai.latency.time_in_model_prefill"
	attrDecode     = "gen_ai.latency.time_in_model_decode"
	attrInference  = "gen_ai.latency.time_in_model_inference"
	attrE2E        = "gen_ai.latency.e2e"
	attrTTFT       = "gen_ai.latency.time_to_first_token"
	attrPrompt     = "gen_ai.usage.prompt_tokens"
	attrCompletion = "gen_ai.usage.completion_tokens"
	attrRequestID  = "gen_ai.request.id"
	attrTPOT       = "vllm.request.time_per_output_token"
	attrSLOMet     = "vllm.slo.met"
	attrViolations = "vllm.slo.violations"
	// V0 spans have no prefill/decode; the processor derives them under these keys.
	attrDerivedPrefill   = "vllm.request.prefill.duration"
	attrDerivedDecode    = "vllm.request.decode.duration"
	attrDerivedInference = "vllm.request.inference.duration"
)

var (
	// ErrNotYet means the trace (or its llm_request span) is not in Jaeger yet; it is retried.
	ErrNotYet = errors.New("server span not in Jaeger yet")
	// ErrBadSpan means the span is there but lacks a value or has one of the wrong type; it is not retried.
	ErrBadSpan = errors.New("server span unusable")
)

// Client fetches traces from one Jaeger query service.
type Client struct {
	base string
	http *http.Client
}

// maxTraceBytes bounds one trace response.
const maxTraceBytes = 8 << 20

// New returns a client for Jaeger's query base URL (e.g. http://127.0.0.1:16686); requestTimeout bounds each
// HTTP call.
func New(baseURL string, requestTimeout time.Duration) *Client {
	return &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Timeout: requestTimeout}}
}

// Jaeger's JSON trace format (the query API's /api/traces).
type traceResponse struct {
	Data []struct {
		Spans []jsonSpan `json:"spans"`
	} `json:"data"`
}

type jsonSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string          `json:"key"`
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	} `json:"tags"`
}

// Fetch returns the values of the llm_request span of traceID whose parent is parentSpanID (any llm_request
// span when parentSpanID is empty). It returns ErrNotYet (wrapped) while Jaeger does not have the span.
func (c *Client) Fetch(ctx context.Context, traceID, parentSpanID string) (*record.Server, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/traces/"+traceID, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTraceBytes))
	if err != nil {
		return nil, fmt.Errorf("reading Jaeger response: %w", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, fmt.Errorf("%w (HTTP 404)", ErrNotYet)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jaeger answered HTTP %d: %s", resp.StatusCode, truncate(body))
	}
	var tr traceResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("malformed Jaeger response: %w", err)
	}
	for _, t := range tr.Data {
		for i := range t.Spans {
			sp := &t.Spans[i]
			if sp.OperationName != SpanName || !childOf(sp, parentSpanID) {
				continue
			}
			return serverValues(sp)
		}
	}
	return nil, fmt.Errorf("%w (trace has no %s span under span %s)", ErrNotYet, SpanName, parentSpanID)
}

func childOf(sp *jsonSpan, parent string) bool {
	if parent == "" {
		return true
	}
	for _, ref := range sp.References {
		if ref.RefType == "CHILD_OF" && strings.EqualFold(ref.SpanID, parent) {
			return true
		}
	}
	return false
}

func serverValues(sp *jsonSpan) (*record.Server, error) {
	tags := make(map[string]json.RawMessage, len(sp.Tags))
	for _, t := range sp.Tags {
		tags[t.Key] = t.Value
	}
	var sv record.Server
	var errs []error
	num := func(key string, dst *float64, required bool) {
		raw, ok := tags[key]
		if !ok {
			if required {
				errs = append(errs, fmt.Errorf("no %s", key))
			}
			return
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			errs = append(errs, fmt.Errorf("%s: not a number: %s", key, truncate(raw)))
		}
	}
	num(attrE2E, &sv.E2E, true)
	num(attrTTFT, &sv.TTFT, true)
	num(attrQueue, &sv.Queue, true)
	if _, ok := tags[attrPrefill]; ok {
		num(attrPrefill, &sv.Prefill, true)
		num(attrDecode, &sv.Decode, true)
		num(attrInference, &sv.Inference, true)
	} else {
		num(attrDerivedPrefill, &sv.Prefill, false)
		num(attrDerivedDecode, &sv.Decode, false)
		num(attrDerivedInference, &sv.Inference, false)
	}
	var prompt, completion float64
	num(attrPrompt, &prompt, false)
	num(attrCompletion, &completion, false)
	sv.PromptTokens, sv.OutputTokens = int64(prompt), int64(completion)
	if raw, ok := tags[attrTPOT]; ok {
		var v float64
		if json.Unmarshal(raw, &v) == nil {
			sv.TPOT = &v
		}
	}
	if raw, ok := tags[attrSLOMet]; ok {
		var v bool
		if json.Unmarshal(raw, &v) == nil {
			sv.SLOMet = &v
		}
	}
	if raw, ok := tags[attrViolations]; ok {
		sv.SLOViolations = stringList(raw)
	}
	if raw, ok := tags[attrRequestID]; ok {
		_ = json.Unmarshal(raw, &sv.RequestID)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrBadSpan, errors.Join(errs...))
	}
	return &sv, nil
}

// stringList reads a string array tag: Jaeger stores OTLP arrays as their JSON text in a string tag.
func stringList(raw json.RawMessage) []string {
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return list
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	if json.Unmarshal([]byte(s), &list) == nil {
		return list
	}
	return []string{s}
}

func truncate(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// JoinConfig bounds the join.
type JoinConfig struct {
	// Wait is how long to wait after the last request before the first query: vLLM batches spans (5 s).
	Wait time.Duration
	// Timeout is the join's whole budget after Wait; spans still missing then are errors.
	Timeout time.Duration
	// RetryInterval is the pause between two queries of one trace.
	RetryInterval time.Duration
	// Workers is the number of concurrent queries.
	Workers int
}

// Join fetches the server span of every successful record with a trace id and sets Server or ServerError.
// It returns the number of records joined and failed; it never fails as a whole.
func Join(ctx context.Context, c *Client, recs []record.Record, cfg JoinConfig) (joined, failed int) {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = time.Second
	}
	if !sleep(ctx, cfg.Wait) {
		return 0, markAll(recs, "join interrupted")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r := &recs[i]
				sv, err := fetchRetry(ctx, c, r.TraceID, r.SpanID, cfg.RetryInterval)
				mu.Lock()
				if err != nil {
					r.ServerError = err.Error()
					failed++
				} else {
					r.Server = sv
					joined++
				}
				mu.Unlock()
			}
		}()
	}
	for i := range recs {
		if recs[i].Success && recs[i].TraceID != "" {
			work <- i
		}
	}
	close(work)
	wg.Wait()
	return joined, failed
}

func fetchRetry(ctx context.Context, c *Client, traceID, parent string, interval time.Duration) (*record.Server, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("jaeger: trace %s not queried: the join's time budget ran out first", traceID)
	}
	var last error
	for attempt := 1; ; attempt++ {
		sv, err := c.Fetch(ctx, traceID, parent)
		if err == nil {
			return sv, nil
		}
		if ctx.Err() != nil {
			if last == nil {
				last = err
			}
			return nil, fmt.Errorf("jaeger: trace %s not joined before the timeout after %d attempts: %w", traceID, attempt, last)
		}
		last = err
		if errors.Is(err, ErrBadSpan) {
			return nil, fmt.Errorf("jaeger: trace %s: %w", traceID, err)
		}
		if !sleep(ctx, interval) {
			return nil, fmt.Errorf("jaeger: trace %s not joined before the timeout after %d attempts: %w", traceID, attempt, last)
		}
	}
}

func markAll(recs []record.Record, msg string) int {
	n := 0
	for i := range recs {
		if recs[i].Success && recs[i].TraceID != "" {
			recs[i].ServerError = msg
			n++
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
