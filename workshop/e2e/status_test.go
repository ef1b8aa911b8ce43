package e2e

// The status page, JSON API and terminal view of the embedded default (exporter/vllmstatusexporter, cmd/vllmtop),
// and its Prometheus scrape endpoint, against the built binary, vllmgen traffic, vllmgen's vLLM /metrics, the
// fake libnvidia-ml, a real Prometheus and a real browser (Debian's headless chromium).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/fakenvml"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

type statusDoc = vllmstatusexporter.Status

const htmlModel = `<img src=x onerror=alert(1)>`

// statusOverrides layer, over the embedded default, a GPU from the fake libnvidia-ml, a 1 s snapshot interval
// (the page reloads every 2 s) and the connector's 1 s flush.
var statusOverrides = append(append([]string(nil), defaultConfigOverrides...),
	"yaml:exporters::vllm_status::snapshot_interval: 1s",
	"yaml:receivers::nvml::library_path: ${env:E2E_NVML_LIBRARY}",
	"yaml:receivers::nvml::collection_interval: 1s",
)

func fetchStatus(t *testing.T, c *collector) (statusDoc, string) {
	t.Helper()
	resp, err := http.Get("http://" + c.status + "/api/v1/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	var st statusDoc
	require.NoError(t, json.Unmarshal(body, &st), "%s", body)
	return st, string(body)
}

// waitStatus polls the status API until ok holds (the connector flushes every second, the exporter snapshots
// every second), or fails after a minute with the last document.
func waitStatus(t *testing.T, c *collector, ok func(statusDoc) bool) statusDoc {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, body := fetchStatus(t, c)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status API never showed what was expected; last document:\n%s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func modelRow(st statusDoc, name string) *vllmstatusexporter.Model {
	for i := range st.Models {
		if st.Models[i].Model == name {
			return &st.Models[i]
		}
	}
	return nil
}

// ---- chromium ----

// chromium runs headless Debian chromium on url with a fresh profile and no network but loopback, plus args
// (--dump-dom, --screenshot=...), and returns its stdout.
func chromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	return string(run(t, 2*time.Minute, "", bin, append(append(base, args...), url)...))
}

var (
	domModelRow = regexp.MustCompile(`(?s)<tr class="model">\s*<td class="name" data-field="model">(.*?)</td>.*?<td data-field="requests_total">([^<]*)</td>.*?<td data-field="running">([^<]*)</td>\s*<td data-field="waiting">([^<]*)</td>.*?<td data-field="input_tokens">([^<]*)</td>\s*<td data-field="output_tokens">([^<]*)</td>`)
	domGPURow   = regexp.MustCompile(`(?s)<tr class="gpu">\s*<td data-field="index">([^<]*)</td>\s*<td class="text" data-field="name">([^<]*)</td>`)
)

type domModel struct{ requests, running, waiting, input, output string }

func domModels(dom string) map[string]domModel {
	out := map[string]domModel{}
	for _, m := range domModelRow.FindAllStringSubmatch(dom, -1) {
		out[m[1]] = domModel{requests: m[2], running: m[3], waiting: m[4], input: m[5], output: m[6]}
	}
	return out
}

// figures are what the page's model rows show, by model.
func figures(st statusDoc) map[string][5]float64 {
	out := map[string][5]float64{}
	for _, m := range st.Models {
		var running, waiting float64 = -1, -1
		if m.Running != nil {
			running, waiting = *m.Running, *m.Waiting
		}
		out[m.Model] = [5]float64{m.RequestsTotal, running, waiting, m.Tokens.InputTotal, m.Tokens.OutputTotal}
	}
	return out
}

func itoa(v float64) string { return fmt.Sprintf("%.0f", v) }

// TestStatusPage: the embedded default with vllmgen playing vLLM (spans and /metrics) and the fake
// libnvidia-ml. The JSON API's per-model totals equal what vllmgen sent; running and waiting appear from the
// scraped gauges; the GPU row shows the scripted GPU; a model named with HTML comes back as text; a real browser
// renders the page while traffic flows and, after an update, shows the API's figures; vllmtop --once too.
func TestStatusPage(t *testing.T) {
	browser := testkit.Tool(t, testkit.Chromium)
	vllmMetrics := testkit.FreeLoopback(t)
	c := startCollector(t, "status", statusOverrides, map[string]string{
		"OTELCOL_VLLM_JAEGER_ENDPOINT":       "",
		"OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT": "",
		"OTELCOL_VLLM_VLLM_METRICS_TARGET":   vllmMetrics,
		"E2E_NVML_LIBRARY":                   fakenvml.Build(t),
		fakenvml.ScriptEnv:                   fakenvml.WriteScript(t, gpuScript(uint32(os.Getpid()))),
	})
	pageURL := "http://" + c.status + "/"

	vllmgen(t)
	gen := startVLLMGen(t, "vllm", c.otlpGRPC, vllmMetrics, 31, append([]string{"--duration=25s", "--rate=40"}, defaultSLO...)...)

	t.Run("while traffic flows the page updates itself", func(t *testing.T) {
		first := waitStatus(t, c, func(st statusDoc) bool {
			m := modelRow(st, "llama-8b")
			return m != nil && m.RequestsTotal > 0 && m.Running != nil
		})
		dom1 := chromium(t, browser, pageURL, "--dump-dom")
		require.Contains(t, dom1, `<meta http-equiv="refresh" content="2">`)
		before := domModels(dom1)
		require.Contains(t, before, "llama-8b", dom1)
		// the next snapshot has more requests: the next load shows them
		waitStatus(t, c, func(st statusDoc) bool {
			m := modelRow(st, "llama-8b")
			return m != nil && m.RequestsTotal > modelRow(first, "llama-8b").RequestsTotal+10
		})
		after := domModels(chromium(t, browser, pageURL, "--dump-dom"))
		require.Contains(t, after, "llama-8b")
		assert.NotEqual(t, before["llama-8b"].requests, after["llama-8b"].requests, "the page shows the new figures")

		shot := filepath.Join(t.TempDir(), "status-page.png")
		chromium(t, browser, pageURL, "--window-size=1600,1000", "--hide-scrollbars", "--screenshot="+shot)
		png, err := os.ReadFile(shot)
		require.NoError(t, err)
		require.Greater(t, len(png), 10_000)
		assert.Equal(t, "\x89PNG", string(png[:4]))
		if os.Getenv("E2E_UPDATE_DOCS") != "" {
			require.NoError(t, os.WriteFile(filepath.Join(repoRoot(t), "docs", "status-page.png"), png, 0o644))
		}
	})

	var want summary
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(func() string { gen.summary(t, 2*time.Minute); return gen.proc.Stdout.String() }())), &want))
	require.Len(t, want.Models, 2)

	t.Run("JSON totals equal what vllmgen sent", func(t *testing.T) {
		st := waitStatus(t, c, func(st statusDoc) bool {
			for name, r := range want.Models {
				m := modelRow(st, name)
				if m == nil || m.RequestsTotal != float64(r.Spans) {
					return false
				}
			}
			return true
		})
		for name, r := range want.Models {
			m := modelRow(st, name)
			assert.Contains(t, m.Operations, "chat", name) // vllmgen sends chat and completions requests
			assert.InDelta(t, float64(r.PromptTokens), m.Tokens.InputTotal, 0, name)
			assert.InDelta(t, float64(r.CompletionTokens), m.Tokens.OutputTotal, 0, name)
			require.NotNil(t, m.TTFT, name)
			assert.InDelta(t, float64(r.TTFT.Count), m.TTFT.Count, 0, "the window covers the whole run: %s", name)
			assert.InDelta(t, float64(r.TTFT.SumUS)/1e6/float64(r.TTFT.Count), m.TTFT.Mean, 1e-6, name)
			require.NotNil(t, m.E2E, name)
			assert.InDelta(t, float64(r.E2E.Count), m.E2E.Count, 0, name)
			all := r.SLO["all"]
			require.NotNil(t, m.GoodputRatio, name)
			assert.InDelta(t, float64(all.Met)/float64(all.Met+all.Violated), *m.GoodputRatio, 1e-9, name)
			// vLLM's gauges and its finished-request counter, from the scrape of vllmgen's /metrics
			assert.NotNil(t, m.Running, name)
			assert.NotNil(t, m.Waiting, name)
			assert.NotNil(t, m.SpanCoverage, "span-derived requests / vllm:request_success_total: %s", name)
		}
		require.NotEmpty(t, st.Slowest, "exemplars of the slowest requests")
		assert.Regexp(t, `^[0-9a-f]{32}$`, st.Slowest[0].TraceID)
	})

	t.Run("GPU rows through the fake libnvidia-ml", func(t *testing.T) {
		st := waitStatus(t, c, func(st statusDoc) bool { return len(st.GPUs) == 2 && st.GPUs[0].Utilization != nil })
		h100 := st.GPUs[0]
		require.NotNil(t, h100.Index)
		assert.Equal(t, int64(0), *h100.Index)
		assert.Equal(t, gpuH100UUID, h100.ID)
		assert.Equal(t, gpuH100, h100.Name)
		assert.InDelta(t, 0.87, *h100.Utilization, 1e-9)
		assert.InDelta(t, 80*gpuGiB, *h100.MemoryTotalBytes, 0)
		assert.InDelta(t, 123.456, *h100.PowerWatts, 1e-9)
		assert.InDelta(t, 64, *h100.TemperatureCelsius, 0)
		assert.Equal(t, gpuL4, st.GPUs[1].Name)
	})

	t.Run("a model named with HTML is text", func(t *testing.T) {
		sendRun(t, genRun{seed: 32, count: 5, protocol: "grpc", shape: "v1", models: htmlModel, resource: "service.instance.id=vllm-0", slo: defaultSLO},
			c.otlpGRPC, c.otlpHTTP)
		st := waitStatus(t, c, func(st statusDoc) bool { m := modelRow(st, htmlModel); return m != nil && m.RequestsTotal == 5 })
		_, raw := fetchStatus(t, c)
		assert.NotContains(t, raw, "<img")
		assert.Contains(t, raw, `\u003cimg src=x onerror=alert(1)\u003e`)
		require.NotNil(t, modelRow(st, htmlModel))
		dom := chromium(t, browser, pageURL, "--dump-dom")
		assert.NotContains(t, dom, "<img", "no element was created from the name")
		assert.Contains(t, domModels(dom), "&lt;img src=x onerror=alert(1)&gt;", "the browser shows the name as text")
	})

	t.Run("after an update the page shows the API's figures", func(t *testing.T) {
		// Traffic has ended, but vLLM's gauges (scraped every 5 s) still move while its last requests finish: take a
		// DOM between two API answers that agree, so that the page is compared with the figures it rendered.
		var st statusDoc
		var dom string
		for attempt := 0; ; attempt++ {
			before, _ := fetchStatus(t, c)
			dom = chromium(t, browser, pageURL, "--dump-dom")
			after, _ := fetchStatus(t, c)
			if reflect.DeepEqual(figures(before), figures(after)) {
				st = after
				break
			}
			require.Less(t, attempt, 20, "the API's figures never held still around a page load")
		}
		rows := domModels(dom)
		for _, m := range st.Models {
			name := strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(m.Model)
			row, ok := rows[name]
			if !assert.True(t, ok, "no row for %s in\n%s", name, dom) {
				continue
			}
			assert.Equal(t, itoa(m.RequestsTotal), row.requests, name)
			assert.Equal(t, itoa(m.Tokens.InputTotal), row.input, name)
			assert.Equal(t, itoa(m.Tokens.OutputTotal), row.output, name)
			if m.Running != nil {
				assert.Equal(t, itoa(*m.Running), row.running, name)
				assert.Equal(t, itoa(*m.Waiting), row.waiting, name)
			}
		}
		gpus := domGPURow.FindAllStringSubmatch(dom, -1)
		require.Len(t, gpus, 2)
		assert.Equal(t, []string{"0", gpuH100}, gpus[0][1:])
	})

	t.Run("vllmtop --once shows the API's figures", func(t *testing.T) {
		out := string(run(t, 2*time.Minute, "", vllmtopBin(t), "--once", "--url=http://"+c.status))
		st, _ := fetchStatus(t, c)
		for _, name := range []string{"llama-8b", "qwen-7b"} {
			m := modelRow(st, name)
			assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(name)+`\s+`+itoa(m.RequestsTotal)+`\s`, out)
		}
		assert.Contains(t, out, htmlModel)
		assert.Regexp(t, `(?m)^0\s+`+regexp.QuoteMeta(gpuH100)+`\s+87\.0%`, out)
	})
}

var vllmtopCmd builtCommand

func vllmtopBin(t *testing.T) string { return vllmtopCmd.get(t, "vllmtop") }

// TestPrometheusScrapeEndpoint: a real Prometheus scrapes the embedded default's prometheus exporter (with
// honor_labels, as the docs say) and holds the same per-model series and values the remote-write test finds.
func TestPrometheusScrapeEndpoint(t *testing.T) {
	scrapePort := testkit.FreePort(t)
	target := testkit.Loopback(scrapePort)
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: otelcol-vllm\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n", target)
	prom := startPrometheusConfig(t, testkit.FreePort(t), config, t.TempDir())
	c := startCollector(t, "scrape", defaultConfigOverrides, map[string]string{
		"OTELCOL_VLLM_JAEGER_ENDPOINT":       "",
		"OTELCOL_VLLM_REMOTE_WRITE_ENDPOINT": "",
		"OTELCOL_VLLM_PROMETHEUS_ENDPOINT":   target,
	})
	s := sendRun(t, genRun{seed: 22, count: 40, protocol: "http/protobuf", shape: "v1", models: "llama-8b,qwen-7b", resource: "service.instance.id=vllm-0", slo: defaultSLO},
		c.otlpGRPC, c.otlpHTTP)
	prom.waitScalar(t, "sum("+promRequests+")", float64(s.Total.Spans), 60*time.Second)
	checkExpectations(t, prom, modelExpectations(s))
	// job and instance are vLLM's (service.name, service.instance.id), as with remote write
	samples := prom.query(t, promRequests)
	require.NotEmpty(t, samples)
	for _, smp := range samples {
		assert.Equal(t, "vllm-0", smp.Metric["instance"], "%v", smp.Metric)
	}
}
