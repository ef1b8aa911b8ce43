package send

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/otlpsink"
)

// BenchmarkSend measures the whole sender (generation, OTLP encoding, transport) against an in-process
// receiver that discards what it gets; the receiver shares the CPUs, so this is a lower bound.
func BenchmarkSend(b *testing.B) {
	for _, protocol := range []otlpsend.Protocol{otlpsend.ProtocolGRPC, otlpsend.ProtocolHTTP} {
		for _, workers := range []int{1, 4} {
			b.Run(string(protocol)+"/workers="+strconv.Itoa(workers), func(b *testing.B) {
				sink := &otlpsink.Sink{Discard: true}
				var endpoint string
				if protocol == otlpsend.ProtocolGRPC {
					endpoint = otlpsink.StartGRPC(b, sink)
				} else {
					endpoint = otlpsink.StartHTTP(b, sink)
				}
				o, err := ParseFlags([]string{"--otlp-protocol", string(protocol), "--otlp-endpoint", endpoint, "--count", "20000",
					"--seed", "1", "--batch", "100", "--workers", strconv.Itoa(workers)}, nil)
				require.NoError(b, err)
				var spans int64
				b.ReportAllocs()
				for b.Loop() {
					res, err := Run(context.Background(), o)
					require.NoError(b, err)
					require.False(b, res.Failed())
					spans += res.Tally.Total.Spans
				}
				b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			})
		}
	}
}
