package report

import (
	"context"
	"fmt"
	stdhtml "html"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/aggregate"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/result"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// saveRun writes the result of a run at concurrency conc: good of 10 requests meet ttft:100, and each joined
// request spent queue, prefill and decode seconds on the server.
func saveRun(t *testing.T, dir string, conc, good int, queue, prefill, decode float64, config string) {
	t.Helper()
	var recs []record.Record
	for i := range 10 {
		ttft := 0.05
		if i >= good {
			ttft = 0.5
		}
		recs = append(recs, record.Record{Success: true, PromptTokens: 16, OutputTokens: 8, TTFT: ttft, E2EL: ttft + 0.2,
			Server: &record.Server{Queue: queue, Prefill: prefill, Decode: decode, Inference: prefill + decode, E2E: queue + prefill + decode}})
	}
	g := metrics.Goodput{"ttft": 100}
	s := metrics.Compute(recs, 2, g, []float64{50, 99})
	run := result.Run{Date: start.Add(time.Duration(conc) * time.Minute), Backend: "openai", Model: "m", NumPrompts: 10, RequestRate: math.Inf(1),
		MaxConcurrency: conc, Goodput: g, RandomInputLen: 16, RandomOutputLen: 8, Metadata: map[string]string{"config": config}}
	_, err := result.Save(dir, fmt.Sprintf("c%d.json", conc), result.Build(run, s, recs, false), recs, false)
	require.NoError(t, err)
}

func TestCapacityAndGrowth(t *testing.T) {
	dir := t.TempDir()
	saveRun(t, dir, 1, 10, 0, 0.02, 0.07, "A")
	saveRun(t, dir, 2, 10, 0, 0.02, 0.07, "A")
	saveRun(t, dir, 4, 9, 0.001, 0.02, 0.07, "A")
	saveRun(t, dir, 8, 3, 0.1, 0.02, 0.07, "A")
	saveRun(t, dir, 16, 10, 0.3, 0.02, 0.07, "A") // meets the target again: not within capacity, 8 did not
	runs, err := aggregate.Load(dir)
	require.NoError(t, err)
	axis := ChooseAxis(runs)
	require.Equal(t, AxisConcurrency, axis)
	d := NewDataset("A", runs, axis)
	caps := d.Capacities(0.9)
	require.Len(t, caps, 1)
	assert.Equal(t, "16 in / 8 out: up to 4 concurrent requests meet ttft:100 for ≥ 90% of requests (at 8 concurrent requests: 30%).",
		CapacitySentence(caps[0], axis, d.Objectives(), 0.9))
	assert.Equal(t, "16 in / 8 out: up to 2 concurrent requests meet ttft:100 for ≥ 95% of requests (at 4 concurrent requests: 90%).",
		CapacitySentence(d.Capacities(0.95)[0], axis, d.Objectives(), 0.95))
	assert.Equal(t, "16 in / 8 out: no load point meets ttft:100 for ≥ 100% of requests (at 4 concurrent requests: 90%).",
		CapacitySentence(NewDataset("A", runs[2:], axis).Capacities(1)[0], axis, d.Objectives(), 1))

	g := d.Growths()
	require.Len(t, g, 1)
	assert.Equal(t, "queue", g[0].Phase)
	assert.InDelta(t, 300, g[0].Queue, 1e-9)
	assert.Equal(t, "16 in / 8 out: from 1 concurrent request to 16 concurrent requests the server's mean time per request went "+
		"from 90 ms to 390 ms (queue +300 ms, prefill +0 ms, decode +0 ms; queue 0% → 77% of it, decode 78% → 18%): "+
		"the time grew in the queue — the server ran out of capacity and requests waited for a free slot.", GrowthSentence(g[0], axis))

	// batching that slows every token shows as decode
	dir = t.TempDir()
	saveRun(t, dir, 1, 10, 0, 0.02, 0.07, "B")
	saveRun(t, dir, 32, 10, 0.01, 0.03, 0.2, "B")
	runs, err = aggregate.Load(dir)
	require.NoError(t, err)
	g = NewDataset("B", runs, axis).Growths()
	require.Len(t, g, 1)
	assert.Contains(t, GrowthSentence(g[0], axis), "decode +130 ms")
	assert.Contains(t, GrowthSentence(g[0], axis), "the time grew in decode — larger batches slowed every token.")
}

func TestFrontier(t *testing.T) {
	pts := plotter.XYs{{X: 100, Y: 100}, {X: 50, Y: 400}, {X: 60, Y: 300}, {X: 20, Y: 350}, {X: 10, Y: 800}, {X: 100, Y: 90}}
	assert.Equal(t, plotter.XYs{{X: 10, Y: 800}, {X: 60, Y: 300}, {X: 100, Y: 100}}[:1], Frontier(pts)[:1])
	assert.Equal(t, plotter.XYs{{X: 10, Y: 800}, {X: 50, Y: 400}, {X: 60, Y: 300}, {X: 100, Y: 100}}, Frontier(pts))
}

func TestGenerateCompareAndGPU(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, c := range []int{1, 4, 8} {
		saveRun(t, a, c, 10-c, 0.01*float64(c), 0.02, 0.07, "A")
		saveRun(t, b, c, 10, 0.001*float64(c), 0.02, 0.07, "B")
	}
	var mu sync.Mutex
	var queries []string
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query().Get("query")+" @ "+r.URL.Query().Get("time"))
		mu.Unlock()
		v := "0.5"
		if strings.Contains(r.URL.Query().Get("query"), "sm_activity") {
			v = "0.25"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"%s"]}]}}`, v)
	}))
	defer prom.Close()
	out := filepath.Join(t.TempDir(), "out")
	paths, err := Generate(context.Background(), Options{Dir: a, CompareDir: b, OutDir: out,
		Prometheus: Prometheus{URL: prom.URL, Client: prom.Client()}})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(out, HTMLName), paths[0])
	var names []string
	for _, p := range paths[1:] {
		names = append(names, filepath.Base(p))
	}
	assert.Equal(t, []string{"throughput-tokens.svg", "throughput-requests.svg", "latency-ttft.svg", "latency-tpot.svg", "latency-e2el.svg",
		"goodput.svg", "pareto.svg", "server-time-1.svg", "gpu.svg"}, names)

	// the run at concurrency 4 started at start+4m and lasted 2 s: the window ends 2 s later
	assert.Contains(t, queries, `avg(avg_over_time(hw_gpu_utilization_ratio{hw_gpu_task="general"}[2s])) @ `+
		fmt.Sprintf("%.3f", float64(start.Add(4*time.Minute+2*time.Second).Unix())))
	assert.Len(t, queries, 12, "two queries per run of each sweep")

	html, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	page := stdhtml.UnescapeString(string(html))
	assertContains(t, page, "<li>A, 16 in / 8 out: up to 1 concurrent request meets ttft:100 for ≥ 90% of requests (at 4 concurrent requests: 60%).</li>")
	assertContains(t, page, "<li>B, 16 in / 8 out: up to 8 concurrent requests meet ttft:100 for ≥ 90% of requests (the highest load point measured).</li>")
	assertContains(t, page, "<h2>Differences: A → B</h2>")
	assertContains(t, page, "<tr><td>16 in / 8 out</td><td>4</td><td>goodput %</td><td>60.0</td><td>100.0</td><td>+66.7%</td></tr>")
	assert.Equal(t, 9, strings.Count(page, "<svg role=\"img\""), "every chart inline")
	assert.NotContains(t, page, "<?xml")
	for _, ref := range []string{"src=", "http://www.w3.org/1999/xlink\" href", "url(http", "@import", "<link"} {
		assert.False(t, strings.Contains(page, ref), "no external asset %s", ref)
	}
	svg, err := os.ReadFile(filepath.Join(out, "gpu.svg"))
	require.NoError(t, err)
	assert.Contains(t, string(svg), "A: 16 in / 8 out GPU utilisation")
	assert.Contains(t, string(svg), "B: 16 in / 8 out SM activity")
}

// assertContains reports a missing part without printing the whole page.
func assertContains(t *testing.T, page, part string) {
	t.Helper()
	assert.True(t, strings.Contains(page, part), "the page lacks %q", part)
}
