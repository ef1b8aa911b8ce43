// Package otlpsend is vllmgen's one OTLP sender, used by both subcommands: it parses the protocol and endpoint
// spellings every vllmgen flag accepts and delivers trace data over OTLP/gRPC or OTLP/HTTP (protobuf).
package otlpsend // import "github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Protocol is the OTLP transport, spelled as OpenTelemetry's OTEL_EXPORTER_OTLP_PROTOCOL spells it.
type Protocol string

const (
	ProtocolGRPC Protocol = "grpc"
	// ProtocolHTTP is OTLP/HTTP with protobuf bodies; "http" is accepted for it.
	ProtocolHTTP Protocol = "http/protobuf"
)

// Default endpoints of a local collector's OTLP receiver.
const (
	DefaultGRPCEndpoint = "127.0.0.1:4317"
	DefaultHTTPEndpoint = "http://127.0.0.1:4318/v1/traces"
)

// ParseProtocol converts a protocol flag value: grpc, http/protobuf, or http for http/protobuf.
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case string(ProtocolGRPC):
		return ProtocolGRPC, nil
	case string(ProtocolHTTP), "http":
		return ProtocolHTTP, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want grpc or http/protobuf)", s)
}

// DefaultEndpoint is the endpoint used when none is given.
func (p Protocol) DefaultEndpoint() string {
	if p == ProtocolHTTP {
		return DefaultHTTPEndpoint
	}
	return DefaultGRPCEndpoint
}

// NormalizeEndpoint turns a user-given endpoint into what the exporter dials.
//
// gRPC: host:port, or the gRPC target dns:///host:port (the default resolver; both become host:port). The
// connection is plaintext; an http:// or grpc:// prefix, as OTEL_EXPORTER_OTLP_ENDPOINT writes it, is accepted
// and dropped.
//
// HTTP: an http:// or https:// URL; the path /v1/traces is added when the URL has none, and http:// is assumed
// for a bare host:port.
func (p Protocol) NormalizeEndpoint(endpoint string) (string, error) {
	if endpoint == "" {
		return p.DefaultEndpoint(), nil
	}
	if p == ProtocolGRPC {
		hostPort := endpoint
		if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
			switch scheme {
			case "dns":
				// dns:[//authority]/host:port; only the system resolver (empty authority) is supported.
				authority, target, ok := strings.Cut(rest, "/")
				if !ok || authority != "" {
					return "", fmt.Errorf("gRPC endpoint %q: want dns:///host:port (no DNS server authority)", endpoint)
				}
				hostPort = target
			case "http", "grpc":
				hostPort = strings.TrimSuffix(rest, "/")
			default:
				return "", fmt.Errorf("gRPC endpoint %q: scheme %q is not supported (plaintext gRPC only)", endpoint, scheme)
			}
		}
		if host, _, err := net.SplitHostPort(hostPort); err != nil || strings.Contains(host, "/") {
			if err == nil {
				err = fmt.Errorf("bad host %q", host)
			}
			return "", fmt.Errorf("gRPC endpoint %q: want host:port: %w", endpoint, err)
		}
		return hostPort, nil
	}
	raw := endpoint
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("HTTP endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("HTTP endpoint %q: scheme must be http or https", endpoint)
	}
	if u.Host == "" {
		return "", fmt.Errorf("HTTP endpoint %q: no host", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Exporter sends one export request and reports how many spans the receiver rejected (OTLP partial success).
// An Exporter is used by one goroutine at a time.
type Exporter interface {
	Export(ctx context.Context, td ptrace.Traces) (rejectedSpans int64, err error)
	Close() error
}

// New returns an exporter for a normalized endpoint (see Protocol.NormalizeEndpoint).
func New(p Protocol, endpoint string) (Exporter, error) {
	switch p {
	case ProtocolGRPC:
		return NewGRPC(endpoint)
	case ProtocolHTTP:
		return NewHTTP(endpoint), nil
	}
	return nil, fmt.Errorf("unknown protocol %q", p)
}

// GRPCExporter sends over its own plaintext gRPC connection.
type GRPCExporter struct {
	conn   *grpc.ClientConn
	client ptraceotlp.GRPCClient
}

// NewGRPC prepares a connection to host:port; it connects lazily on the first export.
func NewGRPC(hostPort string) (*GRPCExporter, error) {
	conn, err := grpc.NewClient(hostPort, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", hostPort, err)
	}
	return &GRPCExporter{conn: conn, client: ptraceotlp.NewGRPCClient(conn)}, nil
}

// Export sends td. It waits for the connection to become ready (bounded by ctx), so a collector that is still
// starting is not counted as a failure.
func (e *GRPCExporter) Export(ctx context.Context, td ptrace.Traces) (int64, error) {
	resp, err := e.client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td), grpc.WaitForReady(true))
	if err != nil {
		return 0, err
	}
	return resp.PartialSuccess().RejectedSpans(), nil
}

// Close closes the connection.
func (e *GRPCExporter) Close() error { return e.conn.Close() }

// HTTPExporter POSTs protobuf-encoded export requests.
type HTTPExporter struct {
	url    string
	client *http.Client
}

// maxResponseBody bounds how much of a response is read.
const maxResponseBody = 64 << 10

// NewHTTP returns an exporter posting to url with its own keep-alive connection.
func NewHTTP(url string) *HTTPExporter {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 2
	return &HTTPExporter{url: url, client: &http.Client{Transport: transport}}
}

// Export sends td as an OTLP/HTTP protobuf request.
func (e *HTTPExporter) Export(ctx context.Context, td ptrace.Traces) (int64, error) {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return 0, fmt.Errorf("encoding export request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	respBody, readErr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_, _ = io.Copy(io.Discard, resp.Body) // drain, so the connection is reused
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, e.url, strings.TrimSpace(string(respBody)))
	}
	if readErr != nil {
		return 0, fmt.Errorf("reading response: %w", readErr)
	}
	if len(respBody) == 0 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/x-protobuf") {
		return 0, nil
	}
	exportResp := ptraceotlp.NewExportResponse()
	if err := exportResp.UnmarshalProto(respBody); err != nil {
		return 0, errors.Join(errors.New("decoding export response"), err)
	}
	return exportResp.PartialSuccess().RejectedSpans(), nil
}

// Close releases idle connections.
func (e *HTTPExporter) Close() error {
	e.client.CloseIdleConnections()
	return nil
}
