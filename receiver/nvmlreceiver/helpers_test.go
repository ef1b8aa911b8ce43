//go:build cgo

package nvmlreceiver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/collector/scraper/scrapererror"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

var testStart = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type testScraper struct {
	*nvmlScraper
	clock *clockwork.FakeClock
	logs  *observer.ObservedLogs
}

// newTestScraper builds a scraper over lib with a fake clock and observed logs; mutate adjusts the default
// config. It is shut down when the test ends.
func newTestScraper(tb testing.TB, lib nvml.Interface, procRoot string, mutate func(*Config)) *testScraper {
	tb.Helper()
	cfg := createDefaultConfig().(*Config)
	if mutate != nil {
		mutate(cfg)
	}
	core, logs := observer.New(zap.DebugLevel)
	set := receivertest.NewNopSettings(metadata.Type)
	set.Logger = zap.New(core)
	s, err := newNVMLScraper(cfg, set, lib)
	require.NoError(tb, err)
	clock := clockwork.NewFakeClockAt(testStart)
	s.clock = clock
	s.procs = newProcessNames(procRoot)
	tb.Cleanup(func() { require.NoError(tb, s.shutdown(context.Background())) })
	return &testScraper{nvmlScraper: s, clock: clock, logs: logs}
}

func (ts *testScraper) mustStart(tb testing.TB) {
	tb.Helper()
	require.NoError(tb, ts.start(context.Background(), nil))
}

func (ts *testScraper) mustScrape(tb testing.TB) pmetric.Metrics {
	tb.Helper()
	md, err := ts.scrape(context.Background())
	require.NoError(tb, err)
	return md
}

// scrapeFailing scrapes and requires a partial scrape error (what the collector's scraper telemetry counts)
// with failed failures, naming each of the wanted texts; the metrics that were read come with it.
func (ts *testScraper) scrapeFailing(tb testing.TB, failed int, wants ...string) pmetric.Metrics {
	tb.Helper()
	md, err := ts.scrape(context.Background())
	requirePartial(tb, err, failed, wants...)
	return md
}

func requirePartial(tb testing.TB, err error, failed int, wants ...string) {
	tb.Helper()
	var partial scrapererror.PartialScrapeError
	require.ErrorAs(tb, err, &partial)
	require.Equal(tb, failed, partial.Failed, "failed count of %v", err)
	for _, w := range wants {
		require.ErrorContains(tb, err, w)
	}
}

// enableAllMetrics turns on the metrics that are off by default.
func enableAllMetrics(cfg *Config) {
	cfg.Metrics.HwStatus.Enabled = true
	cfg.Metrics.NvidiaGpuProcessUtilization.Enabled = true
	cfg.Metrics.NvidiaGpuRemappedRows.Enabled = true
}

// dataPoint is a flattened number data point.
type dataPoint struct {
	attrs map[string]any
	value float64
	start pcommon.Timestamp
	ts    pcommon.Timestamp
}

func (p dataPoint) String() string {
	return fmt.Sprintf("%v=%v", p.attrs, p.value)
}

// metricPoints returns the points of one metric, with its unit and type checked by the caller if needed.
func metricPoints(md pmetric.Metrics, name string) []dataPoint {
	var out []dataPoint
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name {
					continue
				}
				var dps pmetric.NumberDataPointSlice
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					dps = m.Gauge().DataPoints()
				case pmetric.MetricTypeSum:
					dps = m.Sum().DataPoints()
				default:
					panic("unexpected metric type " + m.Type().String())
				}
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					out = append(out, dataPoint{attrs: dp.Attributes().AsRaw(), value: v, start: dp.StartTimestamp(), ts: dp.Timestamp()})
				}
			}
		}
	}
	return out
}

// findPoints returns the points of a metric whose attributes include every key/value in match.
func findPoints(md pmetric.Metrics, name string, match map[string]any) []dataPoint {
	var out []dataPoint
	for _, p := range metricPoints(md, name) {
		ok := true
		for k, v := range match {
			if p.attrs[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, p)
		}
	}
	return out
}

// onePoint requires exactly one matching point and returns it.
func onePoint(tb testing.TB, md pmetric.Metrics, name string, match map[string]any) dataPoint {
	tb.Helper()
	pts := findPoints(md, name, match)
	require.Lenf(tb, pts, 1, "points of %s matching %v; all points: %v", name, match, metricPoints(md, name))
	return pts[0]
}

func gpuAttrs(i int, extra ...any) map[string]any {
	m := map[string]any{"hw.id": testUUID(i)}
	for j := 0; j+1 < len(extra); j += 2 {
		m[extra[j].(string)] = extra[j+1]
	}
	return m
}

// metricNames lists the metric names present in md, sorted.
func metricNames(md pmetric.Metrics) []string {
	set := map[string]bool{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				set[ms.At(k).Name()] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// logsContaining returns the observed log entries whose message or fields mention every given string.
func logsContaining(logs *observer.ObservedLogs, level zapcore.Level, parts ...string) []observer.LoggedEntry {
	var out []observer.LoggedEntry
	for _, e := range logs.All() {
		if e.Level != level {
			continue
		}
		text := e.Message
		for k, v := range e.ContextMap() {
			text += fmt.Sprintf(" %s=%v", k, v)
		}
		ok := true
		for _, p := range parts {
			if !strings.Contains(text, p) {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}
