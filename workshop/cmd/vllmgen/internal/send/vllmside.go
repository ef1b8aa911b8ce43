package send // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"

import (
	"math/rand/v2"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

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

// vllmSide is the vLLM server the generated requests go through: it counts every request on the emulated engine
// (its /metrics and its waiting/running/KV cache timeline), decides which requests the client aborts (vLLM sends
// no span for them), which spans the SDK's head sampler does not create and which are lost on the way (vLLM
// counted the request, the span never leaves). admit runs on the dispatcher goroutine; the engine's gauges are
// read on scrapes.
type vllmSide struct {
	opts   VLLMOptions
	models []string
	engine *engine.Engine
	loss   *rand.Rand
	abort  *rand.Rand
	lost   []int64 // per model
	// sampler is the SDK's head sampler (nil: every span is sampled).
	sampler   *headsample.Sampler
	unsampled []int64 // per model
}

func newVLLMSide(o Options, clock func() time.Time) (*vllmSide, error) {
	eng, err := engine.New(o.Models, clock)
	if err != nil {
		return nil, err
	}
	sampler, err := o.Sampling.sampler()
	if err != nil {
		return nil, err
	}
	v := &vllmSide{
		opts: o.VLLM, models: o.Models, engine: eng,
		loss:      rand.New(rand.NewPCG(o.Seed^lossSeedSalt, o.Seed+lossSeedSalt)),
		abort:     rand.New(rand.NewPCG(o.Seed^abortSeedSalt, o.Seed+abortSeedSalt)),
		lost:      make([]int64, len(o.Models)),
		sampler:   sampler,
		unsampled: make([]int64, len(o.Models)),
	}
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
			_ = v.engine.Finished(vllmmetrics.FinishedRequest{
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
	_ = v.engine.Aborted(a)
}

// occupy places the request on the server's timeline: waiting from its release until it is scheduled, then
// running (holding its prompt and output tokens in the KV cache) until it ends.
func (v *vllmSide) occupy(rec *workload.Record, scheduledUS, endUS int64) {
	start := rec.ReleasedUnixNano
	v.engine.Place(rec.Model, rec.PromptTokens+rec.CompletionTokens, start, start+scheduledUS*1000, start+endUS*1000)
}

// coverage returns the per-model and total accounting for the summary.
func (v *vllmSide) coverage() (total ModelCoverage, models map[string]ModelCoverage) {
	models = map[string]ModelCoverage{}
	total.Counts = v.engine.Metrics().Total()
	for i, model := range v.models {
		c, _ := v.engine.Metrics().Counts(model)
		models[model] = ModelCoverage{Counts: c, LostSpans: v.lost[i], UnsampledSpans: v.unsampled[i]}
		total.LostSpans += v.lost[i]
		total.UnsampledSpans += v.unsampled[i]
	}
	return total, models
}
