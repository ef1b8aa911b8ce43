package workload // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"

import (
	"fmt"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// SpanName is the name of vLLM's request span in every version.
const SpanName = "llm_request"

// Span attribute keys, as vLLM's SpanAttributes defines them.
const (
	AttrResponseModel    = "gen_ai.response.model"
	AttrRequestID        = "gen_ai.request.id"
	AttrTemperature      = "gen_ai.request.temperature"
	AttrTopP             = "gen_ai.request.top_p"
	AttrMaxTokens        = "gen_ai.request.max_tokens"
	AttrBestOf           = "gen_ai.request.best_of"
	AttrN                = "gen_ai.request.n"
	AttrNumSequences     = "gen_ai.usage.num_sequences"
	AttrPromptTokens     = "gen_ai.usage.prompt_tokens"
	AttrCompletionTokens = "gen_ai.usage.completion_tokens"
	AttrQueue            = "gen_ai.latency.time_in_queue"
	AttrTTFT             = "gen_ai.latency.time_to_first_token"
	AttrE2E              = "gen_ai.latency.e2e"
	AttrPrefill          = "gen_ai.latency.time_in_model_prefill"
	AttrDecode           = "gen_ai.latency.time_in_model_decode"
	AttrInference        = "gen_ai.latency.time_in_model_inference"
	AttrScheduler        = "gen_ai.latency.time_in_scheduler"
	AttrForward          = "gen_ai.latency.time_in_model_forward"
	AttrExecute          = "gen_ai.latency.time_in_model_execute"

	// ResourceAttrModel carries the model on V1 resources, as OTEL_RESOURCE_ATTRIBUTES would on a real server.
	ResourceAttrModel = "gen_ai.request.model"
)

// Anchor says which span timestamp the release time becomes.
type Anchor int

const (
	// AnchorArrival: span start = release time (the request arrives now; its end lies e2e ahead).
	AnchorArrival Anchor = iota
	// AnchorFinish: the request's last span ends at the release time, as when vLLM exports a finished request.
	AnchorFinish
)

// ParseAnchor converts an --anchor value.
func ParseAnchor(s string) (Anchor, error) {
	switch s {
	case "arrival":
		return AnchorArrival, nil
	case "finish":
		return AnchorFinish, nil
	}
	return 0, fmt.Errorf("unknown anchor %q (want arrival or finish)", s)
}

func (a Anchor) String() string {
	if a == AnchorFinish {
		return "finish"
	}
	return "arrival"
}

// ResourceConfig describes the resource each model's spans are exported under.
type ResourceConfig struct {
	ServiceName string
	// Extra attributes are added last and replace generated ones with the same key.
	Extra []KeyValue
	// ProcessIDBase seeds the vllm.process_id of each model's server (V1 shape).
	ProcessIDBase int
}

// KeyValue is one string resource attribute.
type KeyValue struct{ Key, Value string }

// SpanBuilder turns Records into OTLP trace data. One builder per goroutine: it keeps scratch state.
type SpanBuilder struct {
	shape     Shape
	models    []string
	anchor    Anchor
	resources []pcommon.Resource
	slots     []ptrace.SpanSlice
	used      []bool
	// traceState is written on every span when not empty (the head sampler's ot=th:… entry).
	traceState string
}

// NewSpanBuilder prepares one resource per model.
func NewSpanBuilder(shape Shape, models []string, res ResourceConfig, anchor Anchor) *SpanBuilder {
	b := &SpanBuilder{
		shape:     shape,
		models:    append([]string(nil), models...),
		anchor:    anchor,
		resources: make([]pcommon.Resource, len(models)),
		slots:     make([]ptrace.SpanSlice, len(models)),
		used:      make([]bool, len(models)),
	}
	for i, model := range models {
		r := pcommon.NewResource()
		attrs := r.Attributes()
		attrs.PutStr("service.name", res.ServiceName)
		attrs.PutStr("telemetry.sdk.language", "python")
		attrs.PutStr("telemetry.sdk.name", "opentelemetry")
		attrs.PutStr("telemetry.sdk.version", shape.sdkVersion())
		if shape == ShapeV1 {
			attrs.PutStr("vllm.instrumenting_module_name", "vllm.llm_engine")
			attrs.PutStr("vllm.process_id", strconv.Itoa(res.ProcessIDBase+i))
		}
		if !shape.IsV0() {
			attrs.PutStr(ResourceAttrModel, model)
		}
		for _, kv := range res.Extra {
			attrs.PutStr(kv.Key, kv.Value)
		}
		b.resources[i] = r
	}
	return b
}

// SetTraceState makes every span built from now on carry this W3C tracestate ("" writes none, as vLLM's spans
// without a sampler carry none).
func (b *SpanBuilder) SetTraceState(ts string) { b.traceState = ts }

// Build returns one export's worth of trace data: a resource per model present in recs, each with one
// scope, spans in the order of recs.
func (b *SpanBuilder) Build(recs []Record) ptrace.Traces {
	td := ptrace.NewTraces()
	b.AppendTo(td, recs)
	return td
}

// AppendTo adds recs to td (see Build).
func (b *SpanBuilder) AppendTo(td ptrace.Traces, recs []Record) {
	clear(b.used)
	rss := td.ResourceSpans()
	for i := range recs {
		rec := &recs[i]
		if !b.used[rec.Model] {
			rs := rss.AppendEmpty()
			b.resources[rec.Model].CopyTo(rs.Resource())
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(b.shape.ScopeName())
			b.slots[rec.Model] = ss.Spans()
			b.used[rec.Model] = true
		}
		b.fill(b.slots[rec.Model].AppendEmpty(), rec)
	}
}

func seconds(us int64) float64 { return float64(us) / 1e6 }

func (b *SpanBuilder) fill(span ptrace.Span, rec *Record) {
	span.SetTraceID(rec.TraceID)
	span.SetSpanID(rec.SpanID)
	if b.traceState != "" {
		span.TraceState().FromRaw(b.traceState)
	}
	span.SetName(SpanName)
	span.SetKind(ptrace.SpanKindServer)
	start := rec.ReleasedUnixNano
	if b.anchor == AnchorFinish {
		start -= rec.RequestDurationUS * 1000
	}
	span.SetStartTimestamp(pcommon.Timestamp(start))
	span.SetEndTimestamp(pcommon.Timestamp(start + rec.SpanDurationUS*1000))

	attrs := span.Attributes()
	if b.shape.IsV0() {
		// V0 (LLMEngine.create_trace_span): every sampling attribute is written, 0.0 temperature included.
		attrs.EnsureCapacity(16)
		attrs.PutStr(AttrResponseModel, b.models[rec.Model])
		attrs.PutStr(AttrRequestID, rec.RequestID)
		attrs.PutDouble(AttrTemperature, rec.Temperature)
		attrs.PutDouble(AttrTopP, rec.TopP)
		attrs.PutInt(AttrMaxTokens, rec.MaxTokens)
		if b.shape == ShapeV0Detailed {
			attrs.PutInt(AttrBestOf, rec.BestOf)
		}
		attrs.PutInt(AttrN, rec.N)
		attrs.PutInt(AttrNumSequences, rec.NumSequences)
		attrs.PutInt(AttrPromptTokens, rec.PromptTokens)
		attrs.PutInt(AttrCompletionTokens, rec.CompletionTokens)
		attrs.PutDouble(AttrQueue, seconds(rec.QueueUS))
		attrs.PutDouble(AttrTTFT, seconds(rec.TTFTUS))
		attrs.PutDouble(AttrE2E, seconds(rec.E2EUS))
		attrs.PutDouble(AttrScheduler, seconds(rec.SchedulerUS))
		if b.shape == ShapeV0Detailed {
			attrs.PutDouble(AttrForward, seconds(rec.ForwardUS))
			attrs.PutDouble(AttrExecute, seconds(rec.ExecuteUS))
		}
		return
	}
	// V1 (OutputProcessor.do_tracing): the four sampling attributes are written only when truthy.
	attrs.EnsureCapacity(13)
	attrs.PutDouble(AttrTTFT, seconds(rec.TTFTUS))
	attrs.PutDouble(AttrE2E, seconds(rec.E2EUS))
	attrs.PutDouble(AttrQueue, seconds(rec.QueueUS))
	attrs.PutInt(AttrPromptTokens, rec.PromptTokens)
	attrs.PutInt(AttrCompletionTokens, rec.CompletionTokens)
	attrs.PutDouble(AttrPrefill, seconds(rec.PrefillUS))
	attrs.PutDouble(AttrDecode, seconds(rec.DecodeUS))
	attrs.PutDouble(AttrInference, seconds(rec.InferenceUS()))
	attrs.PutStr(AttrRequestID, rec.RequestID)
	if rec.TopP != 0 {
		attrs.PutDouble(AttrTopP, rec.TopP)
	}
	if rec.MaxTokens != 0 {
		attrs.PutInt(AttrMaxTokens, rec.MaxTokens)
	}
	if rec.Temperature != 0 {
		attrs.PutDouble(AttrTemperature, rec.Temperature)
	}
	if rec.N != 0 {
		attrs.PutInt(AttrN, rec.N)
	}
}
