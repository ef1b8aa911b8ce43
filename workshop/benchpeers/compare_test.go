package benchpeers

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/connector/spanmetricsconnector"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/connector/connectortest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/otelcol-vllm/otelcol-vllm/connector/vllmconnector"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest"
	"github.com/otelcol-vllm/otelcol-vllm/internal/vllmrequest/vllmrequesttest"
	"github.com/otelcol-vllm/otelcol-vllm/processor/vllmprocessor"
)

// BenchmarkPairs runs the vllm connector and span_metrics alternately, one pair after the other, in one process
// (make bench-compare), so that both see the same machine state: on a shared machine the speed moves between
// runs more than the difference measured. Each case runs BENCH_PAIRS pairs (default 8); the default case adds
// the vllm processor to each round. Every run reports wall time (ns/span) and the process's CPU time
// (cpu-ns/span: user + system, garbage collection included, descheduled time not); the log ends with the median
// and the range of the pairwise ratios of CPU time (lines starting with "ratio"). Run it with -cpu 1 and a fixed -benchtime (e.g. 300x).
func BenchmarkPairs(b *testing.B) {
	pairs := 8
	if s := os.Getenv("BENCH_PAIRS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(b, err)
		pairs = n
	}
	for _, c := range compareCases() {
		var connector, spanMetrics, processor, writeFloor []float64
		for pair := 1; pair <= pairs; pair++ {
			name := fmt.Sprintf("case=%s/pair=%d/impl=", c.name, pair)
			b.Run(name+"vllm_connector", func(b *testing.B) {
				connector = append(connector, runConsumer(b, newVLLMConnector(b, c.vllm), c.batch, true))
			})
			b.Run(name+"span_metrics", func(b *testing.B) {
				spanMetrics = append(spanMetrics, runConsumer(b, newSpanMetrics(b, c.spanMetricsDims), c.batch, true))
			})
			if c.processor {
				b.Run(name+"vllm_processor", func(b *testing.B) {
					processor = append(processor, runConsumer(b, newVLLMProcessor(b), c.batch, false))
				})
				b.Run(name+"attribute_write_floor", func(b *testing.B) {
					writeFloor = append(writeFloor, runConsumer(b, attributeWriteFloor(b), c.batch, false))
				})
			}
		}
		// printed, not logged: a parent benchmark's log shows only with -v; not in benchmark format, so
		// benchstat skips these lines
		fmt.Printf("ratio case=%s vllm_connector/span_metrics cpu-ns/span %s\n", c.name, ratioSummary(connector, spanMetrics))
		if c.processor {
			fmt.Printf("ratio case=%s vllm_processor/vllm_connector cpu-ns/span %s\n", c.name, ratioSummary(processor, connector))
			fmt.Printf("ratio case=%s vllm_processor/attribute_write_floor cpu-ns/span %s\n", c.name, ratioSummary(processor, writeFloor))
			fmt.Printf("ratio case=%s attribute_write_floor/vllm_connector cpu-ns/span %s\n", c.name, ratioSummary(writeFloor, connector))
		}
	}
}

type compareCase struct {
	name  string
	batch ptrace.Traces
	vllm  func(*vllmconnector.Config)
	// spanMetricsDims are span_metrics' dimensions besides its defaults (service, span name, kind, status)
	spanMetricsDims []string
	processor       bool
}

func compareCases() []compareCase {
	sampled := vllmrequesttest.V1Batch(batchSize, 4)
	vllmrequesttest.ForEachSpan(sampled, func(s ptrace.Span) { s.TraceState().FromRaw("ot=th:e") })
	return []compareCase{
		{name: "default", batch: vllmrequesttest.V1Batch(batchSize, 4), spanMetricsDims: []string{"gen_ai.request.model"}, processor: true},
		// every span 12.5% sampled at the source (an OTEP 235 threshold in each tracestate): weighted
		{name: "sampled", batch: sampled, spanMetricsDims: []string{"gen_ai.request.model"}},
		// 5 models × 3 operations × 2 services: 30 series in both connectors, the operation on the span (as the
		// vllm processor writes it)
		{name: "series", batch: seriesBatch(), spanMetricsDims: []string{"gen_ai.request.model", "gen_ai.operation.name"}},
	}
}

// seriesBatch is 1,000 V1 spans of 5 models served by 2 services (10 resources), each span one of 3 operations.
func seriesBatch() ptrace.Traces {
	const models, services = 5, 2
	td := vllmrequesttest.V1Batch(batchSize, models*services)
	operations := [...]string{"chat", "text_completion", "embeddings"}
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		res := rss.At(i).Resource().Attributes()
		res.PutStr("service.name", fmt.Sprintf("vllm-%d", i/models))
		res.PutStr("gen_ai.request.model", fmt.Sprintf("model-%d", i%models))
		spans := rss.At(i).ScopeSpans().At(0).Spans()
		for k := 0; k < spans.Len(); k++ {
			spans.At(k).Attributes().PutStr("gen_ai.operation.name", operations[k%len(operations)])
		}
	}
	return td
}

func newVLLMConnector(b *testing.B, configure func(*vllmconnector.Config)) consumer.Traces {
	f := vllmconnector.NewFactory()
	cfg := f.CreateDefaultConfig().(*vllmconnector.Config)
	if configure != nil {
		configure(cfg)
	}
	c, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, c.Start(context.Background(), nil))
	b.Cleanup(func() { require.NoError(b, c.Shutdown(context.Background())) })
	return c
}

func newSpanMetrics(b *testing.B, dims []string) consumer.Traces {
	f := spanmetricsconnector.NewFactory()
	cfg := f.CreateDefaultConfig().(*spanmetricsconnector.Config)
	for _, d := range dims {
		cfg.Dimensions = append(cfg.Dimensions, spanmetricsconnector.Dimension{Name: d})
	}
	c, err := f.CreateTracesToMetrics(context.Background(), connectortest.NewNopSettings(f.Type()), cfg, consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, c.Start(context.Background(), nil))
	b.Cleanup(func() { require.NoError(b, c.Shutdown(context.Background())) })
	return c
}

// attributeWriteFloor is what writing the vllm processor's five attributes costs through pdata and nothing else:
// it adds provider, operation, model (strings) and TPOT, decode throughput (doubles) to every span, as the
// processor does on a V1 span with the default config, without reading the span or deriving anything. The
// processor's cost over this floor is its own work (the derivation, the checks, the telemetry).
func attributeWriteFloor(tb testing.TB) consumer.Traces {
	c, err := consumer.NewTraces(func(_ context.Context, td ptrace.Traces) error {
		vllmrequesttest.ForEachSpan(td, func(s ptrace.Span) {
			attrs := s.Attributes()
			attrs.EnsureCapacity(attrs.Len() + 5)
			attrs.PutStr(vllmrequest.AttrProviderName, "vllm")
			attrs.PutStr(vllmrequest.AttrOperationName, "chat")
			attrs.PutStr(vllmrequest.AttrRequestModel, "model-0")
			attrs.PutDouble(vllmprocessor.AttrTimePerOutputToken, 0.02)
			attrs.PutDouble(vllmprocessor.AttrDecodeThroughput, 50)
		})
		return nil
	})
	require.NoError(tb, err)
	return c
}

func newVLLMProcessor(b testing.TB) consumer.Traces {
	f := vllmprocessor.NewFactory()
	p, err := f.CreateTraces(context.Background(), processortest.NewNopSettings(f.Type()), f.CreateDefaultConfig(), consumertest.NewNop())
	require.NoError(b, err)
	require.NoError(b, p.Start(context.Background(), nil))
	b.Cleanup(func() { require.NoError(b, p.Shutdown(context.Background())) })
	return p
}

// runConsumer feeds batch to c b.N times and returns the CPU time per span. A connector gets the same spans
// with new span ids each round (the same ids again would be a retry's duplicates, which the vllm connector
// skips), after one round that creates the series; a processor, which mutates spans, gets a fresh copy each
// round, as unmarshalled from a request. Both are prepared outside the timer and the CPU measurement.
func runConsumer(b *testing.B, c consumer.Traces, batch ptrace.Traces, connector bool) float64 {
	prepare := func() ptrace.Traces {
		if connector {
			vllmrequesttest.UniqueSpanIDs(batch)
			return batch
		}
		work := ptrace.NewTraces()
		batch.CopyTo(work)
		return work
	}
	require.NoError(b, c.ConsumeTraces(context.Background(), prepare()))
	allocs := testing.AllocsPerRun(3, func() { _ = c.ConsumeTraces(context.Background(), prepare()) }) -
		testing.AllocsPerRun(3, func() { _ = prepare() })
	// The garbage of the runs before this one (span_metrics' and the processor's allocations, the processor's
	// batch copies) is collected here, outside the measurement: the process's CPU time includes the garbage
	// collector's, which would otherwise charge one implementation for another's allocations. What this run
	// allocates is collected during it, and charged to it.
	runtime.GC()
	var cpu time.Duration
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		work := prepare()
		b.StartTimer()
		before := processCPU()
		_ = c.ConsumeTraces(context.Background(), work)
		cpu += processCPU() - before
	}
	spans := float64(b.N * batch.SpanCount())
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/spans, "ns/span")
	cpuPerSpan := float64(cpu.Nanoseconds()) / spans
	b.ReportMetric(cpuPerSpan, "cpu-ns/span")
	b.ReportMetric(allocs/float64(batch.SpanCount()), "allocs/span")
	return cpuPerSpan
}

// processCPU is the CPU time (user + system) the process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ratioSummary is the median and the range of the pairwise ratios a[i]/b[i].
func ratioSummary(a, b []float64) string {
	n := min(len(a), len(b))
	if n == 0 {
		return "no pairs"
	}
	ratios := make([]float64, n)
	for i := range n {
		ratios[i] = a[i] / b[i]
	}
	slices.Sort(ratios)
	median := ratios[n/2]
	if n%2 == 0 {
		median = (ratios[n/2-1] + ratios[n/2]) / 2
	}
	return fmt.Sprintf("median %.2f× (min %.2f×, max %.2f×, %d pairs)", median, ratios[0], ratios[n-1], n)
}

// TestAttributeWriteFloorMatchesProcessor: the floor writes, on the default case's spans, the keys and value
// types the vllm processor adds there, so that the ratio between the two is the processor's own work.
func TestAttributeWriteFloorMatchesProcessor(t *testing.T) {
	added := func(c consumer.Traces) map[string]pcommon.ValueType {
		batch := vllmrequesttest.V1Batch(batchSize, 4)
		before := batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().AsRaw()
		require.NoError(t, c.ConsumeTraces(context.Background(), batch))
		keys := map[string]pcommon.ValueType{}
		vllmrequesttest.ForEachSpan(batch, func(s ptrace.Span) {
			for k, v := range s.Attributes().All() {
				if _, ok := before[k]; !ok {
					keys[k] = v.Type()
				}
			}
		})
		return keys
	}
	processor := added(newVLLMProcessor(t))
	require.Len(t, processor, 5, "the processor's additions on the default case: %v", processor)
	require.Equal(t, processor, added(attributeWriteFloor(t)))
}
