package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Profile names a latency/token distribution set.
type Profile int

const (
	// ProfileChat: short prompts, TTFT ≈ 50–400 ms, TPOT ≈ 10–60 ms.
	ProfileChat Profile = iota
	// ProfileBatch: long prompts and outputs, queueing, TTFT ≈ 0.3–5 s, TPOT ≈ 20–150 ms.
	ProfileBatch
	// ProfileMixed draws each request from chat (70 %) or batch (30 %).
	ProfileMixed
)

var profileNames = [...]string{"chat", "batch", "mixed"}

// ParseProfile converts a --profile value.
func ParseProfile(s string) (Profile, error) {
	for i, name := range profileNames {
		if s == name {
			return Profile(i), nil
		}
	}
	return 0, fmt.Errorf("unknown profile %q (want chat, batch or mixed)", s)
}

func (p Profile) String() string {
	if p < 0 || int(p) >= len(profileNames) {
		return fmt.Sprintf("Profile(%d)", int(p))
	}
	return profileNames[p]
}

// mixedChatShare is the share of chat requests in ProfileMixed.
const mixedChatShare = 0.7

// logNormal is a log-normal distribution given by its median and the σ of the underlying normal,
// clamped to [min, max] so that no draw is absurd.
type logNormal struct {
	median, sigma, min, max float64
}

func (d logNormal) draw(r *rand.Rand) float64 {
	v := d.median * math.Exp(d.sigma*r.NormFloat64())
	return min(max(v, d.min), d.max)
}

// uniformUS is a uniform integer distribution over [lo, hi] microseconds.
type uniformUS struct{ lo, hi int64 }

func (u uniformUS) draw(r *rand.Rand) int64 { return u.lo + r.Int64N(u.hi-u.lo+1) }

// distributions is one profile's parameters. Latencies are in microseconds.
type distributions struct {
	promptTokens logNormal
	outputTokens logNormal // per sequence, then capped at max_tokens
	maxTokens    []int64   // max_tokens choices (uniform)
	oneTokenProb float64   // probability of max_tokens = 1, i.e. a 1-token output with no decode phase

	queueUS          logNormal // waiting in the scheduler queue
	prefillBaseUS    float64   // prefill = (base + perToken·prompt) · jitter
	prefillPerTokUS  float64
	prefillJitter    logNormal
	prefillClampUS   [2]float64
	frontendUS       uniformUS // TTFT − queue − prefill: IPC + output processing of the first token (V1)
	tpotUS           logNormal // per output token once decoding
	finishUS         uniformUS // e2e − ttft − decode: output processing of the last token
	spanEndDelayUS   uniformUS // span end − start − e2e
	schedulerStepUS  uniformUS // V0 time_in_scheduler per engine step
	executeShare     [2]float64
	forwardOfExecute [2]float64
}

var chatDistributions = distributions{
	promptTokens:     logNormal{median: 300, sigma: 0.9, min: 8, max: 4096},
	outputTokens:     logNormal{median: 150, sigma: 0.9, min: 1, max: 2048},
	maxTokens:        []int64{256, 512, 1024, 2048},
	oneTokenProb:     0.03,
	queueUS:          logNormal{median: 8_000, sigma: 1.0, min: 100, max: 150_000},
	prefillBaseUS:    40_000,
	prefillPerTokUS:  120,
	prefillJitter:    logNormal{median: 1, sigma: 0.25, min: 0.5, max: 2},
	prefillClampUS:   [2]float64{20_000, 300_000},
	frontendUS:       uniformUS{2_000, 12_000},
	tpotUS:           logNormal{median: 25_000, sigma: 0.35, min: 10_000, max: 60_000},
	finishUS:         uniformUS{200, 3_000},
	spanEndDelayUS:   uniformUS{50, 1_500},
	schedulerStepUS:  uniformUS{40, 250},
	executeShare:     [2]float64{0.80, 0.95},
	forwardOfExecute: [2]float64{0.70, 0.92},
}

var batchDistributions = distributions{
	promptTokens:     logNormal{median: 2_500, sigma: 0.6, min: 256, max: 16_384},
	outputTokens:     logNormal{median: 700, sigma: 0.6, min: 1, max: 4_096},
	maxTokens:        []int64{1024, 2048, 4096},
	oneTokenProb:     0.01,
	queueUS:          logNormal{median: 400_000, sigma: 1.0, min: 1_000, max: 20_000_000},
	prefillBaseUS:    60_000,
	prefillPerTokUS:  200,
	prefillJitter:    logNormal{median: 1, sigma: 0.25, min: 0.5, max: 2},
	prefillClampUS:   [2]float64{50_000, 10_000_000},
	frontendUS:       uniformUS{5_000, 40_000},
	tpotUS:           logNormal{median: 45_000, sigma: 0.3, min: 20_000, max: 150_000},
	finishUS:         uniformUS{500, 5_000},
	spanEndDelayUS:   uniformUS{100, 3_000},
	schedulerStepUS:  uniformUS{60, 400},
	executeShare:     [2]float64{0.80, 0.95},
	forwardOfExecute: [2]float64{0.70, 0.92},
}

func (p Profile) pick(r *rand.Rand) *distributions {
	switch p {
	case ProfileBatch:
		return &batchDistributions
	case ProfileMixed:
		if r.Float64() < mixedChatShare {
			return &chatDistributions
		}
		return &batchDistributions
	default:
		return &chatDistributions
	}
}
