// Package engine is vllmgen's one emulated vLLM engine, under both subcommands: the served models, the
// scheduler's waiting and running requests and the KV cache they hold, the finished and aborted requests vLLM
// counts, the Prometheus registry of vLLM's own metrics (vllmmetrics) and the HTTP server it is scraped on.
//
// `vllmgen` (send) places each generated request on the engine's timeline at once, arrival, scheduling and end
// included (Place), since it knows them in advance; `vllmgen serve` moves each request through the engine as it
// happens (Arrive, Schedule, Leave). Either way the gauges are read from the same timeline on each scrape.
package engine // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"

import (
	"net/http"
	"sync"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
)

// KVCacheTokens is the emulated KV cache of each model's server, in tokens (about what an 8B model leaves for
// the cache on an 80 GB GPU): vllm:kv_cache_usage_perc is the running requests' prompt + output tokens over it.
const KVCacheTokens = 262_144

// Timeline resolution and horizon: changes are kept on 100 ms ticks, and one more than 15 minutes after the
// latest scrape happens at the horizon instead (no profile draws latencies that long).
const (
	timelineTick    = 100 * time.Millisecond
	timelineHorizon = 15 * time.Minute
)

// Engine is one vLLM engine (engine="0") serving a fixed set of models. It is safe for concurrent use.
type Engine struct {
	models   []string
	registry *vllmmetrics.Registry
	clock    func() time.Time

	mu        sync.Mutex
	timelines []timeline // per model
}

// New returns an idle engine serving models; clock is read on every scrape (and by Arrive, Schedule, Leave).
func New(models []string, clock func() time.Time) (*Engine, error) {
	registry, err := vllmmetrics.New(models, "0")
	if err != nil {
		return nil, err
	}
	e := &Engine{models: registry.Models(), registry: registry, clock: clock, timelines: make([]timeline, len(models))}
	for i := range e.timelines {
		e.timelines[i] = newTimeline(timelineTick, timelineHorizon)
	}
	registry.BeforeRead(e.updateGauges)
	return e, nil
}

// Metrics is the registry behind /metrics.
func (e *Engine) Metrics() *vllmmetrics.Registry { return e.registry }

// Handler serves the registry in Prometheus text format, as vLLM's /metrics.
func (e *Engine) Handler() http.Handler { return e.registry.Handler() }

// Finished counts a request that ran to its end, as vLLM's output processor does when it sees its last token.
// It fails only for an unknown model or reason or negative token counts.
func (e *Engine) Finished(r vllmmetrics.FinishedRequest) error { return e.registry.ObserveFinished(r) }

// Aborted counts what vLLM had processed of a request whose client went away (no span, no request_success).
func (e *Engine) Aborted(r vllmmetrics.AbortedRequest) error { return e.registry.ObserveAborted(r) }

// Place puts a whole request of model (an index into the models) on the timeline: waiting from arrival until
// scheduled, then running and holding kvTokens in the KV cache until end. Times are Unix nanoseconds and may lie
// in the future.
func (e *Engine) Place(model int, kvTokens, arrival, scheduled, end int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timelines[model].add(arrival, scheduled, end, kvTokens)
}

type phase int

const (
	phaseWaiting phase = iota
	phaseRunning
	phaseGone
)

// Request is one request moving through the engine now (Engine.Arrive). Leave is idempotent, so a deferred call
// puts the gauges back whichever way the request ends.
type Request struct {
	engine *Engine
	model  int
	phase  phase
	tokens int64 // what the request holds in the KV cache while it runs
}

// Arrive makes a request of model wait now; it will hold kvTokens in the KV cache while it runs.
func (e *Engine) Arrive(model int, kvTokens int64) *Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.timelines[model].change(e.clock().UnixNano(), slotWaiting, 1)
	return &Request{engine: e, model: model, tokens: kvTokens}
}

// Schedule moves a waiting request to running now.
func (r *Request) Schedule() {
	e := r.engine
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.phase != phaseWaiting {
		return
	}
	t, now := &e.timelines[r.model], e.clock().UnixNano()
	t.change(now, slotWaiting, -1)
	t.change(now, slotRunning, 1)
	t.change(now, slotTokens, r.tokens)
	r.phase = phaseRunning
}

// Leave takes the request out of the engine now, finished or aborted.
func (r *Request) Leave() {
	e := r.engine
	e.mu.Lock()
	defer e.mu.Unlock()
	t, now := &e.timelines[r.model], e.clock().UnixNano()
	switch r.phase {
	case phaseWaiting:
		t.change(now, slotWaiting, -1)
	case phaseRunning:
		t.change(now, slotRunning, -1)
		t.change(now, slotTokens, -r.tokens)
	}
	r.phase = phaseGone
}

// updateGauges runs before every /metrics read. The registry only rejects an unknown model or negative values;
// neither can happen here, so its errors are not checked.
func (e *Engine) updateGauges() {
	now := e.clock().UnixNano()
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, model := range e.models {
		t := &e.timelines[i]
		t.advance(now)
		_ = e.registry.SetWaiting(model, t.current[slotWaiting])
		_ = e.registry.SetRunning(model, t.current[slotRunning])
		_ = e.registry.SetKVCacheUsage(model, min(1, float64(t.current[slotTokens])/KVCacheTokens))
	}
}

const (
	slotWaiting = iota
	slotRunning
	slotTokens
	numSlots
)

// timeline counts requests waiting and running (and their tokens) at a point in time from the times each
// request changes state, in bounded memory: changes are kept per tick in a ring that covers the horizon.
type timeline struct {
	tick    int64 // ns
	cursor  int64 // ticks up to and including this one are applied to current
	started bool
	ring    [][numSlots]int64
	current [numSlots]int64
}

func newTimeline(tick, horizon time.Duration) timeline {
	return timeline{tick: int64(tick), ring: make([][numSlots]int64, int64(horizon/tick))}
}

func (o *timeline) change(atNS int64, slot int, delta int64) {
	t := atNS / o.tick
	if !o.started {
		o.cursor, o.started = t-1, true
	}
	if t <= o.cursor {
		o.current[slot] += delta
		return
	}
	t = min(t, o.cursor+int64(len(o.ring)))
	o.ring[t%int64(len(o.ring))][slot] += delta
}

func (o *timeline) add(startNS, scheduledNS, endNS, tokens int64) {
	o.change(startNS, slotWaiting, 1)
	o.change(scheduledNS, slotWaiting, -1)
	o.change(scheduledNS, slotRunning, 1)
	o.change(scheduledNS, slotTokens, tokens)
	o.change(endNS, slotRunning, -1)
	o.change(endNS, slotTokens, -tokens)
}

// advance applies every change up to nowNS.
func (o *timeline) advance(nowNS int64) {
	now := nowNS / o.tick
	if !o.started {
		o.cursor, o.started = now, true
		return
	}
	n := int64(len(o.ring))
	for t := o.cursor + 1; t <= now && t <= o.cursor+n; t++ {
		slot := &o.ring[t%n]
		for i := range slot {
			o.current[i] += slot[i]
		}
		*slot = [numSlots]int64{}
	}
	o.cursor = max(o.cursor, now)
}
