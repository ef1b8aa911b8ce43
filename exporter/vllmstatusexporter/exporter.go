package vllmstatusexporter // import "github.com/otelcol-vllm/otelcol-vllm/exporter/vllmstatusexporter"

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
)

// statusExporter keeps the window and serves it over HTTP.
type statusExporter struct {
	cfg   *Config
	set   component.TelemetrySettings
	store *store
	now   func() time.Time

	server *http.Server
	stop   chan struct{}
	wg     sync.WaitGroup
}

func newStatusExporter(cfg *Config, set component.TelemetrySettings) *statusExporter {
	return &statusExporter{cfg: cfg, set: set, store: newStore(cfg), now: time.Now, stop: make(chan struct{})}
}

func (e *statusExporter) consumeMetrics(_ context.Context, md pmetric.Metrics) error {
	e.store.consume(md, e.now())
	return nil
}

// tick takes a snapshot and evaluates the alerts over the default window.
func (e *statusExporter) tick(now time.Time) {
	e.store.takeSnapshot(now)
	e.store.evaluate(e.store.view(now, e.cfg.Window), now)
}

func (e *statusExporter) start(ctx context.Context, host component.Host) error {
	ln, err := e.cfg.ServerConfig.ToListener(ctx)
	if err != nil {
		return err
	}
	e.server, err = e.cfg.ServerConfig.ToServer(ctx, host.GetExtensions(), e.set, e.handler())
	if err != nil {
		_ = ln.Close()
		return err
	}
	e.set.Logger.Info("vLLM status page listening", zap.String("url", "http://"+ln.Addr().String()+"/"),
		zap.String("api", "http://"+ln.Addr().String()+apiPath))
	e.tick(e.now())
	e.wg.Add(2)
	go func() {
		defer e.wg.Done()
		if err := e.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			e.set.Logger.Error("vLLM status server stopped", zap.Error(err))
		}
	}()
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(e.cfg.SnapshotInterval)
		defer t.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-t.C:
				e.tick(e.now())
			}
		}
	}()
	return nil
}

func (e *statusExporter) shutdown(ctx context.Context) error {
	if e.server == nil {
		return nil
	}
	close(e.stop)
	err := e.server.Shutdown(ctx)
	e.wg.Wait()
	e.server = nil
	return err
}

const apiPath = "/api/v1/metrics"

func (e *statusExporter) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiPath, e.serveAPI)
	mux.HandleFunc("GET /{$}", e.servePage)
	mux.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, webFS, "web/static/style.css")
	})
	return securityHeaders(mux)
}

// securityHeaders: nothing here runs script, loads from elsewhere or may be framed.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// window reads ?window= (a duration among the configured windows, e.g. 1m, or seconds, e.g. 60).
func (e *statusExporter) window(r *http.Request) (time.Duration, bool) {
	q := r.URL.Query().Get("window")
	if q == "" {
		return e.cfg.Window, true
	}
	d, err := time.ParseDuration(q)
	if err != nil {
		d, err = time.ParseDuration(q + "s")
	}
	if err != nil {
		return 0, false
	}
	for _, w := range e.cfg.Windows {
		if w == d {
			return d, true
		}
	}
	return 0, false
}

func (e *statusExporter) serveAPI(w http.ResponseWriter, r *http.Request) {
	window, ok := e.window(r)
	if !ok {
		http.Error(w, "window must be one of the configured windows", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w) // escapes <, > and & in strings: safe even if served as HTML
	enc.SetIndent("", "  ")
	_ = enc.Encode(e.store.view(e.now(), window))
}
