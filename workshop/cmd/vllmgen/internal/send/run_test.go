package send

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/workload"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

func mustParse(t *testing.T, args ...string) Options {
	t.Helper()
	o, err := ParseFlags(args, io.Discard)
	require.NoError(t, err)
	return o
}

// startReceiver returns the --otlp-protocol/--otlp-endpoint flags that reach a fresh loopback receiver.
func startReceiver(t *testing.T, protocol otlpsend.Protocol, sink *otlpsink.Sink) []string {
	if protocol == otlpsend.ProtocolGRPC {
		return []string{"--otlp-protocol", "grpc", "--otlp-endpoint", otlpsink.StartGRPC(t, sink)}
	}
	sink.TracesPath = "/v1/traces"
	return []string{"--otlp-protocol", "http", "--otlp-endpoint", otlpsink.StartHTTP(t, sink)}
}

// expectedSpans regenerates what a run with o must have sent, keyed by span id.
func expectedSpans(t *testing.T, o Options) map[pcommon.SpanID]ptrace.Span {
	t.Helper()
	gen, err := workload.NewGenerator(workload.Config{Shape: o.Shape, Profile: o.Profile, Models: o.Models, Seed: o.Seed, NProb: o.NProb, GreedyProb: o.GreedyProb})
	require.NoError(t, err)
	var recs []workload.Record
	for range o.Count {
		recs = gen.Next(recs)
	}
	td := workload.NewSpanBuilder(o.Shape, o.Models, workload.ResourceConfig{ServiceName: o.ServiceName}, o.Anchor).Build(recs)
	out := map[pcommon.SpanID]ptrace.Span{}
	for _, rs := range td.ResourceSpans().All() {
		for _, span := range rs.ScopeSpans().At(0).Spans().All() {
			out[span.SpanID()] = span
		}
	}
	return out
}

func runMain(t *testing.T, args ...string) (int, Summary, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), append(args, "--summary", "json"), &stdout, &stderr)
	var s Summary
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &s), "stdout: %s\nstderr: %s", stdout.String(), stderr.String())
	return code, s, stderr.String()
}

func TestExportDeliversExactSpans(t *testing.T) {
	for _, protocol := range []otlpsend.Protocol{otlpsend.ProtocolGRPC, otlpsend.ProtocolHTTP} {
		for _, shape := range []string{"v1", "v0"} {
			t.Run(string(protocol)+"/"+shape, func(t *testing.T) {
				sink := &otlpsink.Sink{}
				args := append(startReceiver(t, protocol, sink),
					"--shape", shape, "--count", "250", "--batch", "7", "--workers", "3", "--seed", "5",
					"--models", "model-a,model-b", "--n-prob", "0.3", "--greedy-prob", "0.3", "--profile", "mixed",
					"--resource", "service.instance.id=gen-a", "--slo-ttft", "150ms")
				code, summary, stderr := runMain(t, args...)
				require.Equal(t, ExitOK, code, stderr)

				o := mustParse(t, args...)
				want := expectedSpans(t, o)
				require.Len(t, want, int(summary.Total.Spans))
				assert.Equal(t, int64(250), summary.Total.Requests)
				assert.Equal(t, summary.Total.Spans, summary.Total.ExportedSpans)
				assert.Zero(t, summary.Total.FailedSpans)
				assert.Equal(t, int(summary.Total.Spans), sink.SpanCount())
				wantRequests := (len(want) + 6) / 7
				assert.Equal(t, wantRequests, sink.Requests(), "spans are packed %d per export request", 7)

				got := sink.Traces()
				seen := 0
				for _, rs := range got.ResourceSpans().All() {
					res := rs.Resource().Attributes()
					instance, _ := res.Get("service.instance.id")
					assert.Equal(t, "gen-a", instance.Str())
					service, _ := res.Get("service.name")
					assert.Equal(t, "vllm-server", service.Str())
					require.Equal(t, 1, rs.ScopeSpans().Len())
					assert.Equal(t, o.Shape.ScopeName(), rs.ScopeSpans().At(0).Scope().Name())
					for _, span := range rs.ScopeSpans().At(0).Spans().All() {
						exp, ok := want[span.SpanID()]
						require.True(t, ok, "unexpected span %s", span.SpanID())
						assert.Equal(t, exp.TraceID(), span.TraceID())
						assert.Equal(t, exp.Attributes().AsRaw(), span.Attributes().AsRaw())
						assert.Equal(t, exp.EndTimestamp()-exp.StartTimestamp(), span.EndTimestamp()-span.StartTimestamp())
						assert.Equal(t, ptrace.SpanKindServer, span.Kind())
						assert.NotZero(t, span.StartTimestamp())
						delete(want, span.SpanID())
						seen++
					}
				}
				assert.Empty(t, want, "every generated span arrived")
				assert.Equal(t, int(summary.Total.Spans), seen)

				var perModelSpans int64
				for _, m := range summary.Models {
					perModelSpans += m.ExportedSpans
				}
				assert.Equal(t, summary.Total.ExportedSpans, perModelSpans)
			})
		}
	}
}

func TestExportFailureExitsNonZero(t *testing.T) {
	for _, protocol := range []otlpsend.Protocol{otlpsend.ProtocolGRPC, otlpsend.ProtocolHTTP} {
		t.Run(string(protocol), func(t *testing.T) {
			sink := &otlpsink.Sink{Fail: true}
			args := append(startReceiver(t, protocol, sink), "--count", "30", "--batch", "10", "--workers", "2", "--seed", "1", "--n-prob", "0")
			code, summary, stderr := runMain(t, args...)
			assert.Equal(t, ExitFailed, code)
			assert.Equal(t, summary.Total.Spans, summary.Total.FailedSpans)
			assert.Zero(t, summary.Total.ExportedSpans)
			assert.Equal(t, int64(3), summary.FailedExports)
			require.NotEmpty(t, summary.ExportErrors)
			assert.Contains(t, stderr, "were not delivered")
		})
	}
}

func TestPartialSuccessCountsRejectedSpans(t *testing.T) {
	sink := &otlpsink.Sink{RejectSpans: 2}
	args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--count", "20", "--batch", "10", "--workers", "1", "--seed", "1", "--n-prob", "0")
	code, summary, _ := runMain(t, args...)
	assert.Equal(t, ExitFailed, code)
	assert.Equal(t, int64(4), summary.Total.FailedSpans)
	assert.Equal(t, int64(16), summary.Total.ExportedSpans)
	assert.Zero(t, summary.FailedExports)
	assert.Contains(t, summary.ExportErrors[0], "rejected 2 of 10 spans")
}

func TestDryRunSummary(t *testing.T) {
	args := []string{"--dry-run", "--seed", "77", "--count", "400", "--models", "a,b,c", "--n-prob", "0.2", "--shape", "v1",
		"--slo-ttft", "200ms", "--slo-tpot", "40ms", "--slo-e2e", "5s", "--slo-queue", "20ms", "--workers", "3", "--batch", "13"}
	code, s1, _ := runMain(t, args...)
	require.Equal(t, ExitOK, code)
	_, s2, _ := runMain(t, args...)

	assert.True(t, s1.DryRun)
	assert.Equal(t, uint64(77), s1.Seed)
	assert.Equal(t, int64(400), s1.Total.Requests)
	assert.Greater(t, s1.Total.Spans, int64(400), "n=2 requests fan out")
	assert.Zero(t, s1.Total.ExportedSpans)
	assert.Zero(t, s1.Total.FailedSpans)
	assert.Equal(t, s1.Total, s2.Total, "the same seed gives the same expectations whatever the worker interleaving")
	assert.Equal(t, s1.Models, s2.Models)
	assert.Equal(t, map[string]float64{"ttft": 0.2, "tpot": 0.04, "e2e": 5, "queue": 0.02}, s1.SLOThresholdsSeconds)

	// Per-model reports add up to the total.
	var sum workload.Report
	for _, name := range []string{"a", "b", "c"} {
		m, ok := s1.Models[name]
		require.True(t, ok)
		sum.Requests += m.Requests
		sum.Spans += m.Spans
		sum.TTFT.SumUS += m.TTFT.SumUS
		sum.TPOT.Count += m.TPOT.Count
		sum.PromptTokens += m.PromptTokens
		for _, o := range []string{"ttft", "tpot", "e2e", "queue", "all"} {
			assert.Contains(t, m.SLO, o)
		}
	}
	assert.Equal(t, s1.Total.Requests, sum.Requests)
	assert.Equal(t, s1.Total.Spans, sum.Spans)
	assert.Equal(t, s1.Total.TTFT.SumUS, sum.TTFT.SumUS)
	assert.Equal(t, s1.Total.TPOT.Count, sum.TPOT.Count)
	assert.Equal(t, s1.Total.PromptTokens, sum.PromptTokens)
	assert.Less(t, s1.Total.TPOT.Count, s1.Total.Spans, "some outputs have one token")
	all := s1.Total.SLO["all"]
	assert.Equal(t, s1.Total.Spans, all.Met+all.Violated)
}

func TestDryRunDurationAtRate(t *testing.T) {
	code, s, _ := runMain(t, "--dry-run", "--rate", "150", "--duration", "2s", "--seed", "3")
	require.Equal(t, ExitOK, code)
	assert.Equal(t, int64(300), s.Total.Requests, "rate × duration requests")
}

func TestTextSummary(t *testing.T) {
	var stdout bytes.Buffer
	code := Main(context.Background(), []string{"--dry-run", "--seed", "9", "--count", "50", "--models", "m1,m2", "--slo-ttft", "100ms"}, &stdout, io.Discard)
	require.Equal(t, ExitOK, code)
	out := stdout.String()
	for _, want := range []string{"shape=v1 profile=chat seed=9 (dry run, nothing sent)", "50 requests", "m1", "m2", "ttft", "tpot", "inference", "objective", "all"} {
		assert.Contains(t, out, want)
	}
}

// pacedRun starts a paced run on a fake clock, returning the job channel the workers would read.
func pacedRun(t *testing.T, clock *clockwork.FakeClock, o Options) (<-chan *job, <-chan bool) {
	gen, err := workload.NewGenerator(workload.Config{Shape: o.Shape, Profile: o.Profile, Models: o.Models, Seed: o.Seed, NProb: o.NProb})
	require.NoError(t, err)
	jobs := make(chan *job, 100)
	done := make(chan bool, 1)
	d := dispatcher{opts: o, gen: gen, jobs: jobs, free: make(chan *job), clock: clock, start: clock.Now()}
	go func() {
		done <- d.run(context.Background())
		close(jobs)
	}()
	return jobs, done
}

func TestPacingReleasesEachBatchWhenItsLastRequestIsDue(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// wantBatches lists, per release, the index of the batch's last request and the batch size.
		wantLast []int64
		wantSize []int
	}{
		{
			name:     "full batches at 100 requests/s",
			args:     []string{"--rate", "100", "--batch", "10", "--count", "45"},
			wantLast: []int64{9, 19, 29, 39, 44},
			wantSize: []int{10, 10, 10, 10, 5},
		},
		{
			name:     "low rate sends each request within the linger time",
			args:     []string{"--rate", "2", "--batch", "100", "--count", "3"},
			wantLast: []int64{0, 1, 2},
			wantSize: []int{1, 1, 1},
		},
		{
			name:     "linger cuts batches at 20 requests/s",
			args:     []string{"--rate", "20", "--batch", "100", "--count", "12"},
			wantLast: []int64{4, 9, 11},
			wantSize: []int{5, 5, 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := mustParse(t, append(tt.args, "--n-prob", "0", "--seed", "1")...)
			clock := clockwork.NewFakeClockAt(time.Unix(1_785_000_000, 0))
			start := clock.Now()
			jobs, done := pacedRun(t, clock, o)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for k, last := range tt.wantLast {
				due := start.Add(time.Duration(float64(last) / o.Rate * float64(time.Second)))
				if due.After(clock.Now()) {
					require.NoError(t, clock.BlockUntilContext(ctx, 1), "dispatcher waits on its timer")
					select {
					case j := <-jobs:
						t.Fatalf("batch of %d released before it was due", len(j.recs))
					default:
					}
					clock.Advance(due.Sub(clock.Now()))
				}
				select {
				case j := <-jobs:
					require.Len(t, j.recs, tt.wantSize[k], "batch %d", k)
					assert.Equal(t, due.UnixNano(), j.recs[len(j.recs)-1].ReleasedUnixNano, "spans start at their request's scheduled arrival")
				case <-ctx.Done():
					t.Fatalf("batch %d not released", k)
				}
			}
			assert.True(t, <-done)
			_, open := <-jobs
			assert.False(t, open, "no more batches")
		})
	}
}

func TestPacingDropsDebtBeyondOneSecond(t *testing.T) {
	o := mustParse(t, "--rate", "10", "--batch", "1", "--count", "100", "--n-prob", "0", "--seed", "1")
	clock := clockwork.NewFakeClockAt(time.Unix(1_785_000_000, 0))
	gen, err := workload.NewGenerator(workload.Config{Models: o.Models, Seed: 1})
	require.NoError(t, err)
	jobs := make(chan *job) // unbuffered: the test plays a stalled worker
	d := dispatcher{opts: o, gen: gen, jobs: jobs, free: make(chan *job), clock: clock, start: clock.Now()}
	runCtx, stop := context.WithCancel(context.Background())
	defer stop() // ends the dispatcher, which is left waiting on its timer
	go d.run(runCtx)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	<-jobs // request 0 is due at once
	require.NoError(t, clock.BlockUntilContext(ctx, 1), "request 1 waits for its time")
	clock.Advance(5 * time.Second) // the worker stalled: requests 1..50 are overdue
	// Request 1 (its timer fired), then the debt is cut to one second: requests 2..11 go out at once and
	// request 12 is due exactly now.
	for range 12 {
		select {
		case <-jobs:
		case <-ctx.Done():
			t.Fatal("catch-up batch not released")
		}
	}
	require.NoError(t, clock.BlockUntilContext(ctx, 1), "after one second of catch-up the pacer waits again")
	select {
	case <-jobs:
		t.Fatal("released more than one second's worth of overdue requests")
	default:
	}
}
func TestInterruptStopsCleanly(t *testing.T) {
	sink := &otlpsink.Sink{}
	args := append(startReceiver(t, otlpsend.ProtocolGRPC, sink), "--rate", "200", "--count", "100000", "--batch", "5", "--seed", "1")
	o := mustParse(t, args...)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for sink.SpanCount() < 20 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel() // what SIGINT does through signal.NotifyContext
	}()
	res, err := Run(ctx, o)
	require.NoError(t, err)
	assert.True(t, res.Interrupted)
	assert.False(t, res.Failed())
	assert.Less(t, res.Tally.Total.Requests, int64(100000))
	assert.Equal(t, int64(sink.SpanCount()), res.Tally.Total.Spans, "the summary covers exactly what was delivered")
	assert.Equal(t, res.Tally.Total.Spans, res.Tally.Total.ExportedSpans)
	s := NewSummary(res)
	var buf strings.Builder
	require.NoError(t, s.WriteText(&buf))
	assert.Contains(t, buf.String(), "interrupted")
}
