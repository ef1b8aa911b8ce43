package result

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

var date = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDefaultFilename(t *testing.T) {
	assert.Equal(t, "openai-infqps-Llama-3.1-8B-20260102-030405.json",
		DefaultFilename(Run{Date: date, Backend: "openai", Model: "meta-llama/Llama-3.1-8B", RequestRate: math.Inf(1)}))
	assert.Equal(t, "openai-chat-2.5qps-concurrency8-m-20260102-030405.json",
		DefaultFilename(Run{Date: date, Backend: "openai-chat", Model: "m", RequestRate: 2.5, MaxConcurrency: 8}))
}

func records() []record.Record {
	met := true
	tpot := 0.02
	return []record.Record{
		{Index: 0, SendTime: date, Success: true, HTTPStatus: 200, PromptTokens: 10, OutputTokens: 3, OutputTokensSource: record.OutputTokensTokenizer, TTFT: 0.1, ITL: []float64{0.02, 0.03}, E2EL: 0.15, TPOT: 0.025,
			TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", ResponseID: "cmpl-1",
			Server: &record.Server{TTFT: 0.09, E2E: 0.14, Queue: 0.01, TPOT: &tpot, SLOMet: &met, SLOViolations: []string{}}},
		{Index: 1, SendTime: date, InputLen: 10, HTTPStatus: 500, Error: "HTTP 500: boom", ServerError: ""},
	}
}

func TestBuildHasEveryBenchmarkKey(t *testing.T) {
	recs := records()
	s := metrics.Compute(recs, 2, metrics.Goodput{"ttft": 200}, []float64{50, 99.9})
	got := Build(Run{Date: date, Backend: "openai", Model: "m", RequestRate: math.Inf(1), Goodput: metrics.Goodput{"ttft": 200}}, s, recs, true)
	keys := []string{"duration", "completed", "failed", "total_input_tokens", "total_output_tokens", "request_throughput",
		"request_goodput", "output_throughput", "total_token_throughput", "input_lens", "output_lens", "ttfts", "itls", "errors"}
	for _, m := range []string{"ttft", "tpot", "itl", "e2el"} {
		keys = append(keys, "mean_"+m+"_ms", "median_"+m+"_ms", "std_"+m+"_ms", "p50_"+m+"_ms", "p99.9_"+m+"_ms")
	}
	for _, k := range keys {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, 1, got["completed"])
	assert.Equal(t, 1, got["failed"])
	assert.Equal(t, 0.5, got["request_goodput"])
	assert.Equal(t, []int64{10, 10}, got["input_lens"], "a failed request's input length comes from the dataset")
	assert.Equal(t, []int64{3, 0}, got["output_lens"])
	assert.Equal(t, []float64{0.1, 0}, got["ttfts"])
	assert.Equal(t, [][]float64{{0.02, 0.03}, {}}, got["itls"])
	assert.Equal(t, []string{"", "HTTP 500: boom"}, got["errors"])
	assert.Equal(t, "inf", got["request_rate"])
	assert.Equal(t, 1, got["server_joined"])
	assert.InDelta(t, 10, got["mean_ttft_gap_ms"], 1e-9)

	var buf bytes.Buffer
	require.NoError(t, WriteJSON(&buf, got))
	var back map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &back))
	assert.Len(t, back, len(got))
}

func TestBuildWithoutGoodputOrDetail(t *testing.T) {
	recs := records()
	got := Build(Run{Date: date, Model: "m", RequestRate: 4, MaxConcurrency: 2}, metrics.Compute(recs, 1, nil, []float64{99}), recs, false)
	assert.Nil(t, got["request_goodput"], "as the benchmark writes it without --goodput")
	assert.NotContains(t, got, "ttfts")
	assert.Equal(t, 4.0, got["request_rate"])
	assert.Equal(t, 2, got["max_concurrency"])
}

func TestSaveWritesJSONCSVAndRecords(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	recs := records()
	paths, err := Save(dir, "r.json", map[string]any{"completed": 1}, recs, true)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, "r.json"), filepath.Join(dir, "r.csv"), filepath.Join(dir, "r.jsonl")}, paths)

	f, err := os.Open(paths[1])
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, CSVHeader, rows[0])
	row := map[string]string{}
	for i, h := range rows[0] {
		row[h] = rows[1][i]
	}
	assert.Equal(t, "0.02;0.03", row["itl_s"])
	assert.Equal(t, "0.09", row["server_ttft_s"])
	assert.Equal(t, "true", row["server_slo_met"])
	assert.Equal(t, "0.010000000000000009", row["ttft_gap_s"])
	assert.Equal(t, "HTTP 500: boom", rows[2][4])
	assert.Equal(t, "tokenizer", row["output_tokens_source"])
	assert.Equal(t, "", rows[2][len(CSVHeader)-1], "a failed request has no count")

	data, err := os.ReadFile(paths[2])
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 2)
	var back record.Record
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &back))
	assert.Equal(t, recs[0].TTFT, back.TTFT)
	assert.Equal(t, recs[0].Server.TTFT, back.Server.TTFT)
	assert.Contains(t, lines[0], `"output_tokens_source":"tokenizer"`)
}

func TestSaveReportsUnwritableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := Save(file, "r.json", map[string]any{}, nil, false)
	assert.Error(t, err)
}

func TestBuildServerPhasesAndMetadata(t *testing.T) {
	recs := []record.Record{
		{Success: true, OutputTokens: 2, TTFT: 0.2, E2EL: 0.5, Server: &record.Server{Queue: 0.1, Prefill: 0.05, Decode: 0.25, Inference: 0.3, E2E: 0.4}},
		{Success: true, OutputTokens: 2, TTFT: 0.1, E2EL: 0.4, Server: &record.Server{Queue: 0, Prefill: 0.05, Decode: 0.35, Inference: 0.4, E2E: 0.4}},
	}
	s := metrics.Compute(recs, 1, nil, []float64{99})
	got := Build(Run{Date: date, Backend: "openai", Model: "m", RequestRate: 4, RandomInputLen: 128, RandomOutputLen: 2,
		Metadata: map[string]string{"config": "A", "completed": "clash"}}, s, recs, false)
	assert.InDelta(t, 50.0, got["mean_server_queue_ms"], 1e-9)
	assert.InDelta(t, 90.0, got["p90_server_queue_ms"], 1e-9) // numpy: 0 + (100-0)·0.9
	assert.InDelta(t, 300.0, got["mean_server_decode_ms"], 1e-9)
	assert.InDelta(t, 400.0, got["p99_server_e2e_ms"], 1e-9)
	assert.InDelta(t, 0.125, got["server_queue_share"], 1e-9) // 0.1 s of 0.8 s
	assert.InDelta(t, 0.125, got["server_prefill_share"], 1e-9)
	assert.InDelta(t, 0.75, got["server_decode_share"], 1e-9)
	assert.NotContains(t, got, "server_e2e_share")
	assert.Equal(t, 128, got["random_input_len"])
	assert.Equal(t, 2, got["random_output_len"])
	assert.Equal(t, "A", got["config"], "metadata is a top-level key, as vLLM writes it")
	assert.Equal(t, 2, got["completed"], "metadata never overwrites a result key")
	assert.Equal(t, map[string]string{"config": "A", "completed": "clash"}, got["metadata"])
}

func TestSaveLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Save(dir, "r.json", map[string]any{"completed": 1}, records(), true)
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"r.csv", "r.json", "r.jsonl"}, names)
}
