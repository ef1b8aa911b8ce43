package vllmrequest

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// TestRealVLLMSpansDeriveCleanly: every request span a real vLLM sent (testdata/vllm/<version>/) is recognised
// with nothing rejected, a known operation, both token counts and every V1 latency read from the span (none
// derived); its startup spans are not recognised.
func TestRealVLLMSpansDeriveCleanly(t *testing.T) {
	for _, version := range []string{"0.32.0"} {
		t.Run(version, func(t *testing.T) {
			fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "testdata", "vllm", version))
			require.NoError(t, err)
			d := NewDeriver(NewDefaultConfig())
			var recognised, ignored int
			var rec Record
			rss := fixture.Spans.ResourceSpans()
			for i := 0; i < rss.Len(); i++ {
				res := NewResource(rss.At(i).Resource().Attributes())
				sss := rss.At(i).ScopeSpans()
				for j := 0; j < sss.Len(); j++ {
					for k := 0; k < sss.At(j).Spans().Len(); k++ {
						span := sss.At(j).Spans().At(k)
						if !d.Derive(span, &res, &rec) {
							assert.NotEqual(t, "llm_request", span.Name())
							ignored++
							continue
						}
						recognised++
						assert.Equal(t, ptrace.SpanKindServer, span.Kind())
						assert.Empty(t, rec.Rejections, "span %s", span.SpanID())
						assert.True(t, rec.OperationKnown, "operation of %v", span.Attributes().AsRaw()["gen_ai.request.id"])
						assert.Equal(t, "tiny-llama", rec.Model)
						assert.True(t, rec.ModelFromResource)
						for _, l := range []Latency{Queue, Prefill, Decode, Inference, TimeToFirstToken, EndToEnd} {
							_, ok := rec.Latency(l)
							assert.True(t, ok, "%s present", l)
							assert.False(t, rec.Derived(l), "%s read, not derived", l)
						}
						_, okP := rec.Prompt()
						_, okC := rec.Completion()
						assert.True(t, okP && okC)
						assert.Empty(t, rec.ErrorType)
					}
				}
			}
			spans, others := fixture.RequestSpans()
			assert.Equal(t, len(spans), recognised)
			assert.Equal(t, others, ignored)
		})
	}
}
