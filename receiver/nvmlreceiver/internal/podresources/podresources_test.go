package podresources

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	v1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

func TestDeviceKey(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		{"GPU-5b3d1f42-7c1e-4a6f-9d2b-0e8f6a4c3b21", "GPU-5b3d1f42-7c1e-4a6f-9d2b-0e8f6a4c3b21"},
		{"GPU-5b3d1f42-7c1e-4a6f-9d2b-0e8f6a4c3b21::3", "GPU-5b3d1f42-7c1e-4a6f-9d2b-0e8f6a4c3b21"}, // time-slicing replica
		{"MIG-7f0c2d18-3a4b-5c6d-8e9f-1a2b3c4d5e6f::1", "MIG-7f0c2d18-3a4b-5c6d-8e9f-1a2b3c4d5e6f"}, // EKS MIG
		{"nvidia0", "nvidia0"},
		{" ", ""},
		{"::2", ""},
	} {
		assert.Equal(t, tc.want, DeviceKey(tc.id), tc.id)
	}
}

func TestBuild(t *testing.T) {
	container := func(name, resource string, ids ...string) *v1.ContainerResources {
		return &v1.ContainerResources{Name: name, Devices: []*v1.ContainerDevices{{ResourceName: resource, DeviceIds: ids}}}
	}
	resp := &v1.ListPodResourcesResponse{PodResources: []*v1.PodResources{
		{Namespace: "llm", Name: "a", Containers: []*v1.ContainerResources{
			container("vllm", "nvidia.com/gpu.shared", "GPU-1::0", "GPU-1::1"),
			container("sidecar", "example.com/fpga", "GPU-1"), // not an NVIDIA resource
		}},
		{Namespace: "llm", Name: "b", Containers: []*v1.ContainerResources{container("vllm", "nvidia.com/gpu.shared", "GPU-1::2")}},
		{Namespace: "llm", Name: "", Containers: []*v1.ContainerResources{container("vllm", "nvidia.com/gpu", "GPU-2")}}, // no pod name
		nil,
	}}
	snap := Build(resp)
	assert.Equal(t, []Allocation{
		{Owner: Owner{Namespace: "llm", Pod: "a", Container: "vllm"}, Devices: 2},
		{Owner: Owner{Namespace: "llm", Pod: "b", Container: "vllm"}, Devices: 1},
	}, snap.Allocations("GPU-1", "nvidia1"))
	assert.Nil(t, snap.Allocations("GPU-2", "nvidia2"))
	assert.Equal(t, 1, snap.Invalid)
	assert.Equal(t, 1, snap.Len())

	// by device name when the plugin reports nvidia<minor>
	byName := Build(&v1.ListPodResourcesResponse{PodResources: []*v1.PodResources{
		{Namespace: "ns", Name: "p", Containers: []*v1.ContainerResources{container("c", "nvidia.com/gpu", "nvidia3")}},
	}})
	assert.Len(t, byName.Allocations("GPU-unknown", "nvidia3"), 1)

	// bounded whatever the answer
	var ids []string
	for i := range MaxDevices + 10 {
		ids = append(ids, fmt.Sprintf("GPU-%d", i))
	}
	big := Build(&v1.ListPodResourcesResponse{PodResources: []*v1.PodResources{
		{Namespace: "ns", Name: "p", Containers: []*v1.ContainerResources{container("c", "nvidia.com/gpu", ids...)}},
	}})
	assert.Equal(t, MaxDevices, big.Len())
	assert.Equal(t, 10, big.Invalid)
	var nilSnap *Snapshot
	assert.Nil(t, nilSnap.Allocations("GPU-1", "nvidia1"))
}
