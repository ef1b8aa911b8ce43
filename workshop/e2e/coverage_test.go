package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// The span coverage rule (deploy/prometheus/recording-rules.yaml, group otelcol_vllm.span_coverage) is loaded
// into a real Prometheus with its 5m windows shortened to coverageWindow and moved coverageOffset into the past,
// so that a window lies entirely inside a steady send of coverageSend and ends before samples that may still be
// on their way (under load the connector's remote-written series can trail the scraped one by a second, 2.5% of
// a 40s window); everything else in the expression is the file's own.
const (
	coverageWindow = "40s"
	coverageOffset = "5s"
	coverageSend   = 60 * time.Second
	coverageRate   = "200"
	// coverageReadAt is when, after the senders start, the recorded coverage is read: a full window and the
	// offset after the first spans arrive, before the send ends.
	coverageReadAt = 55 * time.Second
	coverageRecord = "job_model:vllm_span_coverage:ratio_rate5m"
)

// coverageSummary is the part of vllmgen's JSON summary this test reads.
type coverageSummary struct {
	Total struct {
		Spans         int64 `json:"spans"`
		ExportedSpans int64 `json:"exported_spans"`
	} `json:"total"`
	VLLM struct {
		Total struct {
			Finished         int64 `json:"finished_requests"`
			Aborted          int64 `json:"aborted_requests"`
			PromptTokens     int64 `json:"prompt_tokens"`
			GenerationTokens int64 `json:"generation_tokens"`
			TTFTCount        int64 `json:"ttft_count"`
			E2ECount         int64 `json:"e2e_count"`
			LostSpans        int64 `json:"lost_spans"`
		} `json:"total"`
	} `json:"vllm"`
}

// vllmgenServer is a vllmgen process that plays one vLLM server: it sends spans and serves /metrics until it
// is stopped (--metrics-linger 0).
type vllmgenServer struct {
	job  string
	proc *testkit.Process
}

func startVLLMGen(t *testing.T, job, otlp, metrics string, seed int, extra ...string) *vllmgenServer {
	t.Helper()
	args := append([]string{
		"--otlp-endpoint=" + otlp, "--service-name=" + job, "--resource=service.instance.id=" + job + "-0",
		"--models=llama-8b,qwen-7b", fmt.Sprintf("--seed=%d", seed), "--rate=" + coverageRate,
		"--duration=" + coverageSend.String(), "--batch=10", "--summary=json",
		"--metrics-listen=" + metrics, "--metrics-linger=0",
	}, extra...)
	return &vllmgenServer{job: job, proc: testkit.StartProcess(t, "vllmgen "+job, nil, vllmgen(t), args...)}
}

// summary waits for the send to end (vllmgen prints its summary, then keeps serving /metrics).
func (g *vllmgenServer) summary(t *testing.T, timeout time.Duration) coverageSummary {
	t.Helper()
	var s coverageSummary
	require.Eventually(t, func() bool {
		return strings.Contains(g.proc.Stderr.String(), "serving vLLM /metrics")
	}, timeout, 200*time.Millisecond, "vllmgen %s did not finish its send: %s", g.job, g.proc.Stderr.String())
	require.NoError(t, json.Unmarshal(bytes.TrimSpace([]byte(g.proc.Stdout.String())), &s), "vllmgen %s summary: %s", g.job, g.proc.Stdout.String())
	require.Equal(t, s.Total.Spans, s.Total.ExportedSpans, "vllmgen %s could not export every span", g.job)
	return s
}

// TestSpanCoverage: the prometheus receiver scrapes vLLM-format /metrics from three simulated vLLM servers
// whose spans reach the vllm connector: one loses none, one loses 10% of its spans (--span-loss, as a full SDK
// queue would), one has 10% of its requests aborted by the client (vLLM sends no span and does not count them
// as finished). A real Prometheus evaluates the coverage rule: 1, 0.9 and 1.
func TestSpanCoverage(t *testing.T) {
	prom := startPrometheusWithRules(t, coverageWindow, coverageOffset)
	targets := map[string]string{
		"vllm-lossless": testkit.FreeLoopback(t),
		"vllm-lossy":    testkit.FreeLoopback(t),
		"vllm-aborting": testkit.FreeLoopback(t),
	}
	c := startCollector(t, "collector-0", []string{filepath.Join(workshopRoot(t), "e2e", "testdata", "coverage.yaml")}, map[string]string{
		"E2E_REMOTE_WRITE_URL": prom.remoteWriteURL(),
		"E2E_LOSSLESS_TARGET":  targets["vllm-lossless"],
		"E2E_LOSSY_TARGET":     targets["vllm-lossy"],
		"E2E_ABORTING_TARGET":  targets["vllm-aborting"],
	})

	vllmgen(t) // build before the clock starts
	started := time.Now()
	gens := []*vllmgenServer{
		startVLLMGen(t, "vllm-lossless", c.otlpGRPC, targets["vllm-lossless"], 21),
		startVLLMGen(t, "vllm-lossy", c.otlpGRPC, targets["vllm-lossy"], 22, "--span-loss=0.1"),
		startVLLMGen(t, "vllm-aborting", c.otlpGRPC, targets["vllm-aborting"], 23, "--abort-fraction=0.1"),
	}
	wantCoverage := map[string]float64{"vllm-lossless": 1, "vllm-lossy": 0.9, "vllm-aborting": 1}

	time.Sleep(time.Until(started.Add(coverageReadAt)))
	t.Run("recorded coverage during a steady send", func(t *testing.T) {
		samples := prom.query(t, coverageRecord)
		got := map[string]float64{}
		for _, s := range samples {
			got[s.Metric["job"]+"/"+s.Metric["gen_ai_request_model"]] = s.float(t)
		}
		t.Logf("recorded coverage after %s: %v", time.Since(started).Round(time.Second), got)
		for job, want := range wantCoverage {
			for _, model := range []string{"llama-8b", "qwen-7b"} {
				v, ok := got[job+"/"+model]
				if assert.True(t, ok, "no %s for job %s, model %s: %v", coverageRecord, job, model, samples) {
					assert.InDelta(t, want, v, 0.02, "coverage of %s/%s", job, model)
				}
			}
		}
		assert.Len(t, samples, 6, "one series per job and model, no unjoined ones: %v", samples)
	})

	summaries := map[string]coverageSummary{}
	for _, g := range gens {
		summaries[g.job] = g.summary(t, coverageSend)
	}

	t.Run("totals equal what vllmgen sent and vLLM counted", func(t *testing.T) {
		for job, s := range summaries {
			sel := fmt.Sprintf(`{job=%q}`, job)
			// the last scrape and the last flush reach Prometheus a little after the send
			prom.waitScalar(t, "sum(vllm_requests_total"+sel+")", float64(s.Total.Spans), 30*time.Second)
			prom.waitScalar(t, "sum(vllm:request_success_total"+sel+")", float64(s.VLLM.Total.Finished), 30*time.Second)
			for expr, want := range map[string]int64{
				"sum(vllm:prompt_tokens_total" + sel + ")":                                                   s.VLLM.Total.PromptTokens,
				"sum(vllm:generation_tokens_total" + sel + ")":                                               s.VLLM.Total.GenerationTokens,
				"sum(vllm:time_to_first_token_seconds_count" + sel + ")":                                     s.VLLM.Total.TTFTCount,
				"sum(vllm:e2e_request_latency_seconds_count" + sel + ")":                                     s.VLLM.Total.E2ECount,
				`sum(vllm:e2e_request_latency_seconds_bucket{le="+Inf",job=` + fmt.Sprintf("%q", job) + "})": s.VLLM.Total.E2ECount,
			} {
				prom.waitScalar(t, expr, float64(want), 30*time.Second)
			}
			assert.Equal(t, s.VLLM.Total.Finished, s.Total.Spans+s.VLLM.Total.LostSpans, job)
		}
		lossy := summaries["vllm-lossy"].VLLM.Total
		assert.InDelta(t, 0.1, float64(lossy.LostSpans)/float64(lossy.Finished), 0.02)
		aborting := summaries["vllm-aborting"].VLLM.Total
		assert.Positive(t, aborting.Aborted)
		assert.Zero(t, aborting.LostSpans)
	})

	t.Run("vLLM's labels arrive through the prometheus receiver", func(t *testing.T) {
		samples := prom.query(t, `vllm:request_success_total{job="vllm-lossy"}`)
		require.NotEmpty(t, samples)
		reasons := map[string]bool{}
		for _, s := range samples {
			assert.Equal(t, "0", s.Metric["engine"], "%v", s.Metric)
			assert.Contains(t, []string{"llama-8b", "qwen-7b"}, s.Metric["model_name"], "%v", s.Metric)
			assert.Equal(t, targets["vllm-lossy"], s.Metric["instance"], "the scrape target, not service.instance.id: %v", s.Metric)
			reasons[s.Metric["finished_reason"]] = true
		}
		assert.Equal(t, map[string]bool{"stop": true, "length": true, "abort": true, "error": true, "repetition": true}, reasons)
		for _, name := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} {
			assert.Len(t, prom.query(t, name+`{job="vllm-lossless"}`), 2, name)
		}
	})
}
