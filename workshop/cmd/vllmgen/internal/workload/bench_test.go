package workload

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// BenchmarkGenerate measures drawing request values (the sender's single-threaded part).
func BenchmarkGenerate(b *testing.B) {
	g, err := NewGenerator(Config{Shape: ShapeV1, Profile: ProfileMixed, Models: testModels, Seed: 1, NProb: 0.05, GreedyProb: 0.1})
	require.NoError(b, err)
	recs := make([]Record, 0, MaxN)
	var spans int
	b.ReportAllocs()
	for b.Loop() {
		recs = g.Next(recs[:0])
		spans += len(recs)
	}
	b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkBuildAndMarshal measures what each worker does per export: OTLP data for a 100-span batch and its
// protobuf encoding.
func BenchmarkBuildAndMarshal(b *testing.B) {
	for _, shape := range []Shape{ShapeV1, ShapeV0Detailed} {
		b.Run(shape.String(), func(b *testing.B) {
			recs := generate(b, Config{Shape: shape, Profile: ProfileChat, Models: testModels, Seed: 1, NProb: 0.05}, 100)
			recs = recs[:100]
			builder := NewSpanBuilder(shape, testModels, ResourceConfig{ServiceName: "vllm-server"}, AnchorArrival)
			var spans, bytes int
			b.ReportAllocs()
			for b.Loop() {
				body, err := ptraceotlp.NewExportRequestFromTraces(builder.Build(recs)).MarshalProto()
				if err != nil {
					b.Fatal(err)
				}
				spans += len(recs)
				bytes += len(body)
			}
			b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(bytes)/float64(spans), "bytes/span")
		})
	}
}
