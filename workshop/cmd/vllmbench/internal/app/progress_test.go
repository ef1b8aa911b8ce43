package app

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProgress(t *testing.T) {
	var out lockedBuilder
	p := startProgress(&out, 4, time.Hour) // only the final draw
	p.finished(true)
	p.finished(false)
	p.close()
	got := out.String()
	assert.True(t, strings.HasPrefix(got, "\r[===============               ] 2/4  failed 1 "), got)
	assert.True(t, strings.HasSuffix(got, "\n"))
	var nilBar *progress
	nilBar.close() // no bar (stderr is not a terminal): nothing happens
}
