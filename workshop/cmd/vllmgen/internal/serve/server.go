// Package serve is `vllmgen serve`: an OpenAI-compatible streaming server that behaves like vLLM, for demos and
// tests. Each request's timing (queue, prefill, per-token decode) is drawn from a vllmgen profile and slept for
// real, a concurrency limit queues requests like vLLM's --max-num-seqs, the stream ends with vLLM's usage chunk,
// and the finished request is exported as vLLM's llm_request span (vllmrequesttest.WriteSpan's V1 dialect),
// measured from the server's own clock and parented on the incoming traceparent. The requests move through the
// emulated engine (package engine) as they are served; GET /metrics serves its registry, counted as vLLM counts.
package serve // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/serve"

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// TimingFunc draws the timing of one request. The emulator calls it under its own lock.
type TimingFunc func(r *rand.Rand, promptTokens, maxTokens int64) workload.ServingTiming

// FixedTiming gives every request the same timing: no queue time, the given prefill and time per token, and
// max_tokens output tokens.
func FixedTiming(prefill, tpot time.Duration) TimingFunc {
	return func(_ *rand.Rand, _, maxTokens int64) workload.ServingTiming {
		return workload.ServingTiming{Prefill: prefill, TPOT: tpot, OutputTokens: maxTokens}
	}
}

// Config is what the server emulates.
type Config struct {
	// Model is the served model name; requests for another model get vLLM's 404.
	Model   string
	Profile workload.Profile
	// Timing overrides the profile (benchmarks use a fixed timing).
	Timing TimingFunc
	Seed   uint64
	// MaxNumSeqs is the number of requests decoding at once; the rest wait in the queue.
	MaxNumSeqs int
	// Every StragglerEvery-th request (in arrival order) waits StragglerDelay longer in the queue.
	StragglerEvery int
	StragglerDelay time.Duration
	// DefaultMaxTokens is used when a request gives neither max_tokens nor max_completion_tokens.
	DefaultMaxTokens int64
	// Spans receives the finished requests' spans; nil disables tracing.
	Spans *SpanExporter
	// RequestLog, when set, receives one JSON line per request (Outcome).
	RequestLog io.Writer
	// OnFinish, when set, is called with every outcome (benchmarks and tests).
	OnFinish func(Outcome)
}

// Defaults documented in the README.
const (
	DefaultMaxNumSeqs = 256
	DefaultMaxTokens  = 256
	maxBodyBytes      = 4 << 20
)

// Outcome is what the emulator did with one request: its plan and the values it measured (and exported on
// the span). Latencies are seconds, as on vLLM's span.
type Outcome struct {
	RequestID    string `json:"request_id"`
	TraceID      string `json:"trace_id,omitempty"`
	ParentSpanID string `json:"parent_span_id,omitempty"`
	SpanID       string `json:"span_id,omitempty"`
	Sampled      bool   `json:"sampled"`
	Straggler    bool   `json:"straggler"`
	// ArrivalUnixNano is vLLM's arrival time, the start of the span; the latencies count from it.
	ArrivalUnixNano int64 `json:"arrival_unix_nano"`
	PromptTokens    int64 `json:"prompt_tokens"`
	// CompletionTokens of an aborted request are those processed before the client left.
	CompletionTokens int64 `json:"completion_tokens"`
	// FinishReason is stop or length for a finished request, abort when the client left before the end.
	FinishReason string  `json:"finish_reason"`
	Queue        float64 `json:"time_in_queue"`
	Prefill      float64 `json:"time_in_model_prefill"`
	Decode       float64 `json:"time_in_model_decode"`
	Inference    float64 `json:"time_in_model_inference"`
	TTFT         float64 `json:"time_to_first_token"`
	E2E          float64 `json:"e2e"`
	// Error is set for requests that did not finish (client gone); vLLM exports no span for them.
	Error string `json:"error,omitempty"`
	// WriteError is set when a finished request's last chunks could not be written (the client left after
	// its last token): it still counts as finished and has its span, as in vLLM.
	WriteError string `json:"write_error,omitempty"`
}

// Server is the HTTP handler.
type Server struct {
	cfg    Config
	slots  chan struct{}
	mux    *http.ServeMux
	engine *engine.Engine

	mu       sync.Mutex
	rng      *rand.Rand
	arrivals uint64
	logMu    sync.Mutex
}

// New validates cfg and returns the server.
func New(cfg Config) (*Server, error) {
	if cfg.Model == "" {
		return nil, errors.New("served model name must not be empty")
	}
	if cfg.MaxNumSeqs <= 0 {
		return nil, fmt.Errorf("max-num-seqs must be positive, got %d", cfg.MaxNumSeqs)
	}
	if cfg.StragglerEvery < 0 || cfg.StragglerDelay < 0 {
		return nil, errors.New("straggler-every and straggler-delay must not be negative")
	}
	if cfg.DefaultMaxTokens <= 0 {
		cfg.DefaultMaxTokens = DefaultMaxTokens
	}
	if cfg.Timing == nil {
		profile := cfg.Profile
		cfg.Timing = func(r *rand.Rand, prompt, maxTokens int64) workload.ServingTiming {
			return profile.DrawServing(r, prompt, maxTokens)
		}
	}
	eng, err := engine.New([]string{cfg.Model}, time.Now)
	if err != nil {
		return nil, err
	}
	s := &Server{
		engine: eng,
		cfg:    cfg,
		slots:  make(chan struct{}, cfg.MaxNumSeqs),
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5851f42d4c957f2d)),
		mux:    http.NewServeMux(),
	}
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, false) })
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.serve(w, r, true) })
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	// vLLM serves its Prometheus metrics on the API port.
	s.mux.Handle("GET "+engine.MetricsPath, eng.Handler())
	return s, nil
}

// Engine is the emulated engine: its /metrics registry counts the requests served.
func (s *Server) Engine() *engine.Engine { return s.engine }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"object": "list",
		"data":   []map[string]any{{"id": s.cfg.Model, "object": "model", "owned_by": "vllm"}},
	})
}

// request is the part of an OpenAI completion / chat completion request the emulator reads.
type request struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []chatMessage   `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	IgnoreEOS   bool     `json:"ignore_eos"`
	Temperature *float64 `json:"temperature"`
	TopP        *float64 `json:"top_p"`
	N           *int64   `json:"n"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// writeError answers with vLLM's error body.
func writeError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": code,
	}})
}

// countTokens stands in for a tokenizer: one token per whitespace-separated word, at least one.
func countTokens(s string) int64 { return max(1, int64(len(strings.Fields(s)))) }

func (req *request) promptTokens(chat bool) (int64, error) {
	if chat {
		if len(req.Messages) == 0 {
			return 0, errors.New("messages must not be empty")
		}
		var n int64
		for _, m := range req.Messages {
			n += int64(len(strings.Fields(m.Content)))
		}
		return max(1, n), nil
	}
	var prompt string
	if err := json.Unmarshal(req.Prompt, &prompt); err != nil {
		return 0, errors.New("prompt must be a string")
	}
	return countTokens(prompt), nil
}

// plan is one request's drawn timing and identity.
type plan struct {
	timing    workload.ServingTiming
	straggler bool
	id        string
	spanID    pcommon.SpanID
	traceID   pcommon.TraceID
}

func (s *Server) draw(chat bool, prompt, maxTokens int64) plan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.arrivals++
	p := plan{timing: s.cfg.Timing(s.rng, prompt, maxTokens)}
	if s.cfg.StragglerEvery > 0 && s.arrivals%uint64(s.cfg.StragglerEvery) == 0 {
		p.straggler = true
		p.timing.Queue += s.cfg.StragglerDelay
	}
	prefix := "cmpl-"
	if chat {
		prefix = "chatcmpl-"
	}
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(raw[8:], s.rng.Uint64())
	p.id = prefix + hex.EncodeToString(raw[:])
	binary.BigEndian.PutUint64(p.spanID[:], s.rng.Uint64()|1)
	binary.BigEndian.PutUint64(p.traceID[:8], s.rng.Uint64())
	binary.BigEndian.PutUint64(p.traceID[8:], s.rng.Uint64()|1)
	return p
}

// sleepUntil waits for t or the request's end; false means the client went away.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, chat bool) {
	var req request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", "invalid JSON body: "+err.Error())
		return
	}
	if req.Model != s.cfg.Model {
		writeError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	prompt, err := req.promptTokens(chat)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadRequestError", err.Error())
		return
	}
	maxTokens := s.cfg.DefaultMaxTokens
	if req.MaxCompletionTokens != nil {
		maxTokens = *req.MaxCompletionTokens
	} else if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	if maxTokens < 1 {
		writeError(w, http.StatusBadRequest, "BadRequestError", "max_tokens must be at least 1")
		return
	}
	if req.N != nil && *req.N != 1 {
		writeError(w, http.StatusBadRequest, "BadRequestError", "the emulator serves n=1 only")
		return
	}
	parent, hasParent := parseTraceparent(r.Header.Get("traceparent"))
	// vLLM's arrival time is taken after the HTTP request was parsed and tokenised.
	arrival := time.Now()
	p := s.draw(chat, prompt, maxTokens)
	output := max(1, p.timing.OutputTokens) // a generation request always yields a token
	if req.IgnoreEOS || output > maxTokens {
		output = maxTokens
	}

	out := Outcome{RequestID: p.id, Straggler: p.straggler, PromptTokens: prompt, Sampled: true, ArrivalUnixNano: arrival.UnixNano()}
	traceID := p.traceID
	if hasParent {
		traceID = parent.traceID
		out.Sampled = parent.sampled
		out.ParentSpanID = hex.EncodeToString(parent.spanID[:])
	}
	out.TraceID = hex.EncodeToString(traceID[:])
	out.SpanID = hex.EncodeToString(p.spanID[:])

	ctx := r.Context()
	// The request is in the engine from here: it waits for a slot and its queue time, then runs until its last
	// token. Its KV cache share is its prompt and output, as for the requests `vllmgen` sends.
	inEngine := s.engine.Arrive(0, prompt+output)
	defer inEngine.Leave()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		s.abort(out, inEngine, "client disconnected while queued", 0, 0)
		return
	}
	released := false
	release := func() {
		if !released {
			released = true
			inEngine.Leave()
			<-s.slots
		}
	}
	defer release()

	var st stream
	st.init(w, chat, p.id, s.cfg.Model, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
	if output < maxTokens {
		st.finishReason = vllmmetrics.FinishStop
	}
	if !sleepUntil(ctx, time.Now().Add(p.timing.Queue)) {
		s.abort(out, inEngine, "client disconnected while queued", 0, 0)
		return
	}
	scheduled := time.Now()
	inEngine.Schedule()
	if !sleepUntil(ctx, scheduled.Add(p.timing.Prefill)) {
		s.abort(out, inEngine, "client disconnected during prefill", 0, 0)
		return
	}
	firstToken := time.Now()
	lastToken := firstToken
	var ttft, e2e time.Duration
	for i := int64(1); i <= output; i++ {
		engineTS := firstToken.Add(time.Duration(i-1) * p.timing.TPOT)
		if !sleepUntil(ctx, engineTS.Add(p.timing.Frontend)) {
			// token i never reached the frontend: i-1 were processed
			s.abort(out, inEngine, "client disconnected during decode", ttft, i-1)
			return
		}
		lastToken = engineTS
		// vLLM's TTFT and e2e are the frontend's timestamp of the batch, taken before the chunk goes out.
		now := time.Now()
		if i == 1 {
			ttft = now.Sub(arrival)
		}
		if i == output {
			// vLLM finishes the request (stats and span) when it processes the last token, before the client
			// sees it.
			e2e = now.Sub(arrival)
			release()
			s.observeFinished(st.finishReason, ttft, e2e, prompt, output)
		}
		if err := st.token(i == 1, i == output); err != nil {
			if i < output {
				s.abort(out, inEngine, "client disconnected: "+err.Error(), ttft, i)
				return
			}
			out.WriteError = err.Error()
		}
	}
	if out.WriteError == "" {
		if err := st.end(prompt, output); err != nil {
			out.WriteError = err.Error()
		}
	}
	out.FinishReason = st.finishReason
	out.CompletionTokens = output
	out.Queue = scheduled.Sub(arrival).Seconds()
	out.Prefill = firstToken.Sub(scheduled).Seconds()
	out.Decode = lastToken.Sub(firstToken).Seconds()
	out.Inference = lastToken.Sub(scheduled).Seconds()
	out.TTFT = ttft.Seconds()
	out.E2E = e2e.Seconds()
	if s.cfg.Spans != nil && out.Sampled {
		s.cfg.Spans.Add(workload.Record{
			TraceID:          traceID,
			ParentSpanID:     parent.spanID,
			SpanID:           p.spanID,
			RequestID:        p.id,
			N:                1,
			Temperature:      valueOr(req.Temperature, 1.0),
			TopP:             valueOr(req.TopP, 1.0),
			MaxTokens:        maxTokens,
			PromptTokens:     prompt,
			CompletionTokens: output,
			QueueUS:          scheduled.Sub(arrival).Microseconds(),
			PrefillUS:        firstToken.Sub(scheduled).Microseconds(),
			DecodeUS:         lastToken.Sub(firstToken).Microseconds(),
			TTFTUS:           ttft.Microseconds(),
			E2EUS:            e2e.Microseconds(),
			SpanDurationUS:   time.Since(arrival).Microseconds(),
			ReleasedUnixNano: arrival.UnixNano(),
		})
	}
	s.finish(out)
}

func valueOr(p *float64, def float64) float64 {
	if p == nil {
		return def
	}
	return *p
}

// observeFinished counts a request that ran to its end, at the moment vLLM's output processor sees its last
// token (before the last chunk goes out, so a client that leaves after that does not undo it).
func (s *Server) observeFinished(reason string, ttft, e2e time.Duration, prompt, generated int64) {
	// Cannot fail: the model is the served one, the reason one of vLLM's, the counts non-negative.
	_ = s.engine.Finished(vllmmetrics.FinishedRequest{
		Model: s.cfg.Model, FinishedReason: reason, TTFT: ttft, E2E: e2e,
		PromptTokens: prompt, GenerationTokens: generated,
	})
}

// abort ends a request whose client went away after `generated` output tokens had been processed: as vLLM, no
// span and no request_success, but its tokens and (once the first token came) its TTFT count.
func (s *Server) abort(out Outcome, r *engine.Request, why string, ttft time.Duration, generated int64) {
	r.Leave() // before anyone hears of the outcome, so that the gauges already agree
	out.Error = why
	out.FinishReason = vllmmetrics.FinishAbort
	out.CompletionTokens = generated
	a := vllmmetrics.AbortedRequest{Model: s.cfg.Model, FirstToken: generated > 0}
	if a.FirstToken {
		a.TTFT, a.PromptTokens, a.GenerationTokens = ttft, out.PromptTokens, generated
		out.TTFT = ttft.Seconds()
	}
	_ = s.engine.Aborted(a) // cannot fail, as in observeFinished
	s.finish(out)
}

func (s *Server) finish(out Outcome) {
	if s.cfg.RequestLog != nil {
		line, _ := json.Marshal(out)
		s.logMu.Lock()
		_, _ = s.cfg.RequestLog.Write(append(line, '\n'))
		s.logMu.Unlock()
	}
	if s.cfg.OnFinish != nil {
		s.cfg.OnFinish(out)
	}
}

// traceParent is a parsed W3C traceparent header.
type traceParent struct {
	traceID pcommon.TraceID
	spanID  pcommon.SpanID
	sampled bool
}

// parseTraceparent reads "00-<32 hex>-<16 hex>-<2 hex>". An invalid header is ignored, as W3C Trace Context
// requires, and the request becomes a root span.
func parseTraceparent(h string) (traceParent, bool) {
	var tp traceParent
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return tp, false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return tp, false
	}
	if _, err := hex.Decode(tp.traceID[:], []byte(parts[1])); err != nil || tp.traceID.IsEmpty() {
		return tp, false
	}
	if _, err := hex.Decode(tp.spanID[:], []byte(parts[2])); err != nil || tp.spanID.IsEmpty() {
		return tp, false
	}
	flags, err := strconv.ParseUint(parts[3], 16, 8)
	if err != nil {
		return tp, false
	}
	tp.sampled = flags&1 == 1
	return tp, true
}
