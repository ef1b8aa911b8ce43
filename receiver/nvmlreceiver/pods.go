//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/podresources"
)

// podOwner is a container holding devices of one GPU or MIG instance.
type podOwner = podresources.Allocation

// podMapping is one published pod-resources snapshot; gen changes with every refresh that changed anything.
type podMapping struct {
	gen  uint64
	snap *podresources.Snapshot
}

// podWatcher refreshes the GPU-to-pod mapping in its own goroutine, so a slow or hung kubelet never delays a
// scrape. A failed refresh keeps the last mapping for at most staleAfter refresh intervals, then drops it: pod
// attributes that may be wrong are worse than none.
type podWatcher struct {
	logger    *zap.Logger
	socket    string
	interval  time.Duration
	telemetry *metadata.TelemetryBuilder

	current atomic.Pointer[podMapping]

	cancel context.CancelFunc
	done   chan struct{}
	// firstDone is closed when the first refresh has finished (either way): the first scrape waits for it, so
	// a GPU that belongs to a pod does not first appear without its pod labels (two series in Prometheus).
	firstDone chan struct{}

	// owned by the goroutine
	gen      uint64
	failures int
	lastErr  string
	list     func(ctx context.Context) (*podresources.Snapshot, error)
}

const (
	podStaleAfter  = 3
	podListTimeout = 5 * time.Second
)

func newPodWatcher(logger *zap.Logger, cfg KubernetesConfig, tb *metadata.TelemetryBuilder) *podWatcher {
	w := &podWatcher{logger: logger, socket: cfg.PodResourcesSocket, interval: cfg.RefreshInterval, telemetry: tb,
		firstDone: make(chan struct{})}
	w.list = w.listKubelet
	return w
}

func (w *podWatcher) listKubelet(ctx context.Context) (*podresources.Snapshot, error) {
	if _, err := os.Stat(w.socket); err != nil {
		return nil, err
	}
	c, err := podresources.NewClient(w.socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	return podresources.Build(resp), nil
}

func (w *podWatcher) start() {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		t := time.NewTicker(w.interval)
		defer t.Stop()
		first := true
		for {
			w.refresh(ctx)
			if first {
				first = false
				close(w.firstDone)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (w *podWatcher) stop() {
	if w.cancel != nil {
		w.cancel()
		<-w.done
	}
}

// mapping returns the latest published mapping (nil before the first successful refresh). Until the first
// refresh has finished it waits for it, at most until ctx ends; the refresh itself is bounded by podListTimeout.
func (w *podWatcher) mapping(ctx context.Context) *podMapping {
	if w == nil {
		return nil
	}
	select {
	case <-w.firstDone:
	case <-ctx.Done():
	}
	return w.current.Load()
}

func (w *podWatcher) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, min(w.interval, podListTimeout))
	defer cancel()
	snap, err := w.list(ctx)
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return // shutting down
	}
	if err != nil {
		w.failed(err)
		return
	}
	if snap.Invalid > 0 {
		w.count("bad_response")
		w.logger.Debug("pod-resources answer had unusable entries; they are ignored", zap.Int("entries", snap.Invalid))
	}
	if w.failures > 0 || w.lastErr != "" {
		w.logger.Info("pod-resources API reachable; GPU metrics carry pod attributes again", zap.String("socket", w.socket))
	}
	w.failures, w.lastErr = 0, ""
	w.gen++
	w.current.Store(&podMapping{gen: w.gen, snap: snap})
}

func (w *podWatcher) failed(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		w.count("no_socket")
	} else {
		w.count("unreachable")
	}
	w.failures++
	if w.failures == podStaleAfter && w.current.Load() != nil {
		w.gen++
		w.current.Store(&podMapping{gen: w.gen}) // drop the stale mapping
	}
	msg := err.Error()
	if msg == w.lastErr {
		w.logger.Debug("pod-resources API still not reachable", zap.Error(err))
		return
	}
	w.lastErr = msg
	if errors.Is(err, fs.ErrNotExist) {
		w.logger.Info("no kubelet pod-resources socket (not a Kubernetes node, or the socket is not mounted); GPU metrics carry no pod attributes. Retried every refresh_interval",
			zap.String("socket", w.socket), zap.Duration("refresh_interval", w.interval))
		return
	}
	w.logger.Warn("cannot list pod resources from the kubelet; GPU metrics carry no pod attributes until it answers. Retried every refresh_interval",
		zap.String("socket", w.socket), zap.Error(err))
}

func (w *podWatcher) count(reason string) {
	if w.telemetry != nil {
		w.telemetry.ReceiverNvmlPodResourcesRefreshFailures.Add(context.Background(), 1,
			metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason))))
	}
}

// applyPods rebuilds d's optional attributes when the mapping changed: pod attributes only while exactly one
// container holds the device (see README, "Several pods on one GPU").
func (s *nvmlScraper) applyPods(d *gpuDevice, pm *podMapping) {
	gen := uint64(0)
	var snap *podresources.Snapshot
	if pm != nil {
		gen, snap = pm.gen, pm.snap
	}
	if d.opts != nil && d.podsGen == gen {
		return
	}
	d.podsGen = gen
	d.owners = snap.Allocations(d.uuid, d.name)
	opts := make([]metadata.MetricAttributeOption, 0, len(d.parentOpts)+3)
	opts = append(opts, d.parentOpts...)
	if len(d.owners) == 1 {
		o := d.owners[0]
		opts = append(opts, metadata.WithK8sPodNameMetricAttribute(o.Pod), metadata.WithK8sNamespaceNameMetricAttribute(o.Namespace),
			metadata.WithK8sContainerNameMetricAttribute(o.Container))
	}
	d.opts = opts
}

// recordAllocations emits nvidia.gpu.allocation for every container holding devices of d.
func (s *nvmlScraper) recordAllocations(d *gpuDevice, ts pcommon.Timestamp) {
	if !s.cfg.Metrics.NvidiaGpuAllocation.Enabled {
		return
	}
	for _, o := range d.owners {
		s.mb.RecordNvidiaGpuAllocationDataPoint(ts, int64(o.Devices), d.uuid, d.name, nvidiaVendor, d.model, s.driverVersion, d.index,
			append(d.parentOpts[:len(d.parentOpts):len(d.parentOpts)], metadata.WithK8sPodNameMetricAttribute(o.Pod),
				metadata.WithK8sNamespaceNameMetricAttribute(o.Namespace), metadata.WithK8sContainerNameMetricAttribute(o.Container))...)
	}
}
