package send // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/send"

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/headsample"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

const (
	// maxLinger bounds how long a paced partial batch waits for more requests, so low rates still send
	// every request promptly instead of once per full batch.
	maxLinger = 200 * time.Millisecond
	// maxLag is the most the pacer catches up after falling behind (a stalled collector); older debt is
	// dropped so that the rate is never exceeded by more than one second's worth of requests.
	maxLag = time.Second
	// maxErrorsKept bounds the export error messages kept for the summary.
	maxErrorsKept = 5
	// maxViolatorIDs bounds the span ids of SLO violators kept for the summary (8 bytes each); beyond it the
	// list is marked truncated and only the counts stay exact.
	maxViolatorIDs = 200_000
)

// Result is what a run produced.
type Result struct {
	Options     Options
	Tally       *workload.Tally
	Elapsed     time.Duration
	Interrupted bool
	// FailedExports counts export requests that returned an error; Errors keeps the first few messages.
	FailedExports int64
	Errors        []string
	// VLLM is what vLLM's own /metrics counted, overall and per model, and how many spans were lost.
	VLLM       ModelCoverage
	VLLMModels map[string]ModelCoverage
	// Sampler is the head sampler of --sample-ratio, nil without it.
	Sampler *headsample.Sampler
	// Violators are the span ids of the spans handed to an exporter that broke a set SLO objective.
	Violators *violatorList

	metrics *engine.Server
}

// MetricsAddr is the address /metrics is served on, or "" when it is not.
func (r *Result) MetricsAddr() string {
	if r.metrics == nil {
		return ""
	}
	return r.metrics.Addr()
}

// LingerMetrics keeps /metrics up for --metrics-linger (or until ctx ends), then stops serving it.
func (r *Result) LingerMetrics(ctx context.Context) {
	if r.metrics != nil {
		r.metrics.Linger(ctx, r.Options.VLLM.MetricsLinger)
		r.metrics = nil
	}
}

// Close stops serving /metrics at once.
func (r *Result) Close() {
	if r.metrics != nil {
		_ = r.metrics.Shutdown(metricsShutdownTimeout)
		r.metrics = nil
	}
}

// metricsShutdownTimeout bounds how long a scrape in flight may finish when /metrics stops.
const metricsShutdownTimeout = 5 * time.Second

// Failed reports whether any span was not delivered.
func (r *Result) Failed() bool { return r.FailedExports > 0 || r.Tally.Total.FailedSpans > 0 }

// job is one export request's worth of spans.
type job struct{ recs []workload.Record }

// Run generates and sends until the count or duration is reached or ctx is cancelled (SIGINT). Exports in
// flight when ctx is cancelled still complete, so the summary covers exactly what was handed to exporters.
// It returns an error only when the run could not start.
func Run(ctx context.Context, o Options) (*Result, error) {
	return run(ctx, o, clockwork.NewRealClock())
}

func run(ctx context.Context, o Options, clock clockwork.Clock) (*Result, error) {
	gen, err := workload.NewGenerator(workload.Config{
		Shape: o.Shape, Profile: o.Profile, Models: o.Models, Seed: o.Seed, NProb: o.NProb, GreedyProb: o.GreedyProb,
	})
	if err != nil {
		return nil, err
	}
	side, err := newVLLMSide(o, clock.Now)
	if err != nil {
		return nil, err
	}
	var metrics *engine.Server
	if o.VLLM.MetricsListen != "" {
		// bound now, so that a busy port fails the run before anything is sent
		if metrics, err = engine.Listen(o.VLLM.MetricsListen, engine.MetricsOnly(side.engine)); err != nil {
			return nil, fmt.Errorf("--metrics-listen: %w", err)
		}
	}
	exporters := make([]otlpsend.Exporter, o.Workers)
	if !o.DryRun {
		for i := range exporters {
			if exporters[i], err = otlpsend.New(o.Protocol, o.Endpoint); err != nil {
				closeAll(exporters)
				if metrics != nil {
					_ = metrics.Shutdown(metricsShutdownTimeout)
				}
				return nil, err
			}
		}
	}
	defer closeAll(exporters)

	res := &Result{Options: o, Tally: workload.NewTally(len(o.Models), o.SLO), metrics: metrics, Sampler: side.sampler,
		Violators: &violatorList{limit: maxViolatorIDs}}
	resourceCfg := workload.ResourceConfig{ServiceName: o.ServiceName, Extra: o.Resource, ProcessIDBase: processIDBase(o.Seed)}
	jobs := make(chan *job, o.Workers)
	free := make(chan *job, 2*o.Workers+1)
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	start := clock.Now()
	for _, exp := range exporters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := worker{
				builder:   workload.NewSpanBuilder(o.Shape, o.Models, resourceCfg, o.Anchor),
				tally:     workload.NewTally(len(o.Models), o.SLO),
				perModel:  make([]int64, len(o.Models)),
				exp:       exp,
				timeout:   o.Timeout,
				violators: res.Violators,
			}
			if side.sampler != nil {
				w.builder.SetTraceState(side.sampler.TraceState())
			}
			for j := range jobs {
				w.handle(ctx, j)
				select {
				case free <- j:
				default:
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Tally.Merge(w.tally)
			res.FailedExports += w.failedExports
			for _, e := range w.errors {
				if len(res.Errors) < maxErrorsKept {
					res.Errors = append(res.Errors, e)
				}
			}
		}()
	}

	d := dispatcher{opts: o, gen: gen, vllm: side, jobs: jobs, free: free, clock: clock, start: start}
	res.Interrupted = !d.run(ctx)
	close(jobs)
	wg.Wait()
	res.Elapsed = clock.Since(start)
	res.VLLM, res.VLLMModels = side.coverage()
	return res, nil
}

func closeAll(exporters []otlpsend.Exporter) {
	for _, e := range exporters {
		if e != nil {
			_ = e.Close()
		}
	}
}

// processIDBase gives each generated server a plausible vllm.process_id, stable for a seed.
func processIDBase(seed uint64) int { return 1000 + int(seed%30000) }

type worker struct {
	builder       *workload.SpanBuilder
	tally         *workload.Tally
	perModel      []int64
	exp           otlpsend.Exporter
	timeout       time.Duration
	failedExports int64
	errors        []string
	violators     *violatorList
	violated      []pcommon.SpanID // scratch: this batch's SLO violators
}

func (w *worker) handle(ctx context.Context, j *job) {
	td := w.builder.Build(j.recs)
	clear(w.perModel)
	w.violated = w.violated[:0]
	slo := w.tally.SLO()
	for i := range j.recs {
		rec := &j.recs[i]
		w.tally.Add(rec)
		w.perModel[rec.Model]++
		if slo.Violates(rec) {
			w.violated = append(w.violated, rec.SpanID)
		}
	}
	w.violators.add(w.violated)
	if w.exp == nil { // dry run
		return
	}
	// Not cancelled with ctx: an export already started is finished, so the summary stays exact.
	exportCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.timeout)
	rejected, err := w.exp.Export(exportCtx, td)
	cancel()
	for model, n := range w.perModel {
		if n == 0 {
			continue
		}
		if err != nil {
			w.tally.AddFailed(model, n)
		} else {
			w.tally.AddExported(model, n)
		}
	}
	if err != nil {
		w.failedExports++
		if len(w.errors) < maxErrorsKept {
			w.errors = append(w.errors, err.Error())
		}
		return
	}
	if rejected > 0 {
		w.tally.AddRejected(rejected)
		if len(w.errors) < maxErrorsKept {
			w.errors = append(w.errors, fmt.Sprintf("receiver rejected %d of %d spans", rejected, len(j.recs)))
		}
	}
}

// dispatcher draws requests in order, packs their spans into batches of exactly opts.Batch spans (a
// request's n>1 spans may straddle two batches) and releases each batch when its last request is due.
type dispatcher struct {
	opts  Options
	gen   *workload.Generator
	vllm  *vllmSide
	jobs  chan<- *job
	free  chan *job
	clock clockwork.Clock
	start time.Time

	cur      *job
	firstDue time.Time
	lastDue  time.Time
}

func (d *dispatcher) newJob() *job {
	select {
	case j := <-d.free:
		j.recs = j.recs[:0]
		return j
	default:
		return &job{recs: make([]workload.Record, 0, d.opts.Batch)}
	}
}

// due is request i's scheduled time at the configured rate.
func (d *dispatcher) due(i int64) time.Time {
	return d.start.Add(time.Duration(float64(i) / d.opts.Rate * float64(time.Second)))
}

// run returns false when ctx ended the run early.
func (d *dispatcher) run(ctx context.Context) bool {
	o := d.opts
	scheduled := o.Rate > 0
	var deadline time.Time
	if o.Duration > 0 {
		deadline = d.start.Add(o.Duration)
	}
	d.cur = d.newJob()
	request := make([]workload.Record, 0, workload.MaxN)
	for i := int64(0); o.Count == 0 || i < o.Count; i++ {
		select {
		case <-ctx.Done():
			return false
		default:
		}
		var due time.Time
		if scheduled {
			due = d.due(i)
		} else {
			due = d.clock.Now()
		}
		if !deadline.IsZero() && !due.Before(deadline) {
			break
		}
		if scheduled && len(d.cur.recs) > 0 && due.Sub(d.firstDue) > maxLinger {
			if !d.flush(ctx) {
				return false
			}
		}
		request = d.gen.Next(request[:0])
		stamp := due.UnixNano()
		if d.opts.DryRun || !scheduled {
			stamp = d.clock.Now().UnixNano()
		}
		for k := range request {
			request[k].ReleasedUnixNano = stamp
		}
		if d.vllm != nil {
			request = d.vllm.admit(request) // vLLM counts every request; aborted and lost ones are not sent
		}
		for k := range request {
			if len(d.cur.recs) == 0 {
				d.firstDue = due
			}
			d.cur.recs = append(d.cur.recs, request[k])
			d.lastDue = due
			if len(d.cur.recs) == o.Batch {
				if !d.flush(ctx) {
					return false
				}
			}
		}
	}
	if len(d.cur.recs) > 0 {
		return d.flush(ctx)
	}
	return true
}

// flush waits until the batch's last request is due (paced runs only) and hands it to a worker.
func (d *dispatcher) flush(ctx context.Context) bool {
	if d.opts.Rate > 0 && !d.opts.DryRun {
		if wait := d.clock.Until(d.lastDue); wait > 0 {
			t := d.clock.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.Chan():
			}
		} else if lag := -wait; lag > maxLag {
			d.start = d.start.Add(lag - maxLag)
		}
	}
	select {
	case d.jobs <- d.cur:
	case <-ctx.Done():
		return false
	}
	d.cur = d.newJob()
	return true
}

// violatorList collects the span ids of SLO violators from every worker, one lock per batch, up to limit ids.
type violatorList struct {
	limit     int
	mu        sync.Mutex
	ids       []pcommon.SpanID
	truncated bool
}

func (l *violatorList) add(ids []pcommon.SpanID) {
	if len(ids) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	room := l.limit - len(l.ids)
	if len(ids) > room {
		ids, l.truncated = ids[:max(0, room)], true
	}
	l.ids = append(l.ids, ids...)
}
