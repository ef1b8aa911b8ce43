package app // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/app"

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/vllmmetrics"
)

// metricsServer serves vLLM's /metrics for the simulated requests.
type metricsServer struct {
	addr   string
	server *http.Server
	done   chan struct{}
}

// serveMetrics binds addr now, so that a busy port fails the run before anything is sent, and serves in the
// background until shutdown.
func serveMetrics(addr string, registry *vllmmetrics.Registry) (*metricsServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", registry.Handler())
	s := &metricsServer{
		addr:   l.Addr().String(),
		server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		_ = s.server.Serve(l) // returns when shut down (or when the listener fails: the summary still stands)
	}()
	return s, nil
}

func (s *metricsServer) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.server.Shutdown(ctx); err != nil {
		_ = s.server.Close()
	}
	<-s.done
}

// linger keeps serving for d after the send (0: until ctx ends, i.e. SIGINT/SIGTERM), then shuts down.
func (s *metricsServer) linger(ctx context.Context, d time.Duration) {
	defer s.shutdown()
	if ctx.Err() != nil {
		return // interrupted: stop at once
	}
	if d == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
