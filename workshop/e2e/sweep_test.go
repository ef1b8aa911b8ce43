package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	stdhtml "html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// sweepEmulator starts `vllmgen serve` with a fixed timing (prefill 30 ms, 20 ms per token) and room for
// maxSeqs requests at once; the rest queue. Its spans go to Jaeger when otlp is set.
func sweepEmulator(t *testing.T, maxSeqs int, otlp string) string {
	t.Helper()
	port := testkit.FreePort(t)
	args := []string{"serve", "--port", strconv.Itoa(port), "--served-model-name", "e2e/model", "--max-num-seqs", strconv.Itoa(maxSeqs),
		"--fixed-prefill", "30ms", "--fixed-tpot", "20ms", "--seed", "1", "--service-name", "vllm-emulator"}
	if otlp != "" {
		args = append(args, "--otlp-traces-endpoint", otlp, "--otlp-export-delay", "100ms")
	}
	emu := testkit.StartProcess(t, "vllmgen serve", nil, vllmgen(t), args...)
	base := "http://" + testkit.Loopback(port)
	emu.WaitHTTP(t, base+"/health", 30*time.Second)
	return base
}

// readCSV returns the header and the rows of a CSV file.
func readCSV(t *testing.T, path string) ([]string, []map[string]string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	var out []map[string]string
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, c := range rows[0] {
			m[c] = r[i]
		}
		out = append(out, m)
	}
	return rows[0], out
}

func csvFloat(t *testing.T, row map[string]string, col string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(row[col], 64)
	require.NoError(t, err, "%s of %s: %q", col, row["file"], row[col])
	return v
}

// TestBenchmarkSweep sweeps the emulator, whose capacity is known (4 requests at once, 170 ms each for 8
// tokens; the rest wait in its queue), from 1 to 16 concurrent requests with a TTFT objective of 120 ms, joined
// with the emulator's spans through a real Jaeger v2. Up to 4 concurrent requests every request meets the
// objective (TTFT ≈ 30 ms, 90 ms of slack for a busy machine); from 8 on, most wait at least one request
// (≥ 170 ms) in the queue, and a slower machine only makes them wait longer. So: the aggregate equals the
// result files, the stated capacity is 4 concurrent requests, the queue's share of the server's time rises past
// 4 and the decode share does not. A second sweep of an emulator with room for 8 is compared with it; headless
// Chromium renders both reports offline.
func TestBenchmarkSweep(t *testing.T) {
	chromium := testkit.Tool(t, testkit.Chromium)
	jaeger := startJaeger(t)
	base := sweepEmulator(t, 4, jaeger.otlpGRPC)
	dir := t.TempDir()
	resultsA := filepath.Join(dir, "A")
	config := filepath.Join(dir, "combos.yaml")
	require.NoError(t, os.WriteFile(config, []byte(`model: e2e/model
base_url: `+base+`
input_output: [[16, 8]]
concurrency_prompts: [[1, 6], [2, 8], [4, 12], [8, 24], [16, 32]]
goodput: "ttft:120"
metadata: {config: A, max_num_seqs: "4"}
`), 0o644))
	stdout := run(t, 3*time.Minute, dir, vllmbench(t), "sweep", "--config", config, "--result-dir", resultsA,
		"--jaeger-url", jaeger.query, "--jaeger-wait", "300ms", "--jaeger-timeout", "60s", "--jaeger-retry-interval", "100ms",
		"--disable-tqdm", "--seed", "1")
	t.Logf("sweep:\n%s", stdout)
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	require.Len(t, lines, 5, "one progress line per run:\n%s", stdout)
	for i, l := range lines {
		assert.Regexp(t, fmt.Sprintf(`^\[%d/5\] in=16 out=8 concurrency=\d+ prompts=\d+ rate=inf: \d+ ok, 0 failed, .* -> in16-out8-c\d+-n\d+-rateinf\.json$`, i+1), l)
	}

	// the aggregated CSV equals the per-run result files, column by column
	header, rows := readCSV(t, filepath.Join(resultsA, "aggregate.csv"))
	require.Len(t, rows, 5)
	for _, row := range rows {
		data, err := os.ReadFile(filepath.Join(resultsA, row["file"]))
		require.NoError(t, err)
		var res map[string]any
		require.NoError(t, json.Unmarshal(data, &res))
		compared := 0
		for _, col := range header {
			switch v := res[col].(type) {
			case float64:
				assert.Equal(t, v, csvFloat(t, row, col), "%s: %s", row["file"], col)
				compared++
			case string:
				assert.Equal(t, v, row[col], "%s: %s", row["file"], col)
				compared++
			}
		}
		assert.Greater(t, compared, 50, "%s: columns compared", row["file"])
		assert.Equal(t, res["metadata"].(map[string]any)["config"], row["metadata.config"])
		assert.Equal(t, float64(csvFloat(t, row, "completed")), res["server_joined"], "%s: every request joined", row["file"])
	}

	// goodput, and the queue and decode shares of the server's time, against load
	byConc := map[int]map[string]string{}
	for _, row := range rows {
		byConc[int(csvFloat(t, row, "max_concurrency"))] = row
	}
	for _, c := range []int{1, 2, 4} {
		assert.Equal(t, 1.0, csvFloat(t, byConc[c], "goodput_ratio"), "concurrency %d is within capacity", c)
		assert.Less(t, csvFloat(t, byConc[c], "server_queue_share"), 0.05, "concurrency %d: nothing waits", c)
	}
	for _, c := range []int{8, 16} {
		assert.Less(t, csvFloat(t, byConc[c], "goodput_ratio"), 0.9, "concurrency %d is past capacity", c)
		assert.Greater(t, csvFloat(t, byConc[c], "server_queue_share"), 0.3, "concurrency %d: requests wait for a slot", c)
		assert.LessOrEqual(t, csvFloat(t, byConc[c], "server_decode_share"), csvFloat(t, byConc[4], "server_decode_share")+0.02,
			"concurrency %d: the decode share does not rise", c)
	}
	assert.Greater(t, csvFloat(t, byConc[16], "server_queue_share"), csvFloat(t, byConc[8], "server_queue_share"), "the queue share keeps rising")
	// decode is 7 tokens × 20 ms whatever the load
	for c, row := range byConc {
		assert.InDelta(t, 140, csvFloat(t, row, "mean_server_decode_ms"), 30, "concurrency %d", c)
	}

	// the report states the capacity the profile implies and names the queue
	run(t, time.Minute, dir, vllmbench(t), "report", resultsA)
	reportA := filepath.Join(resultsA, "report", "report.html")
	page := readPage(t, reportA)
	assertHas(t, page, "<li>16 in / 8 out: up to 4 concurrent requests meet ttft:120 for ≥ 90% of requests (at 8 concurrent requests: ")
	assert.Regexp(t, `<li>16 in / 8 out: from 1 concurrent request to 16 concurrent requests [^<]*: the time grew in the queue`, page)
	chartsA := []string{"throughput-tokens", "throughput-requests", "latency-ttft", "latency-tpot", "latency-e2el", "goodput", "pareto", "server-time-1"}
	for _, c := range chartsA {
		assert.FileExists(t, filepath.Join(resultsA, "report", c+".svg"))
	}
	checkRendered(t, chromium, reportA, chartsA, os.Getenv("VLLMBENCH_REPORT_SCREENSHOT"))

	// a second configuration (room for 8 at once), compared with the first
	baseB := sweepEmulator(t, 8, jaeger.otlpGRPC)
	resultsB := filepath.Join(dir, "B")
	run(t, 3*time.Minute, dir, vllmbench(t), "sweep", "--config", config, "--base-url", baseB, "--result-dir", resultsB,
		"--jaeger-url", jaeger.query, "--jaeger-wait", "300ms", "--jaeger-timeout", "60s", "--jaeger-retry-interval", "100ms",
		"--disable-tqdm", "--seed", "1", "--metadata", "config=B", "max_num_seqs=8")
	out := filepath.Join(dir, "compare")
	run(t, time.Minute, dir, vllmbench(t), "report", resultsA, "--compare", resultsB, "--output", out)
	page = readPage(t, filepath.Join(out, "report.html"))
	assertHas(t, page, "<li>A, 16 in / 8 out: up to 4 concurrent requests meet ttft:120")
	assertHas(t, page, "<li>B, 16 in / 8 out: up to 8 concurrent requests meet ttft:120")
	assertHas(t, page, "<h2>Differences: A → B</h2>")
	assert.Regexp(t, `<tr><td>16 in / 8 out</td><td>8</td><td>goodput %</td><td>\d+\.\d</td><td>100\.0</td><td>\+\d+\.\d%</td></tr>`, page)
	for _, legend := range []string{"A: 16 in / 8 out", "B: 16 in / 8 out", "A: queue", "B: queue"} {
		assertHas(t, page, ">"+legend+"<") // both sweeps are overlaid, in the charts' legends
	}
	checkRendered(t, chromium, filepath.Join(out, "report.html"), chartsA, "")
}

// readPage returns a report's HTML with its character references resolved.
func readPage(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return stdhtml.UnescapeString(string(data))
}

// assertHas reports a missing part without printing the whole page.
func assertHas(t *testing.T, page, part string) {
	t.Helper()
	assert.True(t, strings.Contains(page, part), "the page lacks %q", part)
}

// chromiumView is what headless Chromium saw of a page.
type chromiumView struct {
	dom string
	// console holds the page's console messages; requests the URLs the page asked for (the browser's own
	// background requests, such as update checks, have no origin and are not counted).
	console, requests []string
}

// headlessChromium opens page (a file) in headless Chromium with a fresh profile, dumps the DOM, logs the
// console to stderr and the network to a net log. A screenshot goes to screenshot when set.
func headlessChromium(t *testing.T, chromium, page, screenshot string) chromiumView {
	t.Helper()
	dir := t.TempDir()
	netlog := filepath.Join(dir, "netlog.json")
	headless := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--user-data-dir=" + filepath.Join(dir, "profile")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append(headless, "--enable-logging=stderr", "--v=0", "--log-net-log="+netlog,
		"--dump-dom", "file://"+page)...)
	var dom, logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &dom, &logs
	require.NoError(t, cmd.Run(), logs.String())
	v := chromiumView{dom: dom.String(), console: regexp.MustCompile(`(?m)^.*:CONSOLE[:(]\d+\)?\].*$`).FindAllString(logs.String(), -1)}

	data, err := os.ReadFile(netlog)
	require.NoError(t, err)
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	require.NoError(t, json.Unmarshal(data, &log))
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	require.True(t, ok, "net log event types")
	for _, e := range log.Events {
		if e.Type == start && e.Params.URL != "" && e.Params.Initiator != "not an origin" {
			v.requests = append(v.requests, e.Params.URL)
		}
	}
	if screenshot != "" {
		out, err := exec.CommandContext(ctx, chromium, append(headless, "--hide-scrollbars", "--window-size=1280,2400",
			"--screenshot="+screenshot, "file://"+page)...).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	return v
}

// checkRendered asserts that Chromium rendered every chart's SVG of a report, with no console message and no
// request from the page.
func checkRendered(t *testing.T, chromium, report string, charts []string, screenshot string) {
	t.Helper()
	v := headlessChromium(t, chromium, report, screenshot)
	for _, c := range charts {
		assert.Regexp(t, `<figure id="`+c+`"><svg role="img" viewBox="[^"]+"[^>]*>`, v.dom, "chart %s rendered", c)
	}
	assert.Empty(t, v.console, "console messages")
	assert.Empty(t, v.requests, "requests of the page")
}

// The checks above see what they look for: a page that loads an image from the network and logs an error.
func TestHeadlessChromiumSeesRequestsAndConsoleErrors(t *testing.T) {
	chromium := testkit.Tool(t, testkit.Chromium)
	page := filepath.Join(t.TempDir(), "bad.html")
	port := testkit.FreePort(t) // nothing listens: the request fails, and is still a request
	require.NoError(t, os.WriteFile(page, []byte(`<!DOCTYPE html><html><body><img src="http://`+testkit.Loopback(port)+`/x.png">`+
		`<script>console.error("broken chart")</script></body></html>`), 0o644))
	v := headlessChromium(t, chromium, page, "")
	assert.Equal(t, []string{"http://" + testkit.Loopback(port) + "/x.png"}, v.requests)
	require.Len(t, v.console, 1)
	assert.Contains(t, v.console[0], `"broken chart"`)
}
