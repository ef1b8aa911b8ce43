package vllmrequest

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// want is the expected content of a record; latencies absent from the map must be absent from the record.
type want struct {
	latencies         map[Latency]float64
	derived           []Latency
	prompt            int64
	completion        int64
	noTokens          bool
	tpot, throughput  float64 // 0 = must be absent
	model             string
	modelFromResource bool
	operation         string
	rejections        []Rejection
}

func readSpans(t *testing.T, name string) (ptrace.Traces, []ptrace.Span, []pcommon.Map) {
	t.Helper()
	td, err := golden.ReadTraces(filepath.Join("..", "..", "testdata", "spans", name+".yaml"))
	require.NoError(t, err)
	var spans []ptrace.Span
	var resources []pcommon.Map
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j).Spans()
			for k := 0; k < ss.Len(); k++ {
				spans = append(spans, ss.At(k))
				resources = append(resources, rs.Resource().Attributes())
			}
		}
	}
	return td, spans, resources
}

func TestDeriveFixtures(t *testing.T) {
	const (
		llama   = "meta-llama/Llama-3.1-8B-Instruct"
		qwen    = "Qwen/Qwen2.5-7B-Instruct"
		mistral = "mistralai/Mistral-7B-Instruct-v0.3"
	)
	v1Example := want{
		latencies: map[Latency]float64{Queue: 0.0421, Prefill: 0.1738, Decode: 2.9102, Inference: 3.084, TimeToFirstToken: 0.2463, EndToEnd: 3.1874},
		prompt:    1187, completion: 256, tpot: 2.9102 / 255, throughput: 255 / 2.9102,
		model: "unknown", operation: OperationChat,
	}
	withModel := func(w want, model string) want { w.model, w.modelFromResource = model, true; return w }
	tests := []struct {
		fixture string
		want    []want // one per span, in file order; nil entry = not a vLLM request span
	}{
		{"v1_newest_scope", []want{v1Example}},
		{"v1_legacy_scope", []want{{
			latencies: map[Latency]float64{Queue: 0.01, Prefill: 0.03, Decode: 1.0, Inference: 1.03, TimeToFirstToken: 0.05, EndToEnd: 1.25},
			prompt:    100, completion: 101, tpot: 0.01, throughput: 100,
			model: llama, modelFromResource: true, operation: OperationTextCompletion,
		}}},
		{"v0", []want{{
			latencies: map[Latency]float64{Queue: 0.25, Prefill: 0.25, Decode: 1.0, Inference: 1.25, TimeToFirstToken: 0.5, EndToEnd: 1.5, Scheduler: 0.0125},
			derived:   []Latency{Prefill, Decode, Inference},
			prompt:    20, completion: 11, tpot: 0.1, throughput: 10,
			model: mistral, operation: OperationChat,
		}}},
		{"v0_detailed", []want{{
			latencies: map[Latency]float64{
				Queue: 0.0153, Prefill: 0.0897 - 0.0153, Decode: 1.6422 - 0.0897, Inference: 1.6422 - 0.0153,
				TimeToFirstToken: 0.0897, EndToEnd: 1.6422, Scheduler: 0.0381, ModelForward: 1.2107, ModelExecute: 1.4489,
			},
			derived: []Latency{Prefill, Decode, Inference},
			prompt:  42, completion: 211, tpot: 1.5525 / 210, throughput: 210 / 1.5525,
			model: "meta-llama/Meta-Llama-3.1-8B-Instruct", operation: OperationTextCompletion,
		}}},
		{"v1_n2", []want{
			{
				latencies: map[Latency]float64{Queue: 0.02, Prefill: 0.08, Decode: 0.75, Inference: 0.83, TimeToFirstToken: 0.12, EndToEnd: 0.9},
				prompt:    50, completion: 31, tpot: 0.025, throughput: 40, model: qwen, modelFromResource: true, operation: OperationChat,
			},
			{
				latencies: map[Latency]float64{Queue: 0.02, Prefill: 0.085, Decode: 0.95, Inference: 1.035, TimeToFirstToken: 0.125, EndToEnd: 1.1},
				prompt:    50, completion: 40, tpot: 0.95 / 39, throughput: 39 / 0.95, model: qwen, modelFromResource: true, operation: OperationChat,
			},
		}},
		{"v1_greedy", []want{{
			latencies: map[Latency]float64{Queue: 0.005, Prefill: 0.06, Decode: 0.4, Inference: 0.46, TimeToFirstToken: 0.08, EndToEnd: 0.5},
			prompt:    12, completion: 21, tpot: 0.02, throughput: 50, model: qwen, modelFromResource: true, operation: OperationChat,
		}}},
		{"v1_one_token", []want{{
			latencies: map[Latency]float64{Queue: 0.004, Prefill: 0.05, Decode: 0, Inference: 0.05, TimeToFirstToken: 0.07, EndToEnd: 0.07},
			prompt:    300, completion: 1, model: qwen, modelFromResource: true, operation: OperationTextCompletion,
		}}},
		{"v1_negative_queue", []want{{
			latencies: map[Latency]float64{Decode: 1.5, TimeToFirstToken: 0.3, EndToEnd: 2.0},
			prompt:    80, completion: 61, tpot: 0.025, throughput: 40, model: qwen, modelFromResource: true, operation: OperationChat,
			rejections: []Rejection{{LatencyField(Queue), ReasonNegative}, {LatencyField(Prefill), ReasonExceedsE2E}, {LatencyField(Inference), ReasonExceedsE2E}},
		}}},
		{"v1_nan", []want{func() want {
			w := withModel(v1Example, qwen)
			w.latencies = map[Latency]float64{Queue: 0.0421, Prefill: 0.1738, Decode: 2.9102, Inference: 3.084, EndToEnd: 3.1874}
			w.rejections = []Rejection{{LatencyField(TimeToFirstToken), ReasonNaN}}
			return w
		}()}},
		{"v1_string_latency", []want{func() want {
			w := withModel(v1Example, qwen)
			w.latencies = map[Latency]float64{Queue: 0.0421, Prefill: 0.1738, Decode: 2.9102, Inference: 3.084, TimeToFirstToken: 0.2463}
			w.rejections = []Rejection{{LatencyField(EndToEnd), ReasonWrongType}}
			return w
		}()}},
		{"not_vllm", []want{{}, {}, {}}[:0]},
	}
	d := NewDeriver(NewDefaultConfig())
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			_, spans, resources := readSpans(t, tt.fixture)
			var rec Record
			recognised := 0
			for i, span := range spans {
				ok := d.Derive(span, resourceOf(resources[i]), &rec)
				if !ok {
					continue
				}
				require.Less(t, recognised, len(tt.want), "more spans recognised than expected")
				assertRecord(t, tt.want[recognised], &rec)
				recognised++
			}
			assert.Equal(t, len(tt.want), recognised)
		})
	}
}

func assertRecord(t *testing.T, w want, rec *Record) {
	t.Helper()
	for l := Latency(0); l < NumLatencies; l++ {
		got, ok := rec.Latency(l)
		exp, want := w.latencies[l]
		if assert.Equal(t, want, ok, "presence of %s", l) && want {
			assert.InDelta(t, exp, got, 1e-12, "%s", l)
		}
		assert.Equal(t, contains(w.derived, l), rec.Derived(l), "derived %s", l)
	}
	p, okP := rec.Prompt()
	c, okC := rec.Completion()
	assert.Equal(t, !w.noTokens, okP)
	assert.Equal(t, !w.noTokens, okC)
	assert.Equal(t, w.prompt, p)
	assert.Equal(t, w.completion, c)
	tpot, hasTPOT := rec.TimePerOutputToken()
	assert.Equal(t, w.tpot != 0, hasTPOT, "has TPOT")
	assert.InDelta(t, w.tpot, tpot, 1e-12, "TPOT")
	throughput, hasThroughput := rec.DecodeThroughput()
	assert.Equal(t, w.throughput != 0, hasThroughput, "has throughput")
	assert.InDelta(t, w.throughput, throughput, 1e-9, "throughput")
	assert.Equal(t, w.model, rec.Model)
	assert.Equal(t, w.modelFromResource, rec.ModelFromResource)
	assert.Equal(t, w.operation, rec.Operation)
	assert.Equal(t, "vllm", rec.Provider)
	assert.Equal(t, w.rejections, nilIfEmpty(rec.Rejections))
}

func contains(ls []Latency, l Latency) bool {
	for _, x := range ls {
		if x == l {
			return true
		}
	}
	return false
}

func nilIfEmpty(r []Rejection) []Rejection {
	if len(r) == 0 {
		return nil
	}
	return r
}

func resourceOf(attrs pcommon.Map) *Resource {
	r := NewResource(attrs)
	return &r
}

// span builds a minimal llm_request span with the given attributes.
func span(attrs map[string]any) ptrace.Span {
	s := ptrace.NewSpan()
	s.SetName("llm_request")
	_ = s.Attributes().FromRaw(attrs)
	return s
}

func TestDeriveBadValues(t *testing.T) {
	tests := []struct {
		name       string
		attrs      map[string]any
		latency    Latency
		wantValue  float64 // checked when wantReject is empty
		wantReject []Rejection
	}{
		{"double latency", map[string]any{AttrEndToEnd: 1.5}, EndToEnd, 1.5, nil},
		{"int latency accepted", map[string]any{AttrEndToEnd: int64(2)}, EndToEnd, 2, nil},
		{"zero latency accepted", map[string]any{AttrQueue: 0.0}, Queue, 0, nil},
		{"positive infinity", map[string]any{AttrEndToEnd: math.Inf(1)}, EndToEnd, 0, []Rejection{{LatencyField(EndToEnd), ReasonInfinite}}},
		{"negative infinity", map[string]any{AttrEndToEnd: math.Inf(-1)}, EndToEnd, 0, []Rejection{{LatencyField(EndToEnd), ReasonInfinite}}},
		{"nan", map[string]any{AttrQueue: math.NaN()}, Queue, 0, []Rejection{{LatencyField(Queue), ReasonNaN}}},
		{"negative", map[string]any{AttrQueue: -0.001}, Queue, 0, []Rejection{{LatencyField(Queue), ReasonNegative}}},
		{"over max_latency", map[string]any{AttrEndToEnd: 86400.5}, EndToEnd, 0, []Rejection{{LatencyField(EndToEnd), ReasonTooLarge}}},
		{"at max_latency", map[string]any{AttrEndToEnd: 86400.0}, EndToEnd, 86400, nil},
		{"bool latency", map[string]any{AttrTimeToFirstToken: true}, TimeToFirstToken, 0, []Rejection{{LatencyField(TimeToFirstToken), ReasonWrongType}}},
		{"string latency", map[string]any{AttrTimeToFirstToken: "0.2"}, TimeToFirstToken, 0, []Rejection{{LatencyField(TimeToFirstToken), ReasonWrongType}}},
		{"slice latency", map[string]any{AttrTimeToFirstToken: []any{0.2}}, TimeToFirstToken, 0, []Rejection{{LatencyField(TimeToFirstToken), ReasonWrongType}}},
		{"ttft beyond e2e", map[string]any{AttrEndToEnd: 1.0, AttrTimeToFirstToken: 2.5}, TimeToFirstToken, 0, []Rejection{{LatencyField(TimeToFirstToken), ReasonExceedsE2E}}},
		{"queue within e2e tolerance", map[string]any{AttrEndToEnd: 1.0, AttrQueue: 1.5}, Queue, 1.5, nil},
		{"negative tokens", map[string]any{AttrEndToEnd: 1.0, AttrPromptTokens: int64(-3)}, EndToEnd, 1, []Rejection{{FieldPromptTokens, ReasonNegative}}},
		{"huge tokens", map[string]any{AttrEndToEnd: 1.0, AttrCompletionTokens: int64(1) << 40}, EndToEnd, 1, []Rejection{{FieldCompletionTokens, ReasonTooLarge}}},
		{"fractional tokens", map[string]any{AttrEndToEnd: 1.0, AttrCompletionTokens: 2.5}, EndToEnd, 1, []Rejection{{FieldCompletionTokens, ReasonNotInteger}}},
		{"nan tokens", map[string]any{AttrEndToEnd: 1.0, AttrCompletionTokens: math.NaN()}, EndToEnd, 1, []Rejection{{FieldCompletionTokens, ReasonNaN}}},
		{"string tokens", map[string]any{AttrEndToEnd: 1.0, AttrPromptTokens: "12"}, EndToEnd, 1, []Rejection{{FieldPromptTokens, ReasonWrongType}}},
		{"derived prefill negative", map[string]any{AttrQueue: 0.5, AttrTimeToFirstToken: 0.2, AttrEndToEnd: 1.0}, Queue, 0.5, []Rejection{{LatencyField(Prefill), ReasonNegative}}},
	}
	d := NewDeriver(NewDefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec Record
			require.True(t, d.Derive(span(tt.attrs), resourceOf(pcommon.NewMap()), &rec))
			assert.Equal(t, tt.wantReject, nilIfEmpty(rec.Rejections))
			got, ok := rec.Latency(tt.latency)
			rejected := false
			for _, r := range tt.wantReject {
				rejected = rejected || r.Field == LatencyField(tt.latency)
			}
			assert.Equal(t, !rejected, ok, "latency present")
			if !rejected {
				assert.Equal(t, tt.wantValue, got)
			}
		})
	}
}

func TestDeriveTokensAsDouble(t *testing.T) {
	var rec Record
	d := NewDeriver(NewDefaultConfig())
	require.True(t, d.Derive(span(map[string]any{AttrDecode: 1.0, AttrCompletionTokens: 11.0, AttrPromptTokens: int64(7)}), resourceOf(pcommon.NewMap()), &rec))
	c, ok := rec.Completion()
	assert.True(t, ok)
	assert.Equal(t, int64(11), c)
	tpot, _ := rec.TimePerOutputToken()
	throughput, _ := rec.DecodeThroughput()
	assert.InDelta(t, 0.1, tpot, 1e-15)
	assert.InDelta(t, 10.0, throughput, 1e-12)
}

func TestRecognition(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.SpanNames = []string{"llm_request", "generate"}
	d := NewDeriver(cfg)
	tests := []struct {
		name  string
		span  string
		attrs map[string]any
		want  bool
	}{
		{"llm_request with e2e", "llm_request", map[string]any{AttrEndToEnd: 1.0}, true},
		{"second configured name", "generate", map[string]any{AttrQueue: 0.1}, true},
		{"unknown future latency key", "llm_request", map[string]any{"gen_ai.latency.time_in_kv_transfer": 0.1}, true},
		{"wrong-typed latency still recognised", "llm_request", map[string]any{AttrEndToEnd: "1.0"}, true},
		{"no latency attribute", "llm_request", map[string]any{AttrPromptTokens: int64(3)}, false},
		{"other span name", "POST /v1/completions", map[string]any{AttrEndToEnd: 1.0}, false},
		{"no attributes", "llm_request", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := span(tt.attrs)
			s.SetName(tt.span)
			var rec Record
			assert.Equal(t, tt.want, d.Derive(s, resourceOf(pcommon.NewMap()), &rec))
		})
	}
}

func TestOperationFromRequestID(t *testing.T) {
	tests := []struct {
		id, want string
		known    bool
	}{
		{"chatcmpl-abc", OperationChat, true},
		{"cmpl-abc", OperationTextCompletion, true},
		{"embd-abc", OperationEmbeddings, true},
		{"resp_abc", OperationChat, true},
		{"classify-abc", OperationClassify, true},
		{"score-abc", OperationScore, true},
		{"generative-scoring-abc", OperationScore, true},
		{"pooling-abc", OperationPooling, true},
		{"transcribe-abc", OperationTranscription, true},
		{"rt-abc", OperationTranscription, true},
		{"translate-abc", OperationTranslation, true},
		{"generate-tokens-abc", OperationTextCompletion, true},
		{"0_chatcmpl-abc", OperationChat, true}, // early V1 n>1 child
		{"12_cmpl-abc", OperationTextCompletion, true},
		{"3_pooling-abc", OperationPooling, true},
		{"0", OperationTextCompletion, true},  // offline LLM()
		{"17", OperationTextCompletion, true}, // offline LLM()
		{"embedding-1", OperationTextCompletion, false},
		{"x_chatcmpl-abc", OperationTextCompletion, false},
		{"newapi-abc", OperationTextCompletion, false},
		{"", OperationTextCompletion, false},
	}
	for _, tt := range tests {
		op, known := OperationFromRequestID(tt.id)
		assert.Equal(t, tt.want, op, tt.id)
		assert.Equal(t, tt.known, known, tt.id)
	}
}

func TestNonGenerativeOperations(t *testing.T) {
	d := NewDeriver(NewDefaultConfig())
	for _, tt := range []struct {
		id         string
		generative bool
	}{
		{"embd-1", false}, {"classify-1", false}, {"score-1", false}, {"pooling-1", false},
		{"chatcmpl-1", true}, {"cmpl-1", true}, {"transcribe-1", true}, {"translate-1", true}, {"resp_1", true},
	} {
		t.Run(tt.id, func(t *testing.T) {
			s := span(map[string]any{
				AttrRequestID: tt.id, AttrEndToEnd: 0.5, AttrQueue: 0.01, AttrPrefill: 0.3, AttrDecode: 0.0,
				AttrInference: 0.3, AttrTimeToFirstToken: 0.35, AttrPromptTokens: int64(40), AttrCompletionTokens: int64(0),
			})
			var rec Record
			require.True(t, d.Derive(s, resourceOf(pcommon.NewMap()), &rec))
			assert.Equal(t, !tt.generative, rec.NonGenerative)
			for _, l := range []Latency{EndToEnd, Queue, Prefill, Inference} {
				_, ok := rec.Latency(l)
				assert.True(t, ok, "%v is recorded for every operation", l)
			}
			_, hasTTFT := rec.Latency(TimeToFirstToken)
			_, hasDecode := rec.Latency(Decode)
			_, hasCompletion := rec.Completion()
			prompt, hasPrompt := rec.Prompt()
			assert.Equal(t, tt.generative, hasTTFT, "TTFT")
			assert.Equal(t, tt.generative, hasDecode, "decode")
			assert.Equal(t, tt.generative, hasCompletion, "output tokens")
			assert.True(t, hasPrompt)
			assert.Equal(t, int64(40), prompt)
			_, hasTPOT := rec.TimePerOutputToken()
			assert.False(t, hasTPOT)
		})
	}
}

func TestErrorsAndAborts(t *testing.T) {
	d := NewDeriver(NewDefaultConfig())
	tests := []struct {
		name      string
		status    ptrace.StatusCode
		exception string
		reasons   any
		want      string
	}{
		{name: "success", want: ""},
		{name: "finish reasons stop", reasons: `["stop"]`, want: ""},
		{name: "aborted, JSON string", reasons: `["abort"]`, want: ErrorTypeAbort},
		{name: "aborted, string array", reasons: []any{"stop", "abort"}, want: ErrorTypeAbort},
		{name: "finish reason error", reasons: `["error"]`, want: ErrorTypeOther},
		{name: "status error", status: ptrace.StatusCodeError, want: ErrorTypeOther},
		{name: "status error with exception", status: ptrace.StatusCodeError, exception: "vllm.v1.engine.exceptions.EngineDeadError",
			reasons: `["abort"]`, want: "vllm.v1.engine.exceptions.EngineDeadError"},
		{name: "status ok", status: ptrace.StatusCodeOk, want: ""},
		{name: "malformed reasons", reasons: `["abo`, want: ""},
		{name: "reasons of a wrong type", reasons: int64(3), want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := map[string]any{AttrRequestID: "chatcmpl-1", AttrEndToEnd: 1.8, AttrTimeToFirstToken: 0.3, AttrCompletionTokens: int64(37)}
			if tt.reasons != nil {
				attrs[AttrFinishReasons] = tt.reasons
			}
			s := span(attrs)
			s.Status().SetCode(tt.status)
			if tt.exception != "" {
				e := s.Events().AppendEmpty()
				e.SetName("exception")
				e.Attributes().PutStr("exception.type", tt.exception)
			}
			var rec Record
			require.True(t, d.Derive(s, resourceOf(pcommon.NewMap()), &rec))
			assert.Equal(t, tt.want, rec.ErrorType)
			ttft, ok := rec.Latency(TimeToFirstToken)
			assert.True(t, ok, "an errored request keeps the values it has")
			assert.Equal(t, 0.3, ttft)
		})
	}
}

func TestLabelsFromSpanWin(t *testing.T) {
	cfg := NewDefaultConfig()
	cfg.Provider = "acme"
	cfg.Model.Default = "fallback"
	d := NewDeriver(cfg)
	res := pcommon.NewMap()
	res.PutStr(AttrRequestModel, "resource-model")
	tests := []struct {
		name                   string
		attrs                  map[string]any
		model, op, provider    string
		fromResource, opOnSpan bool
	}{
		{"resource model, inferred op, configured provider", map[string]any{AttrEndToEnd: 1.0, AttrRequestID: "chatcmpl-1"}, "resource-model", OperationChat, "acme", true, false},
		{"response model on span first", map[string]any{AttrEndToEnd: 1.0, AttrResponseModel: "span-model", AttrRequestModel: "req-model"}, "span-model", OperationTextCompletion, "acme", false, false},
		{"request model on span before resource", map[string]any{AttrEndToEnd: 1.0, AttrRequestModel: "req-model"}, "req-model", OperationTextCompletion, "acme", false, false},
		{"empty model string ignored", map[string]any{AttrEndToEnd: 1.0, AttrResponseModel: ""}, "resource-model", OperationTextCompletion, "acme", true, false},
		{"span operation and provider kept", map[string]any{AttrEndToEnd: 1.0, AttrOperationName: "generate_content", AttrProviderName: "vllm-fork", AttrRequestID: "chatcmpl-1"}, "resource-model", "generate_content", "vllm-fork", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec Record
			require.True(t, d.Derive(span(tt.attrs), resourceOf(res), &rec))
			assert.Equal(t, tt.model, rec.Model)
			assert.Equal(t, tt.fromResource, rec.ModelFromResource)
			assert.Equal(t, tt.op, rec.Operation)
			assert.Equal(t, tt.opOnSpan, rec.OperationOnSpan)
			assert.Equal(t, tt.provider, rec.Provider)
		})
	}
	var rec Record
	require.True(t, d.Derive(span(map[string]any{AttrEndToEnd: 1.0}), resourceOf(pcommon.NewMap()), &rec))
	assert.Equal(t, "fallback", rec.Model)
}

func TestDeriveReusesRecord(t *testing.T) {
	d := NewDeriver(NewDefaultConfig())
	var rec Record
	require.True(t, d.Derive(span(map[string]any{AttrEndToEnd: math.NaN(), AttrDecode: 1.0, AttrCompletionTokens: int64(3)}), resourceOf(pcommon.NewMap()), &rec))
	require.Len(t, rec.Rejections, 1)
	require.True(t, d.Derive(span(map[string]any{AttrQueue: 0.1}), resourceOf(pcommon.NewMap()), &rec))
	assert.Empty(t, rec.Rejections)
	_, hasTPOT := rec.TimePerOutputToken()
	assert.False(t, hasTPOT)
	_, ok := rec.Completion()
	assert.False(t, ok)
	_, ok = rec.Latency(Decode)
	assert.False(t, ok)
}

// TestDeriveUsageSpellings: vLLM's usage keys and the conventions' (a proposed vLLM change renames them) give the
// same counts; with both on a span the conventions' wins whatever the order, and a malformed value of the
// superseded spelling is no rejection. Cached prompt tokens are read and never exceed the prompt.
func TestDeriveUsageSpellings(t *testing.T) {
	type kv struct {
		key   string
		value any
	}
	tests := []struct {
		name                       string
		attrs                      []kv // in this order on the span
		wantPrompt, wantCompletion int64
		wantCached                 int64
		hasCached                  bool
		wantReject                 []Rejection
	}{
		{"vLLM's spelling", []kv{{AttrPromptTokens, int64(12)}, {AttrCompletionTokens, int64(5)}}, 12, 5, 0, false, nil},
		{"the conventions' spelling", []kv{{AttrInputTokens, int64(12)}, {AttrOutputTokens, int64(5)}}, 12, 5, 0, false, nil},
		{"both, conventions last", []kv{{AttrPromptTokens, int64(1)}, {AttrCompletionTokens, int64(2)}, {AttrInputTokens, int64(12)}, {AttrOutputTokens, int64(5)}}, 12, 5, 0, false, nil},
		{"both, conventions first", []kv{{AttrInputTokens, int64(12)}, {AttrOutputTokens, int64(5)}, {AttrPromptTokens, int64(1)}, {AttrCompletionTokens, int64(2)}}, 12, 5, 0, false, nil},
		{"superseded spelling malformed", []kv{{AttrPromptTokens, "x"}, {AttrInputTokens, int64(12)}}, 12, 0, 0, false, nil},
		{"conventions' spelling malformed", []kv{{AttrPromptTokens, int64(12)}, {AttrInputTokens, -1.0}}, 0, 0, 0, false, []Rejection{{FieldPromptTokens, ReasonNegative}}},
		{"cached tokens", []kv{{AttrInputTokens, int64(12)}, {AttrCacheReadInputTokens, int64(8)}}, 12, 0, 8, true, nil},
		{"cached tokens as double", []kv{{AttrPromptTokens, int64(12)}, {AttrCacheReadInputTokens, 12.0}}, 12, 0, 12, true, nil},
		{"more cached than prompt", []kv{{AttrPromptTokens, int64(12)}, {AttrCacheReadInputTokens, int64(13)}}, 12, 0, 0, false, []Rejection{{FieldCachedTokens, ReasonTooLarge}}},
		{"cached tokens wrong type", []kv{{AttrPromptTokens, int64(12)}, {AttrCacheReadInputTokens, "8"}}, 12, 0, 0, false, []Rejection{{FieldCachedTokens, ReasonWrongType}}},
	}
	d := NewDeriver(NewDefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := span(map[string]any{AttrEndToEnd: 1.0})
			for _, a := range tt.attrs {
				require.NoError(t, s.Attributes().PutEmpty(a.key).FromRaw(a.value))
			}
			var rec Record
			require.True(t, d.Derive(s, resourceOf(pcommon.NewMap()), &rec))
			assert.Equal(t, tt.wantReject, nilIfEmpty(rec.Rejections))
			prompt, _ := rec.Prompt()
			completion, _ := rec.Completion()
			cached, hasCached := rec.CachedPrompt()
			assert.Equal(t, tt.wantPrompt, prompt, "prompt")
			assert.Equal(t, tt.wantCompletion, completion, "completion")
			assert.Equal(t, tt.wantCached, cached, "cached")
			assert.Equal(t, tt.hasCached, hasCached, "cached known")
		})
	}
}

// TestModelAttributesRanked: the first of model.attributes found on the span wins, whichever attribute comes
// first on the span; a model attribute that Derive reads for something else is not a model; a key listed twice
// ranks at its first place; gen_ai.response.model is the response model whether or not it is a model attribute.
func TestModelAttributesRanked(t *testing.T) {
	tests := []struct {
		name          string
		models        []string
		attrs         map[string]any
		model         string
		responseModel string
	}{
		{"custom before request model", []string{"custom.model", AttrRequestModel}, map[string]any{AttrRequestModel: "req", "custom.model": "custom"}, "custom", ""},
		{"request model before custom", []string{AttrRequestModel, "custom.model"}, map[string]any{"custom.model": "custom", AttrRequestModel: "req"}, "req", ""},
		{"derived key is no model", []string{AttrRequestID, "custom.model"}, map[string]any{AttrRequestID: "chatcmpl-1", "custom.model": "custom"}, "custom", ""},
		{"repeated key ranks first", []string{"a.model", "b.model", "a.model"}, map[string]any{"b.model": "b", "a.model": "a"}, "a", ""},
		{"response model not a model attribute", []string{AttrRequestModel}, map[string]any{AttrResponseModel: "resp", AttrRequestModel: "req"}, "req", "resp"},
		{"empty or non-string skipped", []string{"a.model", "b.model"}, map[string]any{"a.model": "", "b.model": "b"}, "b", ""},
		{"non-string skipped", []string{AttrResponseModel, AttrRequestModel}, map[string]any{AttrResponseModel: 5, AttrRequestModel: "req"}, "req", ""},
		{"short keys", []string{"m", "mo"}, map[string]any{"mo": "second", "m": "first"}, "first", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewDefaultConfig()
			cfg.Model.Attributes = tt.models
			d := NewDeriver(cfg)
			tt.attrs[AttrEndToEnd] = 1.0
			var rec Record
			require.True(t, d.Derive(span(tt.attrs), resourceOf(pcommon.NewMap()), &rec))
			assert.Equal(t, tt.model, rec.Model)
			assert.False(t, rec.ModelFromResource)
			assert.Equal(t, tt.responseModel, rec.ResponseModel)
		})
	}
}

// TestEveryKeyRead: each key Derive reads is read, under its own meaning, and one character more or less is
// not that key (a latency-like key still marks a request span).
func TestEveryKeyRead(t *testing.T) {
	d := NewDeriver(NewDefaultConfig())
	latencies := map[string]Latency{
		AttrQueue: Queue, AttrPrefill: Prefill, AttrDecode: Decode, AttrInference: Inference, AttrScheduler: Scheduler,
		AttrModelForward: ModelForward, AttrModelExecute: ModelExecute, AttrTimeToFirstToken: TimeToFirstToken,
		AttrEndToEnd: EndToEnd,
	}
	for key, l := range latencies {
		var rec Record
		require.True(t, d.Derive(span(map[string]any{key: 0.25}), resourceOf(pcommon.NewMap()), &rec), key)
		for other := range NumLatencies {
			got, ok := rec.Latency(other)
			if other == l {
				assert.True(t, ok, key)
				assert.Equal(t, 0.25, got, key)
			} else if !rec.Derived(other) {
				assert.False(t, ok, "%s set %s", key, other)
			}
		}
		for _, near := range []string{key + "x", key[:len(key)-1]} {
			rec = Record{}
			require.True(t, d.Derive(span(map[string]any{near: 0.25}), resourceOf(pcommon.NewMap()), &rec), near)
			assert.Zero(t, rec.LatencySet(), near)
		}
	}
	tokens := []struct {
		key  string
		read func(*Record) (int64, bool)
	}{
		{AttrPromptTokens, (*Record).Prompt}, {AttrInputTokens, (*Record).Prompt},
		{AttrCompletionTokens, (*Record).Completion}, {AttrOutputTokens, (*Record).Completion},
		{AttrCacheReadInputTokens, (*Record).CachedPrompt},
	}
	for _, tt := range tokens {
		var rec Record
		require.True(t, d.Derive(span(map[string]any{AttrEndToEnd: 10.0, tt.key: 7}), resourceOf(pcommon.NewMap()), &rec))
		n, ok := tt.read(&rec)
		assert.True(t, ok, tt.key)
		assert.Equal(t, int64(7), n, tt.key)
		rec = Record{}
		require.True(t, d.Derive(span(map[string]any{AttrEndToEnd: 10.0, tt.key + "x": 7, tt.key[:len(tt.key)-1]: 7}), resourceOf(pcommon.NewMap()), &rec))
		_, ok = tt.read(&rec)
		assert.False(t, ok, tt.key)
	}
	assert.False(t, d.Derive(span(map[string]any{"gen_ai.usage.prompt_tokens": 5}), resourceOf(pcommon.NewMap()), &Record{}),
		"no latency: not a request span")
	assert.True(t, d.Derive(span(map[string]any{"gen_ai.latency.": 5}), resourceOf(pcommon.NewMap()), &Record{}),
		"the latency prefix alone marks a request span, as before")
}
