//go:build cgo

package nvmlreceiver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zapcore"
)

func TestStartWithoutUsableNVML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// breakLib makes NVML unusable; it returns what makes it usable again.
		breakLib func(f *fakeNVML) (repair func())
		wantLog  []string
		// initOK: nvmlInit itself succeeded, so the receiver must have called nvmlShutdown to balance it.
		initOK bool
	}{
		{
			name:     "library missing",
			breakLib: failInit(nvml.ERROR_LIBRARY_NOT_FOUND),
			wantLog:  []string{"nvmlInit: ERROR_LIBRARY_NOT_FOUND"},
		},
		{
			name:     "driver not loaded",
			breakLib: failInit(nvml.ERROR_DRIVER_NOT_LOADED),
			wantLog:  []string{"nvmlInit: ERROR_DRIVER_NOT_LOADED"},
		},
		{
			name:     "no permission",
			breakLib: failInit(nvml.ERROR_NO_PERMISSION),
			wantLog:  []string{"nvmlInit: ERROR_NO_PERMISSION"},
		},
		{
			name: "no GPUs",
			breakLib: func(f *fakeNVML) func() {
				f.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
				return func() { f.DeviceGetCountFunc = func() (int, nvml.Return) { return len(f.Devices), nvml.SUCCESS } }
			},
			wantLog: []string{"NVML found no GPUs"},
			initOK:  true,
		},
		{
			name: "device count fails",
			breakLib: func(f *fakeNVML) func() {
				count := f.DeviceGetCountFunc
				f.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
				return func() { f.DeviceGetCountFunc = count }
			},
			wantLog: []string{"nvmlDeviceGetCount: ERROR_UNKNOWN"},
			initOK:  true,
		},
		{
			name: "no GPU can be opened",
			breakLib: func(f *fakeNVML) func() {
				handle := f.DeviceGetHandleByIndexFunc
				f.DeviceGetHandleByIndexFunc = func(int) (nvml.Device, nvml.Return) { return nil, nvml.ERROR_NO_PERMISSION }
				return func() { f.DeviceGetHandleByIndexFunc = handle }
			},
			wantLog: []string{"none of the 2 GPUs NVML sees could be opened"},
			initOK:  true,
		},
		{
			name: "library lacks a required symbol",
			breakLib: func(f *fakeNVML) func() {
				f.missing["nvmlDeviceGetUUID"] = true
				return func() { delete(f.missing, "nvmlDeviceGetUUID") }
			},
			wantLog: []string{"the NVML library lacks nvmlDeviceGetUUID"},
			initOK:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeNVML(t, 2)
			repair := tt.breakLib(f)
			s := newTestScraper(t, f, f.procRoot, nil)
			s.mustStart(t)
			assert.Empty(t, f.InitCalls(), "Start does not wait for NVML")

			assert.Zero(t, s.mustScrape(t).DataPointCount())
			warnings := logsContaining(s.logs, zapcore.WarnLevel, append([]string{"NVML is not usable"}, tt.wantLog...)...)
			require.Len(t, warnings, 1, "one clear warning naming the NVML error")
			assert.Zero(t, s.mustScrape(t).DataPointCount())
			require.Len(t, f.InitCalls(), 1, "no retry before the back-off elapses")
			if tt.initOK {
				assert.Len(t, f.ShutdownCalls(), 1, "a successful nvmlInit is balanced")
			} else {
				assert.Empty(t, f.ShutdownCalls())
				assert.Empty(t, f.DeviceGetCountCalls(), "no NVML call without a successful Init")
				assert.Empty(t, f.LookupSymbolCalls())
			}

			// Retry after 10 s, then 20 s; the same failure is not warned about again.
			s.clock.Advance(initialInitBackoff)
			assert.Zero(t, s.mustScrape(t).DataPointCount())
			require.Len(t, f.InitCalls(), 2)
			s.clock.Advance(initialInitBackoff)
			s.mustScrape(t)
			require.Len(t, f.InitCalls(), 2, "the back-off doubled")
			assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "NVML is not usable"), 1)

			// The driver appears: the next attempt attaches and metrics flow.
			repair()
			s.clock.Advance(initialInitBackoff)
			md := s.mustScrape(t)
			require.Len(t, f.InitCalls(), 3)
			assert.Len(t, metricPoints(md, "hw.power"), 2)
			assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, "NVML attached"), 1)

			shutdownsBefore := len(f.ShutdownCalls())
			require.NoError(t, s.shutdown(context.Background()))
			assert.Len(t, f.ShutdownCalls(), shutdownsBefore+1)
		})
	}
}

func failInit(ret nvml.Return) func(f *fakeNVML) func() {
	return func(f *fakeNVML) func() {
		f.InitFunc = func() nvml.Return { return ret }
		return func() { f.InitFunc = func() nvml.Return { return nvml.SUCCESS } }
	}
}

func TestInitBackoffIsCapped(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	failInit(nvml.ERROR_DRIVER_NOT_LOADED)(f)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t) // first attempt
	require.Len(t, f.InitCalls(), 1)
	var gaps []time.Duration
	last := s.clock.Now()
	for range 120 { // 20 minutes
		s.clock.Advance(10 * time.Second)
		before := len(f.InitCalls())
		s.mustScrape(t)
		if len(f.InitCalls()) > before {
			gaps = append(gaps, s.clock.Now().Sub(last))
			last = s.clock.Now()
		}
	}
	assert.Equal(t, []time.Duration{
		10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second,
		5 * time.Minute,
	}, gaps[:6])
	assert.Equal(t, 5*time.Minute, gaps[len(gaps)-1])
}

func TestShutdownCallsNVMLShutdownOnce(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 2)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	require.NoError(t, s.shutdown(context.Background()))
	require.NoError(t, s.shutdown(context.Background()))
	assert.Len(t, f.InitCalls(), 1)
	assert.Len(t, f.ShutdownCalls(), 1)
	// Nothing touches NVML after Shutdown.
	assert.Zero(t, s.mustScrape(t).DataPointCount())
	s.clock.Advance(time.Hour)
	s.mustScrape(t)
	assert.Len(t, f.InitCalls(), 1)
	require.NoError(t, s.start(context.Background(), nil))
	assert.Len(t, f.InitCalls(), 1)
}

func TestShutdownWithoutStart(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	s := newTestScraper(t, f, f.procRoot, nil)
	require.NoError(t, s.shutdown(context.Background()))
	assert.Empty(t, f.InitCalls())
	assert.Empty(t, f.ShutdownCalls())
}

func TestXIDEventsAreCountedPerGPUAndCode(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 3)
	f.gpus[2].fail["RegisterEvents"] = nvml.ERROR_NOT_SUPPORTED
	var sets []*mock.EventSet
	create := f.EventSetCreateFunc
	f.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		set, ret := create()
		sets = append(sets, set.(*mock.EventSet))
		return set, ret
	}
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	require.Len(t, sets, 1)

	xid := func(gpu int, code uint64) nvml.EventData {
		return nvml.EventData{Device: f.gpus[gpu].dev, EventType: nvml.EventTypeXidCriticalError, EventData: code}
	}
	f.events <- xid(0, 79)
	f.events <- xid(0, 79)
	f.events <- xid(1, 13)
	f.events <- nvml.EventData{Device: f.gpus[1].dev, EventType: nvml.EventTypeSingleBitEccError, EventData: 1}
	f.events <- nvml.EventData{Device: &mock.Device{}, EventType: nvml.EventTypeXidCriticalError, EventData: 31}
	f.events <- xid(1, 48) // the last one: once it is counted, all earlier ones are
	require.Eventually(t, func() bool {
		return len(metricPoints(s.mustScrape(t), "nvidia.gpu.xid.errors")) == 3
	}, 5*time.Second, 5*time.Millisecond)

	md := s.mustScrape(t)
	attached := s.attachedAt
	for _, w := range []struct {
		gpu   int
		code  int64
		count float64
	}{{0, 79, 2}, {1, 13, 1}, {1, 48, 1}} {
		p := onePoint(t, md, "nvidia.gpu.xid.errors", gpuAttrs(w.gpu, "nvidia.gpu.xid", w.code))
		assert.InDelta(t, w.count, p.value, 0)
		assert.Equal(t, attached, p.start)
		assert.Equal(t, "nvidia"+string(rune('0'+w.gpu)), p.attrs["hw.name"])
	}
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "XID", testUUID(0), "79"), 1, "logged once per GPU and code")
	assert.Len(t, logsContaining(s.logs, zapcore.InfoLevel, "cannot register the GPU for XID events", testUUID(2)), 1)

	// A GPU that is lost keeps reporting the XIDs that explain it.
	f.gpus[0].fail["GetUtilizationRates"] = nvml.ERROR_GPU_IS_LOST
	f.gpus[0].fail["GetSamples"] = nvml.ERROR_GPU_IS_LOST
	s.scrapeFailing(t, 1, "ERROR_GPU_IS_LOST")
	md = s.mustScrape(t)
	assert.Empty(t, findPoints(md, "hw.power", gpuAttrs(0)))
	assert.InDelta(t, 2, onePoint(t, md, "nvidia.gpu.xid.errors", gpuAttrs(0, "nvidia.gpu.xid", int64(79))).value, 0)

	require.NoError(t, s.shutdown(context.Background()))
	assert.Len(t, sets[0].FreeCalls(), 1, "the event set is freed")
	assert.Len(t, f.ShutdownCalls(), 1)
}

func TestXIDSeriesAreBounded(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	go func() {
		for code := range uint64(maxXIDCodesPerGPU + 10) {
			f.events <- nvml.EventData{Device: f.gpus[0].dev, EventType: nvml.EventTypeXidCriticalError, EventData: code}
		}
	}()
	require.Eventually(t, func() bool {
		s.xid.mu.Lock()
		defer s.xid.mu.Unlock()
		return s.xid.dropped == 10
	}, 5*time.Second, 5*time.Millisecond)
	assert.Len(t, metricPoints(s.mustScrape(t), "nvidia.gpu.xid.errors"), maxXIDCodesPerGPU)
}

func TestXIDWaitErrorsDoNotBlockShutdown(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	waited := make(chan struct{}, 1)
	f.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(uint32) (nvml.EventData, nvml.Return) {
				select {
				case waited <- struct{}{}:
				default:
				}
				return nvml.EventData{}, nvml.ERROR_UNKNOWN
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	s := newTestScraper(t, f, f.procRoot, nil)
	s.mustStart(t)
	s.mustScrape(t)
	<-waited
	require.NoError(t, s.shutdown(context.Background())) // returns although the goroutine is pausing
	assert.Len(t, logsContaining(s.logs, zapcore.WarnLevel, "waiting for XID events failed", "ERROR_UNKNOWN"), 1)
}

func TestXIDDisabledStartsNoWatcher(t *testing.T) {
	t.Parallel()
	f := newFakeNVML(t, 1)
	f.EventSetCreateFunc = nil // would panic
	s := newTestScraper(t, f, f.procRoot, func(cfg *Config) { cfg.Metrics.NvidiaGpuXidErrors.Enabled = false })
	s.mustStart(t)
	assert.NotZero(t, s.mustScrape(t).DataPointCount())
	assert.Nil(t, s.xid)
}

func TestNVMLErrorMatchesReturn(t *testing.T) {
	t.Parallel()
	err := error(&nvmlError{call: "nvmlInit", ret: nvml.ERROR_DRIVER_NOT_LOADED})
	assert.True(t, errors.Is(err, nvml.ERROR_DRIVER_NOT_LOADED))
	assert.False(t, errors.Is(err, nvml.ERROR_LIBRARY_NOT_FOUND))
	assert.Equal(t, "nvmlInit: ERROR_DRIVER_NOT_LOADED", err.Error())
	assert.Equal(t, "NVML return code 12345", returnName(nvml.Return(12345)))
}
