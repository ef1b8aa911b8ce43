package cli

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/cmd/vllmgen/internal/otlpsend"
)

func TestOTLPFlags(t *testing.T) {
	tests := []struct {
		args         []string
		wantProtocol otlpsend.Protocol
		wantEndpoint string
		wantErr      string
	}{
		{nil, otlpsend.ProtocolGRPC, "127.0.0.1:4317", ""},
		{[]string{"--to", "dns:///otelcol:4317"}, otlpsend.ProtocolGRPC, "otelcol:4317", ""},
		{[]string{"--otlp-protocol", "http"}, otlpsend.ProtocolHTTP, "http://127.0.0.1:4318/v1/traces", ""},
		{[]string{"--otlp-protocol", "http/protobuf", "--to", "https://otelcol:4318"}, otlpsend.ProtocolHTTP, "https://otelcol:4318/v1/traces", ""},
		{[]string{"--otlp-protocol", "http/json"}, "", "", `--otlp-protocol: unknown protocol "http/json"`},
		{[]string{"--to", "otelcol"}, "", "", "--to: gRPC endpoint"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := NewFlagSet("test", "Usage: test", io.Discard)
			o := OTLPFlags(fs, "to", "default 127.0.0.1:4317", "grpc")
			require.NoError(t, Parse(fs, tt.args))
			p, endpoint, err := o.Parse()
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.wantProtocol, p)
			assert.Equal(t, tt.wantEndpoint, endpoint)
		})
	}
}

func TestParseAndUsageExit(t *testing.T) {
	fs := NewFlagSet("test", "Usage: test", io.Discard)
	assert.ErrorContains(t, Parse(fs, []string{"extra"}), `unexpected arguments: ["extra"]`)
	err := Parse(NewFlagSet("test", "Usage: test", io.Discard), []string{"-h"})
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, ExitOK, UsageExit("test", err, io.Discard))
	var b strings.Builder
	assert.Equal(t, ExitUsage, UsageExit("test", errors.New("bad"), &b))
	assert.Equal(t, "test: bad\n", b.String())
}
