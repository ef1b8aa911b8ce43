package testkit

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestFreePortCanBeListenedOn(t *testing.T) {
	for range 3 {
		port := FreePort(t)
		require.Greater(t, port, 0)
		require.LessOrEqual(t, port, 65535)
		addr := Loopback(port)
		assert.Equal(t, "127.0.0.1:"+strconv.Itoa(port), addr)
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err, "the free port is free")
		require.NoError(t, l.Close())
	}
}

func TestListenLoopbackKeepsThePort(t *testing.T) {
	l := ListenLoopback(t)
	host, _, err := net.SplitHostPort(l.Addr().String())
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	_, err = net.Listen("tcp", l.Addr().String())
	assert.Error(t, err, "the listener holds its port")
}

// TestServeGRPC serves gRPC's health service and asks it over a real connection.
func TestServeGRPC(t *testing.T) {
	addr := ServeGRPC(t, ListenLoopback(t), func(srv *grpc.Server) {
		healthpb.RegisterHealthServer(srv, health.NewServer())
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

func TestStartGRPCStops(t *testing.T) {
	lis, err := Listen("")
	require.NoError(t, err)
	addr, stop := StartGRPC(lis, func(*grpc.Server) {})
	stop()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = conn.Close()
	}
	assert.Error(t, err, "nothing listens once stopped")
}
