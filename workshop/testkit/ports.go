package testkit

import (
	"net"
	"strconv"
	"testing"

	"google.golang.org/grpc"
)

// anyLoopbackPort asks the kernel for an unused port on loopback: tests never listen beyond this machine.
const anyLoopbackPort = "127.0.0.1:0"

// UnusedPort asks the kernel for an unused loopback port and releases it. Another process could take it before
// the caller listens on it; on loopback during a test run that race is rare enough, and it is the only way to
// hand a port to a child process (or to a backend started later) before anything listens on it.
func UnusedPort() (int, error) {
	l, err := Listen("")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreePort is UnusedPort for a test.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := UnusedPort()
	if err != nil {
		t.Fatalf("no free loopback port: %v", err)
	}
	return port
}

// Loopback is host:port on 127.0.0.1.
func Loopback(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// FreeLoopback is Loopback(FreePort(t)), the listen address most child processes are given.
func FreeLoopback(t testing.TB) string {
	t.Helper()
	return Loopback(FreePort(t))
}

// Listen listens on addr, or on an unused loopback port when addr is empty.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = anyLoopbackPort
	}
	return net.Listen("tcp", addr)
}

// ListenLoopback listens on an unused loopback port (no race: the listener keeps it) until the test ends.
func ListenLoopback(t testing.TB) net.Listener {
	t.Helper()
	l, err := Listen("")
	if err != nil {
		t.Fatalf("listening on loopback: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// ServeGRPC serves the services register adds on lis until the test ends, and returns lis' address.
func ServeGRPC(t testing.TB, lis net.Listener, register func(*grpc.Server), opts ...grpc.ServerOption) string {
	t.Helper()
	addr, stop := StartGRPC(lis, register, opts...)
	t.Cleanup(stop)
	return addr
}

// StartGRPC is ServeGRPC for a program: stop ends the server and waits for it.
func StartGRPC(lis net.Listener, register func(*grpc.Server), opts ...grpc.ServerOption) (addr string, stop func()) {
	srv := grpc.NewServer(opts...)
	register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		srv.Stop()
		<-done
	}
}
