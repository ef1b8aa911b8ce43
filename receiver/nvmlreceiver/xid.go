//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"
)

const (
	// xidWaitTimeout bounds how long Shutdown waits for the event goroutine.
	xidWaitTimeout = 250 * time.Millisecond
	// xidErrorPause keeps a failing nvmlEventSetWait from spinning.
	xidErrorPause = time.Second
	// maxXIDCodesPerGPU bounds the series per GPU; XID codes are small integers, but EventData is not checked
	// by the driver for us.
	maxXIDCodesPerGPU = 64
)

// xidWatcher counts XID critical-error events per GPU and XID code. NVML delivers events only to a waiting
// event set and never replays them, so it waits in its own goroutine from attach to Shutdown.
type xidWatcher struct {
	logger  *zap.Logger
	set     nvml.EventSet
	devices []*gpuDevice // registered GPUs; only uuid, handle and logFields are read here
	start   pcommon.Timestamp

	mu      sync.Mutex
	counts  []map[uint64]int64 // parallel to devices
	dropped int64              // events for codes over maxXIDCodesPerGPU or from unknown devices
	onDrop  func()             // also counts a dropped event in the receiver's telemetry; may be nil
	logged  map[xidKey]struct{}

	stop chan struct{}
	done chan struct{}
}

type xidKey struct {
	slot int
	xid  uint64
}

func newXIDWatcher(logger *zap.Logger, set nvml.EventSet, devices []*gpuDevice, start pcommon.Timestamp) *xidWatcher {
	w := &xidWatcher{
		logger:  logger,
		set:     set,
		devices: devices,
		start:   start,
		counts:  make([]map[uint64]int64, len(devices)),
		logged:  map[xidKey]struct{}{},
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	for i := range w.counts {
		w.counts[i] = map[uint64]int64{}
	}
	return w
}

func (w *xidWatcher) run() {
	defer close(w.done)
	waitMs := uint32(xidWaitTimeout / time.Millisecond)
	failures := map[nvml.Return]bool{}
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		data, ret := w.set.Wait(waitMs)
		switch ret {
		case nvml.SUCCESS:
			w.record(data)
		case nvml.ERROR_TIMEOUT:
		default:
			if !failures[ret] {
				failures[ret] = true
				w.logger.Warn("waiting for XID events failed; retrying every second", zap.String("nvml_error", returnName(ret)))
			}
			select {
			case <-w.stop:
				return
			case <-time.After(xidErrorPause):
			}
		}
	}
}

func (w *xidWatcher) record(data nvml.EventData) {
	if data.EventType&nvml.EventTypeXidCriticalError == 0 {
		return
	}
	slot := -1
	for i, d := range w.devices {
		if d.handle == data.Device {
			slot = i
			break
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if slot < 0 {
		w.drop()
		return
	}
	counts := w.counts[slot]
	if _, known := counts[data.EventData]; !known && len(counts) >= maxXIDCodesPerGPU {
		w.drop()
		return
	}
	counts[data.EventData]++
	key := xidKey{slot: slot, xid: data.EventData}
	if _, done := w.logged[key]; !done {
		w.logged[key] = struct{}{}
		w.logger.Warn("GPU reported an XID error (later events with this code are only counted)",
			w.devices[slot].logFields(zap.Uint64("nvidia.gpu.xid", data.EventData))...)
	}
}

func (w *xidWatcher) drop() {
	w.dropped++
	if w.onDrop != nil {
		w.onDrop()
	}
}

// snapshot calls fn for every (GPU, XID code, count), GPUs in registration order and codes ascending.
func (w *xidWatcher) snapshot(fn func(d *gpuDevice, xid uint64, count int64)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, counts := range w.counts {
		for _, xid := range slices.Sorted(maps.Keys(counts)) {
			fn(w.devices[i], xid, counts[xid])
		}
	}
}

// close stops the goroutine, waits for it, then frees the event set; NVML Shutdown may follow.
func (w *xidWatcher) close() nvml.Return {
	close(w.stop)
	<-w.done
	return w.set.Free()
}
