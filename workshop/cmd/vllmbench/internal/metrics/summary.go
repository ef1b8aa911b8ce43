package metrics // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"

import (
	"math"
	"slices"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// Stat is one metric's distribution in milliseconds. Percentiles follow the order of the requested
// percentiles.
type Stat struct {
	Mean, Median, Std float64
	Percentiles       []float64
	Count             int
}

// Summary is what the benchmark reports, plus the server join.
type Summary struct {
	Duration    float64 // seconds
	Completed   int
	Failed      int
	TotalInput  int64
	TotalOutput int64
	// GoodCompleted is the number of successful requests meeting every goodput objective.
	GoodCompleted        int
	RequestThroughput    float64
	RequestGoodput       float64
	OutputThroughput     float64
	TotalTokenThroughput float64
	Percentiles          []float64
	// Stats by metric name (ttft, tpot, itl, e2el).
	Stats map[string]Stat
	// HasGoodput says --goodput was given (RequestGoodput is meaningful).
	HasGoodput bool

	// Server join: records with server values, records whose join failed, and the gaps (ms).
	Joined, JoinFailed int
	TTFTGap, E2EGap    Stat
	// Server is the distribution of each server phase (ServerPhases) over joined requests, in ms, with
	// ServerPercentiles; ServerShare is each phase's total over the total server e2e of those requests.
	Server      map[string]Stat
	ServerShare map[string]float64
}

// Server phases of the llm_request span, as the result JSON names them (server_<phase>).
const (
	PhaseQueue     = "queue"
	PhasePrefill   = "prefill"
	PhaseDecode    = "decode"
	PhaseInference = "inference"
	PhaseE2E       = "e2e"
)

// ServerPhases are the phases summarised after a join, in order.
var ServerPhases = []string{PhaseQueue, PhasePrefill, PhaseDecode, PhaseInference, PhaseE2E}

// ServerPercentiles are the percentiles of the server phases, whatever --metric-percentiles asks for.
var ServerPercentiles = []float64{90, 99}

// Compute summarises the records of sent requests over a run of duration seconds.
//
// The rules are the benchmark's: only successful requests count; TPOT statistics cover requests with more
// than one output token, while for goodput a one-token request has TPOT 0 (and so meets a TPOT objective); a
// request is good when value ≤ threshold for every objective; throughputs divide by the duration.
func Compute(recs []record.Record, duration float64, goodput Goodput, percentiles []float64) Summary {
	s := Summary{Duration: duration, Percentiles: percentiles, HasGoodput: len(goodput) > 0, Stats: map[string]Stat{}}
	var ttfts, tpots, itls, e2els, ttftGaps, e2eGaps []float64
	phases := map[string][]float64{}
	for i := range recs {
		r := &recs[i]
		if sv := r.Server; sv != nil {
			s.Joined++
			ttftGaps = append(ttftGaps, r.TTFTGap())
			e2eGaps = append(e2eGaps, r.E2EGap())
			for p, v := range map[string]float64{PhaseQueue: sv.Queue, PhasePrefill: sv.Prefill, PhaseDecode: sv.Decode,
				PhaseInference: sv.Inference, PhaseE2E: sv.E2E} {
				phases[p] = append(phases[p], v)
			}
		} else if r.ServerError != "" {
			s.JoinFailed++
		}
		if !r.Success {
			s.Failed++
			continue
		}
		s.Completed++
		s.TotalInput += r.PromptTokens
		s.TotalOutput += r.OutputTokens
		tpot := 0.0
		if r.OutputTokens > 1 {
			tpot = (r.E2EL - r.TTFT) / float64(r.OutputTokens-1)
			tpots = append(tpots, tpot)
		}
		ttfts = append(ttfts, r.TTFT)
		itls = append(itls, r.ITL...)
		e2els = append(e2els, r.E2EL)
		if s.HasGoodput && meets(goodput, r.TTFT, tpot, r.E2EL) {
			s.GoodCompleted++
		}
	}
	if duration > 0 {
		s.RequestThroughput = float64(s.Completed) / duration
		s.RequestGoodput = float64(s.GoodCompleted) / duration
		s.OutputThroughput = float64(s.TotalOutput) / duration
		s.TotalTokenThroughput = float64(s.TotalInput+s.TotalOutput) / duration
	}
	s.Stats["ttft"] = stat(ttfts, percentiles)
	s.Stats["tpot"] = stat(tpots, percentiles)
	s.Stats["itl"] = stat(itls, percentiles)
	s.Stats["e2el"] = stat(e2els, percentiles)
	s.TTFTGap = stat(ttftGaps, percentiles)
	s.E2EGap = stat(e2eGaps, percentiles)
	if s.Joined > 0 {
		s.Server = map[string]Stat{}
		s.ServerShare = map[string]float64{}
		for _, p := range ServerPhases {
			s.Server[p] = stat(phases[p], ServerPercentiles)
		}
		// mean phase / mean e2e = total phase / total e2e over the same requests
		if e2e := s.Server[PhaseE2E].Mean; e2e > 0 {
			for _, p := range ServerPhases[:4] {
				s.ServerShare[p] = s.Server[p].Mean / e2e
			}
		}
	}
	return s
}

// meets applies the objectives (ms) to one request's values (s).
func meets(g Goodput, ttft, tpot, e2el float64) bool {
	for key, ms := range g {
		limit := ms / 1000
		var v float64
		switch key {
		case ObjectiveTTFT:
			v = ttft
		case ObjectiveTPOT:
			v = tpot
		case ObjectiveE2EL:
			v = e2el
		}
		if !(v <= limit) {
			return false
		}
	}
	return true
}

// stat computes the distribution of values (seconds) in ms; no values give zeros, as the benchmark does.
func stat(values []float64, percentiles []float64) Stat {
	st := Stat{Count: len(values), Percentiles: make([]float64, len(percentiles))}
	if len(values) == 0 {
		return st
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	var sum float64
	for _, v := range sorted {
		sum += v
	}
	mean := sum / float64(len(sorted))
	var sq float64
	for _, v := range sorted {
		sq += (v - mean) * (v - mean)
	}
	st.Mean = mean * 1000
	st.Std = math.Sqrt(sq/float64(len(sorted))) * 1000 // population σ, like numpy's std
	st.Median = Percentile(sorted, 50) * 1000
	for i, p := range percentiles {
		st.Percentiles[i] = Percentile(sorted, p) * 1000
	}
	return st
}

// Percentile is numpy's default (linear) percentile of sorted values.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	frac := pos - float64(lo)
	return sorted[lo] + (sorted[hi]-sorted[lo])*frac
}
