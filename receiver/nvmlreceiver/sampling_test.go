//go:build cgo

package nvmlreceiver

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/stretchr/testify/assert"
)

func u32Sample(ts uint64, v uint32) nvml.Sample {
	s := nvml.Sample{TimeStamp: ts}
	binary.NativeEndian.PutUint32(s.SampleValue[:4], v)
	return s
}

func TestTimeWeightedMean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		samples    []nvml.Sample
		lastSeen   uint64
		wantMean   float64
		wantNewest uint64
		wantOK     bool
	}{
		{
			name:     "periods of different length",
			samples:  []nvml.Sample{u32Sample(1100, 10), u32Sample(1400, 40), u32Sample(1500, 100)},
			lastSeen: 1000,
			// 10 over 100 µs, 40 over 300 µs, 100 over 100 µs
			wantMean: (10*100 + 40*300 + 100*100) / 500.0, wantNewest: 1500, wantOK: true,
		},
		{
			name:     "unsorted input",
			samples:  []nvml.Sample{u32Sample(1500, 100), u32Sample(1100, 10), u32Sample(1400, 40)},
			lastSeen: 1000,
			wantMean: (10*100 + 40*300 + 100*100) / 500.0, wantNewest: 1500, wantOK: true,
		},
		{
			name:     "samples already seen are ignored",
			samples:  []nvml.Sample{u32Sample(900, 99), u32Sample(1000, 99), u32Sample(1200, 30)},
			lastSeen: 1000,
			wantMean: 30, wantNewest: 1200, wantOK: true,
		},
		{
			name:     "duplicate timestamps count once",
			samples:  []nvml.Sample{u32Sample(1100, 20), u32Sample(1100, 20), u32Sample(1300, 50)},
			lastSeen: 1000,
			wantMean: (20*100 + 50*200) / 300.0, wantNewest: 1300, wantOK: true,
		},
		{
			name:     "first scrape: the oldest sample opens the first period",
			samples:  []nvml.Sample{u32Sample(100, 90), u32Sample(200, 10), u32Sample(400, 40)},
			wantMean: (10*100 + 40*200) / 300.0, wantNewest: 400, wantOK: true,
		},
		{
			name:     "first scrape with a single sample",
			samples:  []nvml.Sample{u32Sample(100, 42)},
			wantMean: 42, wantNewest: 100, wantOK: true,
		},
		{
			name:     "nothing new",
			samples:  []nvml.Sample{u32Sample(900, 1)},
			lastSeen: 1000, wantNewest: 1000,
		},
		{
			name:       "empty",
			lastSeen:   7,
			wantNewest: 7,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mean, newest, ok := timeWeightedMean(nvml.VALUE_TYPE_UNSIGNED_INT, tt.samples, tt.lastSeen)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantNewest, newest)
			assert.InDelta(t, tt.wantMean, mean, 1e-9)
		})
	}
}

func TestDecodeValue(t *testing.T) {
	t.Parallel()
	raw := func(f func(b []byte)) [8]byte {
		var b [8]byte
		f(b[:])
		return b
	}
	le := binary.NativeEndian
	tests := []struct {
		name      string
		vt        nvml.ValueType
		raw       [8]byte
		want      float64
		wantOK    bool
		counter   uint64
		counterOK bool
	}{
		{"double", nvml.VALUE_TYPE_DOUBLE, raw(func(b []byte) { le.PutUint64(b, math.Float64bits(12.5)) }), 12.5, true, 0, false},
		{"NaN double", nvml.VALUE_TYPE_DOUBLE, raw(func(b []byte) { le.PutUint64(b, math.Float64bits(math.NaN())) }), 0, false, 0, false},
		{"unsigned int", nvml.VALUE_TYPE_UNSIGNED_INT, raw(func(b []byte) { le.PutUint32(b, 4_000_000_000) }), 4e9, true, 4_000_000_000, true},
		{"unsigned long long", nvml.VALUE_TYPE_UNSIGNED_LONG_LONG, raw(func(b []byte) { le.PutUint64(b, 1<<60+1) }), 1 << 60, true, 1<<60 + 1, true},
		{"unsigned long", nvml.VALUE_TYPE_UNSIGNED_LONG, raw(func(b []byte) { le.PutUint64(b, 77) }), 77, true, 77, true},
		{"signed long long", nvml.VALUE_TYPE_SIGNED_LONG_LONG, raw(func(b []byte) { le.PutUint64(b, uint64(math.MaxUint64)) }), -1, true, 0, false},
		{"signed int", nvml.VALUE_TYPE_SIGNED_INT, raw(func(b []byte) { le.PutUint32(b, 5) }), 5, true, 5, true},
		{"unsigned short", nvml.VALUE_TYPE_UNSIGNED_SHORT, raw(func(b []byte) { le.PutUint16(b, 65535) }), 65535, true, 65535, true},
		{"unknown type", nvml.ValueType(42), raw(func(b []byte) { le.PutUint32(b, 5) }), 0, false, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, ok := decodeValue(tt.vt, tt.raw)
			assert.Equal(t, tt.wantOK, ok)
			assert.InDelta(t, tt.want, v, 1)
			c, ok := decodeCounter(tt.vt, tt.raw)
			assert.Equal(t, tt.counterOK, ok)
			assert.Equal(t, tt.counter, c)
		})
	}
}

func TestProcessNamesCacheIsPrunedPerScrape(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeComm(t, root, 10, "python3")
	p := newProcessNames(root)
	assert.Equal(t, "python3", p.name(10))
	assert.Empty(t, p.name(11))
	p.endScrape()
	writeComm(t, root, 10, "VLLM::EngineCor") // PID 10 reused before the next scrape saw it gone
	assert.Equal(t, "python3", p.name(10), "cached while the PID keeps using the GPU")
	p.endScrape()
	p.endScrape() // a scrape without PID 10
	assert.Equal(t, "VLLM::EngineCor", p.name(10))
	assert.Len(t, p.cache, 1)
}
