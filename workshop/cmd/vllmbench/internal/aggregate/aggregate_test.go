package aggregate

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/result"
)

func save(t *testing.T, dir, name string, conc int, goodput metrics.Goodput, joined bool) {
	t.Helper()
	var recs []record.Record
	for i := range 4 {
		r := record.Record{Index: i, Success: i < 3, OutputTokens: 4, PromptTokens: 8, TTFT: 0.05 * float64(i+1), E2EL: 0.3, ITL: []float64{0.1}}
		if joined && r.Success {
			r.Server = &record.Server{Queue: 0.01 * float64(i), Prefill: 0.02, Decode: 0.2, Inference: 0.22, E2E: 0.25, TTFT: 0.04}
		}
		recs = append(recs, r)
	}
	s := metrics.Compute(recs, 2, goodput, []float64{50, 99})
	run := result.Run{Date: time.Unix(1700000000, 0), Backend: "openai", Model: "m", NumPrompts: 4, RequestRate: math.Inf(1),
		MaxConcurrency: conc, Goodput: goodput, RandomInputLen: 8, RandomOutputLen: 4, Metadata: map[string]string{"config": "A"}}
	_, err := result.Save(dir, name, result.Build(run, s, recs, true), recs, true)
	require.NoError(t, err)
}

func TestAggregateEqualsTheResultFiles(t *testing.T) {
	dir := t.TempDir()
	save(t, dir, "b.json", 4, metrics.Goodput{"ttft": 120}, true)
	save(t, dir, "a.json", 8, nil, false)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.json"), []byte(`{"hello": 1}`), 0o644))
	paths, runs, err := Write(dir)
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, CSVName), filepath.Join(dir, JSONName)}, paths)
	require.Len(t, runs, 2)
	assert.Equal(t, "b.json", runs[0].File, "sorted by concurrency, other JSON files skipped")

	// a second aggregation does not read its own output
	_, again, err := Write(dir)
	require.NoError(t, err)
	assert.Len(t, again, 2)

	ratio, ok := runs[0].GoodputRatio()
	require.True(t, ok)
	assert.Equal(t, 0.5, ratio, "2 of 4 sent requests have TTFT ≤ 120 ms; the failed one is never good")

	data, err := os.ReadFile(paths[0])
	require.NoError(t, err)
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 3)
	header := rows[0]
	for _, c := range []string{"mean_server_queue_ms", "p90_server_decode_ms", "server_queue_share", "server_decode_share",
		"p99_ttft_ms", "goodput", "goodput_ratio", "metadata.config"} {
		assert.Contains(t, header, c)
	}
	var agg []map[string]any
	require.NoError(t, json.Unmarshal(mustRead(t, paths[1]), &agg))
	for i, row := range rows[1:] {
		var raw map[string]any
		require.NoError(t, json.Unmarshal(mustRead(t, filepath.Join(dir, row[0])), &raw))
		for j, col := range header {
			want, inResult := raw[col]
			switch {
			case col == "goodput_ratio" || col == "file" || col == "goodput" || col == "metadata.config":
				continue
			case !inResult || want == nil:
				assert.Empty(t, row[j], "%s %s", row[0], col)
			case col == "request_rate":
				assert.Equal(t, want, row[j])
			default:
				if f, isNum := want.(float64); isNum {
					got, err := strconv.ParseFloat(row[j], 64)
					require.NoError(t, err, col)
					assert.Equal(t, f, got, "%s %s", row[0], col)
				} else {
					assert.Equal(t, want, row[j], "%s %s", row[0], col)
				}
			}
			assert.Equal(t, want, agg[i][col], "JSON %s %s", row[0], col)
		}
	}
	assert.Equal(t, "ttft:120", rows[1][indexOf(header, "goodput")])
	assert.Equal(t, "A", rows[1][indexOf(header, "metadata.config")])
	assert.Equal(t, "0.5", rows[1][indexOf(header, "goodput_ratio")])
	assert.Empty(t, rows[2][indexOf(header, "server_queue_share")], "a run without a join has no server values")
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return b
}
