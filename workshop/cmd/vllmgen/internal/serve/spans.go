package serve // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/serve"

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
)

// Batching defaults of the OpenTelemetry Python SDK's BatchSpanProcessor, which vLLM uses.
const (
	DefaultExportDelay = 5 * time.Second
	DefaultMaxQueue    = 2048
	maxExportBatch     = 512
	exportTimeout      = 30 * time.Second
)

// SpanExporter batches finished requests' llm_request spans and sends them like vLLM's BatchSpanProcessor:
// every ExportDelay or when a batch is full, dropping (and counting) spans when its queue is full.
type SpanExporter struct {
	exporter otlpsend.Exporter
	builder  *workload.SpanBuilder
	delay    time.Duration
	queue    chan workload.Record
	done     chan struct{}
	stopOnce sync.Once
	stop     chan struct{}

	exported, dropped, failed atomic.Int64
}

// SpanExporterConfig describes the span resource and batching.
type SpanExporterConfig struct {
	Model       string
	ServiceName string
	ExportDelay time.Duration
	MaxQueue    int
}

// NewSpanExporter starts the export loop. Spans carry vLLM's V1 shape: scope vllm.tracing.otel and the
// resource vLLM's tracer creates (vllm.instrumenting_module_name, vllm.process_id = this process' pid).
func NewSpanExporter(exp otlpsend.Exporter, cfg SpanExporterConfig) *SpanExporter {
	if cfg.ExportDelay <= 0 {
		cfg.ExportDelay = DefaultExportDelay
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	e := &SpanExporter{
		exporter: exp,
		builder: workload.NewSpanBuilder(workload.ShapeV1, []string{cfg.Model},
			workload.ResourceConfig{ServiceName: cfg.ServiceName, ProcessIDBase: os.Getpid()}, workload.AnchorArrival),
		delay: cfg.ExportDelay,
		queue: make(chan workload.Record, cfg.MaxQueue),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go e.loop()
	return e
}

// Add queues one span; a full queue drops it, as the SDK does.
func (e *SpanExporter) Add(s workload.Record) {
	select {
	case e.queue <- s:
	default:
		e.dropped.Add(1)
	}
}

func (e *SpanExporter) loop() {
	defer close(e.done)
	ticker := time.NewTicker(e.delay)
	defer ticker.Stop()
	batch := make([]workload.Record, 0, maxExportBatch)
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) == maxExportBatch {
				e.send(batch)
				batch = batch[:0]
			}
		case <-ticker.C:
			e.send(batch)
			batch = batch[:0]
		case <-e.stop:
			for {
				select {
				case s := <-e.queue:
					batch = append(batch, s)
					if len(batch) == maxExportBatch {
						e.send(batch)
						batch = batch[:0]
					}
				default:
					e.send(batch)
					return
				}
			}
		}
	}
}

func (e *SpanExporter) send(batch []workload.Record) {
	if len(batch) == 0 {
		return
	}
	td := e.builder.Build(batch) // vllmrequesttest.WriteSpan writes each span, parent included
	ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
	defer cancel()
	rejected, err := e.exporter.Export(ctx, td)
	if err != nil {
		e.failed.Add(int64(len(batch)))
		return
	}
	e.failed.Add(rejected)
	e.exported.Add(int64(len(batch)) - rejected)
}

// Close sends what is queued and closes the exporter.
func (e *SpanExporter) Close() error {
	e.stopOnce.Do(func() { close(e.stop) })
	<-e.done
	return e.exporter.Close()
}

// Counts reports spans exported, dropped on a full queue, and failed (export error or rejected).
func (e *SpanExporter) Counts() (exported, dropped, failed int64) {
	return e.exported.Load(), e.dropped.Load(), e.failed.Load()
}
