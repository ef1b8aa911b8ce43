package engine // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/engine"

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// MetricsPath is where vLLM serves its Prometheus metrics, on its API port.
const MetricsPath = "/metrics"

// Server is the HTTP server a vLLM process runs: `vllmgen serve` puts its OpenAI API and /metrics on it,
// `vllmgen` (send) only /metrics.
type Server struct {
	addr   string
	server *http.Server
	done   chan struct{}
	err    error // why Serve returned, once done is closed; nil after Shutdown
}

// Listen binds addr now, so that a busy port fails before anything else starts, and serves h in the background
// until Shutdown.
func Listen(addr string, h http.Handler) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		addr:   l.Addr().String(),
		server: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.server.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.err = err
		}
	}()
	return s, nil
}

// MetricsOnly is a handler that serves e's /metrics and nothing else.
func MetricsOnly(e *Engine) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, e.Handler())
	return mux
}

// Addr is the address the server listens on (the port chosen when addr asked for port 0).
func (s *Server) Addr() string { return s.addr }

// Done is closed when the server stopped serving: shut down, or failed (see Err).
func (s *Server) Done() <-chan struct{} { return s.done }

// Err is why the server stopped on its own; nil while it serves and after Shutdown.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// Shutdown stops accepting connections and waits up to timeout for the requests in flight, then closes the
// rest. It returns the error of a graceful shutdown that did not finish in time.
func (s *Server) Shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := s.server.Shutdown(ctx)
	if err != nil {
		_ = s.server.Close()
	}
	<-s.done
	return err
}

// Linger keeps serving for d (0: until ctx ends, i.e. SIGINT/SIGTERM), then shuts down; an ended ctx shuts down
// at once.
func (s *Server) Linger(ctx context.Context, d time.Duration) {
	defer func() { _ = s.Shutdown(5 * time.Second) }()
	if ctx.Err() != nil {
		return
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
