//go:build cgo

package nvmlreceiver // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver"

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxProcessesPerDevice bounds the per-process series of one GPU or MIG instance.
const maxProcessesPerDevice = 64

// processNames resolves PIDs reported by NVML to /proc/<pid>/comm. NVML reports host PIDs, so names resolve
// only where the collector sees the host's PID namespace (hostPID in Kubernetes). Names are cached for the
// PIDs seen in the current scrape only.
type processNames struct {
	procRoot string
	cache    map[uint32]string
	seen     map[uint32]struct{}
}

func newProcessNames(procRoot string) *processNames {
	return &processNames{procRoot: procRoot, cache: map[uint32]string{}, seen: map[uint32]struct{}{}}
}

func (p *processNames) name(pid uint32) string {
	p.seen[pid] = struct{}{}
	if n, ok := p.cache[pid]; ok {
		return n
	}
	n := ""
	if b, err := os.ReadFile(filepath.Join(p.procRoot, strconv.FormatUint(uint64(pid), 10), "comm")); err == nil {
		n = strings.TrimSpace(string(b))
	}
	p.cache[pid] = n
	return n
}

// endScrape forgets the PIDs not seen since the previous call, so a reused PID gets its new name.
func (p *processNames) endScrape() {
	for pid := range p.cache {
		if _, ok := p.seen[pid]; !ok {
			delete(p.cache, pid)
		}
	}
	clear(p.seen)
}
