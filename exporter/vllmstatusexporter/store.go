package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"hash/maphash"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Metric names read from the pipeline: the vllm connector's, vLLM's own (prometheus receiver) and the nvml
// receiver's. Anything else is ignored.
const (
	metricTTFT     = "gen_ai.server.time_to_first_token"
	metricTPOT     = "gen_ai.server.time_per_output_token"
	metricE2E      = "gen_ai.server.request.duration"
	metricQueue    = "vllm.request.queue.duration"
	metricRequests = "vllm.requests"
	metricTokens   = "vllm.tokens"
	metricSLO      = "vllm.slo.requests"

	metricVLLMRunning = "vllm:num_requests_running"
	metricVLLMWaiting = "vllm:num_requests_waiting"
	metricVLLMSuccess = "vllm:request_success_total"
	// the prometheus receiver drops _total from counter names unless told otherwise
	metricVLLMSuccessNoSuffix = "vllm:request_success"

	metricGPUUtil     = "hw.gpu.utilization"
	metricGPUMemUsed  = "hw.gpu.memory.usage"
	metricGPUMemLimit = "hw.gpu.memory.limit"
	metricGPUPower    = "hw.power"
	metricGPUTemp     = "hw.temperature"
	metricGPUSM       = "nvidia.gpu.sm.activity"

	// overflowModel is the row that takes every model beyond max_models.
	overflowModel = "otel.metric.overflow"
)

// histogram indexes in totals.hists
const (
	histTTFT = iota
	histTPOT
	histE2E
	histQueue
	numHists
)

var histByMetric = map[string]int{metricTTFT: histTTFT, metricTPOT: histTPOT, metricE2E: histE2E, metricQueue: histQueue}

// hist is an explicit-bounds histogram: counts[i] observations in (bounds[i-1], bounds[i]], the last one above
// every bound (+Inf). Counts are float64: the connector's sampling-weighted counts are integers, their sums
// over models and increments stay exact well beyond 2^50.
type hist struct {
	bounds []float64
	counts []float64
	sum    float64
	count  float64
}

func (h hist) clone() hist {
	return hist{bounds: h.bounds, counts: slices.Clone(h.counts), sum: h.sum, count: h.count}
}

// minus is h − base, the observations between two snapshots. A base with other bounds (a reconfigured
// connector) counts as empty.
func (h hist) minus(base hist) hist {
	d := h.clone()
	if !slices.Equal(h.bounds, base.bounds) || len(base.counts) != len(h.counts) {
		return d
	}
	for i := range d.counts {
		d.counts[i] -= base.counts[i]
	}
	d.sum -= base.sum
	d.count -= base.count
	return d
}

// add adds the bucket increments inc (same layout as bounds) to h; a point with other bounds replaces the layout
// (what it held is lost, which only happens when the connector is reconfigured).
func (h *hist) add(bounds []float64, inc []float64, sum, count float64) {
	if !slices.Equal(h.bounds, bounds) || len(h.counts) != len(inc) {
		h.bounds = slices.Clone(bounds)
		h.counts = make([]float64, len(inc))
		h.sum, h.count = 0, 0
	}
	for i, v := range inc {
		h.counts[i] += v
	}
	h.sum += sum
	h.count += count
}

// sloCount is one objective's requests judged and met.
type sloCount struct{ met, total float64 }

// totals are a model's monotonic running totals since the exporter started (counter resets of the input series
// are absorbed as Prometheus' increase() does). A snapshot is a copy of them; a window is a difference.
type totals struct {
	requests    float64
	errors      map[string]float64 // by error.type, failed requests only
	tokensIn    float64
	tokensOut   float64
	slo         map[string]sloCount
	hists       [numHists]hist
	vllmSuccess float64 // vLLM's own finished-request counter, when scraped
	hasVLLM     bool
}

func newTotals() *totals {
	return &totals{errors: map[string]float64{}, slo: map[string]sloCount{}}
}

func (t *totals) clone() *totals {
	c := *t
	c.errors = maps.Clone(t.errors)
	c.slo = maps.Clone(t.slo)
	for i := range c.hists {
		c.hists[i] = t.hists[i].clone()
	}
	return &c
}

// gauge is a last value with the time it was received.
type gauge struct {
	value float64
	seen  time.Time
}

// modelState is what the exporter keeps per model besides its totals.
type modelState struct {
	name       string
	totals     *totals
	operations map[string]struct{}
	running    map[uint64]gauge // per input series (vLLM instance), summed
	waiting    map[uint64]gauge
}

// gpuState is one GPU's last values.
type gpuState struct {
	id, name, pod string
	index         int64
	hasIndex      bool
	values        map[string]gauge // by metric name
	seen          time.Time
}

// seriesState turns a cumulative input series into increments.
type seriesState struct {
	start  pcommon.Timestamp
	last   float64   // a sum's value, or a histogram's count
	counts []float64 // a histogram's bucket counts
	sum    float64   // a histogram's sum
	seen   time.Time
}

// snapshot is a copy of every model's totals at one time.
type snapshot struct {
	t      time.Time
	models map[string]*totals
}

// exemplarRecord is one slow request from the connector's E2E exemplars.
type exemplarRecord struct {
	model     string
	operation string
	seconds   float64
	traceID   string
	spanID    string
	t         time.Time
}

// maxExemplars bounds the exemplars kept between snapshots (the slowest are kept).
const maxExemplars = 256

// store is the exporter's state: running totals, the snapshot ring and the last gauge values. All methods are
// safe for concurrent use.
type store struct {
	cfg  *Config
	seed maphash.Seed

	mu            sync.Mutex
	models        map[string]*modelState
	gpus          map[string]*gpuState
	series        map[uint64]*seriesState
	snapshots     []snapshot // oldest first, at most maxSnapshots
	maxSnapshots  int
	exemplars     []exemplarRecord
	seenExemplar  map[string]time.Time
	droppedSeries int64
	alerts        *alertState
}

func newStore(cfg *Config) *store {
	maxWindow := slices.Max(cfg.Windows)
	return &store{
		cfg:          cfg,
		seed:         maphash.MakeSeed(),
		models:       map[string]*modelState{},
		gpus:         map[string]*gpuState{},
		series:       map[uint64]*seriesState{},
		maxSnapshots: int(maxWindow/cfg.SnapshotInterval) + 2,
		seenExemplar: map[string]time.Time{},
		alerts:       newAlertState(),
	}
}

// consume folds a batch of metrics into the running totals and gauges.
func (s *store) consume(md pmetric.Metrics, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		res := rm.Resource().Attributes()
		resKey := s.hashMap(0, res)
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				s.consumeMetric(ms.At(k), res, resKey, now)
			}
		}
	}
}

func (s *store) consumeMetric(m pmetric.Metric, res pcommon.Map, resKey uint64, now time.Time) {
	name := m.Name()
	if idx, ok := histByMetric[name]; ok {
		if m.Type() != pmetric.MetricTypeHistogram {
			return
		}
		h := m.Histogram()
		delta := h.AggregationTemporality() == pmetric.AggregationTemporalityDelta
		dps := h.DataPoints()
		for i := 0; i < dps.Len(); i++ {
			s.consumeHistogram(name, idx, dps.At(i), resKey, delta, now)
		}
		return
	}
	switch {
	case name == metricRequests || name == metricTokens || name == metricSLO || name == metricVLLMSuccess || name == metricVLLMSuccessNoSuffix:
		if m.Type() != pmetric.MetricTypeSum {
			return
		}
		sum := m.Sum()
		delta := sum.AggregationTemporality() == pmetric.AggregationTemporalityDelta
		dps := sum.DataPoints()
		for i := 0; i < dps.Len(); i++ {
			s.consumeCounter(name, dps.At(i), resKey, delta, now)
		}
	case name == metricVLLMRunning || name == metricVLLMWaiting:
		forEachNumber(m, func(dp pmetric.NumberDataPoint) {
			model := s.modelOf(dp.Attributes(), "model_name")
			if model == nil {
				return
			}
			g := gauge{value: numberValue(dp), seen: now}
			key := s.hashMap(resKey, dp.Attributes())
			if name == metricVLLMRunning {
				model.running[key] = g
			} else {
				model.waiting[key] = g
			}
		})
	case name == metricGPUUtil || name == metricGPUMemUsed || name == metricGPUMemLimit || name == metricGPUPower || name == metricGPUTemp || name == metricGPUSM:
		forEachNumber(m, func(dp pmetric.NumberDataPoint) {
			attrs := dp.Attributes()
			if task, ok := attrs.Get("hw.gpu.task"); ok && task.Str() != "general" {
				return
			}
			if loc, ok := attrs.Get("hw.sensor_location"); ok && loc.Str() != "gpu" {
				return
			}
			if _, mig := attrs.Get("hw.parent"); mig {
				return // a MIG instance: its GPU's row is enough for this view
			}
			g := s.gpuOf(attrs, res)
			if g == nil {
				return
			}
			g.values[name] = gauge{value: numberValue(dp), seen: now}
			g.seen = now
		})
	}
}

// consumeHistogram adds the increment of one histogram point to its model's totals.
func (s *store) consumeHistogram(name string, idx int, dp pmetric.HistogramDataPoint, resKey uint64, delta bool, now time.Time) {
	if dp.Flags().NoRecordedValue() {
		return
	}
	attrs := dp.Attributes()
	model := s.modelOf(attrs, "gen_ai.request.model", "gen_ai.response.model")
	if model == nil {
		return
	}
	s.noteOperation(model, attrs)
	bounds := dp.ExplicitBounds().AsRaw()
	counts := make([]float64, dp.BucketCounts().Len())
	for i := range counts {
		counts[i] = float64(dp.BucketCounts().At(i))
	}
	if len(counts) != len(bounds)+1 {
		return // not a valid explicit histogram (exponential histograms are not read)
	}
	count, sum := float64(dp.Count()), dp.Sum()
	if !delta {
		key := s.hashMap(s.hashString(resKey, name), attrs)
		st, ok := s.series[key]
		if !ok {
			if len(s.series) >= s.cfg.MaxSeries {
				s.droppedSeries++
				return
			}
			st = &seriesState{}
			s.series[key] = st
		}
		// a new series, a new start time or a smaller count is a (re)start: the point is all increment
		if ok && (dp.StartTimestamp() == st.start || dp.StartTimestamp() == 0) && count >= st.last && len(st.counts) == len(counts) {
			inc := make([]float64, len(counts))
			for i := range counts {
				inc[i] = max(counts[i]-st.counts[i], 0)
			}
			prevSum, prevCount := st.sum, st.last
			st.counts, st.sum, st.last = counts, sum, count
			counts, sum, count = inc, sum-prevSum, count-prevCount
		} else {
			st.start, st.counts, st.sum, st.last = dp.StartTimestamp(), slices.Clone(counts), sum, count
		}
		st.seen = now
	}
	model.totals.hists[idx].add(bounds, counts, sum, count)
	if idx == histE2E {
		s.noteExemplars(model, attrs, dp.Exemplars(), now)
	}
}

// consumeCounter adds the increment of one counter point to its model's totals.
func (s *store) consumeCounter(name string, dp pmetric.NumberDataPoint, resKey uint64, delta bool, now time.Time) {
	if dp.Flags().NoRecordedValue() {
		return
	}
	attrs := dp.Attributes()
	vllmMetric := strings.HasPrefix(name, "vllm:")
	var model *modelState
	if vllmMetric {
		model = s.modelOf(attrs, "model_name")
	} else {
		model = s.modelOf(attrs, "gen_ai.request.model", "gen_ai.response.model")
	}
	if model == nil {
		return
	}
	v := numberValue(dp)
	inc := v
	if !delta {
		key := s.hashMap(s.hashString(resKey, name), attrs)
		st, ok := s.series[key]
		switch {
		case !ok:
			if len(s.series) >= s.cfg.MaxSeries {
				s.droppedSeries++
				return
			}
			st = &seriesState{start: dp.StartTimestamp(), last: v}
			s.series[key] = st
			// vLLM's own counters count since vLLM started: their first sample is the baseline, as in
			// Prometheus' rate(). The connector's series start inside this collector: all of it is new.
			if vllmMetric {
				inc = 0
			}
		case (dp.StartTimestamp() != st.start && dp.StartTimestamp() != 0) || v < st.last:
			inc = v // restarted
			st.start, st.last = dp.StartTimestamp(), v
		default:
			inc = v - st.last
			st.last = v
		}
		st.seen = now
	}
	if inc <= 0 || inc != inc {
		return
	}
	t := model.totals
	switch name {
	case metricVLLMSuccess, metricVLLMSuccessNoSuffix:
		t.vllmSuccess += inc
		t.hasVLLM = true
	case metricRequests:
		s.noteOperation(model, attrs)
		t.requests += inc
		if et, ok := attrs.Get("error.type"); ok && et.AsString() != "" {
			t.errors[s.boundedKey(t.errors, et.AsString())] += inc
		}
	case metricTokens:
		switch tt, _ := attrs.Get("gen_ai.token.type"); tt.AsString() {
		case "input":
			t.tokensIn += inc
		case "output":
			t.tokensOut += inc
		}
	case metricSLO:
		obj, ok := attrs.Get("vllm.slo.objective")
		if !ok {
			return
		}
		metV, _ := attrs.Get("vllm.slo.met")
		key := s.boundedSLOKey(t.slo, obj.AsString())
		c := t.slo[key]
		c.total += inc
		if metV.Type() == pcommon.ValueTypeBool && metV.Bool() || metV.AsString() == "true" {
			c.met += inc
		}
		t.slo[key] = c
	}
}

// maxErrorTypes and maxObjectives bound the per-model maps (error.type and objective come from spans).
const (
	maxErrorTypes = 16
	maxObjectives = 16
)

func (*store) boundedKey(m map[string]float64, k string) string {
	if _, ok := m[k]; ok || len(m) < maxErrorTypes-1 {
		return k
	}
	return "_OTHER"
}

func (*store) boundedSLOKey(m map[string]sloCount, k string) string {
	if _, ok := m[k]; ok || len(m) < maxObjectives-1 {
		return k
	}
	return "_other"
}

func (s *store) noteOperation(model *modelState, attrs pcommon.Map) {
	if op, ok := attrs.Get("gen_ai.operation.name"); ok && len(model.operations) < 16 {
		model.operations[op.AsString()] = struct{}{}
	}
}

// noteExemplars keeps the exemplars of an E2E point: the slowest requests with their trace ids.
func (s *store) noteExemplars(model *modelState, attrs pcommon.Map, exs pmetric.ExemplarSlice, now time.Time) {
	op := ""
	if v, ok := attrs.Get("gen_ai.operation.name"); ok {
		op = v.AsString()
	}
	for i := 0; i < exs.Len(); i++ {
		ex := exs.At(i)
		if ex.TraceID().IsEmpty() {
			continue
		}
		sec := ex.DoubleValue()
		if ex.ValueType() == pmetric.ExemplarValueTypeInt {
			sec = float64(ex.IntValue())
		}
		spanID := ex.SpanID().String()
		if _, dup := s.seenExemplar[spanID]; dup {
			continue
		}
		s.seenExemplar[spanID] = now
		s.exemplars = append(s.exemplars, exemplarRecord{
			model: model.name, operation: op, seconds: sec,
			traceID: ex.TraceID().String(), spanID: spanID, t: now,
		})
	}
	if len(s.exemplars) > maxExemplars {
		sort.SliceStable(s.exemplars, func(i, j int) bool { return s.exemplars[i].seconds > s.exemplars[j].seconds })
		for _, e := range s.exemplars[maxExemplars:] {
			delete(s.seenExemplar, e.spanID)
		}
		s.exemplars = s.exemplars[:maxExemplars]
	}
}

// modelOf returns the state of the model named by the first of keys present, creating it; nil without a model.
func (s *store) modelOf(attrs pcommon.Map, keys ...string) *modelState {
	name := ""
	for _, k := range keys {
		if v, ok := attrs.Get(k); ok && v.AsString() != "" {
			name = v.AsString()
			break
		}
	}
	if name == "" {
		return nil
	}
	if m, ok := s.models[name]; ok {
		return m
	}
	if len(s.models) >= s.cfg.MaxModels {
		name = overflowModel
		if m, ok := s.models[name]; ok {
			return m
		}
	}
	m := &modelState{name: name, totals: newTotals(), operations: map[string]struct{}{}, running: map[uint64]gauge{}, waiting: map[uint64]gauge{}}
	s.models[name] = m
	return m
}

// gpuOf returns the state of the GPU a point describes (by hw.id), creating it; nil beyond max_gpus.
func (s *store) gpuOf(attrs, res pcommon.Map) *gpuState {
	get := func(k string) (pcommon.Value, bool) {
		if v, ok := attrs.Get(k); ok {
			return v, true
		}
		return res.Get(k)
	}
	idV, ok := get("hw.id")
	if !ok || idV.AsString() == "" {
		return nil
	}
	id := idV.AsString()
	g, ok := s.gpus[id]
	if !ok {
		if len(s.gpus) >= s.cfg.MaxGPUs {
			return nil
		}
		g = &gpuState{id: id, values: map[string]gauge{}}
		s.gpus[id] = g
	}
	if v, ok := get("hw.model"); ok {
		g.name = v.AsString()
	}
	if v, ok := get("nvidia.gpu.index"); ok && v.Type() == pcommon.ValueTypeInt {
		g.index, g.hasIndex = v.Int(), true
	}
	g.pod = ""
	if v, ok := get("k8s.pod.name"); ok && v.AsString() != "" {
		g.pod = v.AsString()
		if ns, ok := get("k8s.namespace.name"); ok && ns.AsString() != "" {
			g.pod = ns.AsString() + "/" + g.pod
		}
	}
	return g
}

// takeSnapshot copies every model's totals into the ring and forgets what is older than the largest window.
func (s *store) takeSnapshot(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := snapshot{t: now, models: make(map[string]*totals, len(s.models))}
	for name, m := range s.models {
		snap.models[name] = m.totals.clone()
	}
	s.snapshots = append(s.snapshots, snap)
	if over := len(s.snapshots) - s.maxSnapshots; over > 0 {
		clear(s.snapshots[:over])
		s.snapshots = slices.Delete(s.snapshots, 0, over)
	}
	s.expire(now)
}

// expire forgets input series, stale gauges and exemplars older than the largest window.
func (s *store) expire(now time.Time) {
	horizon := now.Add(-slices.Max(s.cfg.Windows))
	for k, st := range s.series {
		if st.seen.Before(horizon) && st.seen.Before(now.Add(-time.Hour)) {
			delete(s.series, k)
		}
	}
	stale := now.Add(-s.cfg.Stale)
	for _, m := range s.models {
		maps.DeleteFunc(m.running, func(_ uint64, g gauge) bool { return g.seen.Before(stale) })
		maps.DeleteFunc(m.waiting, func(_ uint64, g gauge) bool { return g.seen.Before(stale) })
	}
	maps.DeleteFunc(s.gpus, func(_ string, g *gpuState) bool { return g.seen.Before(stale) })
	s.exemplars = slices.DeleteFunc(s.exemplars, func(e exemplarRecord) bool { return e.t.Before(horizon) })
	maps.DeleteFunc(s.seenExemplar, func(_ string, t time.Time) bool { return t.Before(horizon) })
}

func (s *store) hashString(h uint64, v string) uint64 {
	var mh maphash.Hash
	mh.SetSeed(s.seed)
	writeUint(&mh, h)
	mh.WriteString(v)
	return mh.Sum64()
}

// hashMap hashes a map's key/value pairs in key order, chained to h.
func (s *store) hashMap(h uint64, m pcommon.Map) uint64 {
	keys := make([]string, 0, m.Len())
	for k := range m.All() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var mh maphash.Hash
	mh.SetSeed(s.seed)
	writeUint(&mh, h)
	for _, k := range keys {
		v, _ := m.Get(k)
		mh.WriteString(k)
		mh.WriteByte(0)
		mh.WriteString(v.AsString())
		mh.WriteByte(0)
	}
	return mh.Sum64()
}

func writeUint(mh *maphash.Hash, v uint64) {
	var b [8]byte
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	_, _ = mh.Write(b[:])
}

func forEachNumber(m pmetric.Metric, f func(pmetric.NumberDataPoint)) {
	var dps pmetric.NumberDataPointSlice
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		dps = m.Gauge().DataPoints()
	case pmetric.MetricTypeSum:
		dps = m.Sum().DataPoints()
	default:
		return
	}
	for i := 0; i < dps.Len(); i++ {
		if !dps.At(i).Flags().NoRecordedValue() {
			f(dps.At(i))
		}
	}
}

func numberValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}
