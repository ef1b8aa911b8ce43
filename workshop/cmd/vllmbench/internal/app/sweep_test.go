package app

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
)

func writeConfig(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "combos.yaml")
	require.NoError(t, os.WriteFile(p, []byte(doc), 0o644))
	return p
}

func TestParseSweep(t *testing.T) {
	cfg := writeConfig(t, `
model: cfg/model
base_url: http://cfg:1
input_output: [[16, 4]]
concurrency_prompts: [[1, 2], [4, 8]]
goodput: "ttft:100"
metadata: {config: A, gpu: none}
`)
	so, err := ParseSweep([]string{"--config", cfg, "--base-url", "http://flag:2", "--metadata", "gpu=H100", "--seed", "4"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "cfg/model", so.Base.Model)
	assert.Equal(t, "http://flag:2", so.Base.BaseURL, "a flag on the command line wins over the configuration")
	assert.Equal(t, map[string]string{"config": "A", "gpu": "H100"}, so.Base.Metadata)
	assert.Equal(t, metrics.Goodput{"ttft": 100}, so.Base.Goodput)
	assert.Equal(t, []float64{50, 90, 99}, so.Base.Percentiles)
	assert.Equal(t, DefaultSweepDir, so.Base.ResultDir)
	assert.True(t, so.Base.SaveResult)
	require.Len(t, so.Combos, 2)
	assert.Equal(t, 8, so.Combos[1].NumPrompts)

	for _, tc := range []struct{ args []string }{
		{[]string{"--config", cfg, "--num-prompts", "5"}},
		{[]string{"--config", cfg, "--random-input-len", "5"}},
		{[]string{"--config", cfg, "--goodput", "ttft:5"}},
		{[]string{"--config", cfg, "--result-filename", "x.json"}},
	} {
		_, err := ParseSweep(tc.args, io.Discard)
		assert.ErrorContains(t, err, tc.args[2], "a flag the configuration sets is refused")
	}
	_, err = ParseSweep(nil, io.Discard)
	assert.ErrorContains(t, err, "--config")
	var stderr bytes.Buffer
	assert.Equal(t, ExitUsage, Main(context.Background(), []string{"sweep", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, io.Discard, &stderr))
}

// A sweep interrupted during its third run keeps the two finished results and none of the third; started
// again, it runs only the third and fourth.
func TestSweepResumesAfterInterruption(t *testing.T) {
	f := &fakeVLLM{}
	base := startFake(t, f)
	dir := t.TempDir()
	cfg := writeConfig(t, `
model: fake/model
base_url: `+base+`
input_output: [[4, 2]]
concurrency_prompts: [[1, 2], [2, 4], [4, 4], [1, 3]]
`)
	args := []string{"sweep", "--config", cfg, "--result-dir", dir, "--drain-timeout", "5s"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.onRequest = func(n int64) {
		if n == 2+4+1 { // the first request of the third run: Ctrl-C
			cancel()
		}
	}
	var progress, stderr bytes.Buffer
	assert.Equal(t, ExitInterrupted, Main(ctx, args, &progress, &stderr), stderr.String())
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	require.Len(t, lines, 3, progress.String())
	assert.Contains(t, lines[0], "[1/4] in=4 out=2 concurrency=1 prompts=2 rate=inf: 2 ok, 0 failed")
	assert.Contains(t, lines[1], "[2/4] in=4 out=2 concurrency=2 prompts=4 rate=inf: 4 ok, 0 failed")
	assert.Equal(t, "[3/4] in=4 out=2 concurrency=4 prompts=4 rate=inf: interrupted, no result kept", lines[2])
	results := func() []string {
		m, err := filepath.Glob(filepath.Join(dir, "in*.json"))
		require.NoError(t, err)
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	assert.Equal(t, []string{"in4-out2-c1-n2-rateinf.json", "in4-out2-c2-n4-rateinf.json"}, results())

	// started again: the first two are skipped, only the third and fourth run (4 + 3 requests)
	f.onRequest = nil
	f.requests.Store(0)
	progress.Reset()
	stderr.Reset()
	assert.Equal(t, ExitOK, Main(context.Background(), args, &progress, &stderr), stderr.String())
	assert.Equal(t, int64(4+3), f.requests.Load())
	lines = strings.Split(strings.TrimSpace(progress.String()), "\n")
	require.Len(t, lines, 4, progress.String())
	assert.Equal(t, "[1/4] in=4 out=2 concurrency=1 prompts=2 rate=inf: skipped, in4-out2-c1-n2-rateinf.json exists", lines[0])
	assert.Equal(t, "[2/4] in=4 out=2 concurrency=2 prompts=4 rate=inf: skipped, in4-out2-c2-n4-rateinf.json exists", lines[1])
	assert.Contains(t, lines[2], "[3/4] in=4 out=2 concurrency=4 prompts=4 rate=inf: 4 ok")
	assert.Contains(t, lines[3], "[4/4] in=4 out=2 concurrency=1 prompts=3 rate=inf: 3 ok")
	assert.Contains(t, stderr.String(), "2 run, 2 skipped (result exists), 0 failed, of 4 combinations")
	assert.Len(t, results(), 4)

	// the aggregate covers all four runs
	fh, err := os.Open(filepath.Join(dir, "aggregate.csv"))
	require.NoError(t, err)
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 5)
	assert.Equal(t, "file", rows[0][0])
	assert.Equal(t, "in4-out2-c1-n2-rateinf.json", rows[1][0])
	assert.Equal(t, "in4-out2-c4-n4-rateinf.json", rows[4][0], "rows by concurrency")

	// `vllmbench aggregate` writes the same files again
	assert.Equal(t, ExitOK, Main(context.Background(), []string{"aggregate", dir}, io.Discard, io.Discard))
	assert.Equal(t, ExitUsage, Main(context.Background(), []string{"aggregate"}, io.Discard, io.Discard))
}
