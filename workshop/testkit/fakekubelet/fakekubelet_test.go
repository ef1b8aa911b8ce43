package fakekubelet

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	podresourcesv1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// TestListAnswersAPodResourcesClient asks the fake over the kubelet's generated gRPC client, on the unix socket,
// as a node agent does.
func TestListAnswersAPodResourcesClient(t *testing.T) {
	for _, tt := range []struct {
		name string
		pods []*podresourcesv1.PodResources
	}{
		{name: "no pods"},
		{name: "an exclusive GPU and a time-sliced one", pods: []*podresourcesv1.PodResources{
			Pod("llm", "vllm-0", "vllm", "nvidia.com/gpu", "GPU-1111"),
			Pod("batch", "embed-0", "embedder", "nvidia.com/gpu.shared", "GPU-aaaa::0", "GPU-aaaa::1"),
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			socket := Serve(t, tt.pods...)
			assert.Less(t, len(socket), 108, "fits a unix socket address")
			conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := podresourcesv1.NewPodResourcesListerClient(conn).List(ctx, &podresourcesv1.ListPodResourcesRequest{})
			require.NoError(t, err)
			require.Len(t, resp.GetPodResources(), len(tt.pods))
			for i, want := range tt.pods {
				assert.True(t, proto.Equal(want, resp.GetPodResources()[i]), "pod %d: got %v, want %v", i, resp.GetPodResources()[i], want)
			}
		})
	}
}

func TestPod(t *testing.T) {
	p := Pod("llm", "vllm-0", "vllm", "nvidia.com/gpu", "GPU-1", "GPU-2")
	assert.Equal(t, "llm", p.GetNamespace())
	assert.Equal(t, "vllm-0", p.GetName())
	require.Len(t, p.GetContainers(), 1)
	c := p.GetContainers()[0]
	assert.Equal(t, "vllm", c.GetName())
	require.Len(t, c.GetDevices(), 1)
	assert.Equal(t, "nvidia.com/gpu", c.GetDevices()[0].GetResourceName())
	assert.Equal(t, []string{"GPU-1", "GPU-2"}, c.GetDevices()[0].GetDeviceIds())
}

// TestUnimplementedCallsAreRefused: the fake serves List only; a client that needs more learns it plainly.
func TestUnimplementedCallsAreRefused(t *testing.T) {
	conn, err := grpc.NewClient("unix://"+Serve(t), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = podresourcesv1.NewPodResourcesListerClient(conn).GetAllocatableResources(context.Background(), &podresourcesv1.AllocatableResourcesRequest{})
	assert.ErrorContains(t, err, "Unimplemented")
}
