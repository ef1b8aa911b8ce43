// Package otlpsink is an in-process OTLP backend for tests and the load benchmark: it receives traces and
// metrics over OTLP/gRPC and OTLP/HTTP (protobuf, gzip or not), keeps or counts them, and answers as told
// (refuse everything, or report spans as rejected in a partial success).
//
// Metrics are kept as series: the highest point of each, which for the cumulative sums and histograms the vllm
// connector writes is its total so far, in whatever order the exporter's queue delivers the points.
package otlpsink // import "github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Sink keeps what it receives and decides how to answer; the zero value accepts everything. Set the fields
// before starting it (SetFail while it serves).
type Sink struct {
	// RejectSpans, when > 0, is reported as rejected in a partial-success response (the spans are still kept).
	RejectSpans int64
	// Fail refuses every export (gRPC Unavailable, HTTP 503) without keeping anything.
	Fail bool
	// TracesPath is where OTLP/HTTP traces are posted; empty is the standard /v1/traces. Metrics are posted to
	// /v1/metrics.
	TracesPath string
	// Discard counts spans and data points without keeping them (load, benchmarks).
	Discard bool
	// MaxRecvMsgSize is the largest gRPC request accepted; 0 is gRPC's default, 4 MiB, as a default collector's
	// otlp receiver has: tests that check what reaches such a receiver rely on it.
	MaxRecvMsgSize int

	requests atomic.Int64
	spans    atomic.Int64
	points   atomic.Int64

	mu     sync.Mutex
	traces []ptrace.Traces    // one per export request, in arrival order
	series map[string]*series // by resource, metric name and point attributes
}

// SetFail refuses (true) or accepts (false) the exports that follow, while the sink serves.
func (s *Sink) SetFail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Fail = fail
}

// answer is how to reply to an export request: refuse it, or report rejectedSpans.
func (s *Sink) answer() (fail bool, rejectedSpans int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Fail, s.RejectSpans
}

// acceptTraces counts an export request and keeps its traces unless the sink refuses it; td must be the
// sink's to keep (a copy of a gRPC request, which is only valid during the call).
func (s *Sink) acceptTraces(td ptrace.Traces) (fail bool, rejectedSpans int64) {
	s.requests.Add(1)
	fail, rejectedSpans = s.answer()
	if fail {
		return true, 0
	}
	s.spans.Add(int64(td.SpanCount()))
	if !s.Discard {
		s.mu.Lock()
		s.traces = append(s.traces, td)
		s.mu.Unlock()
	}
	return false, rejectedSpans
}

func (s *Sink) acceptMetrics(md pmetric.Metrics) (fail bool) {
	s.requests.Add(1)
	if fail, _ = s.answer(); fail {
		return true
	}
	s.points.Add(int64(md.DataPointCount()))
	if !s.Discard {
		s.record(md)
	}
	return false
}

// Requests is the number of export requests received, traces and metrics, refused ones included.
func (s *Sink) Requests() int { return int(s.requests.Load()) }

// SpanCount is the number of spans accepted (kept or, with Discard, counted).
func (s *Sink) SpanCount() int { return int(s.spans.Load()) }

// DataPointCount is the number of metric data points accepted.
func (s *Sink) DataPointCount() int64 { return s.points.Load() }

// TraceRequests are the traces kept, one per export request, in arrival order.
func (s *Sink) TraceRequests() []ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ptrace.Traces(nil), s.traces...)
}

// Traces are the traces kept, merged into one in arrival order.
func (s *Sink) Traces() ptrace.Traces {
	all := ptrace.NewTraces()
	for _, td := range s.TraceRequests() {
		for _, rs := range td.ResourceSpans().All() {
			rs.CopyTo(all.ResourceSpans().AppendEmpty())
		}
	}
	return all
}

// WaitForSpans waits until want spans have arrived, then a moment more, and fails the test if they did not or if
// more arrived: a sender that sent want spans delivered each exactly once.
func (s *Sink) WaitForSpans(t testing.TB, want int, timeout time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return s.SpanCount() >= want }, timeout, 100*time.Millisecond,
		"OTLP sink: want %d spans", want)
	// a few more could still be in flight
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, want, s.SpanCount(), "OTLP sink received more spans than were sent")
}
