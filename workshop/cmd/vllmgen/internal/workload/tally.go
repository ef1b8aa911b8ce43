package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"errors"
	"time"
)

// Objective is one SLO dimension.
type Objective int

const (
	ObjectiveTTFT Objective = iota
	ObjectiveTPOT
	ObjectiveE2E
	ObjectiveQueue
	numObjectives
)

// ObjectiveAll names the combined outcome: a span meets "all" when it violates no configured objective.
const ObjectiveAll = "all"

var objectiveNames = [numObjectives]string{"ttft", "tpot", "e2e", "queue"}

func (o Objective) String() string { return objectiveNames[o] }

// SLO holds the optional thresholds; zero means the objective is not set.
type SLO struct {
	TTFT, TPOT, E2E, Queue time.Duration
}

func (s SLO) threshold(o Objective) time.Duration {
	switch o {
	case ObjectiveTTFT:
		return s.TTFT
	case ObjectiveTPOT:
		return s.TPOT
	case ObjectiveE2E:
		return s.E2E
	default:
		return s.Queue
	}
}

// Any reports whether at least one objective is set.
func (s SLO) Any() bool { return s.TTFT > 0 || s.TPOT > 0 || s.E2E > 0 || s.Queue > 0 }

// Validate rejects negative thresholds.
func (s SLO) Validate() error {
	for o := range numObjectives {
		if s.threshold(o) < 0 {
			return errors.New("SLO thresholds must not be negative")
		}
	}
	return nil
}

// Thresholds lists the set objectives by name.
func (s SLO) Thresholds() map[string]time.Duration {
	out := map[string]time.Duration{}
	for o := range numObjectives {
		if d := s.threshold(o); d > 0 {
			out[o.String()] = d
		}
	}
	return out
}

// Stat is the count and exact sum of one latency over spans.
type Stat struct {
	Count int64
	SumUS int64
}

func (s *Stat) add(us int64) {
	s.Count++
	s.SumUS += us
}

// Outcome counts spans that met or violated one objective.
type Outcome struct {
	Met      int64 `json:"met"`
	Violated int64 `json:"violated"`
}

// Totals accumulates what was generated for one model or overall.
type Totals struct {
	Requests int64
	Spans    int64
	// ExportedSpans and FailedSpans are set by the sender (dry runs export nothing).
	ExportedSpans    int64
	FailedSpans      int64
	PromptTokens     int64
	CompletionTokens int64

	TTFT, E2E, Queue, Prefill, Decode, Inference, TPOT Stat

	// SLO is indexed by Objective; the last entry is the combined "all".
	SLO [numObjectives + 1]Outcome
}

func (t *Totals) stats() [7]*Stat {
	return [7]*Stat{&t.TTFT, &t.E2E, &t.Queue, &t.Prefill, &t.Decode, &t.Inference, &t.TPOT}
}

func (t *Totals) merge(o *Totals) {
	t.Requests += o.Requests
	t.Spans += o.Spans
	t.ExportedSpans += o.ExportedSpans
	t.FailedSpans += o.FailedSpans
	t.PromptTokens += o.PromptTokens
	t.CompletionTokens += o.CompletionTokens
	others := o.stats()
	for i, s := range t.stats() {
		s.Count += others[i].Count
		s.SumUS += others[i].SumUS
	}
	for i := range t.SLO {
		t.SLO[i].Met += o.SLO[i].Met
		t.SLO[i].Violated += o.SLO[i].Violated
	}
}

// Tally accounts for generated spans overall and per model. Sums are integers, so merging per-worker
// tallies in any order gives the same result. Not safe for concurrent use.
type Tally struct {
	slo    SLO
	Total  Totals
	Models []Totals
}

// NewTally returns an empty tally for the given number of models.
func NewTally(models int, slo SLO) *Tally {
	return &Tally{slo: slo, Models: make([]Totals, models)}
}

// Add accounts for one span.
func (t *Tally) Add(rec *Record) {
	add(&t.Total, rec, t.slo)
	add(&t.Models[rec.Model], rec, t.slo)
}

func add(t *Totals, rec *Record, slo SLO) {
	if rec.FirstOfRequest {
		t.Requests++
	}
	t.Spans++
	t.PromptTokens += rec.PromptTokens
	t.CompletionTokens += rec.CompletionTokens
	t.TTFT.add(rec.TTFTUS)
	t.E2E.add(rec.E2EUS)
	t.Queue.add(rec.QueueUS)
	t.Prefill.add(rec.PrefillUS)
	t.Decode.add(rec.DecodeUS)
	t.Inference.add(rec.InferenceUS())
	if rec.HasTPOT() {
		t.TPOT.add(rec.TPOTUS)
	}
	if !slo.Any() {
		return
	}
	verdicts, allMet := slo.judge(rec)
	for o, v := range verdicts {
		switch v {
		case verdictMet:
			t.SLO[o].Met++
		case verdictViolated:
			t.SLO[o].Violated++
		}
	}
	if allMet {
		t.SLO[numObjectives].Met++
	} else {
		t.SLO[numObjectives].Violated++
	}
}

type verdict uint8

const (
	verdictUnset verdict = iota
	verdictMet
	verdictViolated
)

// judge gives the span's verdict for every set objective and whether it meets "all" (violates none). A span
// of at most one output token has TPOT 0, as vLLM's serving benchmark counts it, so it meets any TPOT
// objective.
func (s SLO) judge(rec *Record) (verdicts [numObjectives]verdict, allMet bool) {
	values := [numObjectives]int64{rec.TTFTUS, rec.TPOTUS, rec.E2EUS, rec.QueueUS}
	if !rec.HasTPOT() {
		values[ObjectiveTPOT] = 0
	}
	allMet = true
	for o := range numObjectives {
		threshold := s.threshold(o)
		if threshold <= 0 {
			continue // not set: not counted, and no obstacle to "all"
		}
		if values[o]*int64(time.Microsecond) <= int64(threshold) {
			verdicts[o] = verdictMet
		} else {
			verdicts[o] = verdictViolated
			allMet = false
		}
	}
	return verdicts, allMet
}

// Violates reports whether the span breaks at least one set objective (it does not meet "all").
func (s SLO) Violates(rec *Record) bool {
	if !s.Any() {
		return false
	}
	_, allMet := s.judge(rec)
	return !allMet
}

// AddExported records spans of one model that an export delivered.
func (t *Tally) AddExported(model int, spans int64) {
	t.Total.ExportedSpans += spans
	t.Models[model].ExportedSpans += spans
}

// AddFailed records spans of one model whose export failed.
func (t *Tally) AddFailed(model int, spans int64) {
	t.Total.FailedSpans += spans
	t.Models[model].FailedSpans += spans
}

// AddRejected moves spans that a receiver reported as rejected (OTLP partial success) from exported to
// failed. The response does not say which spans, so only the overall totals change.
func (t *Tally) AddRejected(spans int64) {
	t.Total.ExportedSpans -= spans
	t.Total.FailedSpans += spans
}

// Merge adds o into t; both must have been made for the same models and SLO.
func (t *Tally) Merge(o *Tally) {
	t.Total.merge(&o.Total)
	for i := range t.Models {
		t.Models[i].merge(&o.Models[i])
	}
}

// StatReport is the JSON form of a Stat.
type StatReport struct {
	Count       int64   `json:"count"`
	SumUS       int64   `json:"sum_us"`
	SumSeconds  float64 `json:"sum_seconds"`
	MeanSeconds float64 `json:"mean_seconds"`
}

func (s Stat) report() StatReport {
	r := StatReport{Count: s.Count, SumUS: s.SumUS, SumSeconds: seconds(s.SumUS)}
	if s.Count > 0 {
		r.MeanSeconds = float64(s.SumUS) / float64(s.Count) / 1e6
	}
	return r
}

// Report is the JSON form of Totals.
type Report struct {
	Requests         int64              `json:"requests"`
	Spans            int64              `json:"spans"`
	ExportedSpans    int64              `json:"exported_spans"`
	FailedSpans      int64              `json:"failed_spans"`
	PromptTokens     int64              `json:"prompt_tokens"`
	CompletionTokens int64              `json:"completion_tokens"`
	TTFT             StatReport         `json:"ttft"`
	TPOT             StatReport         `json:"tpot"`
	E2E              StatReport         `json:"e2e"`
	Queue            StatReport         `json:"queue"`
	Prefill          StatReport         `json:"prefill"`
	Decode           StatReport         `json:"decode"`
	Inference        StatReport         `json:"inference"`
	SLO              map[string]Outcome `json:"slo,omitempty"`
	// Adjusted is set only under head sampling (see Totals.Adjusted).
	Adjusted *Adjusted `json:"adjusted,omitempty"`
}

// Report converts Totals, listing SLO outcomes only for the objectives set in slo.
func (t *Totals) Report(slo SLO) Report {
	r := Report{
		Requests: t.Requests, Spans: t.Spans, ExportedSpans: t.ExportedSpans, FailedSpans: t.FailedSpans,
		PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens,
		TTFT: t.TTFT.report(), TPOT: t.TPOT.report(), E2E: t.E2E.report(), Queue: t.Queue.report(),
		Prefill: t.Prefill.report(), Decode: t.Decode.report(), Inference: t.Inference.report(),
	}
	if slo.Any() {
		r.SLO = map[string]Outcome{ObjectiveAll: t.SLO[numObjectives]}
		for o := range numObjectives {
			if slo.threshold(o) > 0 {
				r.SLO[o.String()] = t.SLO[o]
			}
		}
	}
	return r
}

// SLO returns the thresholds the tally was made with.
func (t *Tally) SLO() SLO { return t.slo }

// Adjusted is what the spans sent under head sampling stand for: each exact total of the sent spans times their
// adjusted count, the number of requests each sent span represents. Counts are per span, as in Report.
type Adjusted struct {
	Spans            float64                    `json:"spans"`
	PromptTokens     float64                    `json:"prompt_tokens"`
	CompletionTokens float64                    `json:"completion_tokens"`
	TTFT             AdjustedStat               `json:"ttft"`
	TPOT             AdjustedStat               `json:"tpot"`
	E2E              AdjustedStat               `json:"e2e"`
	Queue            AdjustedStat               `json:"queue"`
	Prefill          AdjustedStat               `json:"prefill"`
	Decode           AdjustedStat               `json:"decode"`
	Inference        AdjustedStat               `json:"inference"`
	SLO              map[string]AdjustedOutcome `json:"slo,omitempty"`
}

// AdjustedStat is a latency's adjusted observation count and sum.
type AdjustedStat struct {
	Count      float64 `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// AdjustedOutcome is an objective's adjusted met and violated counts.
type AdjustedOutcome struct {
	Met      float64 `json:"met"`
	Violated float64 `json:"violated"`
}

// Adjusted weighs every total with weigh, which multiplies an exact integer total of sent spans by their
// adjusted count (every span of a run has the same one). SLO outcomes are listed for the objectives set in slo.
func (t *Totals) Adjusted(slo SLO, weigh func(int64) float64) *Adjusted {
	stat := func(s Stat) AdjustedStat {
		return AdjustedStat{Count: weigh(s.Count), SumSeconds: weigh(s.SumUS) / 1e6}
	}
	a := &Adjusted{
		Spans: weigh(t.Spans), PromptTokens: weigh(t.PromptTokens), CompletionTokens: weigh(t.CompletionTokens),
		TTFT: stat(t.TTFT), TPOT: stat(t.TPOT), E2E: stat(t.E2E), Queue: stat(t.Queue),
		Prefill: stat(t.Prefill), Decode: stat(t.Decode), Inference: stat(t.Inference),
	}
	if slo.Any() {
		outcome := func(o Outcome) AdjustedOutcome {
			return AdjustedOutcome{Met: weigh(o.Met), Violated: weigh(o.Violated)}
		}
		a.SLO = map[string]AdjustedOutcome{ObjectiveAll: outcome(t.SLO[numObjectives])}
		for o := range numObjectives {
			if slo.threshold(o) > 0 {
				a.SLO[o.String()] = outcome(t.SLO[o])
			}
		}
	}
	return a
}
