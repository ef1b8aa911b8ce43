// Package vllmmetrics keeps the Prometheus metrics a vLLM server exposes on /metrics, with vLLM's names, label
// names and bucket bounds, for the requests of vllmgen's emulated engine (package engine), and writes them in the
// text exposition format (version 0.0.4) that vLLM's prometheus_client serves. It is safe for concurrent use.
package vllmmetrics // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Finish reasons, as vLLM's FinishReason prints them in the finished_reason label.
const (
	FinishStop   = "stop"
	FinishLength = "length"
	FinishAbort  = "abort"
	FinishError  = "error"
	// FinishRepetition: vLLM 0.32 stops a request that repeats itself (a request_success series from startup).
	FinishRepetition = "repetition"
)

// FinishReasons are the finished_reason values vLLM creates a request_success series for at startup.
var FinishReasons = []string{FinishStop, FinishLength, FinishAbort, FinishError, FinishRepetition}

// Metric names, as vLLM exposes them.
const (
	MetricRequestSuccess   = "vllm:request_success_total"
	MetricPromptTokens     = "vllm:prompt_tokens_total"
	MetricGenerationTokens = "vllm:generation_tokens_total"
	MetricE2ELatency       = "vllm:e2e_request_latency_seconds"
	MetricTTFT             = "vllm:time_to_first_token_seconds"
	MetricRunning          = "vllm:num_requests_running"
	MetricWaiting          = "vllm:num_requests_waiting"
	MetricKVCacheUsage     = "vllm:kv_cache_usage_perc"
)

// Label names, as vLLM's V1 metrics use them.
const (
	LabelModel          = "model_name"
	LabelEngine         = "engine"
	LabelFinishedReason = "finished_reason"
)

// TTFTBuckets are the bounds of vllm:time_to_first_token_seconds.
var TTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
	10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}

// RequestLatencyBuckets are the bounds of vllm:e2e_request_latency_seconds (and vLLM's queue, prefill, decode
// and inference histograms).
var RequestLatencyBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
	60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}

// FinishedRequest is one engine request that vLLM finished: it counts it in request_success and observes its
// latencies. A request with n > 1 is n engine requests.
type FinishedRequest struct {
	Model string
	// FinishedReason is one of FinishReasons.
	FinishedReason   string
	TTFT, E2E        time.Duration
	PromptTokens     int64
	GenerationTokens int64
}

// AbortedRequest is an engine request the client abandoned before it finished. vLLM counts the tokens it had
// processed and, when the first token had come, its TTFT; it neither counts it in request_success nor observes
// its e2e latency, and it sends no span for it.
type AbortedRequest struct {
	Model string
	// FirstToken says whether the first output token was produced; PromptTokens are counted only then (vLLM
	// counts prompt tokens when the prefill's output arrives).
	FirstToken       bool
	TTFT             time.Duration
	PromptTokens     int64
	GenerationTokens int64
}

// Counts is what the registry holds for one model (or in total), for summaries and tests.
type Counts struct {
	// RequestSuccess maps finished_reason to the count of finished requests.
	RequestSuccess   map[string]int64 `json:"request_success"`
	Finished         int64            `json:"finished_requests"`
	Aborted          int64            `json:"aborted_requests"`
	PromptTokens     int64            `json:"prompt_tokens"`
	GenerationTokens int64            `json:"generation_tokens"`
	TTFTCount        int64            `json:"ttft_count"`
	E2ECount         int64            `json:"e2e_count"`
}

type histogram struct {
	bounds []float64
	counts []int64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  int64
}

func newHistogram(bounds []float64) histogram {
	return histogram{bounds: bounds, counts: make([]int64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	// le semantics: a value equal to a bound belongs to that bucket.
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i]++
	h.sum += v
	h.count++
}

type modelSeries struct {
	success          [5]int64 // indexed like FinishReasons
	aborted          int64
	promptTokens     int64
	generationTokens int64
	ttft, e2e        histogram
	running, waiting float64
	kvCacheUsage     float64
}

// Registry holds the metrics of one vLLM engine serving a fixed set of models (vLLM's served model names).
type Registry struct {
	engine string
	models []string
	index  map[string]int

	hookMu     sync.Mutex
	beforeRead []func()

	mu     sync.Mutex
	series []modelSeries
	// created is when the series were created, in Unix seconds: vLLM's prometheus_client writes it as a
	// <name>_created gauge beside every counter and histogram, and the prometheus receiver reads it as the
	// series' start time.
	created float64
}

// New returns a registry for the given served models and engine index (vLLM's engine label, "0" without data
// parallelism). Every series starts at zero, as vLLM creates them at startup.
func New(models []string, engine string) (*Registry, error) {
	if len(models) == 0 {
		return nil, fmt.Errorf("vllmmetrics: at least one model is required")
	}
	r := &Registry{engine: engine, models: slices.Clone(models), index: map[string]int{}, series: make([]modelSeries, len(models)),
		created: float64(time.Now().UnixNano()) / 1e9}
	for i, m := range models {
		if m == "" {
			return nil, fmt.Errorf("vllmmetrics: model names must not be empty")
		}
		if _, dup := r.index[m]; dup {
			return nil, fmt.Errorf("vllmmetrics: model %q listed twice", m)
		}
		r.index[m] = i
		r.series[i].ttft = newHistogram(TTFTBuckets)
		r.series[i].e2e = newHistogram(RequestLatencyBuckets)
	}
	return r, nil
}

// Models returns the served models in the order given to New.
func (r *Registry) Models() []string { return slices.Clone(r.models) }

func (r *Registry) model(name string) (int, error) {
	i, ok := r.index[name]
	if !ok {
		return 0, fmt.Errorf("vllmmetrics: unknown model %q (served: %s)", name, strings.Join(r.models, ", "))
	}
	return i, nil
}

func reasonIndex(reason string) (int, error) {
	i := slices.Index(FinishReasons, reason)
	if i < 0 {
		return 0, fmt.Errorf("vllmmetrics: unknown finished_reason %q (want one of %s)", reason, strings.Join(FinishReasons, ", "))
	}
	return i, nil
}

func checkTokens(prompt, generation int64) error {
	if prompt < 0 || generation < 0 {
		return fmt.Errorf("vllmmetrics: token counts must not be negative, got prompt %d, generation %d", prompt, generation)
	}
	return nil
}

// ObserveFinished records a finished engine request. Bad input (unknown model or reason, negative tokens) is
// rejected with an error and changes nothing.
func (r *Registry) ObserveFinished(req FinishedRequest) error {
	m, err := r.model(req.Model)
	if err != nil {
		return err
	}
	reason, err := reasonIndex(req.FinishedReason)
	if err != nil {
		return err
	}
	if err := checkTokens(req.PromptTokens, req.GenerationTokens); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.series[m]
	s.success[reason]++
	s.promptTokens += req.PromptTokens
	s.generationTokens += req.GenerationTokens
	s.ttft.observe(req.TTFT.Seconds())
	s.e2e.observe(req.E2E.Seconds())
	return nil
}

// ObserveAborted records an engine request the client aborted (see AbortedRequest).
func (r *Registry) ObserveAborted(req AbortedRequest) error {
	m, err := r.model(req.Model)
	if err != nil {
		return err
	}
	if err := checkTokens(req.PromptTokens, req.GenerationTokens); err != nil {
		return err
	}
	if !req.FirstToken && req.GenerationTokens > 0 {
		return fmt.Errorf("vllmmetrics: an aborted request without a first token cannot have %d generation tokens", req.GenerationTokens)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.series[m]
	s.aborted++
	if req.FirstToken {
		s.promptTokens += req.PromptTokens
		s.generationTokens += req.GenerationTokens
		s.ttft.observe(req.TTFT.Seconds())
	}
	return nil
}

// SetRunning sets vllm:num_requests_running of a model.
func (r *Registry) SetRunning(model string, n int64) error { return r.setGauge(model, n, gaugeRunning) }

// SetWaiting sets vllm:num_requests_waiting of a model.
func (r *Registry) SetWaiting(model string, n int64) error { return r.setGauge(model, n, gaugeWaiting) }

type gauge int

const (
	gaugeRunning gauge = iota
	gaugeWaiting
)

func (r *Registry) setGauge(model string, n int64, g gauge) error {
	m, err := r.model(model)
	if err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("vllmmetrics: request counts must not be negative, got %d", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if g == gaugeRunning {
		r.series[m].running = float64(n)
	} else {
		r.series[m].waiting = float64(n)
	}
	return nil
}

// SetKVCacheUsage sets vllm:kv_cache_usage_perc of a model: the used fraction of the KV cache, within [0, 1].
func (r *Registry) SetKVCacheUsage(model string, usage float64) error {
	m, err := r.model(model)
	if err != nil {
		return err
	}
	if !(usage >= 0 && usage <= 1) {
		return fmt.Errorf("vllmmetrics: KV cache usage must be within [0, 1], got %v", usage)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.series[m].kvCacheUsage = usage
	return nil
}

// BeforeRead registers f to run before every WriteText (each scrape), so that gauges can be brought up to
// date only when someone reads them.
func (r *Registry) BeforeRead(f func()) {
	r.hookMu.Lock()
	defer r.hookMu.Unlock()
	r.beforeRead = append(r.beforeRead, f)
}

// Counts returns what the registry holds for one model.
func (r *Registry) Counts(model string) (Counts, error) {
	m, err := r.model(model)
	if err != nil {
		return Counts{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.series[m].counts(), nil
}

// Total returns the counts summed over all models.
func (r *Registry) Total() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	total := Counts{RequestSuccess: map[string]int64{}}
	for i := range r.series {
		c := r.series[i].counts()
		for k, v := range c.RequestSuccess {
			total.RequestSuccess[k] += v
		}
		total.Finished += c.Finished
		total.Aborted += c.Aborted
		total.PromptTokens += c.PromptTokens
		total.GenerationTokens += c.GenerationTokens
		total.TTFTCount += c.TTFTCount
		total.E2ECount += c.E2ECount
	}
	return total
}

func (s *modelSeries) counts() Counts {
	c := Counts{RequestSuccess: map[string]int64{}, Aborted: s.aborted, PromptTokens: s.promptTokens,
		GenerationTokens: s.generationTokens, TTFTCount: s.ttft.count, E2ECount: s.e2e.count}
	for i, reason := range FinishReasons {
		c.RequestSuccess[reason] = s.success[i]
		c.Finished += s.success[i]
	}
	return c
}

// Handler serves the text exposition at any path it is mounted on.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = r.WriteText(w)
	})
}

// WriteText writes every metric in the Prometheus text format, version 0.0.4, with labels in vLLM's order
// (model_name, engine, then finished_reason or le).
func (r *Registry) WriteText(w io.Writer) error {
	r.hookMu.Lock()
	hooks := slices.Clone(r.beforeRead)
	r.hookMu.Unlock()
	for _, f := range hooks {
		f()
	}

	r.mu.Lock()
	var b strings.Builder
	b.Grow(4096 * len(r.series))
	r.writeGauges(&b)
	r.writeCounters(&b)
	r.writeHistogram(&b, MetricTTFT, "Histogram of time to first token in seconds.", func(s *modelSeries) *histogram { return &s.ttft })
	r.writeHistogram(&b, MetricE2ELatency, "Histogram of e2e request latency in seconds.", func(s *modelSeries) *histogram { return &s.e2e })
	r.mu.Unlock()

	_, err := io.WriteString(w, b.String())
	return err
}

func header(b *strings.Builder, name, help, typ string) {
	fmt.Fprintf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// labels writes {model_name="m",engine="e"} plus extra pairs.
func (r *Registry) labels(b *strings.Builder, model string, extra ...string) {
	b.WriteString(`{` + LabelModel + `="`)
	b.WriteString(escapeLabelValue(model))
	b.WriteString(`",` + LabelEngine + `="`)
	b.WriteString(escapeLabelValue(r.engine))
	b.WriteByte('"')
	for i := 0; i+1 < len(extra); i += 2 {
		b.WriteString("," + extra[i] + `="`)
		b.WriteString(escapeLabelValue(extra[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
}

func (r *Registry) writeGauges(b *strings.Builder) {
	for _, g := range []struct {
		name, help string
		value      func(*modelSeries) float64
	}{
		{MetricRunning, "Number of requests in model execution batches.", func(s *modelSeries) float64 { return s.running }},
		{MetricWaiting, "Number of requests waiting to be processed.", func(s *modelSeries) float64 { return s.waiting }},
		{MetricKVCacheUsage, "KV-cache usage. 1 means 100 percent usage.", func(s *modelSeries) float64 { return s.kvCacheUsage }},
	} {
		header(b, g.name, g.help, "gauge")
		for i, model := range r.models {
			b.WriteString(g.name)
			r.labels(b, model)
			b.WriteString(" " + formatFloat(g.value(&r.series[i])) + "\n")
		}
	}
}

func (r *Registry) writeCounters(b *strings.Builder) {
	const successHelp = "Count of successfully processed requests."
	header(b, MetricRequestSuccess, successHelp, "counter")
	for i, model := range r.models {
		for k, reason := range FinishReasons {
			b.WriteString(MetricRequestSuccess)
			r.labels(b, model, LabelFinishedReason, reason)
			b.WriteString(" " + formatFloat(float64(r.series[i].success[k])) + "\n")
		}
	}
	r.writeCreated(b, MetricRequestSuccess, successHelp, LabelFinishedReason, FinishReasons)
	for _, c := range []struct {
		name, help string
		value      func(*modelSeries) int64
	}{
		{MetricPromptTokens, "Number of prefill tokens processed.", func(s *modelSeries) int64 { return s.promptTokens }},
		{MetricGenerationTokens, "Number of generation tokens processed.", func(s *modelSeries) int64 { return s.generationTokens }},
	} {
		header(b, c.name, c.help, "counter")
		for i, model := range r.models {
			b.WriteString(c.name)
			r.labels(b, model)
			b.WriteString(" " + formatFloat(float64(c.value(&r.series[i]))) + "\n")
		}
		r.writeCreated(b, c.name, c.help, "", nil)
	}
}

// writeCreated writes the <name>_created gauge family prometheus_client adds to a counter (name ends in _total)
// or histogram: one series per model (and per value of label, when given), the registry's creation time.
func (r *Registry) writeCreated(b *strings.Builder, name, help, label string, values []string) {
	created := strings.TrimSuffix(name, "_total") + "_created"
	header(b, created, help, "gauge")
	if label == "" {
		values = []string{""}
	}
	for _, model := range r.models {
		for _, v := range values {
			b.WriteString(created)
			if label == "" {
				r.labels(b, model)
			} else {
				r.labels(b, model, label, v)
			}
			b.WriteString(" " + formatFloat(r.created) + "\n")
		}
	}
}

func (r *Registry) writeHistogram(b *strings.Builder, name, help string, pick func(*modelSeries) *histogram) {
	header(b, name, help, "histogram")
	for i, model := range r.models {
		h := pick(&r.series[i])
		var cumulative int64
		for k, bound := range h.bounds {
			cumulative += h.counts[k]
			b.WriteString(name + "_bucket")
			r.labels(b, model, "le", formatFloat(bound))
			b.WriteString(" " + formatFloat(float64(cumulative)) + "\n")
		}
		b.WriteString(name + "_bucket")
		r.labels(b, model, "le", "+Inf")
		b.WriteString(" " + formatFloat(float64(h.count)) + "\n")
		b.WriteString(name + "_count")
		r.labels(b, model)
		b.WriteString(" " + formatFloat(float64(h.count)) + "\n")
		b.WriteString(name + "_sum")
		r.labels(b, model)
		b.WriteString(" " + formatFloat(h.sum) + "\n")
	}
	r.writeCreated(b, name, help, "", nil)
}

// formatFloat writes a value as Python's prometheus_client does: integral values with ".0" (so bucket
// bounds read le="1.0", as on a real vLLM), others in the shortest form that parses back exactly.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e16:
		return strconv.FormatFloat(v, 'f', -1, 64) + ".0"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabelValue(s string) string { return labelEscaper.Replace(s) }
