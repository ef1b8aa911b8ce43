//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/jonboulle/clockwork"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/scraper/scrapererror"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

const (
	nvidiaVendor = "NVIDIA"

	// Init retries start after initialInitBackoff and double up to maxInitBackoff.
	initialInitBackoff = 10 * time.Second
	maxInitBackoff     = 5 * time.Minute

	// rescanInterval is how often NVML is asked for GPUs that appeared after attach (driver reload,
	// device-plugin restart, hot-plug).
	rescanInterval = time.Minute
)

var errNoGPUs = errors.New("NVML found no GPUs")

// nvmlScraper owns the NVML session: Init at the first scrape (retried with back-off until it works), one
// scrape per collection interval, Shutdown exactly once.
type nvmlScraper struct {
	cfg      *Config
	logger   *zap.Logger
	lib      nvml.Interface
	mb       *metadata.MetricsBuilder
	clock    clockwork.Clock
	selector *deviceSelector
	procs    *processNames

	telemetry    *metadata.TelemetryBuilder
	failureAttrs map[warnKey]metric.MeasurementOption
	pods         *podWatcher // nil when pod attribution is off

	mu sync.Mutex // serialises start, scrape and shutdown

	started  bool
	closed   bool
	attached bool // nvmlInit succeeded and nvmlShutdown is owed

	syms          symbolTable
	driverVersion string
	devices       []*gpuDevice      // physical GPUs, NVML index order
	attachedAt    pcommon.Timestamp // start time of counters read from NVML
	gaugeStart    pcommon.Timestamp // start time of every other point
	xid           *xidWatcher
	warnedDevices bool // unmatched `devices` entries were reported
	gpmAvailable  bool // GPM metrics are wanted and the library has the GPM functions
	nextRescan    time.Time

	nextAttach  time.Time
	backoff     time.Duration
	lastFailure string // the attach failure already warned about

	// errs collects the NVML failures of the scrape in progress; the scrape returns them as a partial scrape
	// error, which the collector's scraper telemetry counts (otelcol_scraper_errored_metric_points).
	errs scrapererror.ScrapeErrors
}

func newNVMLScraper(cfg *Config, set receiver.Settings, lib nvml.Interface) (*nvmlScraper, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("nvml receiver telemetry: %w", err)
	}
	s := &nvmlScraper{
		cfg:          cfg,
		logger:       set.Logger,
		lib:          lib,
		mb:           metadata.NewMetricsBuilder(cfg.MetricsBuilderConfig, set),
		clock:        clockwork.NewRealClock(),
		selector:     newDeviceSelector(cfg.Devices),
		procs:        newProcessNames("/proc"),
		backoff:      initialInitBackoff,
		telemetry:    tb,
		failureAttrs: map[warnKey]metric.MeasurementOption{},
	}
	if cfg.Kubernetes.PodResourcesSocket != "" {
		s.pods = newPodWatcher(set.Logger, cfg.Kubernetes, tb)
	}
	return s, nil
}

func (s *nvmlScraper) start(context.Context, component.Host) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed {
		return nil
	}
	s.started = true
	s.gaugeStart = pcommon.NewTimestampFromTime(s.clock.Now())
	s.mb.Reset(metadata.WithStartTime(s.gaugeStart))
	if s.pods != nil {
		s.pods.start()
	}
	// NVML is first initialised by the first scrape, on the scraper's goroutine: nvmlInit can take seconds
	// (or hang on a broken GPU), and the collector's start must not wait for it.
	return nil
}

// tryAttach initialises NVML and discovers GPUs; on failure it schedules the next attempt. now is the time of
// the scrape that tries, so the counters' start time is not after that scrape's timestamp.
func (s *nvmlScraper) tryAttach(now time.Time) {
	err := s.attach(now)
	if err == nil {
		s.backoff = initialInitBackoff
		s.lastFailure = ""
		return
	}
	s.nextAttach = now.Add(s.backoff)
	retryIn := s.backoff
	s.backoff = min(2*s.backoff, maxInitBackoff)
	if msg := err.Error(); msg != s.lastFailure {
		s.lastFailure = msg
		s.logger.Warn("NVML is not usable; the nvml receiver emits no metrics until it is. Init is retried with back-off",
			zap.Error(err), zap.Duration("next_retry_in", retryIn))
		return
	}
	s.logger.Debug("NVML still not usable", zap.Error(err), zap.Duration("next_retry_in", retryIn))
}

func (s *nvmlScraper) attach(now time.Time) error {
	if ret := s.lib.Init(); ret != nvml.SUCCESS {
		return &nvmlError{call: "nvmlInit", ret: ret}
	}
	// From here on NVML is initialised: every failure path must hand it back.
	syms := probeSymbols(s.lib.Extensions())
	if missing := syms.missingRequired(); missing != "" {
		s.releaseNVML()
		return fmt.Errorf("the NVML library lacks %s", missing)
	}
	driver := ""
	if syms.has(fnSystemGetDriverVersion) {
		if v, ret := s.lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
			driver = v
		}
	}
	devices, err := s.discover(&syms)
	if err != nil {
		s.releaseNVML()
		return err
	}
	s.attached = true
	s.syms = syms
	s.driverVersion = driver
	s.devices = devices
	s.attachedAt = pcommon.NewTimestampFromTime(now)
	s.warnedDevices = false
	s.nextRescan = now.Add(rescanInterval)
	s.telemetry.ReceiverNvmlGpusAttached.Add(context.Background(), int64(countSelected(devices)))
	s.logger.Info("NVML attached", zap.String("hw.driver_version", driver), zap.Int("gpus", len(devices)))
	if s.gpmWanted() {
		s.gpmAvailable = syms.hasAll(gpmFuncs...)
		if !s.gpmAvailable {
			s.logger.Info("this NVML library has no GPU performance monitoring (GPM, R520 and later); SM, tensor and DRAM activity are not reported")
		}
	}
	if s.cfg.Metrics.NvidiaGpuXidErrors.Enabled {
		s.xid = s.watchXID()
	}
	return nil
}

func (s *nvmlScraper) releaseNVML() {
	if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
		s.logger.Debug("nvmlShutdown failed", zap.String("nvml_error", returnName(ret)))
	}
}

func countSelected(devices []*gpuDevice) int {
	n := 0
	for _, d := range devices {
		if d.selected {
			n++
		}
	}
	return n
}

// discover enumerates the GPUs the devices setting selects.
func (s *nvmlScraper) discover(syms *symbolTable) ([]*gpuDevice, error) {
	count, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, &nvmlError{call: "nvmlDeviceGetCount", ret: ret}
	}
	if count == 0 {
		return nil, errNoGPUs
	}
	devices := s.openDevices(syms, count, nil)
	if len(devices) == 0 {
		if len(s.cfg.Devices) > 0 {
			return nil, fmt.Errorf("none of the %d GPUs NVML sees matches devices %v", count, s.cfg.Devices)
		}
		return nil, fmt.Errorf("none of the %d GPUs NVML sees could be opened", count)
	}
	return devices, nil
}

// rescan adds GPUs NVML lists now but did not at attach (or at the last rescan). GPUs already known keep their
// state; a lost one keeps reporting hw.status failed.
func (s *nvmlScraper) rescan(now time.Time) {
	s.nextRescan = now.Add(rescanInterval)
	count, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		s.countFailure("nvmlDeviceGetCount", ret)
		// no metric is lost: the known GPUs are read as usual
		s.errs.AddPartial(0, fmt.Errorf("looking for new GPUs: %w", &nvmlError{call: "nvmlDeviceGetCount", ret: ret}))
		return
	}
	known := make(map[string]bool, len(s.devices))
	for _, d := range s.devices {
		known[d.uuid] = true
	}
	added := s.openDevices(&s.syms, count, known)
	if len(added) == 0 {
		return
	}
	for _, d := range added {
		s.logger.Info("new GPU found; it is reported from now on", d.logFields()...)
	}
	s.devices = append(s.devices, added...)
	s.telemetry.ReceiverNvmlGpusAttached.Add(context.Background(), int64(countSelected(added)))
}

// openDevices opens the GPUs with index < count whose UUID is not in known.
// During a rescan (known != nil) GPUs that cannot be opened are logged at debug level: attach warned already.
func (s *nvmlScraper) openDevices(syms *symbolTable, count int, known map[string]bool) []*gpuDevice {
	warn := s.logger.Warn
	if known != nil {
		warn = s.logger.Debug
	}
	migProbe := s.selector.anyMIG && syms.has(fnDeviceGetMigMode) && syms.has(fnDeviceGetMaxMigDeviceCount) &&
		syms.has(fnDeviceGetMigDeviceHandleByIndex)
	var devices []*gpuDevice
	for i := range count {
		h, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			warn("skipping a GPU NVML cannot open", zap.Int("nvidia.gpu.index", i),
				zap.String("call", "nvmlDeviceGetHandleByIndex"), zap.String("nvml_error", returnName(ret)))
			continue
		}
		uuid, ret := h.GetUUID()
		if ret != nvml.SUCCESS || uuid == "" {
			warn("skipping a GPU without a UUID", zap.Int("nvidia.gpu.index", i),
				zap.String("call", "nvmlDeviceGetUUID"), zap.String("nvml_error", returnName(ret)))
			continue
		}
		if known[uuid] {
			continue
		}
		selected := s.selector.gpuSelected(i, uuid)
		if !selected && !migProbe {
			continue
		}
		d := &gpuDevice{handle: h, uuid: uuid, index: int64(i), selected: selected, name: "gpu" + strconv.Itoa(i)}
		if syms.has(fnDeviceGetMinorNumber) {
			if minor, ret := h.GetMinorNumber(); ret == nvml.SUCCESS {
				d.name = "nvidia" + strconv.Itoa(minor)
			}
		}
		if syms.has(fnDeviceGetName) {
			if model, ret := h.GetName(); ret == nvml.SUCCESS {
				d.model = model
			}
		}
		devices = append(devices, d)
	}
	return devices
}

// watchXID registers the selected GPUs for XID events and starts the goroutine that counts them.
func (s *nvmlScraper) watchXID() *xidWatcher {
	for _, fn := range []nvmlFunc{fnEventSetCreate, fnDeviceRegisterEvents, fnEventSetWait, fnEventSetFree} {
		if !s.syms.has(fn) {
			s.logger.Info("XID events are not available from this NVML library; nvidia.gpu.xid.errors is not reported",
				zap.Strings("missing", nvmlSymbols[fn]))
			return nil
		}
	}
	set, ret := s.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		s.logger.Warn("cannot create an NVML event set; nvidia.gpu.xid.errors is not reported",
			zap.String("nvml_error", returnName(ret)))
		return nil
	}
	var registered []*gpuDevice
	for _, d := range s.devices {
		if !d.selected {
			continue
		}
		if s.syms.has(fnDeviceGetSupportedEventTypes) {
			types, ret := d.handle.GetSupportedEventTypes()
			if ret == nvml.SUCCESS && types&nvml.EventTypeXidCriticalError == 0 {
				s.logger.Info("GPU does not report XID events", d.logFields()...)
				continue
			}
		}
		if ret := d.handle.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
			s.logger.Info("cannot register the GPU for XID events", d.logFields(zap.String("nvml_error", returnName(ret)))...)
			continue
		}
		registered = append(registered, d)
	}
	if len(registered) == 0 {
		set.Free()
		return nil
	}
	w := newXIDWatcher(s.logger, set, registered, s.attachedAt)
	w.onDrop = func() { s.telemetry.ReceiverNvmlXidEventsDropped.Add(context.Background(), 1) }
	go w.run()
	return w
}

// scrape reads every GPU. The NVML failures met on the way (a value skipped for this scrape, a GPU found lost,
// GPUs left unread at the deadline) make a scrapererror.PartialScrapeError beside the metrics that were read;
// the answers that say a device cannot provide a value (not supported, no permission) are not failures, that
// value is simply not reported for the device. Before NVML is attached the scrape is empty and not an error:
// the attach back-off warns about it.
func (s *nvmlScraper) scrape(ctx context.Context) (pmetric.Metrics, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return pmetric.NewMetrics(), nil
	}
	s.errs = scrapererror.ScrapeErrors{}
	now := s.clock.Now()
	if !s.attached {
		if now.Before(s.nextAttach) {
			return pmetric.NewMetrics(), nil
		}
		s.tryAttach(now)
		if !s.attached {
			return pmetric.NewMetrics(), nil
		}
	}
	if !now.Before(s.nextRescan) {
		s.rescan(now)
	}
	ts := pcommon.NewTimestampFromTime(now)
	pods := s.pods.mapping(ctx)
	for i, d := range s.devices {
		if ctx.Err() != nil {
			s.logger.Warn("scrape timed out; emitting the GPUs read so far", zap.Error(ctx.Err()))
			// each GPU left unread counts as one failure: how many of its metrics would have come is not known
			s.errs.AddPartial(len(s.devices)-i, fmt.Errorf("scrape timed out with %d of %d GPUs unread: %w",
				len(s.devices)-i, len(s.devices), ctx.Err()))
			break
		}
		s.scrapeGPU(d, ts, pods)
	}
	if s.xid != nil {
		s.recordXID(ts)
	}
	s.procs.endScrape()
	if !s.warnedDevices {
		s.warnedDevices = true
		if missing := s.selector.unmatched(); len(missing) > 0 {
			s.logger.Warn("some devices entries match no GPU or MIG instance", zap.Strings("devices", missing))
		}
	}
	return s.mb.Emit(), s.errs.Combine()
}

func (s *nvmlScraper) shutdown(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.pods != nil {
		s.pods.stop()
	}
	if s.xid != nil {
		if ret := s.xid.close(); ret != nvml.SUCCESS {
			s.logger.Debug("nvmlEventSetFree failed", zap.String("nvml_error", returnName(ret)))
		}
		s.xid = nil
	}
	if s.attached {
		s.attached = false
		for _, d := range s.devices {
			s.freeGPM(d)
			for _, mig := range d.migOrder {
				s.freeGPM(mig)
			}
		}
		s.telemetry.ReceiverNvmlGpusAttached.Add(context.Background(), -int64(countSelected(s.devices)))
		s.releaseNVML()
	}
	s.telemetry.Shutdown()
	return nil
}
