package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"

// Latency names one per-request latency, in seconds.
type Latency uint8

const (
	Queue Latency = iota
	Prefill
	Decode
	Inference
	TimeToFirstToken
	EndToEnd
	Scheduler
	ModelForward
	ModelExecute
	NumLatencies
)

var latencyNames = [NumLatencies]string{"queue", "prefill", "decode", "inference", "ttft", "e2e", "scheduler", "model_forward", "model_execute"}

// String is the short name used in telemetry and logs (e.g. "ttft").
func (l Latency) String() string {
	if l < NumLatencies {
		return latencyNames[l]
	}
	return "unknown"
}

// Reason says why a field of a vLLM span was rejected.
type Reason uint8

const (
	ReasonWrongType Reason = iota
	ReasonNaN
	ReasonInfinite
	ReasonNegative
	ReasonTooLarge
	ReasonNotInteger
	ReasonExceedsE2E
	NumReasons
)

var reasonNames = [NumReasons]string{"wrong_type", "nan", "infinite", "negative", "too_large", "not_integer", "exceeds_e2e"}

func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Field names a value of the record that can be rejected: a latency, or one of the token counts.
type Field uint8

const (
	FieldPromptTokens     = Field(NumLatencies)
	FieldCompletionTokens = Field(NumLatencies + 1)
	FieldCachedTokens     = Field(NumLatencies + 2)
	NumFields             = Field(NumLatencies + 3)
)

// LatencyField is the Field of a latency.
func LatencyField(l Latency) Field { return Field(l) }

func (f Field) String() string {
	switch {
	case f < Field(NumLatencies):
		return Latency(f).String()
	case f == FieldPromptTokens:
		return "prompt_tokens"
	case f == FieldCompletionTokens:
		return "completion_tokens"
	case f == FieldCachedTokens:
		return "cache_read_input_tokens"
	}
	return "unknown"
}

// Rejection is one field dropped from a record; the rest of the record still counts.
type Rejection struct {
	Field  Field
	Reason Reason
}

// Record is what one vLLM request span says about its request. Reuse one Record across spans: Derive resets it.
type Record struct {
	latency   [NumLatencies]float64
	present   uint16  // bit per Latency
	derived   uint16  // bit per Latency computed here rather than read from the span
	hasTokens [3]bool // prompt, completion, cached

	promptTokens     int64
	completionTokens int64
	cachedTokens     int64

	// tpot is decode / (completion − 1), vLLM's own definition; throughput is (completion − 1) / decode.
	tpot, throughput       float64
	hasTPOT, hasThroughput bool

	// Model is the requested model, gen_ai.request.model: the first of model.attributes found on the span or its
	// resource, else model.default.
	Model string
	// ResponseModel is the span's gen_ai.response.model (V0 spans), empty when it carries none.
	ResponseModel string
	Provider      string
	Operation     string
	// OperationKnown is false when the operation was not on the span and the request id has no known prefix.
	OperationKnown bool
	// NonGenerative is true for operations that generate no tokens (embeddings, classify, score, pooling):
	// their record has no TTFT, decode, TPOT or output tokens.
	NonGenerative bool
	// ErrorType is the request's error.type: empty when it succeeded, else the exception type of a span with
	// status ERROR, _OTHER, or "abort".
	ErrorType string
	// ModelFromResource is true when Model came from the resource, not the span (V1 spans carry no model).
	ModelFromResource bool
	// ProviderOnSpan and OperationOnSpan are true when the span already carried those attributes.
	ProviderOnSpan  bool
	OperationOnSpan bool
	// RequestModelKeyOnSpan is true when the span has a gen_ai.request.model attribute, whatever its value.
	RequestModelKeyOnSpan bool

	// Rejections lists the fields dropped from this record, in the order they were found.
	Rejections []Rejection
}

func (r *Record) reset() {
	rej := r.Rejections[:0]
	*r = Record{Rejections: rej}
}

// Latency returns the latency in seconds and whether the span gave (or allowed deriving) it.
func (r *Record) Latency(l Latency) (float64, bool) {
	if r.present&(1<<l) == 0 {
		return 0, false
	}
	return r.latency[l], true
}

// LatencySet has bit 1<<l set for each latency l the record has: a caller visits those only.
func (r *Record) LatencySet() uint16 { return r.present }

// Derived is true when the latency was computed from others (V0 spans carry no prefill/decode/inference).
func (r *Record) Derived(l Latency) bool { return r.derived&(1<<l) != 0 }

// Prompt returns the prompt token count and whether it is known.
func (r *Record) Prompt() (int64, bool) { return r.promptTokens, r.hasTokens[0] }

// Completion returns the completion token count and whether it is known.
func (r *Record) Completion() (int64, bool) { return r.completionTokens, r.hasTokens[1] }

// CachedPrompt returns the number of prompt tokens served from the prefix cache
// (gen_ai.usage.cache_read.input_tokens) and whether the span said. It never exceeds Prompt when both are known.
func (r *Record) CachedPrompt() (int64, bool) { return r.cachedTokens, r.hasTokens[2] }

// TimePerOutputToken returns decode / (completion − 1) in seconds, vLLM's own definition, and whether the
// request has one (two or more output tokens of a generative operation).
func (r *Record) TimePerOutputToken() (float64, bool) { return r.tpot, r.hasTPOT }

// DecodeThroughput returns (completion − 1) / decode in tokens per second and whether the request has one.
func (r *Record) DecodeThroughput() (float64, bool) { return r.throughput, r.hasThroughput }

func (r *Record) setLatency(l Latency, v float64, derived bool) {
	r.latency[l] = v
	r.present |= 1 << l
	if derived {
		r.derived |= 1 << l
	}
}

func (r *Record) clearLatency(l Latency) {
	r.present &^= 1 << l
	r.derived &^= 1 << l
}

func (r *Record) reject(f Field, reason Reason) {
	r.Rejections = append(r.Rejections, Rejection{Field: f, Reason: reason})
}

// dropRejection forgets the rejections of a field that a later attribute supersedes (the conventions' token
// spelling read after vLLM's).
func (r *Record) dropRejection(f Field) {
	kept := r.Rejections[:0]
	for _, rej := range r.Rejections {
		if rej.Field != f {
			kept = append(kept, rej)
		}
	}
	r.Rejections = kept
}
