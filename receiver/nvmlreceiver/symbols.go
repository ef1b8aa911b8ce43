//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"strings"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// nvmlFunc is a go-nvml method this receiver calls after a successful nvmlInit. Calling a C symbol the
// loaded driver lacks kills the process (the dynamic loader cannot resolve it, and recover() cannot catch
// that), so every one of them is looked up in the library before its first use.
type nvmlFunc int

const (
	fnSystemGetDriverVersion nvmlFunc = iota
	fnDeviceGetCount
	fnDeviceGetHandleByIndex
	fnDeviceGetUUID
	fnDeviceGetName
	fnDeviceGetMinorNumber
	fnDeviceGetMemoryInfoV2
	fnDeviceGetMemoryInfo
	fnDeviceGetSamples
	fnDeviceGetUtilizationRates
	fnDeviceGetEncoderUtilization
	fnDeviceGetDecoderUtilization
	fnDeviceGetPowerUsage
	fnDeviceGetEnforcedPowerLimit
	fnDeviceGetTotalEnergyConsumption
	fnDeviceGetTemperature
	fnDeviceGetFieldValues
	fnDeviceGetClockInfo
	fnDeviceGetCurrentClocksEventReasons
	fnDeviceGetCurrentClocksThrottleReasons
	fnDeviceGetSupportedClocksEventReasons
	fnDeviceGetSupportedClocksThrottleReasons
	fnDeviceGetPcieThroughput
	fnDeviceGetTotalEccErrors
	fnDeviceGetRemappedRows
	fnDeviceGetComputeRunningProcesses
	fnDeviceGetProcessUtilization
	fnDeviceGetMigMode
	fnDeviceGetMaxMigDeviceCount
	fnDeviceGetMigDeviceHandleByIndex
	fnDeviceGetGpuInstanceID
	fnDeviceGetComputeInstanceID
	fnDeviceGetSupportedEventTypes
	fnDeviceRegisterEvents
	fnEventSetCreate
	fnEventSetWait
	fnEventSetFree
	fnDeviceGetPcieReplayCounter
	fnGpmQueryDeviceSupport
	fnGpmSampleAlloc
	fnGpmSampleFree
	fnGpmSampleGet
	fnGpmMigSampleGet
	fnGpmMetricsGet
	numNVMLFuncs
)

// nvmlSymbols lists, for every nvmlFunc, the C symbols go-nvml may call for it. go-nvml binds the newest
// versioned symbol the library exports (e.g. nvmlDeviceGetCount_v2, else nvmlDeviceGetCount), so the method
// is safe when any one of them exists. Keep README.md's "NVML calls" section in step with this table.
var nvmlSymbols = [numNVMLFuncs][]string{
	fnSystemGetDriverVersion:                  {"nvmlSystemGetDriverVersion"},
	fnDeviceGetCount:                          {"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"},
	fnDeviceGetHandleByIndex:                  {"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"},
	fnDeviceGetUUID:                           {"nvmlDeviceGetUUID"},
	fnDeviceGetName:                           {"nvmlDeviceGetName"},
	fnDeviceGetMinorNumber:                    {"nvmlDeviceGetMinorNumber"},
	fnDeviceGetMemoryInfoV2:                   {"nvmlDeviceGetMemoryInfo_v2"},
	fnDeviceGetMemoryInfo:                     {"nvmlDeviceGetMemoryInfo"},
	fnDeviceGetSamples:                        {"nvmlDeviceGetSamples"},
	fnDeviceGetUtilizationRates:               {"nvmlDeviceGetUtilizationRates"},
	fnDeviceGetEncoderUtilization:             {"nvmlDeviceGetEncoderUtilization"},
	fnDeviceGetDecoderUtilization:             {"nvmlDeviceGetDecoderUtilization"},
	fnDeviceGetPowerUsage:                     {"nvmlDeviceGetPowerUsage"},
	fnDeviceGetEnforcedPowerLimit:             {"nvmlDeviceGetEnforcedPowerLimit"},
	fnDeviceGetTotalEnergyConsumption:         {"nvmlDeviceGetTotalEnergyConsumption"},
	fnDeviceGetTemperature:                    {"nvmlDeviceGetTemperature"},
	fnDeviceGetFieldValues:                    {"nvmlDeviceGetFieldValues"},
	fnDeviceGetClockInfo:                      {"nvmlDeviceGetClockInfo"},
	fnDeviceGetCurrentClocksEventReasons:      {"nvmlDeviceGetCurrentClocksEventReasons"},
	fnDeviceGetCurrentClocksThrottleReasons:   {"nvmlDeviceGetCurrentClocksThrottleReasons"},
	fnDeviceGetSupportedClocksEventReasons:    {"nvmlDeviceGetSupportedClocksEventReasons"},
	fnDeviceGetSupportedClocksThrottleReasons: {"nvmlDeviceGetSupportedClocksThrottleReasons"},
	fnDeviceGetPcieThroughput:                 {"nvmlDeviceGetPcieThroughput"},
	fnDeviceGetTotalEccErrors:                 {"nvmlDeviceGetTotalEccErrors"},
	fnDeviceGetRemappedRows:                   {"nvmlDeviceGetRemappedRows"},
	fnDeviceGetComputeRunningProcesses: {
		"nvmlDeviceGetComputeRunningProcesses_v3",
		"nvmlDeviceGetComputeRunningProcesses_v2",
		"nvmlDeviceGetComputeRunningProcesses",
	},
	fnDeviceGetProcessUtilization:     {"nvmlDeviceGetProcessUtilization"},
	fnDeviceGetMigMode:                {"nvmlDeviceGetMigMode"},
	fnDeviceGetMaxMigDeviceCount:      {"nvmlDeviceGetMaxMigDeviceCount"},
	fnDeviceGetMigDeviceHandleByIndex: {"nvmlDeviceGetMigDeviceHandleByIndex"},
	fnDeviceGetGpuInstanceID:          {"nvmlDeviceGetGpuInstanceId"},
	fnDeviceGetComputeInstanceID:      {"nvmlDeviceGetComputeInstanceId"},
	fnDeviceGetSupportedEventTypes:    {"nvmlDeviceGetSupportedEventTypes"},
	fnDeviceRegisterEvents:            {"nvmlDeviceRegisterEvents"},
	fnEventSetCreate:                  {"nvmlEventSetCreate"},
	fnEventSetWait:                    {"nvmlEventSetWait_v2", "nvmlEventSetWait"},
	fnEventSetFree:                    {"nvmlEventSetFree"},
	fnDeviceGetPcieReplayCounter:      {"nvmlDeviceGetPcieReplayCounter"},
	fnGpmQueryDeviceSupport:           {"nvmlGpmQueryDeviceSupport"},
	fnGpmSampleAlloc:                  {"nvmlGpmSampleAlloc"},
	fnGpmSampleFree:                   {"nvmlGpmSampleFree"},
	fnGpmSampleGet:                    {"nvmlGpmSampleGet"},
	fnGpmMigSampleGet:                 {"nvmlGpmMigSampleGet"},
	fnGpmMetricsGet:                   {"nvmlGpmMetricsGet"},
}

// requiredFuncs are needed to find and identify GPUs at all; without them the library is treated as unusable.
var requiredFuncs = []nvmlFunc{fnDeviceGetCount, fnDeviceGetHandleByIndex, fnDeviceGetUUID}

// symbolTable records which nvmlFuncs the loaded library can serve.
type symbolTable [numNVMLFuncs]bool

func (t *symbolTable) has(fn nvmlFunc) bool { return t[fn] }

// hasAll reports whether every one of fns is available.
func (t *symbolTable) hasAll(fns ...nvmlFunc) bool {
	for _, fn := range fns {
		if !t[fn] {
			return false
		}
	}
	return true
}

// probeSymbols looks every nvmlFunc up in the loaded library. It must run after a successful Init: go-nvml
// only answers lookups while the library is open.
func probeSymbols(ext nvml.ExtendedInterface) symbolTable {
	var t symbolTable
	for fn, names := range nvmlSymbols {
		for _, name := range names {
			if ext.LookupSymbol(name) == nil {
				t[fn] = true
				break
			}
		}
	}
	return t
}

// missingRequired names the required symbols the library lacks, or returns "".
func (t *symbolTable) missingRequired() string {
	var missing []string
	for _, fn := range requiredFuncs {
		if !t.has(fn) {
			missing = append(missing, strings.Join(nvmlSymbols[fn], " / "))
		}
	}
	return strings.Join(missing, ", ")
}
