package kubelet

import (
	"context"
	"fmt"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/types"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-dev/skiff/internal/kubelet/criremote"
)

// Labels and annotations the kubelet puts on sandboxes and containers, the
// same keys upstream uses, so that `crictl` output reads familiarly and a
// restarted agent can find its pods again.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelContainerType = "skiff.io/container-type" // "init" or "app"

	annotationHash              = "skiff.io/container-hash"
	annotationTerminationPath   = "io.kubernetes.container.terminationMessagePath"
	annotationGracePeriod       = "io.kubernetes.pod.terminationGracePeriod"
	annotationRestartCount      = "io.kubernetes.container.restartCount"
	annotationSandboxPodSpecKey = "skiff.io/sandbox-hash"
)

// runtimeClient is the kubelet's view of the container runtime: the two
// cri-api interfaces, so tests can hand in k8s.io/cri-api's fakes.
type runtimeClient struct {
	runtime cri.RuntimeService
	images  cri.ImageManagerService
}

func dialRuntime(endpoint string) (*runtimeClient, error) {
	c, err := criremote.Dial(endpoint)
	if err != nil {
		return nil, err
	}
	return &runtimeClient{runtime: c, images: c}, nil
}

// Close closes the runtime connection (the image service shares it).
func (r *runtimeClient) Close() error { return r.runtime.Close(context.Background()) }

// waitReady blocks until the runtime answers Version, for the containerd
// child that has just opened its socket.
func (r *runtimeClient) waitReady(ctx context.Context) (*runtimeapi.VersionResponse, error) {
	var lastErr error
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		v, err := r.runtime.Version(cctx, "")
		cancel()
		if err == nil {
			return v, nil
		}
		lastErr = err
		if i >= 100 {
			return nil, fmt.Errorf("container runtime does not answer: %w", lastErr)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// podRuntime is what the runtime holds for one pod: its sandboxes and
// containers, newest first.
type podRuntime struct {
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
}

// readySandbox is the newest sandbox in state READY, or nil.
func (p *podRuntime) readySandbox() *runtimeapi.PodSandbox {
	for _, s := range p.sandboxes {
		if s.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			return s
		}
	}
	return nil
}

// latestSandbox is the newest sandbox whatever its state, or nil.
func (p *podRuntime) latestSandbox() *runtimeapi.PodSandbox {
	if len(p.sandboxes) == 0 {
		return nil
	}
	return p.sandboxes[0]
}

// instances returns the containers named name, newest first, optionally
// restricted to one sandbox.
func (p *podRuntime) instances(name, sandboxID string) []*runtimeapi.Container {
	var out []*runtimeapi.Container
	for _, c := range p.containers {
		if c.Metadata.GetName() != name || (sandboxID != "" && c.PodSandboxId != sandboxID) {
			continue
		}
		out = append(out, c)
	}
	return out
}

// nextAttempt is one more than the highest attempt of any instance of name,
// which upstream reports as the container's restart count.
func (p *podRuntime) nextAttempt(name string) uint32 {
	var next uint32
	for _, c := range p.containers {
		if c.Metadata.GetName() == name && c.Metadata.GetAttempt()+1 > next {
			next = c.Metadata.GetAttempt() + 1
		}
	}
	return next
}

func (r *runtimeClient) podState(ctx context.Context, uid types.UID) (*podRuntime, error) {
	sel := map[string]string{labelPodUID: string(uid)}
	sb, err := r.runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	cs, err := r.runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: sel})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	p := &podRuntime{sandboxes: sb, containers: cs}
	sort.Slice(p.sandboxes, func(i, j int) bool { return p.sandboxes[i].CreatedAt > p.sandboxes[j].CreatedAt })
	sort.Slice(p.containers, func(i, j int) bool { return p.containers[i].CreatedAt > p.containers[j].CreatedAt })
	return p, nil
}

// containerStatus fetches the detailed status (exit code, reason, times).
func (r *runtimeClient) containerStatus(ctx context.Context, id string) (*runtimeapi.ContainerStatus, error) {
	resp, err := r.runtime.ContainerStatus(ctx, id, false)
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

// RemoveAllPods stops and removes every sandbox (and so every container)
// of the runtime at endpoint: the network teardown runs, mounts go. It is
// what `skiff killall` uses to clean a stopped node.
func RemoveAllPods(ctx context.Context, endpoint string) error {
	rt, err := dialRuntime(endpoint)
	if err != nil {
		return err
	}
	defer rt.Close()
	if _, err := rt.waitReady(ctx); err != nil {
		return err
	}
	sbs, err := rt.runtime.ListPodSandbox(ctx, nil)
	if err != nil {
		return err
	}
	var firstErr error
	for _, sb := range sbs {
		if err := rt.runtime.StopPodSandbox(ctx, sb.Id); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("stop sandbox %s: %w", sb.Id, err)
		}
		if err := rt.runtime.RemovePodSandbox(ctx, sb.Id); err != nil && firstErr == nil {
			firstErr = fmt.Errorf("remove sandbox %s: %w", sb.Id, err)
		}
	}
	return firstErr
}
