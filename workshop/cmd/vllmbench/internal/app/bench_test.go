package app

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/arrival"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// emulator runs `vllmgen serve` as its own process with a fixed timing (prefill 5 ms, 1 ms per token), so the
// benchmark measures vllmbench alone. Set VLLMBENCH_EMULATOR_CPUS (e.g. "1-3") to pin it with taskset.
func startEmulator(b *testing.B, requestLog string) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "vllmgen")
	build := exec.Command("go", "build", "-o", bin, "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build vllmgen: %v\n%s", err, out)
	}
	port := testkit.FreePort(b)
	args := []string{bin, "serve", "--port", strconv.Itoa(port), "--served-model-name", "bench/model",
		"--fixed-prefill", "5ms", "--fixed-tpot", "1ms", "--max-num-seqs", "4096", "--request-log", requestLog}
	if cpus := os.Getenv("VLLMBENCH_EMULATOR_CPUS"); cpus != "" {
		args = append([]string{"taskset", "-c", cpus}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("emulator did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return base
}

// serverTTFTs reads the emulator's request log: server TTFT (s) by trace id.
func serverTTFTs(b *testing.B, path string) map[string]float64 {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var o struct {
			TraceID string  `json:"trace_id"`
			TTFT    float64 `json:"time_to_first_token"`
		}
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			b.Fatal(err)
		}
		out[o.TraceID] = o.TTFT
	}
	return out
}

// BenchmarkStreaming sends Poisson traffic for 2 s per iteration at each rate to the emulator and reports
// what vllmbench achieved (req/s, failed, how late requests left against their schedule) and how much it adds to TTFT: the per-request gap between the
// client's TTFT and the emulator's own TTFT of the same request (loopback, HTTP, the client's scheduling),
// and that gap's growth over the 50 req/s baseline. Run it on one core:
//
//	taskset -c 0 go test -run '^$' -bench BenchmarkStreaming -cpu 1 -benchtime 3x ./cmd/vllmbench/internal/app/
func BenchmarkStreaming(b *testing.B) {
	var baselineP50, baselineP99 float64
	for _, rate := range []float64{50, 2000} {
		b.Run("rate="+strconv.FormatFloat(rate, 'f', -1, 64), func(b *testing.B) {
			logPath := filepath.Join(b.TempDir(), "requests.jsonl")
			base := startEmulator(b, logPath)
			opts, err := ParseFlags([]string{"--base-url", base, "--model", "bench/model", "--request-rate", strconv.FormatFloat(rate, 'f', -1, 64),
				"--num-prompts", strconv.Itoa(int(2 * rate)), "--random-input-len", "16", "--random-output-len", "8", "--disable-tqdm"}, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			var completed, failed int
			var duration float64
			var clientTTFT = map[string]float64{}
			var lags []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				opts.Seed = uint64(i)
				out, err := Run(context.Background(), opts, io.Discard, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				completed += out.Summary.Completed
				failed += out.Summary.Failed
				duration += out.Summary.Duration
				offsets, err := arrival.Schedule(opts.NumPrompts, opts.RequestRate, opts.Burstiness, opts.Seed)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range out.Records {
					lags = append(lags, r.SendTime.Sub(out.Start.Add(offsets[r.Index])).Seconds())
					if r.Success {
						clientTTFT[r.TraceID] = r.TTFT
					}
				}
			}
			b.StopTimer()
			time.Sleep(200 * time.Millisecond) // the last log lines
			server := serverTTFTs(b, logPath)
			var gaps []float64
			for id, c := range clientTTFT {
				if s, ok := server[id]; ok {
					gaps = append(gaps, c-s)
				}
			}
			slices.Sort(gaps)
			p50, p99 := metrics.Percentile(gaps, 50)*1000, metrics.Percentile(gaps, 99)*1000
			b.ReportMetric(float64(completed)/duration, "req/s")
			b.ReportMetric(float64(failed), "failed")
			slices.Sort(lags)
			b.ReportMetric(metrics.Percentile(lags, 99)*1000, "send-lag-p99-ms")
			b.ReportMetric(p50, "ttft-gap-p50-ms")
			b.ReportMetric(metrics.Percentile(gaps, 90)*1000, "ttft-gap-p90-ms")
			b.ReportMetric(p99, "ttft-gap-p99-ms")
			if rate == 50 {
				baselineP50, baselineP99 = p50, p99
			} else if baselineP50 != 0 || baselineP99 != 0 {
				b.ReportMetric(p50-baselineP50, "ttft-skew-p50-ms")
				b.ReportMetric(p99-baselineP99, "ttft-skew-p99-ms")
			}
			if len(gaps) != completed {
				b.Errorf("%d of %d requests found in the emulator's log", len(gaps), completed)
			}
		})
	}
}
