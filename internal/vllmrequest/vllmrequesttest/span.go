package vllmrequesttest // import "github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// This file is the one definition of vLLM's request span shape, for everything that forges vLLM spans: V1Batch
// here, and in the workshop vllmgen's generator and its vLLM emulator. The hand-written fixtures of each version
// (testdata/spans/) and the recorded spans of a real vLLM (testdata/vllm/) are what the shape is checked against.

// SpanName is the name of vLLM's request span in every version.
const SpanName = "llm_request"

// Span attribute keys, as vLLM's SpanAttributes defines them. They are vllmrequest's Attr* where that package
// reads them (span_test.go checks it); vllmrequest's own tests import this package, so it cannot import that one.
const (
	AttrResponseModel    = "gen_ai.response.model"
	AttrRequestModel     = "gen_ai.request.model"
	AttrRequestID        = "gen_ai.request.id"
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
	AttrTemperature      = "gen_ai.request.temperature"
	AttrTopP             = "gen_ai.request.top_p"
	AttrMaxTokens        = "gen_ai.request.max_tokens"
	AttrBestOf           = "gen_ai.request.best_of"
	AttrN                = "gen_ai.request.n"
	AttrNumSequences     = "gen_ai.usage.num_sequences"
)

// Dialect is the request span of one era of vLLM: where it is emitted from and which attributes it carries.
type Dialect int

const (
	// DialectV1 is the V1 engine span of vLLM ≥ 0.16 (OutputProcessor.do_tracing, scope vllm.tracing.otel,
	// resource with the vllm.* attributes).
	DialectV1 Dialect = iota
	// DialectV1LegacyScope is the V1 engine span of vLLM 0.10.2–0.15: DialectV1's span attributes under scope
	// vllm.llm_engine and the plain SDK resource.
	DialectV1LegacyScope
	// DialectV0 is the V0 engine span of vLLM 0.7–0.10 (LLMEngine.create_trace_span).
	DialectV0
	// DialectV0Detailed is the V0 engine span of vLLM 0.5.4–0.6.x started with --collect-detailed-traces all:
	// gen_ai.request.best_of plus the model forward/execute times.
	DialectV0Detailed
)

// IsV0 reports whether the dialect is a V0 engine span (one span per API request, n>1 folded into it).
func (d Dialect) IsV0() bool { return d == DialectV0 || d == DialectV0Detailed }

// ScopeName is the instrumentation scope the span is emitted under (no scope version in any release).
func (d Dialect) ScopeName() string {
	if d == DialectV1 {
		return "vllm.tracing.otel"
	}
	return "vllm.llm_engine"
}

// SDKVersion is the opentelemetry-sdk version typical of the era, for telemetry.sdk.version.
func (d Dialect) SDKVersion() string {
	if d == DialectV1 {
		return "1.45.2" // what vLLM 0.32's requirements install
	}
	return "1.26.0"
}

// Resource is what a vLLM server's tracer puts on its resource.
type Resource struct {
	ServiceName string
	// SDKVersion is telemetry.sdk.version; empty writes the dialect's SDKVersion.
	SDKVersion string
	// ProcessID is vllm.process_id (DialectV1 only).
	ProcessID string
	// Model, when not empty, is written as gen_ai.request.model on V1 resources, as OTEL_RESOURCE_ATTRIBUTES
	// does on a real server: V1 spans carry no model. V0 spans carry gen_ai.response.model instead.
	Model string
}

// WriteResource writes r's attributes, in the order the SDK sets them, to attrs.
func WriteResource(attrs pcommon.Map, r Resource, d Dialect) {
	attrs.PutStr("service.name", r.ServiceName)
	attrs.PutStr("telemetry.sdk.language", "python")
	attrs.PutStr("telemetry.sdk.name", "opentelemetry")
	version := r.SDKVersion
	if version == "" {
		version = d.SDKVersion()
	}
	attrs.PutStr("telemetry.sdk.version", version)
	if d == DialectV1 {
		attrs.PutStr("vllm.instrumenting_module_name", "vllm.llm_engine")
		attrs.PutStr("vllm.process_id", r.ProcessID)
	}
	if !d.IsV0() && r.Model != "" {
		attrs.PutStr(AttrRequestModel, r.Model)
	}
}

// Request is the content of one llm_request span. Latencies are seconds, as vLLM writes them.
type Request struct {
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	// ParentSpanID is the incoming traceparent's span, empty for a root span.
	ParentSpanID pcommon.SpanID
	// TraceState is written when not empty (a head sampler's ot=th:… entry).
	TraceState string
	Start, End pcommon.Timestamp

	// Model is gen_ai.response.model (V0 dialects only).
	Model     string
	RequestID string
	// Temperature, TopP, MaxTokens and N are written by V1 only when not zero, by V0 always.
	Temperature float64
	TopP        float64
	MaxTokens   int64
	N           int64
	// BestOf is DialectV0Detailed's gen_ai.request.best_of; NumSequences is V0's gen_ai.usage.num_sequences.
	BestOf           int64
	NumSequences     int64
	PromptTokens     int64
	CompletionTokens int64

	Queue, TTFT, E2E float64
	// Prefill, Decode and Inference are V1's engine-core times.
	Prefill, Decode, Inference float64
	// Scheduler is V0's time_in_scheduler; Forward and Execute DialectV0Detailed's model times.
	Scheduler, Forward, Execute float64
}

// WriteSpan writes r to s as vLLM of dialect d does: name, kind SERVER, ids, times and the attributes in the
// order vLLM sets them. It allocates nothing beyond the attribute values pdata stores.
func WriteSpan(s ptrace.Span, r *Request, d Dialect) {
	s.SetTraceID(r.TraceID)
	s.SetSpanID(r.SpanID)
	if !r.ParentSpanID.IsEmpty() {
		s.SetParentSpanID(r.ParentSpanID)
	}
	if r.TraceState != "" {
		s.TraceState().FromRaw(r.TraceState)
	}
	s.SetName(SpanName)
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(r.Start)
	s.SetEndTimestamp(r.End)

	a := s.Attributes()
	if d.IsV0() {
		// V0 (LLMEngine.create_trace_span): every sampling attribute is written, 0.0 temperature included.
		a.EnsureCapacity(16)
		a.PutStr(AttrResponseModel, r.Model)
		a.PutStr(AttrRequestID, r.RequestID)
		a.PutDouble(AttrTemperature, r.Temperature)
		a.PutDouble(AttrTopP, r.TopP)
		a.PutInt(AttrMaxTokens, r.MaxTokens)
		if d == DialectV0Detailed {
			a.PutInt(AttrBestOf, r.BestOf)
		}
		a.PutInt(AttrN, r.N)
		a.PutInt(AttrNumSequences, r.NumSequences)
		a.PutInt(AttrPromptTokens, r.PromptTokens)
		a.PutInt(AttrCompletionTokens, r.CompletionTokens)
		a.PutDouble(AttrQueue, r.Queue)
		a.PutDouble(AttrTTFT, r.TTFT)
		a.PutDouble(AttrE2E, r.E2E)
		a.PutDouble(AttrScheduler, r.Scheduler)
		if d == DialectV0Detailed {
			a.PutDouble(AttrForward, r.Forward)
			a.PutDouble(AttrExecute, r.Execute)
		}
		return
	}
	// V1 (OutputProcessor.do_tracing): the four sampling attributes are written only when truthy.
	a.EnsureCapacity(13)
	a.PutDouble(AttrTTFT, r.TTFT)
	a.PutDouble(AttrE2E, r.E2E)
	a.PutDouble(AttrQueue, r.Queue)
	a.PutInt(AttrPromptTokens, r.PromptTokens)
	a.PutInt(AttrCompletionTokens, r.CompletionTokens)
	a.PutDouble(AttrPrefill, r.Prefill)
	a.PutDouble(AttrDecode, r.Decode)
	a.PutDouble(AttrInference, r.Inference)
	a.PutStr(AttrRequestID, r.RequestID)
	if r.TopP != 0 {
		a.PutDouble(AttrTopP, r.TopP)
	}
	if r.MaxTokens != 0 {
		a.PutInt(AttrMaxTokens, r.MaxTokens)
	}
	if r.Temperature != 0 {
		a.PutDouble(AttrTemperature, r.Temperature)
	}
	if r.N != 0 {
		a.PutInt(AttrN, r.N)
	}
}
