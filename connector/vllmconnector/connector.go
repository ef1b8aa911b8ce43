package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"bytes"
	"context"
	"sync"
	"time"
	"unsafe"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/internal/rejections"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

type vllmConnector struct {
	logger    *zap.Logger
	cfg       *Config
	next      consumer.Metrics
	deriver   *vllmrequest.Deriver
	telemetry *metadata.TelemetryBuilder
	clock     clockwork.Clock
	recorder  recorder
	delta     bool

	mu          sync.Mutex
	resources   map[string]*resourceState
	overflow    *resourceState // the one series beyond cardinality_limit, with no resource attributes
	seriesCount int
	lastFlush   pcommon.Timestamp
	rec         vllmrequest.Record
	keys        keyer
	weights     weigher
	duplicates  *duplicates // nil with duplicate_window: 0
	keyBuf      []byte      // reused for series keys
	resourceBuf []byte      // reused for resource keys
	// the series found last, and its resource and key; reset whenever series are removed
	lastResource *resourceState
	lastSeries   *series
	lastKey      []byte
	// the series resolved for the request spans of the resource being aggregated (see resolvedSeries)
	resolved []resolved
	// the duplicate-window fingerprints of the spans being aggregated (see prefetchDuplicates)
	fingerprints [prefetchSpans]uint64
	prefetched   uint64

	startOnce, shutdownOnce sync.Once
	done                    chan struct{}
	loopDone                chan struct{}
}

func newConnector(set connector.Settings, cfg *Config, next consumer.Metrics, clock clockwork.Clock) (*vllmConnector, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, err
	}
	maxExemplars := 0
	if cfg.Exemplars.Enabled {
		maxExemplars = cfg.Exemplars.MaxPerDataPoint
	}
	return &vllmConnector{
		logger:    set.Logger,
		cfg:       cfg,
		next:      next,
		deriver:   vllmrequest.NewDeriver(cfg.Request),
		telemetry: tb,
		clock:     clock,
		recorder: recorder{
			bounds:       indexedBounds(bucketBounds(cfg)),
			exponential:  cfg.Histograms.Type == HistogramExponential,
			maxSize:      cfg.Histograms.MaxSize,
			maxExemplars: maxExemplars,
			slo:          cfg.Request.SLO,
			sloEnabled:   cfg.Request.SLO.Enabled(),
			zeroTPOT:     cfg.Histograms.SingleTokenTPOT == SingleTokenTPOTZero,
		},
		delta:      cfg.AggregationTemporality == TemporalityDelta,
		keys:       keyer{maxLen: cfg.MaxAttributeLength, keepResource: cfg.ResourceAttributes},
		weights:    newWeigher(cfg.Sampling),
		duplicates: newDuplicates(cfg.DuplicateWindow),
		resources:  map[string]*resourceState{},
		resolved:   make([]resolved, 0, maxResolved),
		lastFlush:  pcommon.NewTimestampFromTime(clock.Now()),
		done:       make(chan struct{}),
		loopDone:   make(chan struct{}),
	}, nil
}

func (c *vllmConnector) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: false}
}

// Start begins flushing metrics every metrics_flush_interval.
func (c *vllmConnector) Start(context.Context, component.Host) error {
	c.startOnce.Do(func() {
		c.logger.Info("Starting vllm connector",
			zap.Duration("metrics_flush_interval", c.cfg.MetricsFlushInterval),
			zap.Int("cardinality_limit", c.cfg.CardinalityLimit))
		ticker := c.clock.NewTicker(c.cfg.MetricsFlushInterval)
		go func() {
			defer close(c.loopDone)
			defer ticker.Stop()
			for {
				select {
				case <-c.done:
					return
				case <-ticker.Chan():
					c.flush(context.Background())
				}
			}
		}()
	})
	return nil
}

// finalFlushTimeout bounds the flush at shutdown when the shutdown's context has no earlier deadline: the
// collector shuts its components down with a context that has none, and the exporters after the connector
// still need time to send (Kubernetes allows 30s by default before it kills the pod).
const finalFlushTimeout = 5 * time.Second

// Shutdown stops the flush loop and sends what was aggregated since the last flush, so a restart loses nothing,
// within the earlier of ctx's deadline and finalFlushTimeout.
func (c *vllmConnector) Shutdown(ctx context.Context) error {
	c.shutdownOnce.Do(func() {
		started := true
		c.startOnce.Do(func() { started = false }) // a later Start must not launch the loop
		close(c.done)
		if started {
			<-c.loopDone
		}
		ctx, cancel := context.WithTimeout(ctx, finalFlushTimeout)
		defer cancel()
		c.flush(ctx)
		c.telemetry.Shutdown()
		c.logger.Info("Stopped vllm connector")
	})
	return nil
}

// ConsumeTraces aggregates every vLLM request span of td; other spans are ignored.
func (c *vllmConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	var seen, recognised, duplicated, overflowed, unknownOperations, malformedStates int64
	c.mu.Lock()
	now := c.clock.Now()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resourceAttrs := rs.Resource().Attributes()
		resource := vllmrequest.NewResource(resourceAttrs)
		var res *resourceState
		var resourceKey []byte // computed at the resource's first request span
		resourceKeyed := false
		fallbackWeight := c.weights.resourceWeight(resourceAttrs)
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			seen += int64(spans.Len())
			for k := 0; k < spans.Len(); k++ {
				if c.duplicates != nil && k%prefetchSpans == 0 {
					c.prefetchDuplicates(spans, k)
				}
				span := spans.At(k)
				if !c.deriver.Derive(span, &resource, &c.rec) {
					continue
				}
				recognised++
				if c.duplicates != nil && c.duplicates.seenFingerprint(c.fingerprints[k%prefetchSpans]) {
					duplicated++
					continue
				}
				if len(c.rec.Rejections) > 0 {
					rejections.Count(ctx, c.telemetry.ConnectorVllmFieldsRejected, &c.rec)
				}
				if !resourceKeyed {
					resourceKeyed = true
					resourceKey = c.keys.resourceKey(c.resourceBuf[:0], resourceAttrs)
					c.resourceBuf = resourceKey
					res = c.resources[string(resourceKey)]
				}
				if !c.rec.OperationKnown {
					unknownOperations++
				}
				s, overflow := c.resolvedSeries()
				if s == nil {
					counts := c.keys.counts
					key := c.keys.seriesKey(c.keyBuf[:0], &c.rec, span, c.cfg.Dimensions)
					c.keyBuf = key
					s = c.findSeries(res, key)
					if s == nil {
						if c.seriesCount >= c.cfg.CardinalityLimit {
							s, overflow = c.overflowSeries(now), true
						} else {
							if res == nil {
								res = c.addResource(resourceAttrs, resourceKey)
							}
							s = c.addSeries(res, span, key, now)
						}
					}
					// lastSeen is the batch's time: set when a series is resolved, not for each of its spans
					s.lastSeen = now
					c.resolve(s, overflow, counts)
				}
				if overflow {
					overflowed++
				}
				weight, malformed := c.weights.spanWeight(span, fallbackWeight)
				if malformed {
					malformedStates++
				}
				c.recorder.record(s, &c.rec, span, weight)
			}
		}
		clear(c.resolved) // holds strings of this batch
		c.resolved = c.resolved[:0]
	}
	counts := c.keys.counts
	c.keys.counts = attributeCounts{}
	saturated := c.recorder.saturated
	c.recorder.saturated = 0
	c.mu.Unlock()
	c.telemetry.ConnectorVllmSpansSeen.Add(ctx, seen)
	c.telemetry.ConnectorVllmSpansRecognized.Add(ctx, recognised)
	if duplicated > 0 {
		c.telemetry.ConnectorVllmSpansDuplicate.Add(ctx, duplicated)
	}
	if overflowed > 0 {
		c.telemetry.ConnectorVllmSeriesOverflow.Add(ctx, overflowed)
	}
	if unknownOperations > 0 {
		c.telemetry.ConnectorVllmOperationsUnknown.Add(ctx, unknownOperations)
	}
	if malformedStates > 0 {
		c.telemetry.ConnectorVllmTracestateMalformed.Add(ctx, malformedStates)
	}
	if saturated > 0 {
		c.telemetry.ConnectorVllmValuesSaturated.Add(ctx, saturated)
	}
	c.countAttributes(ctx, &counts)
	return nil
}

// prefetchSpans is how many spans' duplicate-window lookups are prefetched at once: their cache lines (8 KiB)
// stay in the L1 cache until the spans are aggregated.
const prefetchSpans = 128

// prefetchDuplicates computes the fingerprints of the request spans from spans[from] on, up to prefetchSpans of
// them, into c.fingerprints (0 for other spans), and loads their lines of the duplicate window's table ahead of
// the lookups, whose cache misses would otherwise come one after the other.
func (c *vllmConnector) prefetchDuplicates(spans ptrace.SpanSlice, from int) {
	fps := c.fingerprints[:min(prefetchSpans, spans.Len()-from)]
	for i := range fps {
		span := spans.At(from + i)
		fps[i] = 0
		if c.deriver.IsRequestName(span.Name()) {
			fps[i] = c.duplicates.fingerprint(span.TraceID(), span.SpanID())
		}
	}
	c.prefetched += c.duplicates.prefetch(fps)
}

// countAttributes adds what keying truncated or dropped to the internal telemetry.
func (c *vllmConnector) countAttributes(ctx context.Context, counts *attributeCounts) {
	for kind := attributeKind(0); kind < numAttributeKinds; kind++ {
		if n := counts.truncated[kind]; n > 0 {
			c.telemetry.ConnectorVllmAttributesTruncated.Add(ctx, n, attributeKindOptions[kind]...)
		}
		if n := counts.dropped[kind]; n > 0 {
			c.telemetry.ConnectorVllmAttributesDropped.Add(ctx, n, attributeKindOptions[kind]...)
		}
	}
}

// attributeKindOptions are prebuilt, so that counting needs no allocation.
var attributeKindOptions = func() (o [numAttributeKinds][]metric.AddOption) {
	for k := range o {
		o[k] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", attributeKind(k).String())))}
	}
	return o
}()

// resolved is the series of the request spans of one resource that have these values.
type resolved struct {
	provider, operation, model, responseModel, errorType string
	series                                               *series
	overflow                                             bool // the overflow series
}

// maxResolved bounds the series remembered per resource of a batch: a resource's spans mostly have a few.
const maxResolved = 16

// resolvedSeries returns the series that an earlier span of the same resource in this batch, with the same
// values, was resolved to, and whether it is the overflow series; nil if none. Without dimensions a series of a
// resource is identified by the record's provider, operation, models and error type, so a batch keys a series
// and looks it up once, not once per span; the values mostly share their string data with the earlier span's
// (the provider and operation are constants, the model is the resource's), so they compare in a few
// instructions. Series are removed only under the connector's lock, so none of these goes stale during a batch.
func (c *vllmConnector) resolvedSeries() (*series, bool) {
	rec := &c.rec
	for i := range c.resolved {
		r := &c.resolved[i]
		if sameString(r.operation, rec.Operation) && sameString(r.model, rec.Model) &&
			sameString(r.errorType, rec.ErrorType) && sameString(r.provider, rec.Provider) &&
			sameString(r.responseModel, rec.ResponseModel) {
			return r.series, r.overflow
		}
	}
	return nil, false
}

// sameString is a == b. The values compared by resolvedSeries mostly share their bytes, which settles it
// without the call that comparing the bytes of two strings of the same length costs.
func sameString(a, b string) bool {
	return len(a) == len(b) && (len(a) == 0 || unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// resolve remembers the series the current record was resolved to, unless dimensions (values of the span) are
// part of its identity or keying it counted a truncated or dropped value (counts are what keying had counted
// before): such a value must be counted again for each span, which keying does.
func (c *vllmConnector) resolve(s *series, overflow bool, counts attributeCounts) {
	if len(c.cfg.Dimensions) > 0 || c.keys.counts != counts || len(c.resolved) == maxResolved {
		return
	}
	rec := &c.rec
	c.resolved = append(c.resolved, resolved{
		provider: rec.Provider, operation: rec.Operation, model: rec.Model, responseModel: rec.ResponseModel,
		errorType: rec.ErrorType, series: s, overflow: overflow,
	})
}

// findSeries returns the series of key in res, or nil when the resource or the series is unknown. Consecutive
// spans of a batch mostly share a series, so the last hit is checked before the map.
func (c *vllmConnector) findSeries(res *resourceState, key []byte) *series {
	if res == nil {
		return nil
	}
	if c.lastSeries != nil && c.lastResource == res && bytes.Equal(c.lastKey, key) {
		return c.lastSeries
	}
	s, ok := res.series[string(key)]
	if !ok {
		return nil
	}
	c.lastResource, c.lastSeries, c.lastKey = res, s, append(c.lastKey[:0], key...)
	return s
}

// addResource creates the resource whose identity resourceKey encoded as key.
func (c *vllmConnector) addResource(attrs pcommon.Map, key []byte) *resourceState {
	res := &resourceState{attrs: pcommon.NewMap(), series: map[string]*series{}}
	c.keys.copyResource(attrs, res.attrs)
	c.resources[string(key)] = res
	return res
}

// addSeries creates the series of the current record and span, whose identity seriesKey encoded as key.
func (c *vllmConnector) addSeries(res *resourceState, span ptrace.Span, key []byte, now time.Time) *series {
	s := &series{attrs: pcommon.NewMap(), start: pcommon.NewTimestampFromTime(now)}
	s.attrs.EnsureCapacity(5 + len(c.cfg.Dimensions))
	maxLen := c.cfg.MaxAttributeLength // seriesKey has counted the truncations
	s.attrs.PutStr(vllmrequest.AttrProviderName, keep(truncateUTF8(c.rec.Provider, maxLen)))
	s.attrs.PutStr(vllmrequest.AttrOperationName, keep(truncateUTF8(c.rec.Operation, maxLen)))
	s.attrs.PutStr(vllmrequest.AttrRequestModel, keep(truncateUTF8(c.rec.Model, maxLen)))
	if c.rec.ResponseModel != "" {
		s.attrs.PutStr(vllmrequest.AttrResponseModel, keep(truncateUTF8(c.rec.ResponseModel, maxLen)))
	}
	if c.rec.ErrorType != "" {
		s.attrs.PutStr(vllmrequest.AttrErrorType, keep(truncateUTF8(c.rec.ErrorType, maxLen)))
	}
	c.keys.putDimensions(span, c.cfg.Dimensions, s.attrs)
	res.series[string(key)] = s
	c.seriesCount++
	return s
}

// overflowSeries is where requests go once cardinality_limit series exist: one series, no resource attributes,
// otel.metric.overflow=true, so totals stay right while memory stays bounded.
func (c *vllmConnector) overflowSeries(now time.Time) *series {
	if c.overflow == nil {
		c.overflow = &resourceState{attrs: pcommon.NewMap(), series: map[string]*series{}}
	}
	s, ok := c.overflow.series[""]
	if !ok {
		s = &series{attrs: pcommon.NewMap(), start: pcommon.NewTimestampFromTime(now)}
		s.attrs.PutBool(attrOverflow, true)
		c.overflow.series[""] = s
	}
	return s
}

// flush sends the aggregated metrics downstream, one bounded request after the other, so that one request the
// next consumer rejects does not take the others with it. The next consumer is called outside the lock, so a
// slow exporter does not stall span ingestion. Once ctx is done (a shutdown's deadline), the requests not yet
// sent are dropped and counted.
func (c *vllmConnector) flush(ctx context.Context) {
	c.mu.Lock()
	requests, unbuilt := c.buildMetrics(ctx, c.clock.Now())
	c.mu.Unlock()
	for i, md := range requests {
		if err := ctx.Err(); err != nil {
			points := unbuilt
			for _, rest := range requests[i:] {
				points += rest.DataPointCount()
			}
			c.dropAtDeadline(ctx, err, points)
			return
		}
		points := md.DataPointCount()
		if err := c.next.ConsumeMetrics(ctx, md); err != nil {
			c.logger.Error("Failed to send vLLM metrics", zap.Error(err), zap.Int("data_points", points))
			c.telemetry.ConnectorVllmDataPointsDropped.Add(ctx, int64(points), droppedExportFailed...)
		}
	}
	if unbuilt > 0 { // the context ended while the requests were built, none of them
		c.dropAtDeadline(ctx, ctx.Err(), unbuilt)
	}
}

// dropAtDeadline counts and logs the data points of a flush that its context's end left unsent.
func (c *vllmConnector) dropAtDeadline(ctx context.Context, err error, points int) {
	c.logger.Error("Dropped vLLM metrics not sent before the deadline", zap.Error(err), zap.Int("data_points", points))
	c.telemetry.ConnectorVllmDataPointsDropped.Add(context.WithoutCancel(ctx), int64(points), droppedShutdownDeadline...)
}

var (
	droppedExportFailed     = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "export_failed")))}
	droppedShutdownDeadline = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", "shutdown_deadline")))}
)
