package workload

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// referenceExample is the part of testdata/vllm_span_examples.json the tests compare against.
type referenceExample struct {
	Resource       map[string]string `json:"resource"`
	Scope          struct{ Name, Version string }
	Name           string            `json:"name"`
	KindCode       int               `json:"kind_code"`
	AttributeTypes map[string]string `json:"attribute_types"`
}

func loadExamples(t *testing.T) []referenceExample {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "vllm_span_examples.json"))
	require.NoError(t, err)
	var ex []referenceExample
	require.NoError(t, json.Unmarshal(raw, &ex))
	require.Len(t, ex, 2)
	return ex
}

// buildOne generates requests until one has a single non-greedy span and returns it as OTLP data.
func buildOne(t *testing.T, shape Shape) (ptrace.ResourceSpans, ptrace.ScopeSpans, ptrace.Span) {
	t.Helper()
	g, err := NewGenerator(Config{Shape: shape, Profile: ProfileChat, Models: []string{"meta-llama/Llama-3.1-8B-Instruct"}, Seed: 7})
	require.NoError(t, err)
	recs := g.Next(nil)
	require.Len(t, recs, 1)
	require.NotZero(t, recs[0].Temperature)
	td := NewSpanBuilder(shape, g.Config().Models, ResourceConfig{ServiceName: "vllm-server", ProcessIDBase: 4711}, AnchorArrival).Build(recs)
	require.Equal(t, 1, td.ResourceSpans().Len())
	rs := td.ResourceSpans().At(0)
	require.Equal(t, 1, rs.ScopeSpans().Len())
	ss := rs.ScopeSpans().At(0)
	require.Equal(t, 1, ss.Spans().Len())
	return rs, ss, ss.Spans().At(0)
}

func valueTypeName(v pcommon.Value) string {
	switch v.Type() {
	case pcommon.ValueTypeDouble:
		return "double"
	case pcommon.ValueTypeInt:
		return "int"
	case pcommon.ValueTypeStr:
		return "string"
	default:
		return v.Type().String()
	}
}

func attributeTypes(m pcommon.Map) map[string]string {
	out := map[string]string{}
	for k, v := range m.All() {
		out[k] = valueTypeName(v)
	}
	return out
}

func orderedKeys(m pcommon.Map) []string {
	var keys []string
	for k := range m.All() {
		keys = append(keys, k)
	}
	return keys
}

func withoutKeys(m map[string]string, drop ...string) map[string]string {
	out := maps.Clone(m)
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

func TestShapeMatchesReferenceExamples(t *testing.T) {
	ex := loadExamples(t)
	v1, v0 := ex[0], ex[1]
	tests := []struct {
		shape Shape
		// want is the example with the keys this shape's vLLM version does not emit removed.
		example             referenceExample
		dropAttributes      []string
		dropResource        []string
		wantScope           string
		wantModelOnSpan     bool
		wantSDKVersion      string
		wantModelOnResource bool
	}{
		{shape: ShapeV1, example: v1, wantScope: "vllm.tracing.otel", wantSDKVersion: "1.45.2", wantModelOnResource: true},
		{
			shape: ShapeV1LegacyScope, example: v1, wantScope: "vllm.llm_engine", wantSDKVersion: "1.26.0", wantModelOnResource: true,
			dropResource: []string{"vllm.instrumenting_module_name", "vllm.process_id"},
		},
		{
			shape: ShapeV0, example: v0, wantScope: "vllm.llm_engine", wantSDKVersion: "1.26.0", wantModelOnSpan: true,
			dropAttributes: []string{vllmrequesttest.AttrBestOf, vllmrequesttest.AttrForward, vllmrequesttest.AttrExecute},
		},
		{shape: ShapeV0Detailed, example: v0, wantScope: "vllm.llm_engine", wantSDKVersion: "1.26.0", wantModelOnSpan: true},
	}
	for _, tt := range tests {
		t.Run(tt.shape.String(), func(t *testing.T) {
			rs, ss, span := buildOne(t, tt.shape)

			assert.Equal(t, withoutKeys(tt.example.AttributeTypes, tt.dropAttributes...), attributeTypes(span.Attributes()))
			assert.Equal(t, tt.wantScope, ss.Scope().Name())
			assert.Empty(t, ss.Scope().Version())
			assert.Equal(t, tt.example.Name, span.Name())
			assert.Equal(t, tt.example.KindCode, int(span.Kind()))
			assert.Equal(t, ptrace.StatusCodeUnset, span.Status().Code())
			assert.Zero(t, span.Events().Len())
			assert.Zero(t, span.Links().Len())
			assert.True(t, span.ParentSpanID().IsEmpty(), "a request without traceparent is a root span")

			resource := attributeTypes(rs.Resource().Attributes())
			model, hasModel := rs.Resource().Attributes().Get(vllmrequesttest.AttrRequestModel)
			assert.Equal(t, tt.wantModelOnResource, hasModel)
			if hasModel {
				assert.Equal(t, "meta-llama/Llama-3.1-8B-Instruct", model.Str())
			}
			wantResource := map[string]string{}
			for k := range withoutKeys(tt.example.Resource, tt.dropResource...) {
				wantResource[k] = "string"
			}
			assert.Equal(t, wantResource, withoutKeys(resource, vllmrequesttest.AttrRequestModel))
			sdk, _ := rs.Resource().Attributes().Get("telemetry.sdk.version")
			assert.Equal(t, tt.wantSDKVersion, sdk.Str())

			responseModel, ok := span.Attributes().Get(vllmrequesttest.AttrResponseModel)
			assert.Equal(t, tt.wantModelOnSpan, ok)
			if ok {
				assert.Equal(t, "meta-llama/Llama-3.1-8B-Instruct", responseModel.Str())
			}
		})
	}
}

// The repository's shared span fixtures fix the attribute order as well; the generator writes attributes in
// the order vLLM sets them.
func TestShapeMatchesRepositoryFixtures(t *testing.T) {
	tests := []struct {
		shape   Shape
		fixture string
	}{
		{ShapeV1, "v1_newest_scope.yaml"},
		{ShapeV1LegacyScope, "v1_legacy_scope.yaml"},
		{ShapeV0, "v0.yaml"},
		{ShapeV0Detailed, "v0_detailed.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.shape.String(), func(t *testing.T) {
			want, err := golden.ReadTraces(filepath.Join("..", "..", "..", "..", "..", "testdata", "spans", tt.fixture))
			require.NoError(t, err)
			wantRS := want.ResourceSpans().At(0)
			wantSS := wantRS.ScopeSpans().At(0)
			wantSpan := wantSS.Spans().At(0)

			rs, ss, span := buildOne(t, tt.shape)
			assert.Equal(t, orderedKeys(wantSpan.Attributes()), orderedKeys(span.Attributes()))
			assert.Equal(t, attributeTypes(wantSpan.Attributes()), attributeTypes(span.Attributes()))
			assert.Equal(t, wantSS.Scope().Name(), ss.Scope().Name())
			assert.Equal(t, wantSpan.Kind(), span.Kind())
			assert.Equal(t, wantSpan.Name(), span.Name())
			wantResourceKeys := slices.DeleteFunc(orderedKeys(wantRS.Resource().Attributes()), func(k string) bool { return k == vllmrequesttest.AttrRequestModel })
			gotResourceKeys := slices.DeleteFunc(orderedKeys(rs.Resource().Attributes()), func(k string) bool { return k == vllmrequesttest.AttrRequestModel })
			assert.Equal(t, wantResourceKeys, gotResourceKeys)
		})
	}
}

func TestParseShape(t *testing.T) {
	for _, s := range Shapes() {
		got, err := ParseShape(s.String())
		require.NoError(t, err)
		assert.Equal(t, s, got)
	}
	_, err := ParseShape("v2")
	assert.ErrorContains(t, err, `unknown shape "v2"`)
}

// TestShapeMatchesRealVLLM holds the default shape (v1) to what a real vLLM sent (testdata/vllm/<version>/,
// recorded by the end-to-end test): span name, kind, scope name and version, status, events and links, every
// attribute key with its type (for a sampled, non-greedy request), the request id's form, and the resource's
// keys (less service.instance.id, which the recording set through OTEL_RESOURCE_ATTRIBUTES) and SDK.
func TestShapeMatchesRealVLLM(t *testing.T) {
	fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "..", "..", "..", "testdata", "vllm", "0.32.0"))
	require.NoError(t, err)
	td := fixture.Spans
	rs, ss, span := buildOne(t, ShapeV1)
	gotResource := withoutKeys(attributeTypes(rs.Resource().Attributes()))
	compared := 0
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		realRS := td.ResourceSpans().At(i)
		for j := 0; j < realRS.ScopeSpans().Len(); j++ {
			realSS := realRS.ScopeSpans().At(j)
			for k := 0; k < realSS.Spans().Len(); k++ {
				real := realSS.Spans().At(k)
				if real.Name() != vllmrequesttest.SpanName {
					continue
				}
				temperature, _ := real.Attributes().Get(vllmrequesttest.AttrTemperature)
				if temperature.Double() == 0 {
					continue // greedy requests carry no temperature; the generator's is sampled
				}
				compared++
				assert.Equal(t, real.Kind(), span.Kind())
				assert.Equal(t, realSS.Scope().Name(), ss.Scope().Name())
				assert.Equal(t, realSS.Scope().Version(), ss.Scope().Version())
				assert.Equal(t, real.Status().Code(), span.Status().Code())
				assert.Equal(t, real.Events().Len(), span.Events().Len())
				assert.Equal(t, real.Links().Len(), span.Links().Len())
				assert.Equal(t, attributeTypes(real.Attributes()), attributeTypes(span.Attributes()))
				assert.Equal(t, orderedKeys(real.Attributes()), orderedKeys(span.Attributes()), "the order vLLM writes them in")
				id, _ := real.Attributes().Get(vllmrequesttest.AttrRequestID)
				assert.True(t, vllmChatID.MatchString(id.Str()) || vllmCompletionID.MatchString(id.Str()), "vLLM's id %q has the generator's form", id.Str())
				assert.Equal(t, withoutKeys(attributeTypes(realRS.Resource().Attributes()), "service.instance.id"), gotResource)
				realSDK, _ := realRS.Resource().Attributes().Get("telemetry.sdk.version")
				sdk, _ := rs.Resource().Attributes().Get("telemetry.sdk.version")
				assert.Equal(t, realSDK.Str(), sdk.Str())
			}
		}
	}
	require.Positive(t, compared)
}
