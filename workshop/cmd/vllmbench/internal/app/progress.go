package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmbench/internal/app"

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line bar on stderr: finished/total, failures, elapsed time and rate.
type progress struct {
	w       io.Writer
	total   int
	start   time.Time
	done    atomic.Int64
	failed  atomic.Int64
	stop    chan struct{}
	stopped sync.WaitGroup
}

const barWidth = 30

func startProgress(w io.Writer, total int, interval time.Duration) *progress {
	p := &progress{w: w, total: total, start: time.Now(), stop: make(chan struct{})}
	p.stopped.Add(1)
	go func() {
		defer p.stopped.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.stop:
				p.draw()
				fmt.Fprintln(p.w)
				return
			}
		}
	}()
	return p
}

func (p *progress) finished(ok bool) {
	p.done.Add(1)
	if !ok {
		p.failed.Add(1)
	}
}

func (p *progress) draw() {
	done := int(p.done.Load())
	filled := barWidth * done / max(1, p.total)
	elapsed := time.Since(p.start)
	rate := float64(done) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d  failed %d  %s  %.1f req/s ",
		strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), done, p.total, p.failed.Load(),
		elapsed.Truncate(100*time.Millisecond), rate)
}

// close draws the final state and ends the line; a nil progress does nothing.
func (p *progress) close() {
	if p == nil {
		return
	}
	close(p.stop)
	p.stopped.Wait()
}
