package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"

// Objective is one latency SLO.
type Objective uint8

const (
	ObjectiveTTFT Objective = iota
	ObjectiveTPOT
	ObjectiveE2E
	ObjectiveQueue
	NumObjectives
)

var objectiveNames = [NumObjectives]string{"ttft", "tpot", "e2e", "queue"}

// ObjectiveAll is the name of the combined verdict: a request meets "all" when it violates no objective.
const ObjectiveAll = "all"

// Objectives lists every objective in a stable order. It is an array so that callers get a copy, allocation-free.
func Objectives() [NumObjectives]Objective {
	return [NumObjectives]Objective{ObjectiveTTFT, ObjectiveTPOT, ObjectiveE2E, ObjectiveQueue}
}

func (o Objective) String() string {
	if o < NumObjectives {
		return objectiveNames[o]
	}
	return "unknown"
}

// Verdict is one objective's outcome for one request.
type Verdict uint8

const (
	// NotEvaluated: the objective is not configured, or the request has no value for it (the TPOT of a
	// 1-token output). It is not counted for that objective and does not break "all".
	NotEvaluated Verdict = iota
	Met
	Violated
)

// SLOResult holds the verdict of every objective for one request.
type SLOResult struct {
	Verdicts [NumObjectives]Verdict
	// Errored is true when the request ended in an error or was aborted: it never meets "all".
	Errored bool
	// AllMet is the goodput verdict: no objective violated and no error.
	AllMet bool
}

// ViolationError is the name Violations gives an errored or aborted request.
const ViolationError = "error"

// Violations appends the names of the violated objectives to dst.
func (r SLOResult) Violations(dst []string) []string {
	for o, v := range r.Verdicts {
		if v == Violated {
			dst = append(dst, Objective(o).String())
		}
	}
	if r.Errored {
		dst = append(dst, ViolationError)
	}
	return dst
}

// EvaluateSLO judges a record against the configured objectives.
func (s *SLOConfig) EvaluateSLO(rec *Record) SLOResult {
	res := SLOResult{Errored: rec.ErrorType != ""}
	res.AllMet = !res.Errored
	for _, o := range Objectives() {
		threshold, ok := s.Threshold(o)
		if !ok {
			continue
		}
		value, ok := rec.objectiveValue(o)
		if !ok {
			continue
		}
		if value <= threshold.Seconds() {
			res.Verdicts[o] = Met
		} else {
			res.Verdicts[o] = Violated
			res.AllMet = false
		}
	}
	return res
}

func (r *Record) objectiveValue(o Objective) (float64, bool) {
	switch o {
	case ObjectiveTTFT:
		return r.Latency(TimeToFirstToken)
	case ObjectiveTPOT:
		if r.hasTPOT {
			return r.tpot, true
		}
		// vLLM's serving benchmark gives a request of one output token TPOT 0, which meets any objective
		if n, ok := r.Completion(); ok && n <= 1 && !r.NonGenerative {
			return 0, true
		}
		return 0, false
	case ObjectiveE2E:
		return r.Latency(EndToEnd)
	case ObjectiveQueue:
		return r.Latency(Queue)
	}
	return 0, false
}
