//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"

	"github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/metadata"
)

// feature is one thing a device can lack. When NVML answers ERROR_NOT_SUPPORTED (or an equivalent) for it,
// the receiver stops asking that device for it and says so once.
type feature uint8

const (
	featMemoryV2 feature = iota
	featMemory
	featSamplesGeneral
	featSamplesEncoder
	featSamplesDecoder
	featSamplesMemory
	featUtilizationRates
	featEncoderUtilization
	featDecoderUtilization
	featPower
	featPowerLimit
	featEnergy
	featTemperatureGPU
	featFieldValues
	featTemperatureMemory
	featClockGraphics
	featClockSM
	featClockMemory
	featClockEvents
	featSupportedClockEvents
	featPCIeCounters
	featPCIeThroughput
	featECC
	featRemappedRows
	featProcesses
	featProcessUtilization
	featMIG
	featPCIeReplays
	featGPM
	numFeatures
)

type featureInfo struct {
	name string
	// quiet features have a fallback or are optional extras: their absence is logged at debug level only.
	quiet bool
}

var features = [numFeatures]featureInfo{
	featMemoryV2:             {name: "memory info v2 (falls back to v1)", quiet: true},
	featMemory:               {name: "memory info"},
	featSamplesGeneral:       {name: "GPU utilization samples (falls back to the instantaneous rate)", quiet: true},
	featSamplesEncoder:       {name: "encoder utilization samples (falls back to the instantaneous rate)", quiet: true},
	featSamplesDecoder:       {name: "decoder utilization samples (falls back to the instantaneous rate)", quiet: true},
	featSamplesMemory:        {name: "memory bandwidth samples (falls back to the instantaneous rate)", quiet: true},
	featUtilizationRates:     {name: "utilization rates"},
	featEncoderUtilization:   {name: "encoder utilization"},
	featDecoderUtilization:   {name: "decoder utilization"},
	featPower:                {name: "power usage"},
	featPowerLimit:           {name: "enforced power limit"},
	featEnergy:               {name: "total energy consumption"},
	featTemperatureGPU:       {name: "GPU temperature"},
	featFieldValues:          {name: "field values (memory temperature, PCIe byte counters)"},
	featTemperatureMemory:    {name: "memory temperature"},
	featClockGraphics:        {name: "graphics clock"},
	featClockSM:              {name: "SM clock"},
	featClockMemory:          {name: "memory clock"},
	featClockEvents:          {name: "clock event reasons"},
	featSupportedClockEvents: {name: "supported clock event reasons (all reasons are reported)", quiet: true},
	featPCIeCounters:         {name: "PCIe byte counters (falls back to integrating PCIe throughput)", quiet: true},
	featPCIeThroughput:       {name: "PCIe throughput"},
	featECC:                  {name: "ECC error counts"},
	featRemappedRows:         {name: "remapped rows"},
	featProcesses:            {name: "compute processes"},
	featProcessUtilization:   {name: "process utilization"},
	featMIG:                  {name: "MIG mode", quiet: true},
	featPCIeReplays:          {name: "PCIe replay counter"},
	featGPM:                  {name: "GPU performance monitoring (GPM: SM, tensor and DRAM activity; Hopper and later)"},
}

// utilKind is one of the utilization series that can come from NVML's sample buffers.
type utilKind int

const (
	utilGeneral utilKind = iota
	utilEncoder
	utilDecoder
	utilMemoryBandwidth
	numUtilKinds
)

var (
	utilSamplingType = [numUtilKinds]nvml.SamplingType{
		utilGeneral:         nvml.GPU_UTILIZATION_SAMPLES,
		utilEncoder:         nvml.ENC_UTILIZATION_SAMPLES,
		utilDecoder:         nvml.DEC_UTILIZATION_SAMPLES,
		utilMemoryBandwidth: nvml.MEMORY_UTILIZATION_SAMPLES,
	}
	utilSampleFeature = [numUtilKinds]feature{
		utilGeneral:         featSamplesGeneral,
		utilEncoder:         featSamplesEncoder,
		utilDecoder:         featSamplesDecoder,
		utilMemoryBandwidth: featSamplesMemory,
	}
)

type warnKey struct {
	call string
	ret  nvml.Return
}

// gpuDevice is a physical GPU or a MIG instance and everything the receiver remembers about it.
// Only the scrape goroutine touches it (under nvmlScraper.mu).
type gpuDevice struct {
	handle nvml.Device

	uuid  string
	name  string // hw.name
	model string // hw.model
	index int64  // NVML index; the parent's index for MIG instances

	// MIG instances only.
	parent        *gpuDevice
	parentOpts    []metadata.MetricAttributeOption // carries hw.parent; nil for full GPUs
	gpuInstanceID int                              // -1 when NVML did not say

	// opts are the optional attributes of every point: parentOpts plus the pod attributes while exactly one
	// container holds the device. Rebuilt when the pod mapping changes.
	opts    []metadata.MetricAttributeOption
	podsGen uint64
	owners  []podOwner

	// selected is false for a GPU kept only because some of its MIG instances are listed in devices.
	selected bool

	lost             bool
	unsupported      [numFeatures]bool
	warned           map[warnKey]struct{}
	warnedProcessCap bool

	lastSampleTime      [numUtilKinds]uint64 // NVML timestamp (µs) of the newest sample already used
	processUtilLastSeen uint64

	supportedClockEvents         uint64
	supportedClockEventsResolved bool

	fieldBuf    [len(counterFields) + 3]nvml.FieldValue
	fieldOff    [len(counterFields)]bool // counter fields NVML answered NOT_SUPPORTED for
	counterVals [len(counterFields)]cumulative[uint64]
	gpm         gpmState

	energy         cumulative[float64]
	eccCorrected   cumulative[uint64]
	eccUncorrected cumulative[uint64]
	pcieCounter    [2]cumulative[uint64] // indexed by pcieTransmit / pcieReceive
	pcieEstimate   [2]pcieEstimate
	remapped       [2]cumulative[uint64] // correctable, uncorrectable
	pcieReplays    cumulative[uint64]

	migEnabled bool
	migs       map[string]*gpuDevice // by MIG UUID
	migOrder   []*gpuDevice          // emission order: MIG index
}

const (
	pcieTransmit = 0
	pcieReceive  = 1
)

func (d *gpuDevice) supports(f feature) bool { return !d.lost && !d.unsupported[f] }

// physical returns the GPU that holds d (d itself for a full GPU).
func (d *gpuDevice) physical() *gpuDevice {
	if d.parent != nil {
		return d.parent
	}
	return d
}

func (d *gpuDevice) logFields(extra ...zap.Field) []zap.Field {
	fields := []zap.Field{zap.String("hw.id", d.uuid), zap.String("hw.name", d.name), zap.Int64("nvidia.gpu.index", d.index)}
	return append(fields, extra...)
}

// usable classifies an NVML return for feature f of device d and reports whether the value can be used.
// Unsupported features are switched off for the device, a lost GPU is marked failed, and any other error is
// logged once per call and code (the next scrape asks again). Every failure feeds the failed-calls counter;
// the skipped value and the lost GPU are also failures of the scrape (scrapeFailed).
func (s *nvmlScraper) usable(d *gpuDevice, f feature, call string, ret nvml.Return) bool {
	ok, transient := s.classify(d, f, call, ret)
	if transient {
		s.scrapeFailed(d, call, ret)
	}
	return ok
}

// classify is usable without recording a transient failure as a failure of the scrape: for a call whose
// value has a fallback, the caller records it (scrapeFailed) only when the fallback gives no value either.
func (s *nvmlScraper) classify(d *gpuDevice, f feature, call string, ret nvml.Return) (ok, transient bool) {
	if ret == nvml.SUCCESS {
		return true, false
	}
	s.countFailure(call, ret)
	switch ret {
	case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND, nvml.ERROR_NO_PERMISSION,
		nvml.ERROR_ARGUMENT_VERSION_MISMATCH, nvml.ERROR_DEPRECATED:
		s.disable(d, f, call, ret)
	case nvml.ERROR_GPU_IS_LOST, nvml.ERROR_RESET_REQUIRED:
		s.markLost(d, call, ret)
	default:
		s.warnOnce(d, call, ret)
		return false, true
	}
	return false, false
}

// scrapeFailed records a failure of the scrape in progress: one per failed NVML call of a device (a call
// feeds one metric, or a few read together), so the collector counts it as an errored metric point.
func (s *nvmlScraper) scrapeFailed(d *gpuDevice, call string, ret nvml.Return) {
	s.errs.AddPartial(1, fmt.Errorf("%s (%s): %w", d.name, d.uuid, &nvmlError{call: call, ret: ret}))
}

func (s *nvmlScraper) disable(d *gpuDevice, f feature, call string, ret nvml.Return) {
	if d.unsupported[f] {
		return
	}
	d.unsupported[f] = true
	log := s.logger.Info
	if features[f].quiet {
		log = s.logger.Debug
	}
	log("NVML cannot provide this on the device; it is no longer asked for it",
		d.logFields(zap.String("what", features[f].name), zap.String("call", call), zap.String("nvml_error", returnName(ret)))...)
}

func (s *nvmlScraper) warnOnce(d *gpuDevice, call string, ret nvml.Return) {
	key := warnKey{call: call, ret: ret}
	if d.warned == nil {
		d.warned = map[warnKey]struct{}{}
	}
	if _, done := d.warned[key]; done {
		return
	}
	d.warned[key] = struct{}{}
	s.logger.Warn("NVML call failed; the value is skipped for this scrape (further failures of this kind are not logged)",
		d.logFields(zap.String("call", call), zap.String("nvml_error", returnName(ret)))...)
}

// markLost stops all queries to a GPU that NVML reports lost; its MIG instances go with it.
func (s *nvmlScraper) markLost(d *gpuDevice, call string, ret nvml.Return) {
	gpu := d.physical()
	if gpu.lost {
		return
	}
	gpu.lost = true
	for _, m := range gpu.migOrder {
		m.lost = true
	}
	s.scrapeFailed(d, call, ret) // the scrape that finds the loss; hw.status then reports the GPU failed
	s.logger.Warn("GPU is no longer usable; its metrics stop and hw.status reports it failed. The other GPUs keep reporting",
		gpu.logFields(zap.String("call", call), zap.String("nvml_error", returnName(ret)))...)
}

// cumulative follows a counter NVML keeps (energy, ECC, PCIe bytes) and gives each series a valid start time:
// the time the receiver attached, or, after the counter went backwards (driver reload, GPU reset, wrap), the
// time of the last point before the drop.
type cumulative[T uint64 | float64] struct {
	seen   bool
	start  pcommon.Timestamp
	last   T
	lastTS pcommon.Timestamp
}

func (c *cumulative[T]) observe(v T, ts, attached pcommon.Timestamp) pcommon.Timestamp {
	switch {
	case !c.seen:
		c.seen = true
		c.start = attached
	case v < c.last:
		c.start = c.lastTS
	}
	c.last, c.lastTS = v, ts
	return c.start
}

// pcieEstimate integrates PCIe throughput (KiB/s) over time where NVML has no byte counters.
type pcieEstimate struct {
	started bool
	start   pcommon.Timestamp
	lastTS  pcommon.Timestamp
	bytes   float64
}

func (e *pcieEstimate) add(kibPerSecond uint32, ts pcommon.Timestamp) {
	if !e.started {
		e.started, e.start, e.lastTS = true, ts, ts
		return
	}
	if ts > e.lastTS {
		e.bytes += float64(kibPerSecond) * 1024 * float64(ts-e.lastTS) / 1e9
	}
	e.lastTS = ts
}
