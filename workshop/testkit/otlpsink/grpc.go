package otlpsink

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // the collector's OTLP exporter compresses with gzip
	"google.golang.org/grpc/status"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

// StartGRPC serves OTLP/gRPC traces and metrics on a free loopback port until the test ends, and returns its
// host:port.
func StartGRPC(t testing.TB, s *Sink) string {
	t.Helper()
	return testkit.ServeGRPC(t, testkit.ListenLoopback(t), s.registerGRPC, s.grpcOptions()...)
}

// ListenGRPC is StartGRPC for a program: it serves on addr (empty: a free loopback port) until stop.
func ListenGRPC(s *Sink, addr string) (endpoint string, stop func(), err error) {
	lis, err := testkit.Listen(addr)
	if err != nil {
		return "", nil, err
	}
	endpoint, stop = testkit.StartGRPC(lis, s.registerGRPC, s.grpcOptions()...)
	return endpoint, stop, nil
}

func (s *Sink) grpcOptions() []grpc.ServerOption {
	if s.MaxRecvMsgSize > 0 {
		return []grpc.ServerOption{grpc.MaxRecvMsgSize(s.MaxRecvMsgSize)}
	}
	return nil
}

func (s *Sink) registerGRPC(srv *grpc.Server) {
	ptraceotlp.RegisterGRPCServer(srv, &grpcTraces{sink: s})
	pmetricotlp.RegisterGRPCServer(srv, &grpcMetrics{sink: s})
}

var errRefused = status.Error(codes.Unavailable, "OTLP sink refuses")

type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	sink *Sink
}

func (g *grpcTraces) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	td := req.Traces()
	if !g.sink.Discard {
		// the request is only valid during the call: keep a copy
		td = ptrace.NewTraces()
		req.Traces().CopyTo(td)
	}
	fail, rejected := g.sink.acceptTraces(td)
	if fail {
		return ptraceotlp.NewExportResponse(), errRefused
	}
	return tracesResponse(rejected), nil
}

func tracesResponse(rejectedSpans int64) ptraceotlp.ExportResponse {
	resp := ptraceotlp.NewExportResponse()
	if rejectedSpans > 0 {
		resp.PartialSuccess().SetRejectedSpans(rejectedSpans)
		resp.PartialSuccess().SetErrorMessage("OTLP sink rejects some spans")
	}
	return resp
}

type grpcMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	sink *Sink
}

// Export reads the request during the call (record copies what it keeps), so it needs no copy.
func (g *grpcMetrics) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	if g.sink.acceptMetrics(req.Metrics()) {
		return pmetricotlp.NewExportResponse(), errRefused
	}
	return pmetricotlp.NewExportResponse(), nil
}
