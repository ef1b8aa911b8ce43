//go:build cgo

package nvmlreceiver

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	v1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/podresources"
)

// fakeKubelet serves the pod-resources API on a unix socket with a scripted answer.
type fakeKubelet struct {
	v1.UnimplementedPodResourcesListerServer
	mu    sync.Mutex
	pods  []*v1.PodResources
	fail  bool
	lists int
}

func (k *fakeKubelet) List(context.Context, *v1.ListPodResourcesRequest) (*v1.ListPodResourcesResponse, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lists++
	if k.fail {
		return nil, context.DeadlineExceeded
	}
	return &v1.ListPodResourcesResponse{PodResources: k.pods}, nil
}

func (k *fakeKubelet) set(pods ...*v1.PodResources) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pods = pods
}

func (k *fakeKubelet) listCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lists
}

func startFakeKubelet(t *testing.T) (*fakeKubelet, string) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "kubelet.sock")
	lis, err := net.Listen("unix", socket)
	require.NoError(t, err)
	srv := grpc.NewServer()
	k := &fakeKubelet{}
	v1.RegisterPodResourcesListerServer(srv, k)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return k, socket
}

func pod(ns, name, container, resource string, ids ...string) *v1.PodResources {
	return &v1.PodResources{Namespace: ns, Name: name, Containers: []*v1.ContainerResources{{
		Name: container, Devices: []*v1.ContainerDevices{{ResourceName: resource, DeviceIds: ids}},
	}}}
}

// scrapeWithPods scrapes until pred holds for a batch (the mapping is refreshed in the background).
func scrapeWithPods(t *testing.T, s *testScraper, pred func(pmetric.Metrics) bool) pmetric.Metrics {
	t.Helper()
	var md pmetric.Metrics
	require.Eventually(t, func() bool {
		md = s.mustScrape(t)
		return pred(md)
	}, 10*time.Second, 20*time.Millisecond)
	return md
}

func TestPodAttribution(t *testing.T) {
	t.Parallel()
	kubelet, socket := startFakeKubelet(t)
	f := newFakeNVML(t, 3)
	f.enableMIG(2, newFakeMIG(2, 0, 10*gib, 9*gib))
	kubelet.set(
		// GPU 0: one vLLM container, whole GPU.
		pod("llm", "vllm-llama-0", "vllm", "nvidia.com/gpu", testUUID(0)),
		// GPU 1: time-sliced between two pods (the device plugin's replica IDs).
		pod("llm", "vllm-small-0", "vllm", "nvidia.com/gpu.shared", testUUID(1)+"::0", testUUID(1)+"::1"),
		pod("batch", "embed-0", "embedder", "nvidia.com/gpu.shared", testUUID(1)+"::2"),
		// GPU 2: a MIG instance.
		pod("llm", "vllm-tiny-0", "vllm", "nvidia.com/mig-1g.10gb", testMIGUUID(2, 0)),
		// not a GPU
		pod("llm", "vllm-llama-0", "sidecar", "example.com/fpga", "fpga0"),
	)
	s := newTestScraper(t, f, f.procRoot, func(cfg *Config) {
		cfg.Kubernetes.PodResourcesSocket = socket
		cfg.Kubernetes.RefreshInterval = 50 * time.Millisecond
	})
	s.mustStart(t)
	// The first scrape waits for the first refresh: a GPU never appears without its pod first.
	md := s.mustScrape(t)
	require.Len(t, metricPoints(md, "nvidia.gpu.allocation"), 4)

	exclusive := map[string]any{"k8s.pod.name": "vllm-llama-0", "k8s.namespace.name": "llm", "k8s.container.name": "vllm"}
	p := onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(0)})
	for k, v := range exclusive {
		assert.Equal(t, v, p.attrs[k], k)
	}
	procPoint := onePoint(t, md, "nvidia.gpu.process.memory.usage", map[string]any{"hw.id": testUUID(0), "process.pid": int64(f.gpus[0].pid(0))})
	assert.Equal(t, "vllm-llama-0", procPoint.attrs["k8s.pod.name"], "per-process points carry the pod too")

	// Time-sliced: no pod attributes on the device metrics (they would copy one GPU's energy to each pod),
	// but the allocation metric names both containers and how many replicas each holds.
	shared := onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(1)})
	assert.NotContains(t, shared.attrs, "k8s.pod.name")
	assert.InDelta(t, 2, onePoint(t, md, "nvidia.gpu.allocation", map[string]any{"hw.id": testUUID(1), "k8s.pod.name": "vllm-small-0"}).value, 0)
	assert.InDelta(t, 1, onePoint(t, md, "nvidia.gpu.allocation", map[string]any{"hw.id": testUUID(1), "k8s.pod.name": "embed-0", "k8s.namespace.name": "batch", "k8s.container.name": "embedder"}).value, 0)

	// MIG: the instance carries its pod, the parent GPU none.
	mig := onePoint(t, md, "hw.gpu.memory.usage", map[string]any{"hw.id": testMIGUUID(2, 0)})
	assert.Equal(t, "vllm-tiny-0", mig.attrs["k8s.pod.name"])
	assert.Equal(t, testUUID(2), mig.attrs["hw.parent"])
	assert.NotContains(t, onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(2)}).attrs, "k8s.pod.name")

	// The pod releases GPU 0: its labels go at the next refresh.
	kubelet.set(pod("batch", "embed-0", "embedder", "nvidia.com/gpu.shared", testUUID(1)+"::2"))
	md = scrapeWithPods(t, s, func(md pmetric.Metrics) bool {
		_, labelled := onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(0)}).attrs["k8s.pod.name"]
		return !labelled
	})
	assert.Len(t, metricPoints(md, "nvidia.gpu.allocation"), 1)
	// GPU 1 now has one holder: it is labelled.
	assert.Equal(t, "embed-0", onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(1)}).attrs["k8s.pod.name"])
}

func TestPodResourcesUnavailableNeverFailsAScrape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		socket func(t *testing.T) string
		level  zapcore.Level
		msg    string
	}{
		{"no socket (not Kubernetes)", func(t *testing.T) string { return filepath.Join(t.TempDir(), "absent.sock") },
			zapcore.InfoLevel, "no kubelet pod-resources socket"},
		{"kubelet errors", func(t *testing.T) string {
			k, socket := startFakeKubelet(t)
			k.mu.Lock()
			k.fail = true
			k.mu.Unlock()
			return socket
		}, zapcore.WarnLevel, "cannot list pod resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNVML(t, 1)
			s := newTestScraper(t, f, f.procRoot, func(cfg *Config) {
				cfg.Kubernetes.PodResourcesSocket = tc.socket(t)
				cfg.Kubernetes.RefreshInterval = 20 * time.Millisecond
			})
			s.mustStart(t)
			require.Eventually(t, func() bool {
				return len(logsContaining(s.logs, zapcore.DebugLevel, "pod-resources API still not reachable")) >= 2
			}, 10*time.Second, 10*time.Millisecond, "retried")
			md := s.mustScrape(t)
			assert.NotContains(t, onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(0)}).attrs, "k8s.pod.name")
			assert.Empty(t, metricPoints(md, "nvidia.gpu.allocation"))
			assert.Len(t, s.logs.FilterMessageSnippet(tc.msg).FilterLevelExact(tc.level).All(), 1, "logged once")
		})
	}
}

func TestPodResourcesBadEntriesAreIgnored(t *testing.T) {
	t.Parallel()
	kubelet, socket := startFakeKubelet(t)
	f := newFakeNVML(t, 2)
	kubelet.set(
		pod("llm", "", "vllm", "nvidia.com/gpu", testUUID(0)), // no pod name
		pod("llm", "ok-0", "vllm", "nvidia.com/gpu", "", testUUID(1)),
		nil,
	)
	s := newTestScraper(t, f, f.procRoot, func(cfg *Config) {
		cfg.Kubernetes.PodResourcesSocket = socket
		cfg.Kubernetes.RefreshInterval = 50 * time.Millisecond
	})
	s.mustStart(t)
	md := scrapeWithPods(t, s, func(md pmetric.Metrics) bool { return len(metricPoints(md, "nvidia.gpu.allocation")) == 1 })
	assert.Equal(t, "ok-0", onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(1)}).attrs["k8s.pod.name"])
	assert.NotContains(t, onePoint(t, md, "hw.energy", map[string]any{"hw.id": testUUID(0)}).attrs, "k8s.pod.name")
	assert.Positive(t, kubelet.listCount())
}

func TestPodMappingKeptForThreeFailedRefreshes(t *testing.T) {
	t.Parallel()
	resp := &v1.ListPodResourcesResponse{PodResources: []*v1.PodResources{pod("llm", "vllm-0", "vllm", "nvidia.com/gpu", testUUID(0))}}
	var failing bool
	w := newPodWatcher(zap.NewNop(), KubernetesConfig{RefreshInterval: time.Second}, nil)
	w.list = func(context.Context) (*podresources.Snapshot, error) {
		if failing {
			return nil, errors.New("connection refused")
		}
		return podresources.Build(resp), nil
	}
	owners := func() []podOwner {
		m := w.current.Load()
		if m == nil {
			return nil
		}
		return m.snap.Allocations(testUUID(0), "nvidia0")
	}
	ctx := context.Background()
	w.refresh(ctx)
	require.Len(t, owners(), 1)
	failing = true
	for i := range podStaleAfter - 1 {
		w.refresh(ctx)
		assert.Len(t, owners(), 1, "kept after %d failed refreshes", i+1)
	}
	w.refresh(ctx)
	assert.Empty(t, owners(), "dropped after %d failed refreshes", podStaleAfter)
	failing = false
	w.refresh(ctx)
	assert.Len(t, owners(), 1, "back with the kubelet")
}
