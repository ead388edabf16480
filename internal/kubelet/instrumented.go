package kubelet

import (
	"context"
	"time"

	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Every runtime call of the kubelet goes through runtimeClient's two
// cri-api interfaces; wrapping them counts each call, its errors and its
// duration under upstream's operation_type names
// (kubelet_runtime_operations_*), as upstream's kuberuntime does.

// instrument wraps rt's services so their calls are counted in m.
func instrument(rt *runtimeClient, m *metrics) *runtimeClient {
	return &runtimeClient{
		runtime: &instrumentedRuntime{RuntimeService: rt.runtime, m: m},
		images:  &instrumentedImages{ImageManagerService: rt.images, m: m},
	}
}

// timed runs f and records it as operation op.
func timed[T any](m *metrics, op string, f func() (T, error)) (T, error) {
	start := time.Now()
	out, err := f()
	m.observeRuntime(op, start, err)
	return out, err
}

func timedErr(m *metrics, op string, f func() error) error {
	start := time.Now()
	err := f()
	m.observeRuntime(op, start, err)
	return err
}

// instrumentedRuntime embeds the service so a method added to cri-api
// later still works, uncounted until it is listed here.
type instrumentedRuntime struct {
	cri.RuntimeService
	m *metrics
}

func (r *instrumentedRuntime) Version(ctx context.Context, v string) (*runtimeapi.VersionResponse, error) {
	return timed(r.m, "version", func() (*runtimeapi.VersionResponse, error) { return r.RuntimeService.Version(ctx, v) })
}

func (r *instrumentedRuntime) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	return timed(r.m, "status", func() (*runtimeapi.StatusResponse, error) { return r.RuntimeService.Status(ctx, verbose) })
}

func (r *instrumentedRuntime) RuntimeConfig(ctx context.Context) (*runtimeapi.RuntimeConfigResponse, error) {
	return timed(r.m, "runtime_config", func() (*runtimeapi.RuntimeConfigResponse, error) { return r.RuntimeService.RuntimeConfig(ctx) })
}

func (r *instrumentedRuntime) UpdateRuntimeConfig(ctx context.Context, c *runtimeapi.RuntimeConfig) error {
	return timedErr(r.m, "update_runtime_config", func() error { return r.RuntimeService.UpdateRuntimeConfig(ctx, c) })
}

func (r *instrumentedRuntime) CreateContainer(ctx context.Context, sandboxID string, c *runtimeapi.ContainerConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	return timed(r.m, "create_container", func() (string, error) { return r.RuntimeService.CreateContainer(ctx, sandboxID, c, sc) })
}

func (r *instrumentedRuntime) StartContainer(ctx context.Context, id string) error {
	return timedErr(r.m, "start_container", func() error { return r.RuntimeService.StartContainer(ctx, id) })
}

func (r *instrumentedRuntime) StopContainer(ctx context.Context, id string, timeout int64) error {
	return timedErr(r.m, "stop_container", func() error { return r.RuntimeService.StopContainer(ctx, id, timeout) })
}

func (r *instrumentedRuntime) RemoveContainer(ctx context.Context, id string) error {
	return timedErr(r.m, "remove_container", func() error { return r.RuntimeService.RemoveContainer(ctx, id) })
}

func (r *instrumentedRuntime) ListContainers(ctx context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	return timed(r.m, "list_containers", func() ([]*runtimeapi.Container, error) { return r.RuntimeService.ListContainers(ctx, f) })
}

func (r *instrumentedRuntime) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	return timed(r.m, "container_status", func() (*runtimeapi.ContainerStatusResponse, error) {
		return r.RuntimeService.ContainerStatus(ctx, id, verbose)
	})
}

func (r *instrumentedRuntime) UpdateContainerResources(ctx context.Context, id string, res *runtimeapi.ContainerResources) error {
	return timedErr(r.m, "update_container", func() error { return r.RuntimeService.UpdateContainerResources(ctx, id, res) })
}

func (r *instrumentedRuntime) ReopenContainerLog(ctx context.Context, id string) error {
	return timedErr(r.m, "reopen_container_log", func() error { return r.RuntimeService.ReopenContainerLog(ctx, id) })
}

func (r *instrumentedRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, error) {
	start := time.Now()
	stdout, stderr, err := r.RuntimeService.ExecSync(ctx, id, cmd, timeout)
	r.m.observeRuntime("exec_sync", start, err)
	return stdout, stderr, err
}

func (r *instrumentedRuntime) Exec(ctx context.Context, req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	return timed(r.m, "exec", func() (*runtimeapi.ExecResponse, error) { return r.RuntimeService.Exec(ctx, req) })
}

func (r *instrumentedRuntime) Attach(ctx context.Context, req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	return timed(r.m, "attach", func() (*runtimeapi.AttachResponse, error) { return r.RuntimeService.Attach(ctx, req) })
}

// RunPodSandbox also feeds the per-handler sandbox histogram and errors.
func (r *instrumentedRuntime) RunPodSandbox(ctx context.Context, c *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	start := time.Now()
	id, err := r.RuntimeService.RunPodSandbox(ctx, c, handler)
	r.m.observeRuntime("run_podsandbox", start, err)
	r.m.sandboxCreate.WithLabelValues(handler).Observe(time.Since(start).Seconds())
	if err != nil {
		r.m.sandboxErrors.WithLabelValues(handler).Inc()
	}
	return id, err
}

func (r *instrumentedRuntime) StopPodSandbox(ctx context.Context, id string) error {
	return timedErr(r.m, "stop_podsandbox", func() error { return r.RuntimeService.StopPodSandbox(ctx, id) })
}

func (r *instrumentedRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	return timedErr(r.m, "remove_podsandbox", func() error { return r.RuntimeService.RemovePodSandbox(ctx, id) })
}

func (r *instrumentedRuntime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	return timed(r.m, "podsandbox_status", func() (*runtimeapi.PodSandboxStatusResponse, error) {
		return r.RuntimeService.PodSandboxStatus(ctx, id, verbose)
	})
}

func (r *instrumentedRuntime) ListPodSandbox(ctx context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	return timed(r.m, "list_podsandbox", func() ([]*runtimeapi.PodSandbox, error) { return r.RuntimeService.ListPodSandbox(ctx, f) })
}

func (r *instrumentedRuntime) PortForward(ctx context.Context, req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	return timed(r.m, "port_forward", func() (*runtimeapi.PortForwardResponse, error) { return r.RuntimeService.PortForward(ctx, req) })
}

func (r *instrumentedRuntime) UpdatePodSandboxResources(ctx context.Context, req *runtimeapi.UpdatePodSandboxResourcesRequest) (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
	return timed(r.m, "update_podsandbox_resources", func() (*runtimeapi.UpdatePodSandboxResourcesResponse, error) {
		return r.RuntimeService.UpdatePodSandboxResources(ctx, req)
	})
}

func (r *instrumentedRuntime) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	return timed(r.m, "container_stats", func() (*runtimeapi.ContainerStats, error) { return r.RuntimeService.ContainerStats(ctx, id) })
}

func (r *instrumentedRuntime) ListContainerStats(ctx context.Context, f *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return timed(r.m, "list_container_stats", func() ([]*runtimeapi.ContainerStats, error) {
		return r.RuntimeService.ListContainerStats(ctx, f)
	})
}

func (r *instrumentedRuntime) PodSandboxStats(ctx context.Context, id string) (*runtimeapi.PodSandboxStats, error) {
	return timed(r.m, "podsandbox_stats", func() (*runtimeapi.PodSandboxStats, error) { return r.RuntimeService.PodSandboxStats(ctx, id) })
}

func (r *instrumentedRuntime) ListPodSandboxStats(ctx context.Context, f *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	return timed(r.m, "list_podsandbox_stats", func() ([]*runtimeapi.PodSandboxStats, error) {
		return r.RuntimeService.ListPodSandboxStats(ctx, f)
	})
}

type instrumentedImages struct {
	cri.ImageManagerService
	m *metrics
}

func (i *instrumentedImages) ListImages(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	return timed(i.m, "list_images", func() ([]*runtimeapi.Image, error) { return i.ImageManagerService.ListImages(ctx, f) })
}

func (i *instrumentedImages) ImageStatus(ctx context.Context, img *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	return timed(i.m, "image_status", func() (*runtimeapi.ImageStatusResponse, error) {
		return i.ImageManagerService.ImageStatus(ctx, img, verbose)
	})
}

func (i *instrumentedImages) PullImage(ctx context.Context, img *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sc *runtimeapi.PodSandboxConfig) (string, error) {
	return timed(i.m, "pull_image", func() (string, error) { return i.ImageManagerService.PullImage(ctx, img, auth, sc) })
}

func (i *instrumentedImages) RemoveImage(ctx context.Context, img *runtimeapi.ImageSpec) error {
	return timedErr(i.m, "remove_image", func() error { return i.ImageManagerService.RemoveImage(ctx, img) })
}

func (i *instrumentedImages) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return timed(i.m, "image_fs_info", func() (*runtimeapi.ImageFsInfoResponse, error) { return i.ImageManagerService.ImageFsInfo(ctx) })
}
