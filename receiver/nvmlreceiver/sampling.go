//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// decodeValue reads an NVML value union (nvmlValue_t) of the given type.
func decodeValue(vt nvml.ValueType, raw [8]byte) (float64, bool) {
	le := binary.NativeEndian
	switch vt {
	case nvml.VALUE_TYPE_DOUBLE:
		v := math.Float64frombits(le.Uint64(raw[:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return v, true
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return float64(le.Uint32(raw[:4])), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG: // unsigned long is 64-bit on Linux
		return float64(le.Uint64(raw[:])), true
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		return float64(int64(le.Uint64(raw[:]))), true
	case nvml.VALUE_TYPE_SIGNED_INT:
		return float64(int32(le.Uint32(raw[:4]))), true
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return float64(le.Uint16(raw[:2])), true
	}
	return 0, false
}

// decodeCounter reads an integer NVML value union exactly (no float rounding).
func decodeCounter(vt nvml.ValueType, raw [8]byte) (uint64, bool) {
	le := binary.NativeEndian
	switch vt {
	case nvml.VALUE_TYPE_UNSIGNED_INT:
		return uint64(le.Uint32(raw[:4])), true
	case nvml.VALUE_TYPE_UNSIGNED_LONG, nvml.VALUE_TYPE_UNSIGNED_LONG_LONG:
		return le.Uint64(raw[:]), true
	case nvml.VALUE_TYPE_SIGNED_LONG_LONG:
		if v := int64(le.Uint64(raw[:])); v >= 0 {
			return uint64(v), true
		}
	case nvml.VALUE_TYPE_SIGNED_INT:
		if v := int32(le.Uint32(raw[:4])); v >= 0 {
			return uint64(v), true
		}
	case nvml.VALUE_TYPE_UNSIGNED_SHORT:
		return uint64(le.Uint16(raw[:2])), true
	}
	return 0, false
}

// timeWeightedMean averages the samples newer than lastSeen, each weighted by the time since the sample
// before it: an NVML utilization sample covers the period that ends at its timestamp. When lastSeen is 0
// (nothing seen yet) the oldest sample only marks where the first period starts. It returns the mean, the
// newest timestamp used (to pass as lastSeen next time) and whether any sample was usable. Samples may come
// in any order; the slice is sorted in place.
func timeWeightedMean(vt nvml.ValueType, samples []nvml.Sample, lastSeen uint64) (mean float64, newest uint64, ok bool) {
	newest = lastSeen
	if !slices.IsSortedFunc(samples, compareSamples) {
		slices.SortFunc(samples, compareSamples)
	}
	var (
		weighted, totalWeight, plainSum float64
		count                           int
		prev                            = lastSeen
	)
	for _, s := range samples {
		if s.TimeStamp <= lastSeen || s.TimeStamp == newest && count > 0 {
			continue // already used, or a duplicate timestamp
		}
		v, valid := decodeValue(vt, s.SampleValue)
		if !valid {
			continue
		}
		if prev != 0 {
			w := float64(s.TimeStamp - prev)
			weighted += v * w
			totalWeight += w
		}
		plainSum += v
		count++
		prev = s.TimeStamp
		newest = s.TimeStamp
	}
	switch {
	case count == 0:
		return 0, newest, false
	case totalWeight > 0:
		return weighted / totalWeight, newest, true
	default:
		// A single first sample: no period to weigh it by.
		return plainSum / float64(count), newest, true
	}
}

func compareSamples(a, b nvml.Sample) int { return cmp.Compare(a.TimeStamp, b.TimeStamp) }
