// Package fakeruntime is an in-memory container runtime behind k8s.io/cri-api's
// RuntimeService and ImageManagerService, for the kubelet's unit tests. It
// keeps sandboxes, containers and images, records calls and can be told to
// fail a method. (cri-api's own fake needs testify, which Skiff does not
// depend on.)
package fakeruntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	cri "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageFsMountpoint is where the fake says its images are stored.
const ImageFsMountpoint = "/fake/imagefs"

// Runtime is the fake. Methods the kubelet never calls are left to the
// embedded nil interfaces and panic if called.
type Runtime struct {
	cri.RuntimeService
	cri.ImageManagerService

	mu         sync.Mutex
	seq        int
	now        func() time.Time
	calls      []string
	errs       map[string][]error
	Sandboxes  map[string]*runtimeapi.PodSandboxStatus
	Containers map[string]*Container
	Images     map[string]*runtimeapi.Image // by reference (name) and ID
	logDirs    map[string]string            // sandbox ID → log directory
	// SandboxIP is the IP every sandbox gets.
	SandboxIP string
	// SandboxImage, when set, is reported in the verbose status's CRI
	// configuration, as containerd does.
	SandboxImage string
	// ExecResult answers ExecSync.
	ExecResult func(id string, cmd []string) (stdout []byte, err error)
}

// Container is a fake container: its status and sandbox, and the devices
// it was created with (which a status does not show).
type Container struct {
	runtimeapi.ContainerStatus
	SandboxID string
	Devices   []*runtimeapi.Device
	// Hostname is the sandbox hostname given with CreateContainer, which
	// containerd sets as the container's HOSTNAME ("" means the node's).
	Hostname string
}

var (
	_ cri.RuntimeService      = (*Runtime)(nil)
	_ cri.ImageManagerService = (*Runtime)(nil)
)

// New returns an empty runtime whose clock is time.Now.
func New() *Runtime {
	return &Runtime{
		now: time.Now, errs: map[string][]error{}, SandboxIP: "10.88.0.5",
		Sandboxes: map[string]*runtimeapi.PodSandboxStatus{}, Containers: map[string]*Container{},
		Images: map[string]*runtimeapi.Image{}, logDirs: map[string]string{},
	}
}

// SetClock makes the runtime take its times (creation, start, exit) from
// now, such as a test's fake clock.
func (r *Runtime) SetClock(now func() time.Time) {
	r.mu.Lock()
	r.now = now
	r.mu.Unlock()
}

// InjectError makes the next call of method fail with err (queued).
func (r *Runtime) InjectError(method string, err error) {
	r.mu.Lock()
	r.errs[method] = append(r.errs[method], err)
	r.mu.Unlock()
}

// Calls returns the methods called so far, in order.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Count is how many times method was called.
func (r *Runtime) Count(method string) int {
	n := 0
	for _, c := range r.Calls() {
		if c == method {
			n++
		}
	}
	return n
}

// AddImage makes an image present under ref.
func (r *Runtime) AddImage(ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Images[ref] = &runtimeapi.Image{Id: "sha256:" + ref, RepoTags: []string{ref}, Size: 1000}
}

// Exit marks a container exited with code at the fake's now.
func (r *Runtime) Exit(id string, code int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.Containers[id]; ok {
		c.State = runtimeapi.ContainerState_CONTAINER_EXITED
		c.ExitCode = code
		c.FinishedAt = r.now().UnixNano()
	}
}

// called records a call and pops an injected error; the lock is held.
func (r *Runtime) called(method string) error {
	r.calls = append(r.calls, method)
	if q := r.errs[method]; len(q) > 0 {
		r.errs[method] = q[1:]
		return q[0]
	}
	return nil
}

// stamp is a strictly increasing creation time, so "newest first" is stable.
func (r *Runtime) stamp() int64 {
	r.seq++
	return r.now().UnixNano() + int64(r.seq)
}

func (r *Runtime) Version(context.Context, string) (*runtimeapi.VersionResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("Version"); err != nil {
		return nil, err
	}
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "0.1", RuntimeApiVersion: "v1"}, nil
}

func (r *Runtime) Status(_ context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("Status"); err != nil {
		return nil, err
	}
	resp := &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: "RuntimeReady", Status: true}, {Type: "NetworkReady", Status: true}}}}
	if verbose && r.SandboxImage != "" {
		cfg, err := json.Marshal(map[string]string{"sandboxImage": r.SandboxImage})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"config": string(cfg)}
	}
	return resp, nil
}

func (r *Runtime) Close(context.Context) error { return nil }

func (r *Runtime) RunPodSandbox(_ context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("RunPodSandbox"); err != nil {
		return "", err
	}
	id := fmt.Sprintf("sb-%s-%d", cfg.GetMetadata().GetUid(), cfg.GetMetadata().GetAttempt())
	r.logDirs[id] = cfg.LogDirectory
	r.Sandboxes[id] = &runtimeapi.PodSandboxStatus{
		Id: id, Metadata: cfg.Metadata, State: runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: r.stamp(),
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: r.SandboxIP}, Labels: cfg.Labels, Annotations: cfg.Annotations,
		RuntimeHandler: handler,
	}
	return id, nil
}

func (r *Runtime) StopPodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("StopPodSandbox"); err != nil {
		return err
	}
	s, ok := r.Sandboxes[id]
	if !ok {
		return fmt.Errorf("sandbox %q not found", id)
	}
	s.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	for _, c := range r.Containers {
		if c.SandboxID == id && c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 137, r.now().UnixNano()
		}
	}
	return nil
}

func (r *Runtime) RemovePodSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("RemovePodSandbox"); err != nil {
		return err
	}
	delete(r.Sandboxes, id)
	for cid, c := range r.Containers {
		if c.SandboxID == id {
			delete(r.Containers, cid)
		}
	}
	return nil
}

func (r *Runtime) PodSandboxStatus(_ context.Context, id string, _ bool) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("PodSandboxStatus"); err != nil {
		return nil, err
	}
	s, ok := r.Sandboxes[id]
	if !ok {
		return nil, fmt.Errorf("sandbox %q not found", id)
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: proto.Clone(s).(*runtimeapi.PodSandboxStatus)}, nil
}

func matches(labels, sel map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (r *Runtime) ListPodSandbox(_ context.Context, f *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ListPodSandbox"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.PodSandbox
	for _, s := range r.Sandboxes {
		if f != nil && (!matches(s.Labels, f.LabelSelector) || (f.Id != "" && f.Id != s.Id)) {
			continue
		}
		out = append(out, &runtimeapi.PodSandbox{Id: s.Id, Metadata: s.Metadata, State: s.State, CreatedAt: s.CreatedAt,
			Labels: s.Labels, Annotations: s.Annotations, RuntimeHandler: s.RuntimeHandler})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out, nil
}

func (r *Runtime) CreateContainer(_ context.Context, sandboxID string, cfg *runtimeapi.ContainerConfig, sbCfg *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("CreateContainer"); err != nil {
		return "", err
	}
	// As containerd: a privileged container needs the sandbox config given
	// with this call to be privileged too.
	if cfg.GetLinux().GetSecurityContext().GetPrivileged() && !sbCfg.GetLinux().GetSecurityContext().GetPrivileged() {
		return "", errors.New("no privileged container allowed in sandbox")
	}
	if _, ok := r.Sandboxes[sandboxID]; !ok {
		return "", fmt.Errorf("sandbox %q not found", sandboxID)
	}
	id := fmt.Sprintf("%s-%s-%d", sandboxID, cfg.GetMetadata().GetName(), cfg.GetMetadata().GetAttempt())
	r.Containers[id] = &Container{SandboxID: sandboxID, Devices: cfg.Devices, Hostname: sbCfg.GetHostname(), ContainerStatus: runtimeapi.ContainerStatus{
		Id: id, Metadata: cfg.Metadata, State: runtimeapi.ContainerState_CONTAINER_CREATED, CreatedAt: r.stamp(),
		Image: cfg.Image, ImageRef: cfg.GetImage().GetImage(), Labels: cfg.Labels, Annotations: cfg.Annotations,
		LogPath: filepath.Join(r.logDirs[sandboxID], cfg.LogPath), Mounts: cfg.Mounts,
	}}
	return id, nil
}

func (r *Runtime) StartContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("StartContainer"); err != nil {
		return err
	}
	c, ok := r.Containers[id]
	if !ok {
		return fmt.Errorf("container %q not found", id)
	}
	c.State, c.StartedAt = runtimeapi.ContainerState_CONTAINER_RUNNING, r.now().UnixNano()
	return nil
}

func (r *Runtime) StopContainer(_ context.Context, id string, _ int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("StopContainer"); err != nil {
		return err
	}
	c, ok := r.Containers[id]
	if !ok {
		return fmt.Errorf("container %q not found", id)
	}
	if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
		c.State, c.ExitCode, c.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 137, r.now().UnixNano()
		c.Reason = "Error"
	}
	return nil
}

func (r *Runtime) RemoveContainer(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("RemoveContainer"); err != nil {
		return err
	}
	delete(r.Containers, id)
	return nil
}

func (r *Runtime) ListContainers(_ context.Context, f *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ListContainers"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.Container
	for _, c := range r.Containers {
		if f != nil && (!matches(c.Labels, f.LabelSelector) || (f.State != nil && f.State.State != c.State) ||
			(f.PodSandboxId != "" && f.PodSandboxId != c.SandboxID) || (f.Id != "" && f.Id != c.Id)) {
			continue
		}
		out = append(out, &runtimeapi.Container{Id: c.Id, PodSandboxId: c.SandboxID, Metadata: c.Metadata, Image: c.Image,
			ImageRef: c.ImageRef, State: c.State, CreatedAt: c.CreatedAt, Labels: c.Labels, Annotations: c.Annotations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out, nil
}

func (r *Runtime) ContainerStatus(_ context.Context, id string, _ bool) (*runtimeapi.ContainerStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ContainerStatus"); err != nil {
		return nil, err
	}
	c, ok := r.Containers[id]
	if !ok {
		return nil, fmt.Errorf("container %q not found", id)
	}
	return &runtimeapi.ContainerStatusResponse{Status: proto.Clone(&c.ContainerStatus).(*runtimeapi.ContainerStatus)}, nil
}

func (r *Runtime) UpdateContainerResources(_ context.Context, id string, _ *runtimeapi.ContainerResources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.called("UpdateContainerResources")
}

func (r *Runtime) ExecSync(_ context.Context, id string, cmd []string, _ time.Duration) ([]byte, []byte, error) {
	r.mu.Lock()
	err := r.called("ExecSync")
	exec := r.ExecResult
	r.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if exec == nil {
		return nil, nil, nil
	}
	out, err := exec(id, cmd)
	return out, nil, err
}

func (r *Runtime) ReopenContainerLog(context.Context, string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.called("ReopenContainerLog")
}

func (r *Runtime) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ListContainerStats"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.ContainerStats
	for _, c := range r.Containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		ts := r.now().UnixNano()
		out = append(out, &runtimeapi.ContainerStats{
			Attributes: &runtimeapi.ContainerAttributes{Id: c.Id, Metadata: c.Metadata, Labels: c.Labels},
			Cpu:        &runtimeapi.CpuUsage{Timestamp: ts, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 1e9}},
			Memory:     &runtimeapi.MemoryUsage{Timestamp: ts, WorkingSetBytes: &runtimeapi.UInt64Value{Value: 1 << 20}},
		})
	}
	return out, nil
}

// Images.

func (r *Runtime) ListImages(context.Context, *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ListImages"); err != nil {
		return nil, err
	}
	var out []*runtimeapi.Image
	for _, img := range r.Images {
		out = append(out, img)
	}
	return out, nil
}

func (r *Runtime) ImageStatus(_ context.Context, spec *runtimeapi.ImageSpec, _ bool) (*runtimeapi.ImageStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("ImageStatus"); err != nil {
		return nil, err
	}
	return &runtimeapi.ImageStatusResponse{Image: r.Images[spec.GetImage()]}, nil
}

func (r *Runtime) PullImage(_ context.Context, spec *runtimeapi.ImageSpec, _ *runtimeapi.AuthConfig, _ *runtimeapi.PodSandboxConfig) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("PullImage"); err != nil {
		return "", err
	}
	ref := spec.GetImage()
	r.Images[ref] = &runtimeapi.Image{Id: "sha256:" + ref, RepoTags: []string{ref}, Size: 1000}
	return r.Images[ref].Id, nil
}

func (r *Runtime) RemoveImage(_ context.Context, spec *runtimeapi.ImageSpec) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("RemoveImage"); err != nil {
		return err
	}
	for ref, img := range r.Images {
		if ref == spec.GetImage() || img.Id == spec.GetImage() {
			delete(r.Images, ref)
		}
	}
	return nil
}

func (r *Runtime) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{
		{FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: ImageFsMountpoint}}}}, r.called("ImageFsInfo")
}

// SetSandboxes replaces the sandboxes.
func (r *Runtime) SetSandboxes(sbs ...*runtimeapi.PodSandboxStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Sandboxes = map[string]*runtimeapi.PodSandboxStatus{}
	for _, s := range sbs {
		r.Sandboxes[s.Id] = s
	}
}

// SetContainers replaces the containers.
func (r *Runtime) SetContainers(cs ...*Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Containers = map[string]*Container{}
	for _, c := range cs {
		r.Containers[c.Id] = c
	}
}

// Streaming calls answer with a URL on the fake's StreamURL.

// StreamURL is the base of the URLs Exec, Attach and PortForward return.
const StreamURL = "http://127.0.0.1:1/stream/"

func (r *Runtime) Exec(context.Context, *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("Exec"); err != nil {
		return nil, err
	}
	return &runtimeapi.ExecResponse{Url: StreamURL + "exec"}, nil
}

func (r *Runtime) Attach(context.Context, *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("Attach"); err != nil {
		return nil, err
	}
	return &runtimeapi.AttachResponse{Url: StreamURL + "attach"}, nil
}

func (r *Runtime) PortForward(context.Context, *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.called("PortForward"); err != nil {
		return nil, err
	}
	return &runtimeapi.PortForwardResponse{Url: StreamURL + "portforward"}, nil
}
