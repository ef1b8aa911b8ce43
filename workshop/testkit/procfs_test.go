package testkit

import (
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadProcMemoryOfThisProcess touches 64 MiB: the test process' RSS grows by about that much, and its peak
// with it.
func TestReadProcMemoryOfThisProcess(t *testing.T) {
	before, err := ReadProcMemory(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, before.RSS)
	assert.Positive(t, before.Anon)
	assert.GreaterOrEqual(t, before.PeakRSS, before.RSS)
	assert.Equal(t, before.RSS, before.Anon+before.File+before.Shmem, "VmRSS is the sum of its kinds")

	const touched = 64 << 20
	buf := make([]byte, touched)
	for i := 0; i < len(buf); i += os.Getpagesize() {
		buf[i] = 1
	}
	after, err := ReadProcMemory(os.Getpid())
	require.NoError(t, err)
	runtime.KeepAlive(buf)
	assert.Greater(t, after.RSS-before.RSS, int64(touched*9/10), "before %s, after %s", before, after)
	assert.GreaterOrEqual(t, after.PeakRSS, after.RSS)
}

func TestReadProcMemoryOfNoProcess(t *testing.T) {
	_, err := ReadProcMemory(1<<22 + 1) // above the largest pid_max
	assert.Error(t, err)
}

// TestCPUTimeOfThisProcess burns CPU and compares /proc's count with getrusage's.
func TestCPUTimeOfThisProcess(t *testing.T) {
	start, err := CPUTime(os.Getpid())
	require.NoError(t, err)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if now, err := CPUTime(os.Getpid()); err == nil && now-start >= 200*time.Millisecond {
			break
		}
		x := 0
		for i := range 1_000_000 {
			x += i
		}
		runtime.KeepAlive(x)
	}
	got, err := CPUTime(os.Getpid())
	require.NoError(t, err)
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	rusage := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	assert.GreaterOrEqual(t, got-start, 200*time.Millisecond)
	assert.InDelta(t, rusage.Seconds(), got.Seconds(), 0.1, "/proc says %s, getrusage %s", got, rusage)
}

func TestStatCPUTime(t *testing.T) {
	tail := " S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100"
	for _, tt := range []struct {
		name, stat string
		want       time.Duration
		wantErr    bool
	}{
		{name: "plain name", stat: "42 (otelcol-vllm)" + tail, want: 3 * time.Second},
		{name: "name with spaces and parentheses", stat: "42 (a) b (c)" + tail, want: 3 * time.Second},
		{name: "cut short", stat: "42 (x) S 1 2", wantErr: true},
		{name: "no name", stat: "42", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statCPUTime(tt.stat)
			if tt.wantErr {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestWatchRSSSeesThePeak(t *testing.T) {
	w := WatchRSS(os.Getpid(), 10*time.Millisecond)
	const touched = 64 << 20
	buf := make([]byte, touched)
	for i := 0; i < len(buf); i += os.Getpagesize() {
		buf[i] = 1
	}
	time.Sleep(100 * time.Millisecond)
	now, err := ReadProcMemory(os.Getpid())
	require.NoError(t, err)
	runtime.KeepAlive(buf)
	peak := w.Stop()
	assert.GreaterOrEqual(t, peak, int64(touched))
	assert.GreaterOrEqual(t, peak, now.RSS*9/10)
}

func TestProcessMemoryOfAChild(t *testing.T) {
	p := StartProcess(t, "sleep", nil, "sleep", "60")
	m := p.Memory(t)
	assert.Positive(t, m.RSS)
	assert.Less(t, m.RSS, int64(64<<20), "sleep is small: %s", m)
}
