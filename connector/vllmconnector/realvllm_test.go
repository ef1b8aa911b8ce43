package vllmconnector

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// realVLLMVersions are the vLLM versions whose recorded output (testdata/vllm/<version>/, see its README) the
// connector must turn into vLLM's own histograms.
var realVLLMVersions = []string{"0.32.0"}

// TestReplayRealVLLM replays what a real vLLM sent through the connector and compares the metrics with the
// /metrics vLLM served for the same requests: count, sum (within 1 ms per request) and every shared bucket of
// TTFT, E2E, queue, prefill, decode, inference, TPOT and the token histograms; finished requests and tokens.
func TestReplayRealVLLM(t *testing.T) {
	for _, version := range realVLLMVersions {
		t.Run(version, func(t *testing.T) {
			fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "testdata", "vllm", version))
			require.NoError(t, err)
			cfg := seedSLOConfig()
			cfg.Histograms.SingleTokenTPOT = SingleTokenTPOTZero // vLLM observes 0 for one output token
			h := newHarness(t, cfg)
			require.NoError(t, h.c.ConsumeTraces(context.Background(), fixture.Spans))
			md := h.flush(t, time.Second)

			for _, pair := range vllmrequesttest.HistogramPairs {
				want, ok := vllmrequesttest.VLLMHistogram(fixture.Metrics, pair.VLLM)
				require.True(t, ok, pair.VLLM)
				got := vllmrequesttest.ConnectorHistogram(md, pair.Connector, pair.TokenType)
				assert.Empty(t, vllmrequesttest.Differences(want, got, 0.001), "%s against %s", pair.Connector, pair.VLLM)
				assert.Positive(t, want.Count, pair.VLLM)
			}
			var requests int64
			for _, p := range points(md, metricRequests) {
				requests += p.num.IntValue()
			}
			assert.Equal(t, vllmrequesttest.VLLMCounter(fixture.Metrics, "vllm:request_success_total", nil), float64(requests))
			spans, _ := fixture.RequestSpans()
			assert.Equal(t, int64(len(spans)), requests, "one request per llm_request span")
			for tokenType, family := range map[string]string{"input": "vllm:request_prompt_tokens", "output": "vllm:request_generation_tokens"} {
				want, _ := vllmrequesttest.VLLMHistogram(fixture.Metrics, family)
				var got int64
				for _, p := range points(md, metricTokens) {
					if p.attrs["gen_ai.token.type"] == tokenType {
						got += p.num.IntValue()
					}
				}
				assert.Equal(t, int64(want.Sum), got, tokenType)
			}
			assert.Empty(t, points(md, metricCachedTokens), "vLLM %s sends no cached-token count", version)
			for _, p := range points(md, metricRequests) {
				assert.NotContains(t, p.attrs, "error.type", "every recorded request finished")
				assert.Equal(t, "tiny-llama", p.attrs["gen_ai.request.model"], "the model from OTEL_RESOURCE_ATTRIBUTES")
			}
		})
	}
}
