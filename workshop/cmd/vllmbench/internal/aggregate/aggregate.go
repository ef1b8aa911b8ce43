// Package aggregate reads the result JSON files of a results folder (a sweep's, or single runs saved into
// one folder) and writes one CSV and one JSON with a row per run: its configuration, the summary figures,
// goodput and, after a Jaeger join, the server's queue, prefill and decode times and their shares of e2e.
package aggregate // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/aggregate"

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
)

// Output file names, written into the results folder (and skipped when it is read).
const (
	CSVName  = "aggregate.csv"
	JSONName = "aggregate.json"
)

// Run is one result file.
type Run struct {
	// File is the result file's name within its folder.
	File string
	// Raw is the result JSON as decoded (numbers as float64).
	Raw map[string]any
}

// Num returns a number of the result, false when it is absent or not a number.
func (r Run) Num(key string) (float64, bool) {
	v, ok := r.Raw[key].(float64)
	return v, ok
}

// NumOr returns the number under key, or def.
func (r Run) NumOr(key string, def float64) float64 {
	if v, ok := r.Num(key); ok {
		return v
	}
	return def
}

// Str returns a string of the result.
func (r Run) Str(key string) string {
	s, _ := r.Raw[key].(string)
	return s
}

// RequestRate is the configured rate, +Inf for "inf".
func (r Run) RequestRate() float64 { return r.NumOr("request_rate", math.Inf(1)) }

// MaxConcurrency is the concurrency limit, 0 when unlimited.
func (r Run) MaxConcurrency() int { return int(r.NumOr("max_concurrency", 0)) }

// InputOutput is the random dataset's lengths, zeros for a custom dataset.
func (r Run) InputOutput() (int, int) {
	return int(r.NumOr("random_input_len", 0)), int(r.NumOr("random_output_len", 0))
}

// Goodput is the run's objectives (nil without --goodput).
func (r Run) Goodput() metrics.Goodput {
	m, ok := r.Raw["goodput"].(map[string]any)
	if !ok {
		return nil
	}
	g := metrics.Goodput{}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			g[k] = f
		}
	}
	return g
}

// GoodputRatio is the share of sent requests that met every objective (failed requests never do); false
// without objectives.
func (r Run) GoodputRatio() (float64, bool) {
	good, ok := r.Num("request_goodput")
	if !ok {
		return 0, false
	}
	sent := r.NumOr("completed", 0) + r.NumOr("failed", 0)
	if sent == 0 {
		return 0, false
	}
	return math.Round(good*r.NumOr("duration", 0)) / sent, true
}

// Metadata is the run's --metadata.
func (r Run) Metadata() map[string]string {
	out := map[string]string{}
	if m, ok := r.Raw["metadata"].(map[string]any); ok {
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

// FormatGoodput writes objectives in the --goodput syntax, sorted: "tpot:50 ttft:200".
func FormatGoodput(g metrics.Goodput) string {
	items := make([]string, 0, len(g))
	for _, k := range slices.Sorted(maps.Keys(g)) {
		items = append(items, k+":"+strconv.FormatFloat(g[k], 'f', -1, 64))
	}
	return strings.Join(items, " ")
}

// Load reads every result JSON of dir (a JSON object with "completed" and "duration"; other files, the
// aggregate's own and per-request files are skipped), sorted by input/output lengths, concurrency, rate and name.
func Load(dir string) ([]Run, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var runs []Run
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || filepath.Ext(name) != ".json" || name == JSONName || strings.HasPrefix(name, ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		var raw map[string]any
		if json.Unmarshal(data, &raw) != nil {
			continue
		}
		if _, ok := raw["completed"]; !ok {
			continue
		}
		if _, ok := raw["duration"]; !ok {
			continue
		}
		runs = append(runs, Run{File: name, Raw: raw})
	}
	slices.SortFunc(runs, func(a, b Run) int {
		ai, ao := a.InputOutput()
		bi, bo := b.InputOutput()
		return cmp.Or(cmp.Compare(ai, bi), cmp.Compare(ao, bo), cmp.Compare(a.MaxConcurrency(), b.MaxConcurrency()),
			cmp.Compare(a.RequestRate(), b.RequestRate()), cmp.Compare(a.File, b.File))
	})
	return runs, nil
}

// Columns of the aggregate, in order; most are keys of the result JSON and hold its value. Derived ones: file,
// goodput (the objectives in --goodput syntax), goodput_ratio (GoodputRatio) and metadata.<key>.
var baseColumns = []string{
	"file", "date", "model_id", "backend", "random_input_len", "random_output_len", "max_concurrency", "request_rate",
	"num_prompts", "burstiness", "completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
	"request_throughput", "output_throughput", "total_token_throughput", "goodput", "request_goodput", "goodput_ratio",
}

var percentileKey = regexp.MustCompile(`^p([0-9.]+)_(ttft|tpot|itl|e2el)_ms$`)

// Columns returns the aggregate's columns for runs: the base columns, mean/median/percentiles of every latency
// metric (the percentiles any run has), the server join's columns when a run has them, then metadata.
func Columns(runs []Run) []string {
	cols := slices.Clone(baseColumns)
	var pcts []float64
	meta := map[string]bool{}
	joined := false
	for _, r := range runs {
		for k := range r.Raw {
			if m := percentileKey.FindStringSubmatch(k); m != nil {
				if p, err := strconv.ParseFloat(m[1], 64); err == nil && !slices.Contains(pcts, p) {
					pcts = append(pcts, p)
				}
			}
		}
		for k := range r.Metadata() {
			meta[k] = true
		}
		if _, ok := r.Raw["server_joined"]; ok {
			joined = true
		}
	}
	slices.Sort(pcts)
	for _, m := range metrics.AllMetrics {
		cols = append(cols, "mean_"+m+"_ms", "median_"+m+"_ms")
		for _, p := range pcts {
			cols = append(cols, "p"+metrics.PercentileWord(p)+"_"+m+"_ms")
		}
	}
	if joined {
		cols = append(cols, "server_joined", "server_join_failed")
		for _, p := range []string{metrics.PhaseQueue, metrics.PhasePrefill, metrics.PhaseDecode, metrics.PhaseInference, metrics.PhaseE2E} {
			cols = append(cols, "mean_server_"+p+"_ms", "p90_server_"+p+"_ms")
		}
		for _, p := range []string{metrics.PhaseQueue, metrics.PhasePrefill, metrics.PhaseDecode, metrics.PhaseInference} {
			cols = append(cols, "server_"+p+"_share")
		}
	}
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		cols = append(cols, "metadata."+k)
	}
	return cols
}

// Value is a run's value of a column: a number, a string, or nil when the run has none.
func (r Run) Value(col string) any {
	switch {
	case col == "file":
		return r.File
	case col == "goodput":
		if g := r.Goodput(); g != nil {
			return FormatGoodput(g)
		}
		return nil
	case col == "goodput_ratio":
		if v, ok := r.GoodputRatio(); ok {
			return v
		}
		return nil
	case strings.HasPrefix(col, "metadata."):
		if v, ok := r.Metadata()[strings.TrimPrefix(col, "metadata.")]; ok {
			return v
		}
		return nil
	}
	return r.Raw[col]
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return x
	default:
		return fmt.Sprint(x)
	}
}

// WriteCSV writes a header and one row per run.
func WriteCSV(w io.Writer, runs []Run) error {
	cols := Columns(runs)
	cw := csv.NewWriter(w)
	if err := cw.Write(cols); err != nil {
		return err
	}
	row := make([]string, len(cols))
	for _, r := range runs {
		for i, c := range cols {
			row[i] = cell(r.Value(c))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes a JSON array with one object per run, holding the same columns as the CSV.
func WriteJSON(w io.Writer, runs []Run) error {
	cols := Columns(runs)
	out := make([]map[string]any, len(runs))
	for i, r := range runs {
		out[i] = make(map[string]any, len(cols))
		for _, c := range cols {
			out[i][c] = r.Value(c)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// Write aggregates dir into dir/aggregate.csv and dir/aggregate.json and returns the paths and the runs.
func Write(dir string) ([]string, []Run, error) {
	runs, err := Load(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(runs) == 0 {
		return nil, nil, fmt.Errorf("%s holds no vllmbench result JSON", dir)
	}
	var paths []string
	for name, write := range map[string]func(io.Writer, []Run) error{CSVName: WriteCSV, JSONName: WriteJSON} {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			return nil, nil, err
		}
		if err := write(f, runs); err != nil {
			_ = f.Close()
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return nil, nil, err
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths, runs, nil
}
