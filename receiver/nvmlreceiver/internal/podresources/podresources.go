// Package podresources reads which containers the kubelet allocated NVIDIA devices to, from the kubelet's
// pod-resources gRPC API on its unix socket (read-only; no Kubernetes API credentials needed).
package podresources // import "github.com/otelcol-vllm/otelcol-vllm/receiver/nvmlreceiver/internal/podresources"

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	v1 "k8s.io/kubelet/pkg/apis/podresources/v1"
)

const (
	// maxResponseBytes bounds one List answer (the kubelet lists every pod of the node).
	maxResponseBytes = 16 << 20
	// MaxDevices bounds the device IDs one snapshot keeps; a node has at most a few hundred GPU replicas.
	MaxDevices = 4096
	// nvidiaResourcePrefix selects nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-1g.10gb, ...
	nvidiaResourcePrefix = "nvidia.com/"
)

// Owner is a container holding devices.
type Owner struct {
	Namespace, Pod, Container string
}

// Allocation is an owner and how many device IDs of one GPU (or MIG instance) it holds: 1 for an exclusive
// GPU, the number of replicas under time-slicing.
type Allocation struct {
	Owner
	Devices int
}

// Snapshot maps a device (GPU or MIG UUID, or nvidia<minor> device name) to its allocations, sorted by owner.
type Snapshot struct {
	byDevice map[string][]Allocation
	// Invalid counts entries of the answer that could not be used (empty names or device IDs, over MaxDevices).
	Invalid int
}

// Allocations returns the allocations of the device known by uuid or by name; nil when it is not allocated.
func (s *Snapshot) Allocations(uuid, name string) []Allocation {
	if s == nil {
		return nil
	}
	if a, ok := s.byDevice[uuid]; ok {
		return a
	}
	return s.byDevice[name]
}

// Len is the number of allocated devices in the snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return len(s.byDevice)
}

// DeviceKey normalises a device ID from the NVIDIA device plugin: time-slicing replicas ("GPU-…::3") and
// EKS-style MIG IDs ("MIG-…::1") name the GPU or instance before "::".
func DeviceKey(id string) string {
	if i := strings.Index(id, "::"); i >= 0 {
		id = id[:i]
	}
	return strings.TrimSpace(id)
}

// Build turns a List answer into a snapshot.
func Build(resp *v1.ListPodResourcesResponse) *Snapshot {
	snap := &Snapshot{byDevice: map[string][]Allocation{}}
	counts := map[string]map[Owner]int{}
	ids := 0
	for _, pod := range resp.GetPodResources() {
		for _, c := range pod.GetContainers() {
			for _, dev := range c.GetDevices() {
				if !strings.HasPrefix(dev.GetResourceName(), nvidiaResourcePrefix) {
					continue
				}
				owner := Owner{Namespace: pod.GetNamespace(), Pod: pod.GetName(), Container: c.GetName()}
				for _, id := range dev.GetDeviceIds() {
					key := DeviceKey(id)
					if key == "" || owner.Pod == "" || owner.Namespace == "" || owner.Container == "" {
						snap.Invalid++
						continue
					}
					if ids == MaxDevices {
						snap.Invalid++
						continue
					}
					ids++
					if counts[key] == nil {
						counts[key] = map[Owner]int{}
					}
					counts[key][owner]++
				}
			}
		}
	}
	for key, owners := range counts {
		allocs := make([]Allocation, 0, len(owners))
		for o, n := range owners {
			allocs = append(allocs, Allocation{Owner: o, Devices: n})
		}
		slices.SortFunc(allocs, func(a, b Allocation) int {
			return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container))
		})
		snap.byDevice[key] = allocs
	}
	return snap
}

// Client lists the kubelet's device allocations.
type Client struct {
	conn   *grpc.ClientConn
	lister v1.PodResourcesListerClient
}

// NewClient prepares a client for the unix socket at path; it does not connect until List.
func NewClient(path string) (*Client, error) {
	if path == "" {
		return nil, errors.New("no pod-resources socket configured")
	}
	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseBytes)))
	if err != nil {
		return nil, fmt.Errorf("pod-resources client for %s: %w", path, err)
	}
	return &Client{conn: conn, lister: v1.NewPodResourcesListerClient(conn)}, nil
}

// List asks the kubelet for every pod's resources.
func (c *Client) List(ctx context.Context) (*v1.ListPodResourcesResponse, error) {
	return c.lister.List(ctx, &v1.ListPodResourcesRequest{})
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }
