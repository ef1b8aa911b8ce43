// Package fakekubelet serves the kubelet's pod-resources API (the real API types, List only) on a unix socket,
// for the nvml receiver's GPU-to-pod attribution.
package fakekubelet // import "github.com/otelcol-vllm/otelcol-vllm/workshop/testkit/fakekubelet"

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/grpc"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"

	"github.com/otelcol-vllm/otelcol-vllm/workshop/testkit"
)

type lister struct {
	podresourcesv1.UnimplementedPodResourcesListerServer
	pods []*podresourcesv1.PodResources
}

func (l *lister) List(context.Context, *podresourcesv1.ListPodResourcesRequest) (*podresourcesv1.ListPodResourcesResponse, error) {
	return &podresourcesv1.ListPodResourcesResponse{PodResources: l.pods}, nil
}

// Serve answers List with pods on a fresh unix socket until the test ends, and returns the socket's path.
func Serve(t testing.TB, pods ...*podresourcesv1.PodResources) string {
	t.Helper()
	// unix socket paths are limited to about 108 bytes: t.TempDir() can be longer
	dir, err := os.MkdirTemp("", "kubelet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "kubelet.sock")
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	testkit.ServeGRPC(t, lis, func(srv *grpc.Server) {
		podresourcesv1.RegisterPodResourcesListerServer(srv, &lister{pods: pods})
	})
	return socket
}

// Pod is a pod whose one container was allocated devices (GPU UUIDs; UUID::n for a time-slicing replica) of
// resource (nvidia.com/gpu, nvidia.com/gpu.shared).
func Pod(namespace, name, container, resource string, deviceIDs ...string) *podresourcesv1.PodResources {
	return &podresourcesv1.PodResources{Namespace: namespace, Name: name, Containers: []*podresourcesv1.ContainerResources{{
		Name: container, Devices: []*podresourcesv1.ContainerDevices{{ResourceName: resource, DeviceIds: deviceIDs}},
	}}}
}
