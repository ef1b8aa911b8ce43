package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// MaxN is the largest n a generated request has (n=2 with probability Config.NProb).
const MaxN = 2

// Config chooses what the Generator produces.
type Config struct {
	Shape   Shape
	Profile Profile
	// Models are the served models; each request picks one uniformly.
	Models []string
	// Seed makes the value sequence reproducible; the same Config yields the same Records.
	Seed uint64
	// NProb is the probability that a request asks for n=2.
	NProb float64
	// GreedyProb is the probability of temperature 0.
	GreedyProb float64
}

// Validate reports a Config the Generator cannot honour.
func (c Config) Validate() error {
	var errs []error
	if len(c.Models) == 0 {
		errs = append(errs, errors.New("at least one model is required"))
	}
	for _, m := range c.Models {
		if m == "" {
			errs = append(errs, errors.New("model names must not be empty"))
			break
		}
	}
	if c.Shape < ShapeV1 || c.Shape > ShapeV0Detailed {
		errs = append(errs, fmt.Errorf("invalid shape %d", int(c.Shape)))
	}
	if c.Profile < ProfileChat || c.Profile > ProfileMixed {
		errs = append(errs, fmt.Errorf("invalid profile %d", int(c.Profile)))
	}
	if !(c.NProb >= 0 && c.NProb <= 1) {
		errs = append(errs, fmt.Errorf("n probability %v is not within [0, 1]", c.NProb))
	}
	if !(c.GreedyProb >= 0 && c.GreedyProb <= 1) {
		errs = append(errs, fmt.Errorf("greedy probability %v is not within [0, 1]", c.GreedyProb))
	}
	return errors.Join(errs...)
}

// Record is one generated llm_request span with every value the generator chose. Latencies are whole
// microseconds so that expected sums are exact integers.
type Record struct {
	// Model indexes Config.Models.
	Model int
	// FirstOfRequest marks the first span of an API call; counting these counts requests.
	FirstOfRequest bool
	TraceID        pcommon.TraceID
	SpanID         pcommon.SpanID
	// ParentSpanID is the span of the request's incoming traceparent (vllmgen serve); empty for a root span.
	ParentSpanID pcommon.SpanID

	RequestID string
	// N is gen_ai.request.n as written on the span: V1 children carry 1, V0 carries the API n.
	N int64
	// NumSequences is gen_ai.usage.num_sequences (V0 only).
	NumSequences int64
	// BestOf is gen_ai.request.best_of (v0-detailed only); vLLM defaults it to n.
	BestOf int64
	// Temperature 0 means greedy: V1 omits the attribute, V0 writes 0.0.
	Temperature      float64
	TopP             float64
	MaxTokens        int64
	PromptTokens     int64
	CompletionTokens int64

	QueueUS int64
	// PrefillUS and DecodeUS are the span attributes in V1; for V0 they are what a consumer derives:
	// prefill = ttft − queue, decode = e2e − ttft.
	PrefillUS int64
	DecodeUS  int64
	TTFTUS    int64
	E2EUS     int64
	// TPOTUS = DecodeUS / (CompletionTokens − 1) exactly; meaningful only when HasTPOT.
	TPOTUS int64

	// V0 engine-side sums: time_in_scheduler (both V0 shapes), forward and execute (v0-detailed).
	SchedulerUS int64
	ForwardUS   int64
	ExecuteUS   int64

	// SpanDurationUS is span end − start (≥ E2EUS).
	SpanDurationUS int64
	// RequestDurationUS is the longest SpanDurationUS among the request's spans, so that every span of one
	// API call can share the arrival time whichever Anchor is used.
	RequestDurationUS int64
	// ReleasedUnixNano is when the sender released the request; SpanBuilder anchors the span times on it.
	ReleasedUnixNano int64
}

// InferenceUS is time_in_model_inference: prefill + decode, exactly.
func (r *Record) InferenceUS() int64 { return r.PrefillUS + r.DecodeUS }

// HasTPOT reports whether time per output token is defined (at least two output tokens).
func (r *Record) HasTPOT() bool { return r.CompletionTokens >= 2 }

// Generator produces the deterministic sequence of requests of a Config. It is not safe for concurrent use.
type Generator struct {
	cfg      Config
	rng      *rand.Rand
	requests uint64
}

// NewGenerator validates cfg and returns a generator positioned at the first request.
func NewGenerator(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Models = append([]string(nil), cfg.Models...)
	return &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// Config returns the generator's configuration.
func (g *Generator) Config() Config { return g.cfg }

// Requests is how many requests Next has produced.
func (g *Generator) Requests() uint64 { return g.requests }

var (
	temperatures = []float64{0.2, 0.5, 0.7, 0.8, 1.0}
	topPs        = []float64{0.8, 0.9, 0.95, 1.0}
)

// completionPrefixShare is the share of /v1/chat/completions ids (chatcmpl-); the rest are cmpl-.
const completionPrefixShare = 0.85

// Next appends the spans of the next API request to dst: one for V0 shapes, n for V1 shapes.
func (g *Generator) Next(dst []Record) []Record {
	r := g.rng
	g.requests++
	d := g.cfg.Profile.pick(r)

	base := Record{Model: r.IntN(len(g.cfg.Models)), FirstOfRequest: true}
	n := int64(1)
	if r.Float64() < g.cfg.NProb {
		n = 2
	}
	if r.Float64() >= g.cfg.GreedyProb {
		base.Temperature = temperatures[r.IntN(len(temperatures))]
	}
	base.TopP = topPs[r.IntN(len(topPs))]
	if r.Float64() < d.oneTokenProb {
		base.MaxTokens = 1
	} else {
		base.MaxTokens = d.maxTokens[r.IntN(len(d.maxTokens))]
	}
	base.PromptTokens = int64(math.Round(d.promptTokens.draw(r)))
	base.RequestID = requestID(r)

	start := len(dst)
	if g.cfg.Shape.IsV0() {
		rec := base
		rec.N, rec.NumSequences = n, n
		if g.cfg.Shape == ShapeV0Detailed {
			rec.BestOf = n
		}
		rec.TraceID, rec.SpanID = traceID(r), spanID(r)
		v0Latencies(r, d, &rec, int(n), g.cfg.Shape == ShapeV0Detailed)
		dst = append(dst, rec)
	} else {
		for child := range n {
			rec := base
			rec.FirstOfRequest = child == 0
			rec.N = 1 // each child of an n>1 request is its own engine request with n=1
			rec.TraceID, rec.SpanID = traceID(r), spanID(r)
			v1Latencies(r, d, &rec)
			dst = append(dst, rec)
		}
	}
	var longest int64
	for i := start; i < len(dst); i++ {
		longest = max(longest, dst[i].SpanDurationUS)
	}
	for i := start; i < len(dst); i++ {
		dst[i].RequestDurationUS = longest
	}
	return dst
}

func outputTokens(r *rand.Rand, d *distributions, maxTokens int64) int64 {
	c := int64(math.Round(d.outputTokens.draw(r)))
	return max(1, min(c, maxTokens))
}

func prefillUS(r *rand.Rand, d *distributions, promptTokens int64) int64 {
	v := (d.prefillBaseUS + d.prefillPerTokUS*float64(promptTokens)) * d.prefillJitter.draw(r)
	return int64(math.Round(min(max(v, d.prefillClampUS[0]), d.prefillClampUS[1])))
}

// v1Latencies fills one V1 engine request: queue and prefill from the engine core, TTFT and e2e from the
// frontend clock, keeping inference = prefill + decode, ttft ≥ queue + prefill, e2e ≥ ttft + decode.
func v1Latencies(r *rand.Rand, d *distributions, rec *Record) {
	rec.CompletionTokens = outputTokens(r, d, rec.MaxTokens)
	rec.QueueUS = offGrid(int64(math.Round(d.queueUS.draw(r))))
	rec.PrefillUS = prefillUS(r, d, rec.PromptTokens)
	rec.TTFTUS = offGrid(rec.QueueUS + rec.PrefillUS + d.frontendUS.draw(r))
	if rec.CompletionTokens >= 2 {
		rec.TPOTUS = offGrid(int64(math.Round(d.tpotUS.draw(r))))
		rec.DecodeUS = rec.TPOTUS * (rec.CompletionTokens - 1)
	}
	rec.E2EUS = offGrid(rec.TTFTUS + rec.DecodeUS + d.finishUS.draw(r))
	rec.SpanDurationUS = rec.E2EUS + d.spanEndDelayUS.draw(r)
}

// v0Latencies fills one V0 sequence group of n sequences. V0 has only queue, TTFT and e2e; consumers derive
// prefill = ttft − queue and decode = e2e − ttft, and TPOT from the summed completion tokens.
func v0Latencies(r *rand.Rand, d *distributions, rec *Record, n int, detailed bool) {
	var steps int64
	for range n {
		c := outputTokens(r, d, rec.MaxTokens)
		rec.CompletionTokens += c
		steps = max(steps, c)
	}
	rec.QueueUS = offGrid(int64(math.Round(d.queueUS.draw(r))))
	ttft := offGrid(rec.QueueUS + prefillUS(r, d, rec.PromptTokens) + d.frontendUS.draw(r))
	// The sequences decode side by side, one token each per step, so the decode phase lasts
	// (steps − 1) steps; TPOT is then that time spread over all but one of the summed tokens.
	decodeWall := float64(d.finishUS.draw(r))
	if steps >= 2 {
		decodeWall += d.tpotUS.draw(r) * float64(steps-1)
	}
	var decode int64
	if rec.CompletionTokens >= 2 {
		rec.TPOTUS = offGrid(max(1, int64(math.Round(decodeWall/float64(rec.CompletionTokens-1)))))
		decode = rec.TPOTUS * (rec.CompletionTokens - 1)
	} else {
		decode = int64(math.Round(decodeWall))
	}
	e2e := ttft + decode
	for ttft%offGridModulus == 0 || e2e%offGridModulus == 0 {
		ttft++
		e2e++
	}
	rec.TTFTUS, rec.E2EUS = ttft, e2e
	rec.PrefillUS, rec.DecodeUS = ttft-rec.QueueUS, decode

	rec.SchedulerUS = min(steps*d.schedulerStepUS.draw(r), max(1, e2e/10))
	if detailed {
		rec.ExecuteUS = max(2, int64(float64(e2e-rec.QueueUS)*uniform(r, d.executeShare)))
		rec.ForwardUS = min(rec.ExecuteUS-1, max(1, int64(float64(rec.ExecuteUS)*uniform(r, d.forwardOfExecute))))
	}
	rec.SpanDurationUS = e2e + d.spanEndDelayUS.draw(r)
}

// offGridModulus: every queue, TTFT, e2e and TPOT value avoids multiples of 10 µs, so an SLO threshold
// given with 10 µs precision (any whole number of milliseconds) never equals a value exactly and float
// rounding in a consumer cannot flip a met/violated decision.
const offGridModulus = 10

func offGrid(us int64) int64 {
	if us%offGridModulus == 0 {
		return us + 1
	}
	return us
}

func uniform(r *rand.Rand, bounds [2]float64) float64 {
	return bounds[0] + (bounds[1]-bounds[0])*r.Float64()
}

// requestID mimics the gen_ai.request.id of vLLM 0.32's spans (testdata/vllm/0.32.0): "chatcmpl-" and 16 hex
// digits for /v1/chat/completions; "cmpl-", 16 hex digits and the prompt's index ("-0") for /v1/completions,
// which takes a batch of prompts.
func requestID(r *rand.Rand) string {
	prefix, suffix := "chatcmpl-", ""
	if r.Float64() >= completionPrefixShare {
		prefix, suffix = "cmpl-", "-0"
	}
	var raw [8]byte
	binary.BigEndian.PutUint64(raw[:], r.Uint64())
	return prefix + hex.EncodeToString(raw[:]) + suffix
}

// traceID is a W3C random trace id: its lower 56 bits are uniformly random, since a consistent probability
// sampler (OTEP 235) takes its randomness from them. The upper half keeps the id from being the invalid all-zero
// one.
func traceID(r *rand.Rand) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], r.Uint64()|1)
	binary.BigEndian.PutUint64(id[8:], r.Uint64())
	return id
}

func spanID(r *rand.Rand) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], r.Uint64()|1)
	return id
}
