package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/app"

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// kvCacheTokens is the simulated KV cache size of each model's server, in tokens (about what an 8B model leaves
// for the cache on an 80 GB GPU): vllm:kv_cache_usage_perc is the running requests' tokens over it.
const kvCacheTokens = 262_144

// Seeds of the loss and abort draws are derived from --seed but kept apart from the generator's stream, so
// that the same seed generates the same requests with or without --span-loss and --abort-fraction.
const (
	lossSeedSalt  = 0x5bd1e9955bd1e995
	abortSeedSalt = 0xc2b2ae3d27d4eb4f
)

// ModelCoverage is, for one model or in total, what vLLM's /metrics counted and what happened to the spans.
type ModelCoverage struct {
	vllmmetrics.Counts
	// LostSpans are finished requests whose span --span-loss skipped.
	LostSpans int64 `json:"lost_spans"`
	// UnsampledSpans are finished requests whose span --sample-ratio did not sample: vLLM counted them, no span
	// was created. Finished = spans sent + LostSpans + UnsampledSpans.
	UnsampledSpans int64 `json:"unsampled_spans"`
}

// vllmSide is what vllmgen simulates of the vLLM server itself: it counts every generated request in vLLM's
// own metrics, decides which requests the client aborts (vLLM sends no span for them) and which spans are lost
// on the way (vLLM counted the request, the span never leaves), and keeps the running/waiting gauges. admit runs
// on the dispatcher goroutine; the gauges are read on scrapes.
type vllmSide struct {
	opts     VLLMOptions
	models   []string
	registry *vllmmetrics.Registry
	loss     *rand.Rand
	abort    *rand.Rand
	lost     []int64 // per model
	// sampler is the SDK's head sampler (nil: every span is sampled).
	sampler   *headsample.Sampler
	unsampled []int64 // per model

	mu        sync.Mutex
	occupancy []occupancy // per model
	clock     func() time.Time
}

func newVLLMSide(o Options, clock func() time.Time) (*vllmSide, error) {
	registry, err := vllmmetrics.New(o.Models, "0")
	if err != nil {
		return nil, err
	}
	sampler, err := o.Sampling.sampler()
	if err != nil {
		return nil, err
	}
	v := &vllmSide{
		opts: o.VLLM, models: o.Models, registry: registry,
		loss:      rand.New(rand.NewPCG(o.Seed^lossSeedSalt, o.Seed+lossSeedSalt)),
		abort:     rand.New(rand.NewPCG(o.Seed^abortSeedSalt, o.Seed+abortSeedSalt)),
		lost:      make([]int64, len(o.Models)),
		sampler:   sampler,
		unsampled: make([]int64, len(o.Models)),
		occupancy: make([]occupancy, len(o.Models)),
		clock:     clock,
	}
	for i := range v.occupancy {
		v.occupancy[i] = newOccupancy(occupancyTick, occupancyHorizon)
	}
	registry.BeforeRead(v.updateGauges)
	return v, nil
}

// finishedReason is what vLLM reports for a request that ran to its end: length when it stopped at max_tokens.
// (V0 spans fold n sequences into one; vllmgen counts one finished request per span for them too, where V0
// counted each sequence.)
func finishedReason(rec *workload.Record) string {
	if rec.CompletionTokens >= rec.MaxTokens*max(1, rec.NumSequences) {
		return vllmmetrics.FinishLength
	}
	return vllmmetrics.FinishStop
}

// admit accounts for one API request's spans in vLLM's metrics and returns, in place, the spans to send. An
// aborted request is cut at a uniformly drawn point of its longest span's e2e latency: children that finished
// before it are finished requests, the others are aborted. Every finished request's span is then lost with
// probability SpanLoss. With head sampling, only sampled spans are created: an unsampled one is counted as such
// (its loss draw is still taken, so that the same seed loses the same spans with or without sampling).
func (v *vllmSide) admit(request []workload.Record) []workload.Record {
	var cutUS int64 = -1 // no abort
	if v.opts.AbortFraction > 0 && v.abort.Float64() < v.opts.AbortFraction {
		var longest int64
		for i := range request {
			longest = max(longest, request[i].E2EUS)
		}
		cutUS = int64(v.abort.Float64() * float64(longest))
	}
	firstDropped := false
	kept := request[:0]
	for i := range request {
		rec := request[i]
		model := v.models[rec.Model]
		endUS, scheduledUS := rec.E2EUS, rec.QueueUS
		sent := true
		if cutUS >= 0 && rec.E2EUS > cutUS {
			v.observeAborted(model, &rec, cutUS)
			endUS, sent = cutUS, false
		} else {
			_ = v.registry.ObserveFinished(vllmmetrics.FinishedRequest{
				Model: model, FinishedReason: finishedReason(&rec),
				TTFT: time.Duration(rec.TTFTUS) * time.Microsecond, E2E: time.Duration(rec.E2EUS) * time.Microsecond,
				PromptTokens: rec.PromptTokens, GenerationTokens: rec.CompletionTokens,
			})
			lost := v.opts.SpanLoss > 0 && v.loss.Float64() < v.opts.SpanLoss
			switch {
			case v.sampler != nil && !v.sampler.Sample(rec.TraceID):
				v.unsampled[rec.Model]++
				sent = false
			case lost:
				v.lost[rec.Model]++
				sent = false
			}
		}
		v.occupy(&rec, min(scheduledUS, endUS), endUS)
		if !sent {
			firstDropped = firstDropped || rec.FirstOfRequest
			continue
		}
		if firstDropped {
			// the request is still counted once, on its first span that is sent
			rec.FirstOfRequest, firstDropped = true, false
		}
		kept = append(kept, rec)
	}
	return kept
}

// observeAborted counts what vLLM had processed of a request aborted cutUS after its arrival.
func (v *vllmSide) observeAborted(model string, rec *workload.Record, cutUS int64) {
	a := vllmmetrics.AbortedRequest{Model: model}
	if cutUS >= rec.TTFTUS {
		a.FirstToken = true
		a.TTFT = time.Duration(rec.TTFTUS) * time.Microsecond
		a.PromptTokens = rec.PromptTokens
		a.GenerationTokens = 1
		if rec.TPOTUS > 0 {
			a.GenerationTokens += (cutUS - rec.TTFTUS) / rec.TPOTUS
		}
		a.GenerationTokens = min(a.GenerationTokens, rec.CompletionTokens)
	}
	_ = v.registry.ObserveAborted(a)
}

// occupy places the request on the server's timeline: waiting from its release until it is scheduled, then
// running (holding its tokens in the KV cache) until it ends.
func (v *vllmSide) occupy(rec *workload.Record, scheduledUS, endUS int64) {
	start := rec.ReleasedUnixNano
	v.mu.Lock()
	defer v.mu.Unlock()
	v.occupancy[rec.Model].add(start, start+scheduledUS*1000, start+endUS*1000, rec.PromptTokens+rec.CompletionTokens)
}

func (v *vllmSide) updateGauges() {
	now := v.clock().UnixNano()
	v.mu.Lock()
	defer v.mu.Unlock()
	for i, model := range v.models {
		o := &v.occupancy[i]
		o.advance(now)
		_ = v.registry.SetWaiting(model, o.current[slotWaiting])
		_ = v.registry.SetRunning(model, o.current[slotRunning])
		_ = v.registry.SetKVCacheUsage(model, min(1, float64(o.current[slotTokens])/kvCacheTokens))
	}
}

// coverage returns the per-model and total accounting for the summary.
func (v *vllmSide) coverage() (total ModelCoverage, models map[string]ModelCoverage) {
	models = map[string]ModelCoverage{}
	total.Counts = v.registry.Total()
	for i, model := range v.models {
		c, _ := v.registry.Counts(model)
		models[model] = ModelCoverage{Counts: c, LostSpans: v.lost[i], UnsampledSpans: v.unsampled[i]}
		total.LostSpans += v.lost[i]
		total.UnsampledSpans += v.unsampled[i]
	}
	return total, models
}

// Occupancy timeline resolution and horizon: a request is placed on 100 ms ticks, and one that would end more
// than 15 minutes after the latest scrape ends at the horizon instead (no profile draws latencies that long).
const (
	occupancyTick    = 100 * time.Millisecond
	occupancyHorizon = 15 * time.Minute
)

const (
	slotWaiting = iota
	slotRunning
	slotTokens
	numSlots
)

// occupancy counts requests waiting and running (and their tokens) at a point in time from the start and end
// times of each request, in bounded memory: changes are kept per tick in a ring that covers the horizon.
type occupancy struct {
	tick    int64 // ns
	cursor  int64 // ticks up to and including this one are applied to current
	started bool
	ring    [][numSlots]int64
	current [numSlots]int64
}

func newOccupancy(tick, horizon time.Duration) occupancy {
	return occupancy{tick: int64(tick), ring: make([][numSlots]int64, int64(horizon/tick))}
}

func (o *occupancy) change(atNS int64, slot int, delta int64) {
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

func (o *occupancy) add(startNS, scheduledNS, endNS, tokens int64) {
	o.change(startNS, slotWaiting, 1)
	o.change(scheduledNS, slotWaiting, -1)
	o.change(scheduledNS, slotRunning, 1)
	o.change(scheduledNS, slotTokens, tokens)
	o.change(endNS, slotRunning, -1)
	o.change(endNS, slotTokens, -tokens)
}

// advance applies every change up to nowNS.
func (o *occupancy) advance(nowNS int64) {
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
