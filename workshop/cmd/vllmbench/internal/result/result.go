// Package result writes vllmbench's result files: the benchmark_serving result JSON (with --save-detailed
// the per-request lists, as vLLM writes them) and a per-request CSV beside it.
package result // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/result"

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/record"
)

// Run describes the run for the result's header fields.
type Run struct {
	Date           time.Time
	Backend        string // openai or openai-chat, as the benchmark names them
	Model          string
	NumPrompts     int
	RequestRate    float64
	Burstiness     float64
	MaxConcurrency int
	Goodput        metrics.Goodput
	// RandomInputLen and RandomOutputLen are the random dataset's lengths (0 for a custom dataset).
	RandomInputLen, RandomOutputLen int
	// Metadata is --metadata: written as top-level keys (as vLLM's benchmark writes them) and under "metadata".
	Metadata map[string]string
}

// DefaultFilename is the benchmark's: {backend}-{rate}qps[-concurrency{n}]-{model basename}-{YYYYmmdd-HHMMSS}.json.
func DefaultFilename(run Run) string {
	rate := "inf"
	if !math.IsInf(run.RequestRate, 1) {
		rate = strconv.FormatFloat(run.RequestRate, 'f', -1, 64)
	}
	conc := ""
	if run.MaxConcurrency > 0 {
		conc = "-concurrency" + strconv.Itoa(run.MaxConcurrency)
	}
	base := run.Model[strings.LastIndex(run.Model, "/")+1:]
	return fmt.Sprintf("%s-%sqps%s-%s-%s.json", run.Backend, rate, conc, base, run.Date.Format("20060102-150405"))
}

// Build returns the result object: the benchmark's keys (duration, completed, failed, total_input_tokens,
// total_output_tokens, request_throughput, request_goodput, output_throughput, total_token_throughput, and
// mean/median/std/p<q>_<m>_ms for ttft, tpot, itl and e2el), with detailed also input_lens, output_lens,
// ttfts, itls and errors (seconds) of every sent request; plus the server join's counts and gaps.
func Build(run Run, s metrics.Summary, recs []record.Record, detailed bool) map[string]any {
	out := map[string]any{
		"date":                   run.Date.Format("20060102-150405"),
		"start_time":             float64(run.Date.UnixMilli()) / 1000,
		"backend":                run.Backend,
		"model_id":               run.Model,
		"num_prompts":            run.NumPrompts,
		"burstiness":             run.Burstiness,
		"duration":               s.Duration,
		"completed":              s.Completed,
		"failed":                 s.Failed,
		"total_input_tokens":     s.TotalInput,
		"total_output_tokens":    s.TotalOutput,
		"request_throughput":     s.RequestThroughput,
		"output_throughput":      s.OutputThroughput,
		"total_token_throughput": s.TotalTokenThroughput,
		"request_goodput":        nil,
		"max_concurrency":        nil,
		"request_rate":           "inf",
	}
	if s.HasGoodput {
		out["request_goodput"] = s.RequestGoodput
		out["goodput"] = run.Goodput
	}
	if run.MaxConcurrency > 0 {
		out["max_concurrency"] = run.MaxConcurrency
	}
	if !math.IsInf(run.RequestRate, 1) {
		out["request_rate"] = run.RequestRate
	}
	if run.RandomInputLen > 0 {
		out["random_input_len"], out["random_output_len"] = run.RandomInputLen, run.RandomOutputLen
	}
	putStat := func(name string, st metrics.Stat, percentiles []float64) {
		out["mean_"+name+"_ms"] = st.Mean
		out["median_"+name+"_ms"] = st.Median
		out["std_"+name+"_ms"] = st.Std
		for i, p := range percentiles {
			out["p"+metrics.PercentileWord(p)+"_"+name+"_ms"] = st.Percentiles[i]
		}
	}
	for _, m := range metrics.AllMetrics {
		putStat(m, s.Stats[m], s.Percentiles)
	}
	if s.Joined > 0 || s.JoinFailed > 0 {
		out["server_joined"] = s.Joined
		out["server_join_failed"] = s.JoinFailed
		putStat("ttft_gap", s.TTFTGap, s.Percentiles)
		putStat("e2el_gap", s.E2EGap, s.Percentiles)
	}
	for _, p := range metrics.ServerPhases {
		if st, ok := s.Server[p]; ok {
			putStat("server_"+p, st, metrics.ServerPercentiles)
		}
		if share, ok := s.ServerShare[p]; ok {
			out["server_"+p+"_share"] = share
		}
	}
	if len(run.Metadata) > 0 {
		for k, v := range run.Metadata {
			if _, taken := out[k]; !taken {
				out[k] = v
			}
		}
		out["metadata"] = run.Metadata
	}
	if detailed {
		inputLens := make([]int64, len(recs))
		outputLens := make([]int64, len(recs))
		ttfts := make([]float64, len(recs))
		itls := make([][]float64, len(recs))
		errs := make([]string, len(recs))
		for i := range recs {
			r := &recs[i]
			inputLens[i] = r.PromptTokens
			if inputLens[i] == 0 {
				inputLens[i] = int64(r.InputLen)
			}
			itls[i] = []float64{}
			if r.Success {
				outputLens[i] = r.OutputTokens
				ttfts[i] = r.TTFT
				itls[i] = r.ITL
			}
			errs[i] = r.Error
		}
		out["input_lens"], out["output_lens"], out["ttfts"], out["itls"], out["errors"] = inputLens, outputLens, ttfts, itls, errs
	}
	return out
}

// WriteJSON writes the result object.
func WriteJSON(w io.Writer, result map[string]any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(result)
}

// CSVHeader is the per-request CSV's columns; server_* are empty for requests without a joined span;
// output_tokens_source says whether output_tokens is the server's usage or counted by vllmbench.
var CSVHeader = []string{
	"index", "send_time", "success", "http_status", "error", "trace_id", "span_id", "response_id",
	"prompt_tokens", "output_tokens", "ttft_s", "tpot_s", "e2el_s", "itl_count", "itl_s",
	"server_queue_s", "server_prefill_s", "server_decode_s", "server_inference_s", "server_e2e_s", "server_ttft_s",
	"server_tpot_s", "server_slo_met", "server_slo_violations", "ttft_gap_s", "e2el_gap_s", "server_error",
	"output_tokens_source",
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// WriteCSV writes one row per record; ITLs are joined with ';'.
func WriteCSV(w io.Writer, recs []record.Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	row := make([]string, len(CSVHeader))
	for i := range recs {
		r := &recs[i]
		itl := make([]string, len(r.ITL))
		for j, v := range r.ITL {
			itl[j] = ftoa(v)
		}
		row = append(row[:0], strconv.Itoa(r.Index), r.SendTime.UTC().Format(time.RFC3339Nano), strconv.FormatBool(r.Success),
			strconv.Itoa(r.HTTPStatus), r.Error, r.TraceID, r.SpanID, r.ResponseID,
			strconv.FormatInt(r.PromptTokens, 10), strconv.FormatInt(r.OutputTokens, 10),
			ftoa(r.TTFT), ftoa(r.TPOT), ftoa(r.E2EL), strconv.Itoa(len(r.ITL)), strings.Join(itl, ";"))
		if sv := r.Server; sv != nil {
			tpot, met := "", ""
			if sv.TPOT != nil {
				tpot = ftoa(*sv.TPOT)
			}
			if sv.SLOMet != nil {
				met = strconv.FormatBool(*sv.SLOMet)
			}
			row = append(row, ftoa(sv.Queue), ftoa(sv.Prefill), ftoa(sv.Decode), ftoa(sv.Inference), ftoa(sv.E2E),
				ftoa(sv.TTFT), tpot, met, strings.Join(sv.SLOViolations, ";"), ftoa(r.TTFTGap()), ftoa(r.E2EGap()), "")
		} else {
			row = append(row, "", "", "", "", "", "", "", "", "", "", "", r.ServerError)
		}
		row = append(row, r.OutputTokensSource)
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Save writes the JSON to dir/filename and, with detailed, the CSV beside it (same name, .csv), plus the
// records as JSON lines (.jsonl) so that every per-request value can be re-read. It returns the paths.
func Save(dir, filename string, result map[string]any, recs []record.Record, detailed bool) ([]string, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	jsonPath := filepath.Join(dir, filename)
	paths := []string{jsonPath}
	// The JSON is written last and every file appears whole (renamed into place), so an existing result JSON
	// means a complete set of files: a sweep resumes by skipping the runs whose JSON exists.
	if detailed {
		stem := strings.TrimSuffix(jsonPath, filepath.Ext(jsonPath))
		if err := writeFile(stem+".csv", func(w io.Writer) error { return WriteCSV(w, recs) }); err != nil {
			return nil, err
		}
		if err := writeFile(stem+".jsonl", func(w io.Writer) error { return WriteRecords(w, recs) }); err != nil {
			return nil, err
		}
		paths = append(paths, stem+".csv", stem+".jsonl")
	}
	if err := writeFile(jsonPath, func(w io.Writer) error { return WriteJSON(w, result) }); err != nil {
		return nil, err
	}
	return paths, nil
}

// WriteRecords writes one JSON record per line.
func WriteRecords(w io.Writer, recs []record.Record) error {
	enc := json.NewEncoder(w)
	for i := range recs {
		if err := enc.Encode(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes path through a temporary file beside it, renamed into place when complete.
func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}
