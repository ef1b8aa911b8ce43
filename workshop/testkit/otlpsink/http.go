package otlpsink

import (
	"compress/gzip"
	"io"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// StartHTTP serves OTLP/HTTP (protobuf) on a free loopback port until the test ends, and returns its base URL,
// http://host:port, without a path.
func StartHTTP(t testing.TB, s *Sink) string {
	t.Helper()
	return StartHTTPAt(t, s, "")
}

// StartHTTPAt is StartHTTP on addr (host:port), for a backend a collector was pointed at before it came up.
func StartHTTPAt(t testing.TB, s *Sink, addr string) string {
	t.Helper()
	lis, err := testkit.Listen(addr)
	if err != nil {
		t.Fatalf("OTLP/HTTP sink: %v", err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + lis.Addr().String()
}

const protobuf = "application/x-protobuf"

// ServeHTTP takes OTLP/HTTP protobuf exports: traces at TracesPath (/v1/traces), metrics at /v1/metrics.
func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tracesPath := s.TracesPath
	if tracesPath == "" {
		tracesPath = "/v1/traces"
	}
	if r.URL.Path != tracesPath && r.URL.Path != "/v1/metrics" {
		http.Error(w, "OTLP sink: traces go to "+tracesPath+", metrics to /v1/metrics", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != protobuf {
		http.Error(w, "OTLP sink: want POST "+protobuf, http.StatusBadRequest)
		return
	}
	body, err := readBody(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var out []byte
	if r.URL.Path == tracesPath {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fail, rejected := s.acceptTraces(req.Traces())
		if fail {
			http.Error(w, "OTLP sink refuses", http.StatusServiceUnavailable)
			return
		}
		out, err = tracesResponse(rejected).MarshalProto()
	} else {
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if s.acceptMetrics(req.Metrics()) {
			http.Error(w, "OTLP sink refuses", http.StatusServiceUnavailable)
			return
		}
		out, err = pmetricotlp.NewExportResponse().MarshalProto()
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", protobuf)
	_, _ = w.Write(out)
}

// readBody reads the request, gunzipped when the exporter compressed it (the collector's otlp_http does).
func readBody(r *http.Request) ([]byte, error) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		body = zr
	}
	return io.ReadAll(body)
}
