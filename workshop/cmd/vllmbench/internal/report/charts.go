package report // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/report"

import (
	"bytes"
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart is one drawn chart.
type Chart struct {
	// Name is the file name (name.svg) and the HTML element id.
	Name, Title string
	SVG         []byte
}

const (
	chartW = 18 * vg.Centimeter
	chartH = 10 * vg.Centimeter
)

func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	return p
}

func render(p *plot.Plot, name, title string) (Chart, error) {
	wt, err := p.WriterTo(chartW, chartH, "svg")
	if err != nil {
		return Chart{}, err
	}
	var b bytes.Buffer
	if _, err := wt.WriteTo(&b); err != nil {
		return Chart{}, err
	}
	return Chart{Name: name, Title: title, SVG: b.Bytes()}, nil
}

// style of a line: a colour per series and dataset, dashed for a second statistic, a glyph per dataset.
type style struct {
	color  color.Color
	dashed bool
	glyph  int
}

func addLine(p *plot.Plot, xys plotter.XYs, label string, st style) error {
	if len(xys) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color = st.color
	l.Width = vg.Points(1.5)
	if st.dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	pts.Color = st.color
	pts.Shape = plotutil.Shape(st.glyph)
	p.Add(l, pts)
	p.Legend.Add(label, l, pts)
	return nil
}

func addHLine(p *plot.Plot, y float64, label string, c color.Color) {
	f := plotter.NewFunction(func(float64) float64 { return y })
	f.Color = c
	f.Width = vg.Points(1)
	f.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
	p.Add(f)
	p.Legend.Add(label, f)
	if p.Y.Max < y*1.1 {
		p.Y.Max = y * 1.1
	}
}

// chartSet draws the charts of one or two datasets on the same axis.
type chartSet struct {
	axis     Axis
	sets     []Dataset
	target   float64
	series   []string // all series names, for stable colours
	multiple bool
}

func newChartSet(axis Axis, target float64, sets ...Dataset) chartSet {
	cs := chartSet{axis: axis, sets: sets, target: target, multiple: len(sets) > 1}
	for _, d := range sets {
		for _, s := range d.Series {
			if !slices.Contains(cs.series, s) {
				cs.series = append(cs.series, s)
			}
		}
	}
	return cs
}

func (cs chartSet) label(d Dataset, series, stat string) string {
	l := series
	if cs.multiple {
		l = d.Label + ": " + l
	}
	if stat != "" {
		l += " " + stat
	}
	return l
}

func (cs chartSet) style(di int, series string, dashed bool) style {
	return style{color: plotutil.Color(slices.Index(cs.series, series) + di*len(cs.series)), dashed: dashed, glyph: 2 * di}
}

// loadTicks marks the load points on the x axis.
func (cs chartSet) loadTicks(p *plot.Plot) {
	var ticks []plot.Tick
	for _, d := range cs.sets {
		for _, pt := range d.Points {
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == pt.Load }) {
				ticks = append(ticks, plot.Tick{Value: pt.Load, Label: strconv.FormatFloat(pt.Load, 'f', -1, 64)})
			}
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	if len(ticks) > 0 {
		hi := slices.MaxFunc(ticks, func(a, b plot.Tick) int { return cmp.Compare(a.Value, b.Value) }).Value
		p.X.Max = hi * 1.04 // room for the last tick's label
	}
}

// lines adds one line per dataset and series of value(point) (points where ok is false are left out).
func (cs chartSet) lines(p *plot.Plot, stat string, dashed bool, value func(Point) (float64, bool)) error {
	cs.loadTicks(p)
	for di, d := range cs.sets {
		for _, s := range d.Series {
			var xys plotter.XYs
			for _, pt := range d.SeriesPoints(s) {
				if v, ok := value(pt); ok && !math.IsNaN(v) {
					xys = append(xys, plotter.XY{X: pt.Load, Y: v})
				}
			}
			if err := addLine(p, xys, cs.label(d, s, stat), cs.style(di, s, dashed)); err != nil {
				return err
			}
		}
	}
	return nil
}

func num(key string) func(Point) (float64, bool) {
	return func(p Point) (float64, bool) { return p.Run.Num(key) }
}

// Charts draws every chart the data allows, in report order.
func (cs chartSet) Charts() ([]Chart, error) {
	var charts []Chart
	add := func(p *plot.Plot, name, title string) error {
		c, err := render(p, name, title)
		if err == nil {
			charts = append(charts, c)
		}
		return err
	}
	x := cs.axis.Label()

	p := newPlot("Output token throughput", x, "output tokens/s")
	if err := cs.lines(p, "", false, num("output_throughput")); err != nil {
		return nil, err
	}
	if err := add(p, "throughput-tokens", "Output tokens/s against load"); err != nil {
		return nil, err
	}
	p = newPlot("Request throughput", x, "requests/s")
	if err := cs.lines(p, "", false, num("request_throughput")); err != nil {
		return nil, err
	}
	if err := add(p, "throughput-requests", "Requests/s against load"); err != nil {
		return nil, err
	}

	objectives := cs.sets[0].Objectives()
	for _, m := range []struct{ key, name string }{{"ttft", "TTFT"}, {"tpot", "TPOT"}, {"e2el", "E2EL"}} {
		p = newPlot(m.name+" p50 and p99", x, m.name+" (ms)")
		if err := cs.lines(p, "p50", false, num("median_"+m.key+"_ms")); err != nil {
			return nil, err
		}
		if err := cs.lines(p, "p99", true, num("p99_"+m.key+"_ms")); err != nil {
			return nil, err
		}
		if v, ok := objectives[m.key]; ok {
			addHLine(p, v, "objective "+m.key+":"+strconv.FormatFloat(v, 'f', -1, 64)+" ms", color.Black)
		}
		if err := add(p, "latency-"+m.key, m.name+" p50 and p99 against load"); err != nil {
			return nil, err
		}
	}

	if objectives != nil {
		p = newPlot("Goodput", x, "requests meeting every objective (%)")
		if err := cs.lines(p, "", false, func(pt Point) (float64, bool) {
			r, ok := pt.Run.GoodputRatio()
			return 100 * r, ok
		}); err != nil {
			return nil, err
		}
		addHLine(p, 100*cs.target, "target "+strconv.FormatFloat(100*cs.target, 'f', -1, 64)+"%", color.Black)
		p.Y.Max = 105
		if err := add(p, "goodput", "Goodput against load"); err != nil {
			return nil, err
		}
	}

	if p, err := cs.pareto(); err != nil {
		return nil, err
	} else if err := add(p, "pareto", "Pareto frontier: output tokens/s per user against total"); err != nil {
		return nil, err
	}

	for i, s := range cs.series {
		p, ok, err := cs.serverTime(s)
		if err != nil {
			return nil, err
		}
		if ok {
			if err := add(p, fmt.Sprintf("server-time-%d", i+1), "Server time per request, "+s); err != nil {
				return nil, err
			}
		}
	}

	hasGPU := false
	for _, d := range cs.sets {
		for _, pt := range d.Points {
			hasGPU = hasGPU || !math.IsNaN(pt.GPUUtil) || !math.IsNaN(pt.SMActivity)
		}
	}
	if hasGPU {
		p = newPlot("GPU", x, "%")
		if err := cs.lines(p, "GPU utilisation", false, func(pt Point) (float64, bool) { return 100 * pt.GPUUtil, true }); err != nil {
			return nil, err
		}
		if err := cs.lines(p, "SM activity", true, func(pt Point) (float64, bool) { return 100 * pt.SMActivity, true }); err != nil {
			return nil, err
		}
		if err := add(p, "gpu", "GPU utilisation and SM activity against load"); err != nil {
			return nil, err
		}
	}
	return charts, nil
}

// userThroughput is output tokens/s per user: output throughput ÷ the concurrency limit, or ÷ the mean number
// of requests in flight (request throughput × mean E2EL, Little's law) when the concurrency is unlimited.
func userThroughput(p Point) (float64, bool) {
	out, ok := p.Run.Num("output_throughput")
	if !ok {
		return 0, false
	}
	users := float64(p.Run.MaxConcurrency())
	if users == 0 {
		users = p.Run.NumOr("request_throughput", 0) * p.Run.NumOr("mean_e2el_ms", 0) / 1000
	}
	if !(users > 0) {
		return 0, false
	}
	return out / users, true
}

// Frontier returns the Pareto-optimal points (no other point has both more tokens/s per user and more in
// total), by tokens/s per user.
func Frontier(xys plotter.XYs) plotter.XYs {
	sorted := slices.Clone(xys)
	slices.SortFunc(sorted, func(a, b plotter.XY) int {
		if a.X != b.X {
			if a.X > b.X {
				return -1
			}
			return 1
		}
		if a.Y > b.Y {
			return -1
		}
		if a.Y < b.Y {
			return 1
		}
		return 0
	})
	var out plotter.XYs
	best := math.Inf(-1)
	for _, xy := range sorted {
		if xy.Y > best {
			out = append(out, xy)
			best = xy.Y
		}
	}
	slices.Reverse(out)
	return out
}

func (cs chartSet) pareto() (*plot.Plot, error) {
	p := newPlot("Pareto frontier", "output tokens/s per user", "output tokens/s (total)")
	p.Legend.Top = false
	p.Legend.Left = false
	for di, d := range cs.sets {
		var all plotter.XYs
		for _, s := range d.Series {
			var xys plotter.XYs
			var labels []string
			for _, pt := range d.SeriesPoints(s) {
				u, ok := userThroughput(pt)
				if !ok {
					continue
				}
				xys = append(xys, plotter.XY{X: u, Y: pt.Run.NumOr("output_throughput", 0)})
				labels = append(labels, strconv.FormatFloat(pt.Load, 'f', -1, 64))
			}
			if len(xys) == 0 {
				continue
			}
			all = append(all, xys...)
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, err
			}
			st := cs.style(di, s, false)
			sc.Color, sc.Shape = st.color, plotutil.Shape(st.glyph)
			p.Add(sc)
			p.Legend.Add(cs.label(d, s, ""), sc)
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			for i := range lb.TextStyle {
				lb.TextStyle[i].XAlign = draw.XLeft
			}
			lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}
			p.Add(lb)
		}
		if front := Frontier(all); len(front) > 0 {
			l, err := plotter.NewLine(front)
			if err != nil {
				return nil, err
			}
			l.Color = color.Gray{Y: 80}
			if di > 0 {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			p.Add(l)
			name := "frontier"
			if cs.multiple {
				name = d.Label + ": frontier"
			}
			p.Legend.Add(name, l)
		}
	}
	p.X.Min = 0
	return p, nil
}

// serverTime draws stacked mean queue, prefill and decode per load point of one series (one bar per dataset).
func (cs chartSet) serverTime(series string) (*plot.Plot, bool, error) {
	var loads []float64
	for _, d := range cs.sets {
		for _, pt := range d.SeriesPoints(series) {
			if _, _, _, _, ok := phaseMeans(pt); ok && !slices.Contains(loads, pt.Load) {
				loads = append(loads, pt.Load)
			}
		}
	}
	if len(loads) == 0 {
		return nil, false, nil
	}
	slices.Sort(loads)
	p := newPlot("Server time per request: "+series, cs.axis.Label(), "mean time (ms)")
	p.Legend.Top = true
	names := make([]string, len(loads))
	for i, l := range loads {
		names[i] = strconv.FormatFloat(l, 'f', -1, 64)
	}
	p.NominalX(names...)
	width := vg.Points(28)
	if cs.multiple {
		width = vg.Points(18)
	}
	phaseColors := []color.Color{color.RGBA{R: 214, G: 39, B: 40, A: 255}, color.RGBA{R: 255, G: 158, B: 74, A: 255}, color.RGBA{R: 31, G: 119, B: 180, A: 255}}
	for di, d := range cs.sets {
		vals := [3]plotter.Values{make(plotter.Values, len(loads)), make(plotter.Values, len(loads)), make(plotter.Values, len(loads))}
		for _, pt := range d.SeriesPoints(series) {
			q, pf, dc, _, ok := phaseMeans(pt)
			if !ok {
				continue
			}
			i := slices.Index(loads, pt.Load)
			vals[0][i], vals[1][i], vals[2][i] = q, pf, dc
		}
		var below *plotter.BarChart
		for k, phase := range []string{"queue", "prefill", "decode"} {
			b, err := plotter.NewBarChart(vals[k], width)
			if err != nil {
				return nil, false, err
			}
			b.Color = phaseColors[k]
			b.LineStyle.Width = vg.Points(0.5)
			if cs.multiple {
				b.Offset = vg.Points(-10 + 20*float64(di))
				if di > 0 {
					b.Color = lighten(phaseColors[k])
				}
			}
			if below != nil {
				b.StackOn(below)
			}
			below = b
			p.Add(b)
			label := phase
			if cs.multiple {
				label = d.Label + ": " + phase
			}
			p.Legend.Add(label, b)
		}
	}
	return p, true, nil
}

func lighten(c color.Color) color.Color {
	r, g, b, _ := c.RGBA()
	f := func(v uint32) uint8 { return uint8((v>>8)/2 + 128) }
	return color.RGBA{R: f(r), G: f(g), B: f(b), A: 255}
}
