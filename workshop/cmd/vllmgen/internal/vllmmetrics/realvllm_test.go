package vllmmetrics

import (
	"bytes"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
)

// notEmulated are the /metrics families of vLLM 0.32 that the emulator does not keep: engine internals (KV cache
// blocks, prefix and multimodal caches, iterations, speculative decoding, sleep state, cost estimates) and the
// per-request histograms that the vllm connector derives from spans instead. Listing them makes every other
// difference — a family vLLM adds or renames, a label, a bucket bound — fail the test below.
var notEmulated = []string{
	"vllm:admission_rejections", "vllm:cache_config_info", "vllm:engine_sleep_state",
	"vllm:estimated_flops_per_gpu", "vllm:estimated_read_bytes_per_gpu", "vllm:estimated_write_bytes_per_gpu",
	"vllm:external_prefix_cache_hits", "vllm:external_prefix_cache_queries", "vllm:inter_token_latency_seconds",
	"vllm:iteration_tokens_total",
	"vllm:mm_cache_hits", "vllm:mm_cache_queries", "vllm:num_preemptions",
	"vllm:num_requests_waiting_by_reason", "vllm:prefix_cache_hits", "vllm:prefix_cache_queries",
	"vllm:prompt_tokens_by_source", "vllm:prompt_tokens_cached", "vllm:prompt_tokens_cached_by_source",
	"vllm:request_decode_time_seconds", "vllm:request_generation_tokens", "vllm:request_inference_time_seconds",
	"vllm:request_max_num_generation_tokens", "vllm:request_num_preemptions", "vllm:request_params_max_tokens",
	"vllm:request_params_n", "vllm:request_prefill_kv_computed_tokens", "vllm:request_prefill_time_seconds",
	"vllm:request_prompt_tokens", "vllm:request_queue_time_seconds", "vllm:request_time_per_output_token_seconds",
}

// TestMatchesRealVLLM holds the emulator's /metrics to a real vLLM's (testdata/vllm/<version>/metrics.txt): every
// family it writes exists there with the same type, label names, label values of finished_reason and bucket
// bounds; every family of vLLM's it does not write is one of notEmulated.
func TestMatchesRealVLLM(t *testing.T) {
	fixture, err := vllmrequesttest.ReadRealVLLMFixture(filepath.Join("..", "..", "..", "..", "..", "testdata", "vllm", "0.32.0"))
	require.NoError(t, err)
	real := fixture.Metrics
	r, err := New([]string{"tiny-llama"}, "0")
	require.NoError(t, err)
	require.NoError(t, r.ObserveFinished(FinishedRequest{Model: "tiny-llama", FinishedReason: FinishLength, TTFT: 40 * time.Millisecond,
		E2E: 400 * time.Millisecond, PromptTokens: 11, GenerationTokens: 12}))
	var out bytes.Buffer
	require.NoError(t, r.WriteText(&out))
	ours, err := vllmrequesttest.ParseVLLMMetrics(&out)
	require.NoError(t, err)

	for name, f := range ours {
		want, ok := real[name]
		if !assert.True(t, ok, "vLLM has no %s", name) {
			continue
		}
		assert.Equal(t, want.GetType(), f.GetType(), name)
		assert.Equal(t, labelNames(want), labelNames(f), name)
		assert.Equal(t, labelValues(want, LabelFinishedReason), labelValues(f, LabelFinishedReason), name)
		assert.Equal(t, bounds(want), bounds(f), name)
	}
	var missing []string
	for name := range real {
		if _, ok := ours[name]; ok || !strings.HasPrefix(name, "vllm:") {
			continue // process_*, python_* and http_* are the Python runtime's and the HTTP server's
		}
		// a family and its _created gauge are one metric of vLLM's code
		base := strings.TrimSuffix(trimTotal(name, real[name]), "_created")
		if !slices.Contains(missing, base) {
			missing = append(missing, base)
		}
	}
	sort.Strings(missing)
	assert.Equal(t, notEmulated, missing, "vLLM's families the emulator does not write")
}

// trimTotal names a counter family without the _total the exposition adds, as vLLM's code names it.
func trimTotal(name string, f *dto.MetricFamily) string {
	if f.GetType() == dto.MetricType_COUNTER && len(name) > 6 && name[len(name)-6:] == "_total" {
		return name[:len(name)-6]
	}
	return name
}

func labelNames(f *dto.MetricFamily) []string {
	var names []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() != "le" && !slices.Contains(names, l.GetName()) {
				names = append(names, l.GetName())
			}
		}
	}
	sort.Strings(names)
	return names
}

func labelValues(f *dto.MetricFamily, label string) []string {
	var values []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && !slices.Contains(values, l.GetValue()) {
				values = append(values, l.GetValue())
			}
		}
	}
	sort.Strings(values)
	return values
}

func bounds(f *dto.MetricFamily) []float64 {
	if f.GetType() != dto.MetricType_HISTOGRAM || len(f.GetMetric()) == 0 {
		return nil
	}
	var out []float64
	for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
		out = append(out, b.GetUpperBound())
	}
	return out
}
