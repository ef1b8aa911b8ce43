//go:build cgo

package nvmlreceiver

import (
	"context"
	"runtime"
	"testing"

	"go.uber.org/zap"
	v1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/podresources"
)

// BenchmarkScrape8GPUs measures one scrape of a mocked DGX H100 (8 GPUs, every telemetry call answered, GPM
// supported). Allocations include the mock's own bookkeeping (it records every call) and its fresh sample
// slices. with_pods gives every GPU to its own pod (the mapping comes from the background refresh, which the
// first scrape, outside the loop, waits for). ns/GPU and allocs/GPU are per GPU per scrape.
func BenchmarkScrape8GPUs(b *testing.B) {
	for _, bc := range []struct {
		name   string
		config func(*Config)
		pods   bool
	}{
		{"default_metrics", nil, false},
		{"all_metrics", enableAllMetrics, false},
		{"all_metrics_with_pods", enableAllMetrics, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const gpus = 8
			f := newFakeNVML(b, gpus)
			s := newTestScraper(b, f, f.procRoot, func(cfg *Config) {
				cfg.Kubernetes.PodResourcesSocket = ""
				if bc.config != nil {
					bc.config(cfg)
				}
			})
			if bc.pods {
				resp := &v1.ListPodResourcesResponse{}
				for i := range gpus {
					resp.PodResources = append(resp.PodResources, &v1.PodResources{
						Namespace: "llm", Name: "vllm-" + string(rune('a'+i)), Containers: []*v1.ContainerResources{{
							Name: "vllm", Devices: []*v1.ContainerDevices{{ResourceName: "nvidia.com/gpu", DeviceIds: []string{testUUID(i)}}},
						}},
					})
				}
				s.pods = newPodWatcher(zap.NewNop(), KubernetesConfig{RefreshInterval: minPodRefreshInterval}, nil)
				s.pods.list = func(context.Context) (*podresources.Snapshot, error) { return podresources.Build(resp), nil }
			}
			s.mustStart(b)
			ctx := context.Background()
			if _, err := s.scrape(ctx); err != nil { // the first scrape takes the first GPM sample
				b.Fatal(err)
			}
			points := 0
			var before, after runtime.MemStats
			b.ReportAllocs()
			runtime.ReadMemStats(&before)
			for b.Loop() {
				md, err := s.scrape(ctx)
				if err != nil {
					b.Fatal(err)
				}
				points = md.DataPointCount()
			}
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(points), "points/scrape")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/gpus, "ns/GPU")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N)/gpus, "allocs/GPU")
		})
	}
}
