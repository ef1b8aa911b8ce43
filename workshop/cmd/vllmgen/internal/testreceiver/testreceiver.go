// Package testreceiver runs in-process OTLP trace receivers (gRPC and HTTP) on loopback for vllmgen's tests.
package testreceiver // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/testreceiver"

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sink stores what a receiver accepted and decides how to answer.
type Sink struct {
	mu       sync.Mutex
	received []ptrace.Traces
	requests int
	// RejectSpans, when > 0, is reported as rejected in a partial-success response (the data is still stored).
	RejectSpans int64
	// Fail makes every export fail (gRPC Unavailable / HTTP 503) without storing anything.
	Fail bool
	// HTTPPath, when set, is the only path the HTTP receiver accepts.
	HTTPPath string
	// Discard counts spans without keeping them (benchmarks).
	Discard   bool
	discarded int
}

func (s *Sink) accept(td ptrace.Traces) (rejected int64, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.Fail {
		return 0, true
	}
	if s.Discard {
		s.discarded += td.SpanCount()
		return s.RejectSpans, false
	}
	s.received = append(s.received, td)
	return s.RejectSpans, false
}

// Requests is the number of export requests seen, failed ones included.
func (s *Sink) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Traces returns everything accepted, merged into one ptrace.Traces in arrival order.
func (s *Sink) Traces() ptrace.Traces {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := ptrace.NewTraces()
	for _, td := range s.received {
		for _, rs := range td.ResourceSpans().All() {
			rs.CopyTo(all.ResourceSpans().AppendEmpty())
		}
	}
	return all
}

// SpanCount is the number of accepted spans.
func (s *Sink) SpanCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.discarded
	for _, td := range s.received {
		n += td.SpanCount()
	}
	return n
}

type grpcService struct {
	ptraceotlp.UnimplementedGRPCServer
	sink *Sink
}

func (g *grpcService) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	// The request is only valid during the call, so keep a copy.
	td := req.Traces()
	if !g.sink.Discard {
		td = ptrace.NewTraces()
		req.Traces().CopyTo(td)
	}
	rejected, fail := g.sink.accept(td)
	if fail {
		return ptraceotlp.NewExportResponse(), status.Error(codes.Unavailable, "test receiver refuses")
	}
	resp := ptraceotlp.NewExportResponse()
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejected)
		resp.PartialSuccess().SetErrorMessage("test receiver rejects some spans")
	}
	return resp, nil
}

// StartGRPC serves OTLP/gRPC on a loopback port until the test ends and returns its host:port.
func StartGRPC(t testing.TB, sink *Sink) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, &grpcService{sink: sink})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().String()
}

// StartHTTP serves OTLP/HTTP protobuf until the test ends and returns its base URL (no path).
func StartHTTP(t testing.TB, sink *Sink) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-protobuf" ||
			(sink.HTTPPath != "" && r.URL.Path != sink.HTTPPath) {
			http.Error(w, "want POST application/x-protobuf to "+sink.HTTPPath, http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rejected, fail := sink.accept(req.Traces())
		if fail {
			http.Error(w, "test receiver refuses", http.StatusServiceUnavailable)
			return
		}
		resp := ptraceotlp.NewExportResponse()
		if rejected > 0 {
			resp.PartialSuccess().SetRejectedSpans(rejected)
		}
		out, err := resp.MarshalProto()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
