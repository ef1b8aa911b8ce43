package emulator // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/emulator"

import (
	"sync"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
)

// KVCacheTokens is the emulated KV cache size in tokens, the same as vllmgen's simulate mode uses:
// vllm:kv_cache_usage_perc is the running requests' prompt + output tokens over it.
const KVCacheTokens = 262_144

// engineLoad counts the requests inside the emulated engine for vLLM's scheduler gauges: waiting from arrival
// until scheduled (blocked on --max-num-seqs or sleeping their drawn queue time), running from then until they
// finish or are aborted.
type engineLoad struct {
	mu               sync.Mutex
	waiting, running int64
	kvTokens         int64
}

type loadPhase int

const (
	phaseWaiting loadPhase = iota
	phaseRunning
	phaseGone
)

// engineRequest is one request's place in engineLoad; leave is idempotent, so a deferred call puts the gauges
// back whichever way the request ends.
type engineRequest struct {
	load   *engineLoad
	phase  loadPhase
	tokens int64 // what the request holds in the KV cache while it runs
}

func (l *engineLoad) arrive(kvTokens int64) *engineRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.waiting++
	return &engineRequest{load: l, tokens: kvTokens}
}

func (r *engineRequest) schedule() {
	l := r.load
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.phase != phaseWaiting {
		return
	}
	l.waiting--
	l.running++
	l.kvTokens += r.tokens
	r.phase = phaseRunning
}

func (r *engineRequest) leave() {
	l := r.load
	l.mu.Lock()
	defer l.mu.Unlock()
	switch r.phase {
	case phaseWaiting:
		l.waiting--
	case phaseRunning:
		l.running--
		l.kvTokens -= r.tokens
	}
	r.phase = phaseGone
}

// updateGauges runs before every /metrics read. The registry only rejects an unknown model or negative
// values; neither can happen here, so its errors are not checked.
func (s *Server) updateGauges() {
	s.load.mu.Lock()
	waiting, running, kv := s.load.waiting, s.load.running, s.load.kvTokens
	s.load.mu.Unlock()
	_ = s.metrics.SetWaiting(s.cfg.Model, waiting)
	_ = s.metrics.SetRunning(s.cfg.Model, running)
	_ = s.metrics.SetKVCacheUsage(s.cfg.Model, min(1, float64(kv)/KVCacheTokens))
}

// observeFinished counts a request that ran to its end, at the moment vLLM's output processor sees its last
// token (before the last chunk goes out, so a client that leaves after that does not undo it).
func (s *Server) observeFinished(reason string, ttft, e2e time.Duration, prompt, generated int64) {
	// Cannot fail: the model is the served one, the reason one of vLLM's, the counts non-negative.
	_ = s.metrics.ObserveFinished(vllmmetrics.FinishedRequest{
		Model: s.cfg.Model, FinishedReason: reason, TTFT: ttft, E2E: e2e,
		PromptTokens: prompt, GenerationTokens: generated,
	})
}

// abort ends a request whose client went away after `generated` output tokens had been processed: as vLLM, no
// span and no request_success, but its tokens and (once the first token came) its TTFT count.
func (s *Server) abort(out Outcome, r *engineRequest, why string, ttft time.Duration, generated int64) {
	r.leave() // before anyone hears of the outcome, so that the gauges already agree
	out.Error = why
	out.FinishReason = vllmmetrics.FinishAbort
	out.CompletionTokens = generated
	a := vllmmetrics.AbortedRequest{Model: s.cfg.Model, FirstToken: generated > 0}
	if a.FirstToken {
		a.TTFT, a.PromptTokens, a.GenerationTokens = ttft, out.PromptTokens, generated
		out.TTFT = ttft.Seconds()
	}
	_ = s.metrics.ObserveAborted(a) // cannot fail, as in observeFinished
	s.finish(out)
}

// Metrics returns the registry behind GET /metrics.
func (s *Server) Metrics() *vllmmetrics.Registry { return s.metrics }
