package vllmrequest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"

import (
	"math"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// MaxTokens bounds a token count: no model has a context anywhere near it, so a larger count is corrupt.
const MaxTokens = 1 << 32

// e2eTolerance is how far a component latency may exceed e2e before it is rejected. vLLM V1 measures queue,
// prefill and decode on the engine's monotonic clock and e2e on the frontend's wall clock, so they may disagree
// by a little; a default (zero) engine timestamp makes them disagree by the machine's uptime.
const e2eTolerance = 1.0

// Deriver turns spans into records. It is immutable after NewDeriver and safe for concurrent use.
type Deriver struct {
	spanNames []string
	models    []string
	// the first index in models of gen_ai.response.model and gen_ai.request.model, -1 for none; otherModels is
	// true when models has another key that Derive reads nothing else from
	responseModelRank, requestModelRank int
	otherModels                         bool
	model                               string
	provider                            string
	maxLatency                          float64
}

// NewDeriver builds a Deriver from a validated Config.
func NewDeriver(cfg Config) *Deriver {
	d := &Deriver{
		spanNames:         append([]string(nil), cfg.SpanNames...),
		models:            append([]string(nil), cfg.Model.Attributes...),
		responseModelRank: slices.Index(cfg.Model.Attributes, AttrResponseModel),
		requestModelRank:  slices.Index(cfg.Model.Attributes, AttrRequestModel),
		model:             cfg.Model.Default,
		provider:          cfg.Provider,
		maxLatency:        cfg.MaxLatency.Seconds(),
	}
	for _, m := range d.models {
		if !readsKey(m) {
			d.otherModels = true
		}
	}
	return d
}

// readsKey says whether Derive reads key for something else than the model: such a model attribute is ignored.
func readsKey(key string) bool {
	switch key {
	case AttrQueue, AttrPrefill, AttrDecode, AttrInference, AttrTimeToFirstToken, AttrEndToEnd, AttrScheduler,
		AttrModelForward, AttrModelExecute, AttrPromptTokens, AttrInputTokens, AttrCompletionTokens,
		AttrOutputTokens, AttrCacheReadInputTokens, AttrRequestID, AttrFinishReasons, AttrProviderName,
		AttrOperationName, AttrResponseModel, AttrRequestModel:
		return true
	}
	return false
}

// IsRequestName says whether a span of this name may be a vLLM request span (span_names): Derive returns false
// for every other span.
func (d *Deriver) IsRequestName(name string) bool { return d.nameMatches(name) }

func (d *Deriver) nameMatches(name string) bool {
	for _, n := range d.spanNames {
		if n == name {
			return true
		}
	}
	return false
}

// Resource is the resource of the spans being derived. It remembers what Derive looked up on it, so a batch
// of spans from one resource pays for the lookup once. Create one per resource with NewResource.
type Resource struct {
	attrs       pcommon.Map
	model       string
	modelLooked bool
}

// NewResource wraps a span's resource attributes.
func NewResource(attrs pcommon.Map) Resource { return Resource{attrs: attrs} }

// Derive fills rec from a span and its resource. It returns false, leaving rec reset, when the span is not a
// vLLM request span. Bad values are dropped field by field and listed in rec.Rejections.
func (d *Deriver) Derive(span ptrace.Span, resource *Resource, rec *Record) bool {
	rec.reset()
	if !d.nameMatches(span.Name()) {
		return false
	}
	sc := spanScan{d: d, rec: rec, modelRank: len(d.models)}
	for k, v := range span.Attributes().All() {
		sc.attribute(k, v)
	}
	if !sc.recognised {
		rec.reset()
		return false
	}

	if !rec.ProviderOnSpan {
		rec.Provider = d.provider
	}
	rec.OperationKnown = rec.OperationOnSpan
	if !rec.OperationOnSpan {
		rec.Operation, rec.OperationKnown = OperationFromRequestID(sc.requestID)
	}
	rec.NonGenerative = !IsGenerative(rec.Operation)
	rec.ErrorType = errorType(span, sc.aborted, sc.errored)

	d.checkAgainstEndToEnd(rec)
	checkCachedTokens(rec)
	deriveMissing(rec)
	if rec.NonGenerative {
		// a pooling request's TTFT is its prefill and its decode a formality: recorded, they would sit among
		// the generative requests' values
		rec.clearLatency(TimeToFirstToken)
		rec.clearLatency(Decode)
		rec.completionTokens, rec.hasTokens[1] = 0, false
	}
	deriveRates(rec)
	if sc.modelRank == len(d.models) {
		rec.Model, rec.ModelFromResource = d.resourceModel(resource)
	}
	return true
}

// spanScan is what Derive gathers from one span's attributes besides the record. The attributes are read in
// one pass, by a call of attribute for each: the loop's body, a closure over this one variable, stays small,
// where a body over each variable would load and store them all for every attribute.
type spanScan struct {
	d          *Deriver
	rec        *Record
	requestID  string
	recognised bool
	aborted    bool
	errored    bool
	// the conventions' token spelling wins over vLLM's when a span carries both, whatever their order
	inputByConvention, outputByConvention bool
	modelRank                             int // index in model.attributes of the span's best model attribute so far
}

// attribute reads one span attribute.
func (sc *spanScan) attribute(k string, v pcommon.Value) {
	rec := sc.rec
	var latency Latency
	switch k {
	case AttrQueue:
		latency = Queue
	case AttrPrefill:
		latency = Prefill
	case AttrDecode:
		latency = Decode
	case AttrInference:
		latency = Inference
	case AttrTimeToFirstToken:
		latency = TimeToFirstToken
	case AttrEndToEnd:
		latency = EndToEnd
	case AttrScheduler:
		latency = Scheduler
	case AttrModelForward:
		latency = ModelForward
	case AttrModelExecute:
		latency = ModelExecute
	case AttrPromptTokens:
		if !sc.inputByConvention {
			rec.promptTokens, rec.hasTokens[0] = readTokens(rec, FieldPromptTokens, v)
		}
		return
	case AttrInputTokens:
		sc.inputByConvention = true
		rec.dropRejection(FieldPromptTokens)
		rec.promptTokens, rec.hasTokens[0] = readTokens(rec, FieldPromptTokens, v)
		return
	case AttrCompletionTokens:
		if !sc.outputByConvention {
			rec.completionTokens, rec.hasTokens[1] = readTokens(rec, FieldCompletionTokens, v)
		}
		return
	case AttrOutputTokens:
		sc.outputByConvention = true
		rec.dropRejection(FieldCompletionTokens)
		rec.completionTokens, rec.hasTokens[1] = readTokens(rec, FieldCompletionTokens, v)
		return
	case AttrCacheReadInputTokens:
		rec.cachedTokens, rec.hasTokens[2] = readTokens(rec, FieldCachedTokens, v)
		return
	case AttrRequestID:
		if v.Type() == pcommon.ValueTypeStr {
			sc.requestID = v.Str()
		}
		return
	case AttrFinishReasons:
		sc.aborted, sc.errored = finishReasons(v)
		return
	case AttrProviderName:
		if v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
			rec.Provider, rec.ProviderOnSpan = v.Str(), true
		}
		return
	case AttrOperationName:
		if v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
			rec.Operation, rec.OperationOnSpan = v.Str(), true
		}
		return
	case AttrResponseModel:
		if v.Type() == pcommon.ValueTypeStr {
			rec.ResponseModel = v.Str()
		}
		sc.model(sc.d.responseModelRank, v)
		return
	case AttrRequestModel:
		rec.RequestModelKeyOnSpan = true
		sc.model(sc.d.requestModelRank, v)
		return
	default:
		if !sc.recognised && strings.HasPrefix(k, latencyPrefix) {
			sc.recognised = true // latency keys a newer vLLM may add
		}
		if !sc.d.otherModels {
			return
		}
		// model attributes are looked for among the keys vLLM does not use for anything else
		models := sc.d.models
		for i := 0; i < sc.modelRank && i < len(models); i++ {
			if k == models[i] && v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
				rec.Model, sc.modelRank = v.Str(), i
				break
			}
		}
		return
	}
	// a latency: the span is a vLLM request span. A valid double, what vLLM sends, is taken here; NaN fails
	// both comparisons, +Inf the second.
	sc.recognised = true
	if v.Type() == pcommon.ValueTypeDouble {
		if f := v.Double(); f >= 0 && f <= sc.d.maxLatency {
			rec.setLatency(latency, f, false)
			return
		}
	}
	sc.d.readLatency(rec, latency, v)
}

// model takes v as the model when it is a model attribute (rank is its first index in model.attributes, -1 for
// none) ranked before the span's best so far.
func (sc *spanScan) model(rank int, v pcommon.Value) {
	if rank >= 0 && rank < sc.modelRank && v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
		sc.rec.Model, sc.modelRank = v.Str(), rank
	}
}

func (d *Deriver) readLatency(rec *Record, l Latency, v pcommon.Value) {
	var f float64
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		f = v.Double()
	case pcommon.ValueTypeInt:
		f = float64(v.Int())
	default:
		rec.reject(LatencyField(l), ReasonWrongType)
		return
	}
	switch {
	case math.IsNaN(f):
		rec.reject(LatencyField(l), ReasonNaN)
	case math.IsInf(f, 0):
		rec.reject(LatencyField(l), ReasonInfinite)
	case f < 0:
		rec.reject(LatencyField(l), ReasonNegative)
	case f > d.maxLatency:
		rec.reject(LatencyField(l), ReasonTooLarge)
	default:
		rec.setLatency(l, f, false)
	}
}

func readTokens(rec *Record, f Field, v pcommon.Value) (int64, bool) {
	var n int64
	switch v.Type() {
	case pcommon.ValueTypeInt:
		n = v.Int()
	case pcommon.ValueTypeDouble:
		x := v.Double()
		switch {
		case math.IsNaN(x):
			rec.reject(f, ReasonNaN)
			return 0, false
		case math.IsInf(x, 0):
			rec.reject(f, ReasonInfinite)
			return 0, false
		case x < 0:
			rec.reject(f, ReasonNegative)
			return 0, false
		case x > MaxTokens:
			rec.reject(f, ReasonTooLarge)
			return 0, false
		case x != math.Trunc(x):
			rec.reject(f, ReasonNotInteger)
			return 0, false
		}
		n = int64(x)
	default:
		rec.reject(f, ReasonWrongType)
		return 0, false
	}
	switch {
	case n < 0:
		rec.reject(f, ReasonNegative)
		return 0, false
	case n > MaxTokens:
		rec.reject(f, ReasonTooLarge)
		return 0, false
	}
	return n, true
}

// checkAgainstEndToEnd drops request phases longer than the whole request: they come from an engine timestamp
// that was never set (see e2eTolerance). V0's detailed forward/execute times are sums over pipeline stages and
// may legitimately exceed e2e, so they are not checked.
func (d *Deriver) checkAgainstEndToEnd(rec *Record) {
	e2e, ok := rec.Latency(EndToEnd)
	if !ok {
		return
	}
	limit := e2e + e2eTolerance
	// mostly none is longer: one test for the five (an absent one is 0 or, if not, only costs the loop)
	if lat := &rec.latency; lat[Queue] <= limit && lat[Prefill] <= limit && lat[Decode] <= limit &&
		lat[Inference] <= limit && lat[TimeToFirstToken] <= limit {
		return
	}
	for _, l := range [...]Latency{Queue, Prefill, Decode, Inference, TimeToFirstToken} {
		if rec.present&(1<<l) != 0 && rec.latency[l] > limit {
			rec.clearLatency(l)
			rec.reject(LatencyField(l), ReasonExceedsE2E)
		}
	}
}

// checkCachedTokens drops a cached-prompt count larger than the prompt: cached tokens are part of the prompt.
func checkCachedTokens(rec *Record) {
	cached, ok := rec.CachedPrompt()
	if !ok {
		return
	}
	if prompt, ok := rec.Prompt(); ok && cached > prompt {
		rec.cachedTokens, rec.hasTokens[2] = 0, false
		rec.reject(FieldCachedTokens, ReasonTooLarge)
	}
}

// deriveMissing fills what V0 spans do not carry: prefill = TTFT − queue, decode = E2E − TTFT, and inference =
// prefill + decode. Only absent attributes are derived; a rejected one stays rejected.
func deriveMissing(rec *Record) {
	attrMissing := func(l Latency) bool {
		if _, ok := rec.Latency(l); ok {
			return false
		}
		for _, r := range rec.Rejections {
			if r.Field == LatencyField(l) {
				return false
			}
		}
		return true
	}
	derive := func(target, minuend, subtrahend Latency) {
		if !attrMissing(target) {
			return
		}
		a, okA := rec.Latency(minuend)
		b, okB := rec.Latency(subtrahend)
		if !okA || !okB {
			return
		}
		if a < b {
			rec.reject(LatencyField(target), ReasonNegative)
			return
		}
		rec.setLatency(target, a-b, true)
	}
	derive(Prefill, TimeToFirstToken, Queue)
	derive(Decode, EndToEnd, TimeToFirstToken)
	if attrMissing(Inference) {
		p, okP := rec.Latency(Prefill)
		dec, okD := rec.Latency(Decode)
		if okP && okD {
			rec.setLatency(Inference, p+dec, true)
		}
	}
}

// deriveRates computes TPOT = decode / (completion − 1) and decode throughput = (completion − 1) / decode,
// both only defined for two or more output tokens (vLLM's own definition).
func deriveRates(rec *Record) {
	completion, ok := rec.Completion()
	if !ok || completion < 2 {
		return
	}
	decode, ok := rec.Latency(Decode)
	if !ok {
		return
	}
	steps := float64(completion - 1)
	rec.tpot, rec.hasTPOT = decode/steps, true
	if throughput := steps / decode; decode > 0 && !math.IsInf(throughput, 0) {
		rec.throughput, rec.hasThroughput = throughput, true
	}
}

// resourceModel is the model named by the resource, else model.default.
func (d *Deriver) resourceModel(res *Resource) (model string, fromResource bool) {
	if !res.modelLooked {
		res.modelLooked = true
		for _, key := range d.models {
			if v, ok := res.attrs.Get(key); ok && v.Type() == pcommon.ValueTypeStr && v.Str() != "" {
				res.model = v.Str()
				break
			}
		}
	}
	if res.model != "" {
		return res.model, true
	}
	return d.model, false
}

// OperationFromRequestID infers gen_ai.operation.name from vLLM's request id prefix; known is false for an id
// of no known API, which is text_completion. Early V1 prefixes the children of an n>1 request with "<index>_",
// which is skipped; the offline LLM class numbers its requests.
func OperationFromRequestID(id string) (operation string, known bool) {
	// only an id that starts with a digit can have that prefix: the others are not scanned for '_'
	if len(id) > 0 && id[0] >= '0' && id[0] <= '9' {
		if i := strings.IndexByte(id, '_'); i > 0 && isDigits(id[:i]) {
			id = id[i+1:]
		}
	}
	if id != "" {
		for _, i := range prefixesByFirstByte[id[0]] {
			if p := &requestIDPrefixes[i]; strings.HasPrefix(id, p.prefix) {
				return p.operation, true
			}
		}
	}
	if id != "" && isDigits(id) {
		return OperationTextCompletion, true
	}
	return OperationTextCompletion, false
}

// prefixesByFirstByte lists, for each first byte, the indexes in requestIDPrefixes of the prefixes that start
// with it, in their order there: an id is compared with those only.
var prefixesByFirstByte = func() (index [256][]uint8) {
	for i, p := range requestIDPrefixes {
		index[p.prefix[0]] = append(index[p.prefix[0]], uint8(i))
	}
	return index
}()

// finishReasons says whether a gen_ai.response.finish_reasons value names an abort or an error. It accepts
// the conventions' string array and the JSON-encoded string a proposed vLLM change sends.
func finishReasons(v pcommon.Value) (aborted, errored bool) {
	check := func(reason string) {
		switch reason {
		case "abort":
			aborted = true
		case "error":
			errored = true
		}
	}
	switch v.Type() {
	case pcommon.ValueTypeSlice:
		s := v.Slice()
		for i := 0; i < s.Len(); i++ {
			if e := s.At(i); e.Type() == pcommon.ValueTypeStr {
				check(e.Str())
			}
		}
	case pcommon.ValueTypeStr:
		// a JSON list of strings; finish reasons are plain words, so quoted tokens are enough
		rest := v.Str()
		for {
			start := strings.IndexByte(rest, '"')
			if start < 0 {
				break
			}
			end := strings.IndexByte(rest[start+1:], '"')
			if end < 0 {
				break
			}
			check(rest[start+1 : start+1+end])
			rest = rest[start+end+2:]
		}
	}
	return aborted, errored
}

// errorType is the error.type of a span's request: empty when it succeeded. A span with status ERROR is typed
// by its exception event (the conventions' choice), else _OTHER; an abort without error status is "abort".
func errorType(span ptrace.Span, aborted, errored bool) string {
	if span.Status().Code() == ptrace.StatusCodeError {
		events := span.Events()
		for i := 0; i < events.Len(); i++ {
			if e := events.At(i); e.Name() == "exception" {
				if t, ok := e.Attributes().Get("exception.type"); ok && t.Type() == pcommon.ValueTypeStr && t.Str() != "" {
					return t.Str()
				}
			}
		}
		return ErrorTypeOther
	}
	switch {
	case aborted:
		return ErrorTypeAbort
	case errored:
		return ErrorTypeOther
	}
	return ""
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
