package report // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/report"

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/aggregate"
)

// Options configure a report.
type Options struct {
	Dir        string // results folder
	CompareDir string // optional second results folder, overlaid
	// OutDir receives report.html and the SVG charts (default Dir/report).
	OutDir string
	// Target is the share of requests that must meet the goodput objectives for a load point to be within
	// capacity (default 0.9).
	Target float64
	// Prometheus, when its URL is set, supplies GPU utilisation and SM activity per load point.
	Prometheus            Prometheus
	GPUUtilQuery, SMQuery string
}

// HTMLName is the report's file name in OutDir.
const HTMLName = "report.html"

// Generate writes the report and returns the paths it wrote (the HTML first).
func Generate(ctx context.Context, o Options) ([]string, error) {
	if o.Target == 0 {
		o.Target = 0.9
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(o.Dir, "report")
	}
	runs, err := aggregate.Load(o.Dir)
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s holds no vllmbench result JSON", o.Dir)
	}
	all := slices.Clone(runs)
	var other []aggregate.Run
	if o.CompareDir != "" {
		if other, err = aggregate.Load(o.CompareDir); err != nil {
			return nil, err
		}
		if len(other) == 0 {
			return nil, fmt.Errorf("%s holds no vllmbench result JSON", o.CompareDir)
		}
		all = append(all, other...)
	}
	axis := ChooseAxis(all)
	sets := []Dataset{NewDataset(datasetLabel(o.Dir, runs, "A"), runs, axis)}
	if other != nil {
		sets = append(sets, NewDataset(datasetLabel(o.CompareDir, other, "B"), other, axis))
		if sets[0].Label == sets[1].Label {
			sets[0].Label, sets[1].Label = "A", "B"
		}
	}
	if o.Prometheus.URL != "" {
		for i := range sets {
			if err := o.Prometheus.AddGPU(ctx, &sets[i], cmpOr(o.GPUUtilQuery, DefaultGPUUtilQuery), cmpOr(o.SMQuery, DefaultSMQuery)); err != nil {
				return nil, fmt.Errorf("GPU metrics: %w", err)
			}
		}
	}
	charts, err := newChartSet(axis, o.Target, sets...).Charts()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}
	paths := []string{filepath.Join(o.OutDir, HTMLName)}
	for _, c := range charts {
		p := filepath.Join(o.OutDir, c.Name+".svg")
		if err := os.WriteFile(p, c.SVG, 0o644); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	var b bytes.Buffer
	if err := page.Execute(&b, buildPage(axis, o.Target, sets, charts)); err != nil {
		return nil, err
	}
	return paths, os.WriteFile(paths[0], b.Bytes(), 0o644)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// datasetLabel names a folder: its runs' "config" metadata when they share one (seed 003's A/B example), else
// the folder's name.
func datasetLabel(dir string, runs []aggregate.Run, fallback string) string {
	label := ""
	for i, r := range runs {
		c := r.Metadata()["config"]
		if i > 0 && c != label {
			label = ""
			break
		}
		label = c
	}
	if label != "" {
		return label
	}
	if base := filepath.Base(filepath.Clean(dir)); base != "." && base != "/" {
		return base
	}
	return fallback
}

type pageData struct {
	Title      string
	Datasets   []datasetInfo
	Axis       string
	Capacity   []string
	Growth     []string
	NoJoin     bool
	Charts     []chartHTML
	Diff       *diffTable
	Runs       []runsTable
	Objectives string
}

type datasetInfo struct {
	Label, Model, Dates, Metadata string
	Runs                          int
}

type chartHTML struct {
	ID, Title string
	SVG       template.HTML
}

var svgSize = regexp.MustCompile(`^<svg width="[^"]*" height="[^"]*"`)

// inlineSVG strips the XML prologue and the fixed size, so that the chart scales with the page.
func inlineSVG(svg []byte) template.HTML {
	s := string(svg)
	if i := strings.Index(s, "<svg"); i >= 0 {
		s = s[i:]
	}
	s = svgSize.ReplaceAllString(s, `<svg role="img"`)
	return template.HTML(s) // our own renderer's output
}

func buildPage(axis Axis, target float64, sets []Dataset, charts []Chart) pageData {
	pd := pageData{Title: "vllmbench sweep report", Axis: axis.Label()}
	joined := false
	for _, d := range sets {
		info := datasetInfo{Label: d.Label, Runs: len(d.Runs)}
		models, dates := map[string]bool{}, []string{}
		meta := map[string]bool{}
		for _, r := range d.Runs {
			models[r.Str("model_id")] = true
			if s := r.Str("date"); s != "" {
				dates = append(dates, s)
			}
			for k, v := range r.Metadata() {
				meta[k+"="+v] = true
			}
			if _, ok := r.Num("mean_server_queue_ms"); ok {
				joined = true
			}
		}
		info.Model = strings.Join(sortedKeys(models), ", ")
		if len(dates) > 0 {
			slices.Sort(dates)
			info.Dates = dates[0] + " – " + dates[len(dates)-1]
		}
		info.Metadata = strings.Join(sortedKeys(meta), " ")
		pd.Datasets = append(pd.Datasets, info)
		prefix := ""
		if len(sets) > 1 {
			prefix = d.Label + ", "
		}
		if obj := d.Objectives(); obj != nil {
			for _, c := range d.Capacities(target) {
				pd.Capacity = append(pd.Capacity, prefix+CapacitySentence(c, axis, obj, target))
			}
		}
		for _, g := range d.Growths() {
			pd.Growth = append(pd.Growth, prefix+GrowthSentence(g, axis))
		}
		pd.Runs = append(pd.Runs, newRunsTable(d))
	}
	pd.NoJoin = !joined
	if obj := sets[0].Objectives(); obj != nil {
		pd.Objectives = aggregate.FormatGoodput(obj)
	}
	for _, c := range charts {
		pd.Charts = append(pd.Charts, chartHTML{ID: c.Name, Title: c.Title, SVG: inlineSVG(c.SVG)})
	}
	if len(sets) > 1 {
		pd.Diff = newDiffTable(axis, sets[0], sets[1])
	}
	return pd
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func fmtNum(v float64, ok bool, prec int) string {
	if !ok || math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

type runsTable struct {
	Label  string
	Header []string
	Rows   [][]string
}

func newRunsTable(d Dataset) runsTable {
	t := runsTable{Label: d.Label, Header: []string{"series", "load", "ok", "failed", "req/s", "output tok/s", "goodput %",
		"TTFT p50/p99 ms", "TPOT p50/p99 ms", "E2EL p50/p99 ms", "server queue / prefill / decode ms", "file"}}
	for _, p := range d.Points {
		r := p.Run
		pair := func(a, b string) string {
			x, okx := r.Num(a)
			y, oky := r.Num(b)
			return fmtNum(x, okx, 1) + " / " + fmtNum(y, oky, 1)
		}
		g, gok := r.GoodputRatio()
		server := "–"
		if q, pf, dc, _, ok := phaseMeans(p); ok {
			server = fmt.Sprintf("%.1f / %.1f / %.1f", q, pf, dc)
		}
		completed, _ := r.Num("completed")
		failed, _ := r.Num("failed")
		rps, rok := r.Num("request_throughput")
		tps, tok := r.Num("output_throughput")
		t.Rows = append(t.Rows, []string{p.Series, strconv.FormatFloat(p.Load, 'f', -1, 64), fmtNum(completed, true, 0),
			fmtNum(failed, true, 0), fmtNum(rps, rok, 2), fmtNum(tps, tok, 1), fmtNum(100*g, gok, 1),
			pair("median_ttft_ms", "p99_ttft_ms"), pair("median_tpot_ms", "p99_tpot_ms"), pair("median_e2el_ms", "p99_e2el_ms"),
			server, r.File})
	}
	return t
}

type diffTable struct {
	A, B   string
	Header []string
	Rows   [][]string
}

// diffMetrics are compared between two sweeps at each load point both have.
var diffMetrics = []struct{ name, key string }{
	{"output tok/s", "output_throughput"}, {"req/s", "request_throughput"}, {"p99 TTFT ms", "p99_ttft_ms"},
	{"p99 TPOT ms", "p99_tpot_ms"}, {"p99 E2EL ms", "p99_e2el_ms"}, {"server queue ms", "mean_server_queue_ms"},
	{"server decode ms", "mean_server_decode_ms"},
}

func newDiffTable(axis Axis, a, b Dataset) *diffTable {
	t := &diffTable{A: a.Label, B: b.Label, Header: []string{"series", axis.Label(), "metric", a.Label, b.Label, "change"}}
	for _, pa := range a.Points {
		i := slices.IndexFunc(b.Points, func(pb Point) bool { return pb.Series == pa.Series && pb.Load == pa.Load })
		if i < 0 {
			continue
		}
		pb := b.Points[i]
		load := strconv.FormatFloat(pa.Load, 'f', -1, 64)
		row := func(name string, va, vb float64, oka, okb bool, prec int) {
			if !oka && !okb {
				return
			}
			change := "–"
			if oka && okb && va != 0 {
				change = fmt.Sprintf("%+.1f%%", 100*(vb-va)/va)
			}
			t.Rows = append(t.Rows, []string{pa.Series, load, name, fmtNum(va, oka, prec), fmtNum(vb, okb, prec), change})
		}
		for _, m := range diffMetrics {
			va, oka := pa.Run.Num(m.key)
			vb, okb := pb.Run.Num(m.key)
			row(m.name, va, vb, oka, okb, 1)
		}
		ga, oka := pa.Run.GoodputRatio()
		gb, okb := pb.Run.GoodputRatio()
		row("goodput %", 100*ga, 100*gb, oka, okb, 1)
	}
	return t
}

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(28em, 1fr)); gap: 1em; }
figure { margin: 0; } figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: .9em; color: #555; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: right; } th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
ul.sentences li { margin: .4em 0; }
.note { color: #555; font-size: .9em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{range .Datasets}}<p><b>{{.Label}}</b>: {{.Runs}} runs of {{.Model}}{{if .Dates}}, {{.Dates}}{{end}}{{if .Metadata}}; metadata {{.Metadata}}{{end}}.</p>
{{end}}
<h2>Capacity</h2>
{{if .Capacity}}<ul class="sentences" id="capacity">{{range .Capacity}}<li>{{.}}</li>{{end}}</ul>
{{else}}<p class="note">The runs have no goodput objectives (--goodput), so no capacity is stated.</p>{{end}}
<h2>Where the time goes</h2>
{{if .Growth}}<ul class="sentences" id="growth">{{range .Growth}}<li>{{.}}</li>{{end}}</ul>
{{else if .NoJoin}}<p class="note">The runs were not joined with the server's spans (--jaeger-url), so the server's queue, prefill and decode times are unknown.</p>
{{else}}<p class="note">Fewer than two joined load points per series.</p>{{end}}
<h2>Charts</h2>
<p class="note">Load axis: {{.Axis}}.{{if .Objectives}} Goodput objectives: {{.Objectives}}.{{end}}</p>
<div class="charts">
{{range .Charts}}<figure id="{{.ID}}">{{.SVG}}<figcaption>{{.Title}}</figcaption></figure>
{{end}}</div>
{{with .Diff}}<h2>Differences: {{.A}} → {{.B}}</h2>
<table id="differences"><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
<h2>Runs</h2>
{{range .Runs}}<h3>{{.Label}}</h3>
<table class="runs"><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr>{{range .}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{end}}
</body>
</html>
`))
