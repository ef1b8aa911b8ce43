package vllmconnector // import "github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/connector"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/internal/rejections"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
)

// keySeparator separates the parts of a series or resource key; attribute values rarely contain it, and a
// collision would only merge two series, never lose data.
const keySeparator = 0

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
	keyBuf      []byte
	resourceBuf []byte
	sortBuf     []string
	// the series found last, and its resource and key; reset whenever series are removed
	lastResource *resourceState
	lastSeries   *series
	lastKey      []byte

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
			bounds:       bucketBounds(cfg),
			exponential:  cfg.Histograms.Type == HistogramExponential,
			maxSize:      cfg.Histograms.MaxSize,
			maxExemplars: maxExemplars,
			slo:          cfg.Request.SLO,
			sloEnabled:   cfg.Request.SLO.Enabled(),
		},
		delta:     cfg.AggregationTemporality == TemporalityDelta,
		resources: map[string]*resourceState{},
		lastFlush: pcommon.NewTimestampFromTime(clock.Now()),
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
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

// Shutdown stops the flush loop and sends what was aggregated since the last flush, so a restart loses nothing.
func (c *vllmConnector) Shutdown(ctx context.Context) error {
	c.shutdownOnce.Do(func() {
		started := true
		c.startOnce.Do(func() { started = false }) // a later Start must not launch the loop
		close(c.done)
		if started {
			<-c.loopDone
		}
		c.flush(ctx)
		c.telemetry.Shutdown()
		c.logger.Info("Stopped vllm connector")
	})
	return nil
}

// ConsumeTraces aggregates every vLLM request span of td; other spans are ignored.
func (c *vllmConnector) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	var seen, recognised, overflowed int64
	c.mu.Lock()
	now := c.clock.Now()
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		resourceAttrs := rs.Resource().Attributes()
		resource := vllmrequest.NewResource(resourceAttrs)
		var res *resourceState
		resourceKnown := false
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			seen += int64(spans.Len())
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				if !c.deriver.Derive(span, &resource, &c.rec) {
					continue
				}
				recognised++
				rejections.Count(ctx, c.telemetry.VllmConnectorFieldsRejected, &c.rec)
				if !resourceKnown {
					res, resourceKnown = c.resources[string(c.resourceKey(resourceAttrs))], true
				}
				s, isNew := c.findSeries(res, span)
				if isNew {
					if c.seriesCount >= c.cfg.CardinalityLimit {
						s = c.overflowSeries(now)
						overflowed++
					} else {
						if res == nil {
							res = c.addResource(resourceAttrs)
						}
						s = c.addSeries(res, span, now)
					}
				}
				c.recorder.record(s, &c.rec, span, now)
			}
		}
	}
	c.mu.Unlock()
	c.telemetry.VllmConnectorSpansSeen.Add(ctx, seen)
	c.telemetry.VllmConnectorSpansRecognized.Add(ctx, recognised)
	if overflowed > 0 {
		c.telemetry.VllmConnectorSeriesOverflow.Add(ctx, overflowed)
	}
	return nil
}

// resourceKey writes the identity of a resource — its allow-listed attributes in a stable order — into a
// reused buffer.
func (c *vllmConnector) resourceKey(attrs pcommon.Map) []byte {
	buf := c.resourceBuf[:0]
	appendAttr := func(k string, v pcommon.Value) {
		buf = append(buf, k...)
		buf = append(buf, keySeparator)
		buf = appendValue(buf, v)
		buf = append(buf, keySeparator)
	}
	if len(c.cfg.ResourceAttributes) > 0 {
		for _, k := range c.cfg.ResourceAttributes {
			if v, ok := attrs.Get(k); ok {
				appendAttr(k, v)
			}
		}
	} else {
		keys := c.sortBuf[:0]
		attrs.Range(func(k string, _ pcommon.Value) bool {
			keys = append(keys, k)
			return true
		})
		sort.Strings(keys)
		for _, k := range keys {
			v, _ := attrs.Get(k)
			appendAttr(k, v)
		}
		c.sortBuf = keys[:0]
	}
	c.resourceBuf = buf
	return buf
}

func appendValue(buf []byte, v pcommon.Value) []byte {
	if v.Type() == pcommon.ValueTypeStr {
		return append(buf, v.Str()...)
	}
	return append(buf, v.AsString()...)
}

// seriesKey writes the data point attributes of the current record and span into a reused buffer.
func (c *vllmConnector) seriesKey(span ptrace.Span) []byte {
	buf := append(c.keyBuf[:0], c.rec.Provider...)
	buf = append(buf, keySeparator)
	buf = append(buf, c.rec.Operation...)
	buf = append(buf, keySeparator)
	buf = append(buf, c.rec.Model...)
	for _, d := range c.cfg.Dimensions {
		buf = append(buf, keySeparator)
		if v, ok := span.Attributes().Get(d.Name); ok {
			buf = append(buf, 'v')
			buf = appendValue(buf, v)
		} else if d.Default != nil {
			buf = append(buf, 'v')
			buf = append(buf, *d.Default...)
		} else {
			buf = append(buf, '-') // absent: distinct from any value
		}
	}
	c.keyBuf = buf
	return buf
}

// findSeries returns the series of the current record, or isNew when the resource or the series is unknown.
// Consecutive spans of a batch mostly share a series, so the last hit is checked before the map.
func (c *vllmConnector) findSeries(res *resourceState, span ptrace.Span) (s *series, isNew bool) {
	key := c.seriesKey(span)
	if res == nil {
		return nil, true
	}
	if c.lastSeries != nil && c.lastResource == res && bytes.Equal(c.lastKey, key) {
		return c.lastSeries, false
	}
	s, ok := res.series[string(key)]
	if !ok {
		return nil, true
	}
	c.lastResource, c.lastSeries, c.lastKey = res, s, append(c.lastKey[:0], key...)
	return s, false
}

func (c *vllmConnector) addResource(attrs pcommon.Map) *resourceState {
	res := &resourceState{attrs: pcommon.NewMap(), series: map[string]*series{}}
	if len(c.cfg.ResourceAttributes) > 0 {
		for _, k := range c.cfg.ResourceAttributes {
			if v, ok := attrs.Get(k); ok {
				v.CopyTo(res.attrs.PutEmpty(k))
			}
		}
	} else {
		attrs.CopyTo(res.attrs)
	}
	c.resources[string(c.resourceBuf)] = res
	return res
}

// addSeries creates the series whose key seriesKey just wrote.
func (c *vllmConnector) addSeries(res *resourceState, span ptrace.Span, now time.Time) *series {
	s := &series{attrs: pcommon.NewMap(), start: pcommon.NewTimestampFromTime(now)}
	s.attrs.EnsureCapacity(3 + len(c.cfg.Dimensions))
	s.attrs.PutStr(vllmrequest.AttrProviderName, c.rec.Provider)
	s.attrs.PutStr(vllmrequest.AttrOperationName, c.rec.Operation)
	s.attrs.PutStr(vllmrequest.AttrResponseModel, c.rec.Model)
	for _, d := range c.cfg.Dimensions {
		if v, ok := span.Attributes().Get(d.Name); ok {
			v.CopyTo(s.attrs.PutEmpty(d.Name))
		} else if d.Default != nil {
			s.attrs.PutStr(d.Name, *d.Default)
		}
	}
	res.series[string(c.keyBuf)] = s
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

// flush sends the aggregated metrics downstream. The next consumer is called outside the lock, so a slow
// exporter does not stall span ingestion.
func (c *vllmConnector) flush(ctx context.Context) {
	c.mu.Lock()
	md := c.buildMetrics(c.clock.Now())
	c.mu.Unlock()
	if md.DataPointCount() == 0 {
		return
	}
	if err := c.next.ConsumeMetrics(ctx, md); err != nil {
		c.logger.Error("Failed to send vLLM metrics", zap.Error(err), zap.Int("data_points", md.DataPointCount()))
	}
}
