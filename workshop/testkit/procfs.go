package testkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProcMemory is a process' resident memory from /proc/<pid>/status, in bytes.
type ProcMemory struct {
	RSS     int64 // VmRSS: resident now
	PeakRSS int64 // VmHWM: the most it has been resident since it started
	Anon    int64 // RssAnon: the heap and stacks
	File    int64 // RssFile: mapped files, such as bbolt's storage
	Shmem   int64 // RssShmem
}

func (m ProcMemory) String() string {
	return fmt.Sprintf("RSS %d MiB (anonymous %d MiB, file %d MiB, shared %d MiB), peak RSS %d MiB",
		m.RSS>>20, m.Anon>>20, m.File>>20, m.Shmem>>20, m.PeakRSS>>20)
}

// ReadProcMemory reads /proc/<pid>/status.
func ReadProcMemory(pid int) (ProcMemory, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcMemory{}, err
	}
	var m ProcMemory
	fields := map[string]*int64{"VmRSS": &m.RSS, "VmHWM": &m.PeakRSS, "RssAnon": &m.Anon, "RssFile": &m.File, "RssShmem": &m.Shmem}
	for _, line := range strings.Split(string(raw), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		field := fields[key]
		if !ok || field == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return ProcMemory{}, fmt.Errorf("/proc/%d/status: %s: %w", pid, key, err)
		}
		*field = kb << 10
		delete(fields, key)
	}
	if len(fields) > 0 {
		return ProcMemory{}, fmt.Errorf("/proc/%d/status has no %v (a kernel thread, or not Linux)", pid, keys(fields))
	}
	return m, nil
}

func keys(m map[string]*int64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Memory is the process' resident memory now; it fails the test when /proc cannot tell.
func (p *Process) Memory(t testing.TB) ProcMemory {
	t.Helper()
	m, err := ReadProcMemory(p.Pid())
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return m
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// CPUTime is the CPU time a process has used so far, user and system (utime+stime of /proc/<pid>/stat).
func CPUTime(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	d, err := statCPUTime(string(raw))
	if err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return d, nil
}

// statCPUTime reads utime and stime, the 14th and 15th fields of /proc/<pid>/stat. The second, the command
// name in parentheses, may hold spaces and parentheses: the fields after it start at the last ')'.
func statCPUTime(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", stat)
	}
	fields := strings.Fields(stat[end+1:]) // from the 3rd field, the state
	if len(fields) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want 13 or more", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// RSSWatch samples a process' resident memory until stopped, for the peak over a stretch of its life (VmHWM
// is the peak since it started).
type RSSWatch struct {
	stop chan struct{}
	done chan struct{}
	peak int64 // written by the sampling goroutine only, read once it is done
}

// WatchRSS samples pid's RSS every interval, starting now.
func WatchRSS(pid int, interval time.Duration) *RSSWatch {
	w := &RSSWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if m, err := ReadProcMemory(pid); err == nil {
				w.peak = max(w.peak, m.RSS)
			}
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the highest RSS seen, in bytes (0 if the process could not be read).
func (w *RSSWatch) Stop() int64 {
	close(w.stop)
	<-w.done
	return w.peak
}
