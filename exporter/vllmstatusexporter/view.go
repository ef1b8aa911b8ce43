package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// SchemaVersion is the version of the JSON document GET /api/v1/metrics answers. Fields are only ever added
// within a version; a removal or a change of meaning bumps it.
const SchemaVersion = 1

// Status is the JSON document of GET /api/v1/metrics (README, "JSON API").
type Status struct {
	SchemaVersion  int          `json:"schema_version"`
	Time           time.Time    `json:"time"`
	WindowSeconds  float64      `json:"window_seconds"`
	WindowsSeconds []float64    `json:"windows_seconds"`
	CoveredSeconds float64      `json:"covered_seconds"`
	Models         []Model      `json:"models"`
	GPUs           []GPU        `json:"gpus"`
	Alerts         []Alert      `json:"alerts"`
	Slowest        []Slow       `json:"slowest_requests"`
	Series         []SeriesStep `json:"series"`
	DroppedSeries  int64        `json:"dropped_series"`
}

// Model is one model's row. Totals count since the exporter started; rates, percentiles and ratios cover the
// window. A figure with nothing to compute it from is null.
type Model struct {
	Model             string      `json:"model"`
	Operations        []string    `json:"operations"`
	RequestsTotal     float64     `json:"requests_total"`
	RequestsWindow    float64     `json:"requests_window"`
	RequestsPerSecond float64     `json:"requests_per_second"`
	Running           *float64    `json:"running"`
	Waiting           *float64    `json:"waiting"`
	TTFT              *Latency    `json:"ttft_seconds"`
	TPOT              *Latency    `json:"tpot_seconds"`
	E2E               *Latency    `json:"e2e_seconds"`
	Queue             *Latency    `json:"queue_seconds"`
	GoodputRatio      *float64    `json:"goodput_ratio"`
	SLO               []Objective `json:"slo"`
	Tokens            Tokens      `json:"tokens"`
	Errors            Errors      `json:"errors"`
	SpanCoverage      *float64    `json:"span_coverage"`
}

// Latency summarises one histogram over the window.
type Latency struct {
	Count float64 `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
}

// Objective is one SLO objective's attainment over the window ("all" is goodput).
type Objective struct {
	Objective  string   `json:"objective"`
	Requests   float64  `json:"requests"`
	Met        float64  `json:"met"`
	Attainment *float64 `json:"attainment"`
}

// Tokens are token totals and rates.
type Tokens struct {
	InputTotal      float64 `json:"input_total"`
	OutputTotal     float64 `json:"output_total"`
	InputPerSecond  float64 `json:"input_per_second"`
	OutputPerSecond float64 `json:"output_per_second"`
}

// Errors are failed requests by error.type.
type Errors struct {
	Total  float64        `json:"total"`
	Window float64        `json:"window"`
	Ratio  *float64       `json:"ratio"`
	ByType []ErrorsByType `json:"by_type"`
}

// ErrorsByType is one error.type's failed requests.
type ErrorsByType struct {
	Type   string  `json:"type"`
	Total  float64 `json:"total"`
	Window float64 `json:"window"`
}

// GPU is one GPU's last values (null when the receiver does not report them).
type GPU struct {
	ID                 string   `json:"id"`
	Index              *int64   `json:"index"`
	Name               string   `json:"name"`
	Pod                string   `json:"pod,omitempty"`
	Utilization        *float64 `json:"utilization"`
	MemoryUsedBytes    *float64 `json:"memory_used_bytes"`
	MemoryTotalBytes   *float64 `json:"memory_total_bytes"`
	PowerWatts         *float64 `json:"power_watts"`
	TemperatureCelsius *float64 `json:"temperature_celsius"`
	SMActivity         *float64 `json:"sm_activity"`
}

// Alert is a firing alert.
type Alert struct {
	Rule      string    `json:"rule"`
	Model     string    `json:"model"`
	Severity  string    `json:"severity"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Since     time.Time `json:"since"`
	Message   string    `json:"message"`
}

// Slow is one of the slowest recent requests, from the connector's exemplars.
type Slow struct {
	Model      string    `json:"model"`
	Operation  string    `json:"operation,omitempty"`
	E2ESeconds float64   `json:"e2e_seconds"`
	TraceID    string    `json:"trace_id"`
	SpanID     string    `json:"span_id"`
	Time       time.Time `json:"time"`
	TraceURL   string    `json:"trace_url,omitempty"`
}

// SeriesStep is one step of the time series over the window, all models together.
type SeriesStep struct {
	Time              time.Time `json:"time"`
	RequestsPerSecond float64   `json:"requests_per_second"`
	TTFTP95           *float64  `json:"ttft_p95_seconds"`
	E2EP95            *float64  `json:"e2e_p95_seconds"`
	GoodputRatio      *float64  `json:"goodput_ratio"`
}

// maxSeriesSteps bounds the time series' length.
const maxSeriesSteps = 60

// view computes the status document over window at now.
func (s *store) view(now time.Time, window time.Duration) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		SchemaVersion: SchemaVersion,
		Time:          now.UTC(),
		WindowSeconds: window.Seconds(),
		Models:        []Model{},
		GPUs:          []GPU{},
		Alerts:        []Alert{},
		Slowest:       []Slow{},
		Series:        []SeriesStep{},
		DroppedSeries: s.droppedSeries,
	}
	for _, w := range s.cfg.Windows {
		st.WindowsSeconds = append(st.WindowsSeconds, w.Seconds())
	}
	base, baseT := s.baseline(now, window)
	elapsed := now.Sub(baseT).Seconds()
	st.CoveredSeconds = elapsed
	for _, name := range sortedKeys(s.models) {
		m := s.models[name]
		st.Models = append(st.Models, s.modelRow(now, m, base[name], elapsed))
	}
	st.GPUs = s.gpuRows()
	st.Alerts = s.alerts.firing()
	st.Slowest = s.slowest(now, window)
	st.Series = s.timeSeries(now, window)
	return st
}

// baseline is the snapshot the window starts from: the newest one at or before now − window, else the oldest
// (the window then covers only the time since it); with no snapshot at all, empty totals at now.
func (s *store) baseline(now time.Time, window time.Duration) (map[string]*totals, time.Time) {
	start := now.Add(-window)
	i := sort.Search(len(s.snapshots), func(i int) bool { return s.snapshots[i].t.After(start) })
	switch {
	case i > 0:
		return s.snapshots[i-1].models, s.snapshots[i-1].t
	case len(s.snapshots) > 0:
		return s.snapshots[0].models, s.snapshots[0].t
	}
	return nil, now
}

func (s *store) modelRow(now time.Time, m *modelState, base *totals, elapsed float64) Model {
	cur := m.totals
	if base == nil {
		base = newTotals()
	}
	rate := func(d float64) float64 {
		if elapsed <= 0 {
			return 0
		}
		return finite(d / elapsed)
	}
	row := Model{
		Model:          m.name,
		Operations:     sortedKeys(m.operations),
		RequestsTotal:  cur.requests,
		RequestsWindow: cur.requests - base.requests,
		Running:        sumGauges(m.running),
		Waiting:        sumGauges(m.waiting),
		SLO:            []Objective{},
		Tokens: Tokens{
			InputTotal: cur.tokensIn, OutputTotal: cur.tokensOut,
			InputPerSecond: rate(cur.tokensIn - base.tokensIn), OutputPerSecond: rate(cur.tokensOut - base.tokensOut),
		},
		Errors: Errors{ByType: []ErrorsByType{}},
	}
	row.RequestsPerSecond = rate(row.RequestsWindow)
	row.TTFT = latency(cur.hists[histTTFT].minus(base.hists[histTTFT]))
	row.TPOT = latency(cur.hists[histTPOT].minus(base.hists[histTPOT]))
	row.E2E = latency(cur.hists[histE2E].minus(base.hists[histE2E]))
	row.Queue = latency(cur.hists[histQueue].minus(base.hists[histQueue]))
	for _, obj := range sortedKeys(cur.slo) {
		c, b := cur.slo[obj], base.slo[obj]
		o := Objective{Objective: obj, Requests: c.total - b.total, Met: c.met - b.met}
		o.Attainment = ratio(o.Met, o.Requests)
		row.SLO = append(row.SLO, o)
		if obj == "all" {
			row.GoodputRatio = o.Attainment
		}
	}
	for _, et := range sortedKeys(cur.errors) {
		e := ErrorsByType{Type: et, Total: cur.errors[et], Window: cur.errors[et] - base.errors[et]}
		row.Errors.ByType = append(row.Errors.ByType, e)
		row.Errors.Total += e.Total
		row.Errors.Window += e.Window
	}
	row.Errors.Ratio = ratio(row.Errors.Window, row.RequestsWindow)
	if cur.hasVLLM {
		row.SpanCoverage = ratio(row.RequestsWindow, cur.vllmSuccess-base.vllmSuccess)
	}
	return row
}

func (s *store) gpuRows() []GPU {
	rows := []GPU{}
	for _, id := range sortedKeys(s.gpus) {
		g := s.gpus[id]
		row := GPU{ID: g.id, Name: g.name, Pod: g.pod}
		if g.hasIndex {
			idx := g.index
			row.Index = &idx
		}
		val := func(name string) *float64 {
			if v, ok := g.values[name]; ok && !math.IsNaN(v.value) && !math.IsInf(v.value, 0) {
				x := v.value
				return &x
			}
			return nil
		}
		row.Utilization = val(metricGPUUtil)
		row.MemoryUsedBytes = val(metricGPUMemUsed)
		row.MemoryTotalBytes = val(metricGPUMemLimit)
		row.PowerWatts = val(metricGPUPower)
		row.TemperatureCelsius = val(metricGPUTemp)
		row.SMActivity = val(metricGPUSM)
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b GPU) int {
		switch {
		case a.Index != nil && b.Index != nil && *a.Index != *b.Index:
			return int(*a.Index - *b.Index)
		case a.Index != nil && b.Index == nil:
			return -1
		case a.Index == nil && b.Index != nil:
			return 1
		}
		return strings.Compare(a.ID, b.ID)
	})
	return rows
}

func (s *store) slowest(now time.Time, window time.Duration) []Slow {
	start := now.Add(-window)
	out := []Slow{}
	for _, e := range s.exemplars {
		if e.t.Before(start) {
			continue
		}
		sl := Slow{Model: e.model, Operation: e.operation, E2ESeconds: finite(e.seconds), TraceID: e.traceID, SpanID: e.spanID, Time: e.t.UTC()}
		if s.cfg.JaegerURL != "" {
			sl.TraceURL = strings.TrimRight(s.cfg.JaegerURL, "/") + "/trace/" + e.traceID
		}
		out = append(out, sl)
	}
	slices.SortStableFunc(out, func(a, b Slow) int {
		switch {
		case a.E2ESeconds > b.E2ESeconds:
			return -1
		case a.E2ESeconds < b.E2ESeconds:
			return 1
		}
		return strings.Compare(a.SpanID, b.SpanID)
	})
	if len(out) > s.cfg.SlowestRequests {
		out = out[:s.cfg.SlowestRequests]
	}
	return out
}

// series is the time series over the window: at most maxSeriesSteps steps between snapshots, each computed over
// its own step from the difference of two snapshots, all models summed.
func (s *store) timeSeries(now time.Time, window time.Duration) []SeriesStep {
	start := now.Add(-window)
	var snaps []snapshot
	for _, sn := range s.snapshots {
		if !sn.t.Before(start) {
			snaps = append(snaps, sn)
		}
	}
	if i := len(s.snapshots) - len(snaps); i > 0 {
		snaps = append([]snapshot{s.snapshots[i-1]}, snaps...) // the step that crosses the window's start
	}
	if len(snaps) < 2 {
		return []SeriesStep{}
	}
	stride := (len(snaps) - 1 + maxSeriesSteps - 1) / maxSeriesSteps
	out := []SeriesStep{}
	for i := stride; i < len(snaps); i += stride {
		a, b := snaps[i-stride], snaps[i]
		secs := b.t.Sub(a.t).Seconds()
		var reqs float64
		var ttft, e2e hist
		var good, all float64
		for name, cur := range b.models {
			prev := a.models[name]
			if prev == nil {
				prev = newTotals()
			}
			reqs += cur.requests - prev.requests
			mergeHist(&ttft, cur.hists[histTTFT].minus(prev.hists[histTTFT]))
			mergeHist(&e2e, cur.hists[histE2E].minus(prev.hists[histE2E]))
			c, p := cur.slo["all"], prev.slo["all"]
			good += c.met - p.met
			all += c.total - p.total
		}
		step := SeriesStep{Time: b.t.UTC(), GoodputRatio: ratio(good, all)}
		if secs > 0 {
			step.RequestsPerSecond = finite(reqs / secs)
		}
		if q, ok := quantile(0.95, ttft); ok {
			step.TTFTP95 = &q
		}
		if q, ok := quantile(0.95, e2e); ok {
			step.E2EP95 = &q
		}
		out = append(out, step)
	}
	return out
}

// mergeHist adds d into acc when their bounds agree (models of one connector share bounds); the first one sets
// them.
func mergeHist(acc *hist, d hist) {
	if d.count <= 0 {
		return
	}
	if acc.counts == nil {
		*acc = d.clone()
		return
	}
	if !slices.Equal(acc.bounds, d.bounds) {
		return
	}
	acc.add(d.bounds, d.counts, d.sum, d.count)
}

func latency(h hist) *Latency {
	if h.count <= 0 {
		return nil
	}
	l := &Latency{Count: h.count, Mean: finite(h.sum / h.count)}
	l.P50, _ = quantile(0.50, h)
	l.P95, _ = quantile(0.95, h)
	l.P99, _ = quantile(0.99, h)
	return l
}

func ratio(num, den float64) *float64 {
	if den <= 0 || math.IsNaN(num) || math.IsInf(num, 0) || math.IsInf(den, 0) {
		return nil
	}
	r := num / den
	return &r
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

func sumGauges(g map[uint64]gauge) *float64 {
	if len(g) == 0 {
		return nil
	}
	total := 0.0
	for _, v := range g {
		total += finite(v.value)
	}
	return &total
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
