// Package report turns a results folder (a sweep's) into one self-contained HTML file and SVG charts beside
// it: throughput, latency percentiles against the goodput objectives, goodput and the capacity it implies,
// the Pareto frontier of per-user against total output throughput, and, after a Jaeger join, how the server's
// time per request splits into queue, prefill and decode at every load point; optionally GPU utilisation from
// Prometheus, and a second folder overlaid for comparison.
package report // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/report"

import (
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/aggregate"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/metrics"
)

// Axis is what "load" means in a report: the concurrency limit or the request rate, whichever the runs vary.
type Axis int

const (
	AxisConcurrency Axis = iota
	AxisRate
)

// Label is the axis title.
func (a Axis) Label() string {
	if a == AxisRate {
		return "request rate (req/s)"
	}
	return "concurrent requests"
}

// Phrase names a load value in a sentence: "16 concurrent requests", "4 req/s".
func (a Axis) Phrase(v float64) string {
	n := strconv.FormatFloat(v, 'f', -1, 64)
	if a == AxisRate {
		return n + " req/s"
	}
	if v == 1 {
		return "1 concurrent request"
	}
	return n + " concurrent requests"
}

// Point is one run placed on the load axis of its series.
type Point struct {
	Series string
	Load   float64
	Run    aggregate.Run
	// GPU utilisation and SM activity in [0, 1] over the run, from Prometheus (NaN when not queried or absent).
	GPUUtil, SMActivity float64
}

// Dataset is one results folder.
type Dataset struct {
	Label  string
	Runs   []aggregate.Run
	Points []Point // sorted by series (first appearance), then load
	Series []string
}

// ChooseAxis returns the concurrency axis when the runs use more than one concurrency limit, else the rate axis.
func ChooseAxis(runs []aggregate.Run) Axis {
	conc := map[int]bool{}
	for _, r := range runs {
		conc[r.MaxConcurrency()] = true
	}
	if len(conc) > 1 {
		return AxisConcurrency
	}
	rates := map[float64]bool{}
	for _, r := range runs {
		rates[r.RequestRate()] = true
	}
	if len(rates) > 1 {
		return AxisRate
	}
	return AxisConcurrency
}

// pairLabel names an input/output pair: "128 in / 64 out".
func pairLabel(r aggregate.Run) string {
	in, out := r.InputOutput()
	if in == 0 {
		return "custom prompts"
	}
	return fmt.Sprintf("%d in / %d out", in, out)
}

// NewDataset places runs on axis. On the concurrency axis an unlimited run counts as all its prompts at once;
// on the rate axis a run at rate inf has no place and is left out of the charts. When the runs also vary the
// other dimension, it becomes part of the series name.
func NewDataset(label string, runs []aggregate.Run, axis Axis) Dataset {
	d := Dataset{Label: label, Runs: runs}
	others := map[float64]bool{}
	for _, r := range runs {
		if axis == AxisConcurrency {
			others[r.RequestRate()] = true
		} else {
			others[float64(r.MaxConcurrency())] = true
		}
	}
	for _, r := range runs {
		series := pairLabel(r)
		var load float64
		if axis == AxisConcurrency {
			load = float64(r.MaxConcurrency())
			if load == 0 {
				load = r.NumOr("num_prompts", 0)
			}
			if len(others) > 1 {
				series += " @ " + rateText(r.RequestRate())
			}
		} else {
			load = r.RequestRate()
			if math.IsInf(load, 1) {
				continue
			}
			if len(others) > 1 {
				series += fmt.Sprintf(" @ concurrency %d", r.MaxConcurrency())
			}
		}
		if !slices.Contains(d.Series, series) {
			d.Series = append(d.Series, series)
		}
		d.Points = append(d.Points, Point{Series: series, Load: load, Run: r, GPUUtil: math.NaN(), SMActivity: math.NaN()})
	}
	slices.SortStableFunc(d.Points, func(a, b Point) int {
		if c := slices.Index(d.Series, a.Series) - slices.Index(d.Series, b.Series); c != 0 {
			return c
		}
		switch {
		case a.Load < b.Load:
			return -1
		case a.Load > b.Load:
			return 1
		}
		return 0
	})
	return d
}

func rateText(r float64) string {
	if math.IsInf(r, 1) {
		return "rate inf"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " req/s"
}

// SeriesPoints returns the points of one series, by load.
func (d Dataset) SeriesPoints(series string) []Point {
	var out []Point
	for _, p := range d.Points {
		if p.Series == series {
			out = append(out, p)
		}
	}
	return out
}

// Objectives returns the goodput objectives of the runs (those of the first run that has any).
func (d Dataset) Objectives() metrics.Goodput {
	for _, r := range d.Runs {
		if g := r.Goodput(); g != nil {
			return g
		}
	}
	return nil
}

// Capacity is the highest load of a series up to which every load point meets the goodput target.
type Capacity struct {
	Series string
	// Load is the capacity; Found is false when even the lowest load point misses the target.
	Load  float64
	Found bool
	// Next is the first load point that misses the target (NextRatio its goodput); HasNext is false when
	// every point meets it.
	Next      float64
	NextRatio float64
	HasNext   bool
	// Ratio is the goodput at Load (at the lowest point when not Found).
	Ratio float64
}

// Capacities returns each series' capacity at target (a share of requests, e.g. 0.9); nil without objectives.
func (d Dataset) Capacities(target float64) []Capacity {
	if d.Objectives() == nil {
		return nil
	}
	var out []Capacity
	for _, s := range d.Series {
		c := Capacity{Series: s}
		for i, p := range d.SeriesPoints(s) {
			ratio, ok := p.Run.GoodputRatio()
			if !ok {
				continue
			}
			if ratio >= target && (c.Found || i == 0) {
				c.Load, c.Ratio, c.Found = p.Load, ratio, true
				continue
			}
			if i == 0 {
				c.Ratio = ratio
			}
			c.Next, c.NextRatio, c.HasNext = p.Load, ratio, true
			break
		}
		out = append(out, c)
	}
	return out
}

// CapacitySentence states a capacity in plain words.
func CapacitySentence(c Capacity, axis Axis, objectives metrics.Goodput, target float64) string {
	obj := aggregate.FormatGoodput(objectives)
	pct := strconv.FormatFloat(100*target, 'f', -1, 64) + "%"
	if !c.Found {
		return fmt.Sprintf("%s: no load point meets %s for ≥ %s of requests (at %s: %.0f%%).", c.Series, obj, pct,
			axis.Phrase(c.Next), 100*c.NextRatio)
	}
	verb := "meet"
	if axis == AxisConcurrency && c.Load == 1 {
		verb = "meets"
	}
	s := fmt.Sprintf("%s: up to %s %s %s for ≥ %s of requests", c.Series, axis.Phrase(c.Load), verb, obj, pct)
	if c.HasNext {
		return s + fmt.Sprintf(" (at %s: %.0f%%).", axis.Phrase(c.Next), 100*c.NextRatio)
	}
	return s + " (the highest load point measured)."
}

// phaseMeans returns a point's mean server queue, prefill and decode times (ms) and e2e; ok is false without a join.
func phaseMeans(p Point) (queue, prefill, decode, e2e float64, ok bool) {
	q, ok1 := p.Run.Num("mean_server_queue_ms")
	pf, ok2 := p.Run.Num("mean_server_prefill_ms")
	dc, ok3 := p.Run.Num("mean_server_decode_ms")
	e, ok4 := p.Run.Num("mean_server_e2e_ms")
	return q, pf, dc, e, ok1 && ok2 && ok3 && ok4
}

// Growth is where a series' server time per request grew between its lowest and highest joined load points.
type Growth struct {
	Series                         string
	From, To                       float64 // loads
	E2EFrom, E2ETo                 float64 // mean server e2e, ms
	Queue, Prefill, Decode         float64 // growth of each mean, ms
	QueueShareFrom, QueueShareTo   float64
	DecodeShareFrom, DecodeShareTo float64
	// Phase is the phase that grew most: queue, prefill or decode.
	Phase string
}

// Growths returns each series' growth; series with fewer than two joined points are left out.
func (d Dataset) Growths() []Growth {
	var out []Growth
	for _, s := range d.Series {
		var joined []Point
		for _, p := range d.SeriesPoints(s) {
			if _, _, _, _, ok := phaseMeans(p); ok {
				joined = append(joined, p)
			}
		}
		if len(joined) < 2 {
			continue
		}
		a, b := joined[0], joined[len(joined)-1]
		q0, p0, d0, e0, _ := phaseMeans(a)
		q1, p1, d1, e1, _ := phaseMeans(b)
		g := Growth{Series: s, From: a.Load, To: b.Load, E2EFrom: e0, E2ETo: e1, Queue: q1 - q0, Prefill: p1 - p0, Decode: d1 - d0,
			QueueShareFrom: a.Run.NumOr("server_queue_share", 0), QueueShareTo: b.Run.NumOr("server_queue_share", 0),
			DecodeShareFrom: a.Run.NumOr("server_decode_share", 0), DecodeShareTo: b.Run.NumOr("server_decode_share", 0)}
		g.Phase = metrics.PhaseQueue
		if g.Prefill > g.Queue && g.Prefill >= g.Decode {
			g.Phase = metrics.PhasePrefill
		} else if g.Decode > g.Queue && g.Decode > g.Prefill {
			g.Phase = metrics.PhaseDecode
		}
		out = append(out, g)
	}
	return out
}

// GrowthSentence names where the time grew.
func GrowthSentence(g Growth, axis Axis) string {
	s := fmt.Sprintf("%s: from %s to %s the server's mean time per request went from %.0f ms to %.0f ms (queue %+.0f ms, "+
		"prefill %+.0f ms, decode %+.0f ms; queue %.0f%% → %.0f%% of it, decode %.0f%% → %.0f%%)", g.Series, axis.Phrase(g.From),
		axis.Phrase(g.To), g.E2EFrom, g.E2ETo, g.Queue, g.Prefill, g.Decode, 100*g.QueueShareFrom, 100*g.QueueShareTo,
		100*g.DecodeShareFrom, 100*g.DecodeShareTo)
	if grew := g.E2ETo - g.E2EFrom; grew <= 0.05*g.E2EFrom {
		return s + ": the server's time hardly grew; the load stayed within its capacity."
	}
	switch g.Phase {
	case metrics.PhaseQueue:
		return s + ": the time grew in the queue — the server ran out of capacity and requests waited for a free slot."
	case metrics.PhasePrefill:
		return s + ": the time grew in prefill — more prompt tokens per step slowed every first token."
	}
	return s + ": the time grew in decode — larger batches slowed every token."
}
