package vllmstatusexporter

import (
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
)

var update = flag.Bool("update", false, "rewrite testdata/status.golden.json")

// fixture is a store with two models (one named with HTML), a GPU and a firing alert, at t0+1m.
func fixture(t *testing.T) (*statusExporter, time.Time) {
	t.Helper()
	cfg := testConfig()
	cfg.JaegerURL = "http://localhost:16686"
	e := newStatusExporter(cfg, componenttest.NewNopTelemetrySettings())
	now := t0.Add(time.Minute)
	e.now = func() time.Time { return now }
	llama := &series{model: "llama-8b", op: "chat", start: t0}
	evil := &series{model: `<img src=x onerror=alert(1)>`, op: "text_completion", start: t0}
	e.store.consume(llama.metrics(t0), t0)
	e.store.consume(evil.metrics(t0), t0)
	e.store.consume(gaugeMetrics(metricVLLMWaiting, 12, "model_name", "llama-8b"), t0)
	e.store.consume(gaugeMetrics(metricVLLMRunning, 4, "model_name", "llama-8b"), t0)
	e.tick(t0)
	llama.requests, llama.errors, llama.tokensIn, llama.tokensOut = 120, map[string]float64{"abort": 6}, 24000, 12000
	llama.sloAll = [2]float64{108, 120}
	llama.ttft = []float64{0.03, 0.05, 0.09, 0.12, 0.2, 0.3, 0.45, 0.7, 1.2, 3.1}
	llama.exemplars = []exemplarIn{{4.2, 7}}
	evil.requests, evil.tokensIn, evil.tokensOut, evil.ttft = 3, 30, 3, []float64{0.5}
	e.store.consume(llama.metrics(now), now)
	e.store.consume(evil.metrics(now), now)
	e.store.consume(gaugeMetrics(metricGPUUtil, 0.5, "hw.id", "GPU-0", "hw.model", "NVIDIA H100 80GB HBM3", "nvidia.gpu.index", 0, "hw.gpu.task", "general"), now)
	e.tick(now)
	return e, now
}

func get(t *testing.T, h http.Handler, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	body, err := io.ReadAll(rec.Result().Body)
	require.NoError(t, err)
	return rec.Result(), string(body)
}

func TestAPIGolden(t *testing.T) {
	t.Parallel()
	e, _ := fixture(t)
	resp, body := get(t, e.handler(), "/api/v1/metrics?window=1m")
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	golden := filepath.Join("testdata", "status.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(golden, []byte(body), 0o600))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	assert.Equal(t, string(want), body, "the JSON document changed: if on purpose, document it in the README and run go test -run TestAPIGolden -update")

	var st Status
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	assert.Equal(t, `<img src=x onerror=alert(1)>`, st.Models[0].Model, "escaped in transit, the same string once decoded")
}

func TestEscaping(t *testing.T) {
	t.Parallel()
	e, _ := fixture(t)
	_, api := get(t, e.handler(), "/api/v1/metrics")
	assert.NotContains(t, api, "<img")
	assert.Contains(t, api, `\u003cimg src=x onerror=alert(1)\u003e`)

	resp, page := get(t, e.handler(), "/")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.NotContains(t, page, "<img")
	assert.Contains(t, page, `<td class="name" data-field="model">&lt;img src=x onerror=alert(1)&gt;</td>`)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "default-src 'none'")
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
}

func TestPage(t *testing.T) {
	t.Parallel()
	e, _ := fixture(t)
	resp, page := get(t, e.handler(), "/?window=5m")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`<meta http-equiv="refresh" content="5">`,
		`<a href="?window=5m0s" class="current" aria-current="true">5m</a>`,
		`<td class="name" data-field="model">llama-8b</td>`,
		`<td data-field="requests_total">120</td>`,
		`<td data-field="waiting">12</td>`,
		`<td data-field="goodput_ratio">90.0%</td>`,
		`<td class="text" data-field="name">NVIDIA H100 80GB HBM3</td>`,
		`llama-8b: 12 requests waiting (more than 5)`,
		`<a href="http://localhost:16686/trace/07010000000000000000000000000000" rel="noreferrer">`,
		`<polyline points="`,
	} {
		assert.Contains(t, page, want)
	}
	assert.NotContains(t, page, "<script", "the page runs no script")
	assert.NotContains(t, page, "http://cdn", "no asset from elsewhere")

	resp, css := get(t, e.handler(), "/static/style.css")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, css, "polyline")

	resp, _ = get(t, e.handler(), "/api/v1/metrics?window=7m")
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "only the configured windows")
	resp, _ = get(t, e.handler(), "/api/v1/metrics?window=60")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "seconds are accepted")
	for _, path := range []string{"/config", "/static/", "/static/../page.html.tmpl", "/web/page.html.tmpl"} {
		resp, body := get(t, e.handler(), path)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, path) // 404, or a redirect to a cleaned path that is 404
		assert.NotContains(t, body, "{{", path)
	}
	rec := httptest.NewRecorder()
	e.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/metrics", strings.NewReader("{}")))
	assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "read-only")
}
