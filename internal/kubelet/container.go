package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// configError is a problem with the pod's definition or what it refers to
// (a missing ConfigMap key, runAsNonRoot against a root image): the
// container waits with CreateContainerConfigError until it is fixed.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, a ...any) error { return &configError{fmt.Sprintf(format, a...)} }

// startContainer pulls the image if needed, creates and starts one
// container, and runs its postStart hook. Failures become the container's
// Waiting reason; the returned duration asks for a retry.
func (k *Kubelet) startContainer(ctx context.Context, w *podWorker, pod *v1.Pod, c *v1.Container, sb *runtimeapi.PodSandbox,
	state *podRuntime, env *podEnv, volumes map[string]string, init bool) (time.Duration, error) {
	imageRef, user, err := k.ensureImage(ctx, w, pod, c, sb.GetRuntimeHandler())
	if err != nil {
		return k.backoff.pullWait(backoffKey(pod.UID, "pull/"+c.Name)), err
	}
	attempt := state.nextAttempt(c.Name)
	cfg, err := k.containerConfig(pod, c, imageRef, user, attempt, env, volumes, init)
	if err != nil {
		var ce *configError
		if errors.As(err, &ce) {
			w.waiting[c.Name] = waitingReason{"CreateContainerConfigError", ce.msg}
			k.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %s", ce.msg)
			return retrySoon, nil
		}
		return retrySoon, err
	}
	adjustEphemeralConfig(pod, cfg, state, sb.Id)
	sbCfg, err := k.sandboxConfig(pod, sb.GetMetadata().GetAttempt())
	if err != nil {
		return retrySoon, err
	}
	createdID, err := k.runtime.runtime.CreateContainer(ctx, sb.Id, cfg, sbCfg)
	if err != nil {
		w.waiting[c.Name] = waitingReason{"CreateContainerError", err.Error()}
		k.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return retrySoon, err
	}
	k.recorder.Eventf(pod, v1.EventTypeNormal, "Created", "Created container %s", c.Name)
	if ephemeralContainer(pod, c.Name) == nil {
		k.markApplied(pod.UID, createdID, k.allocatedResources(pod, c))
	}
	if err := k.runtime.runtime.StartContainer(ctx, createdID); err != nil {
		w.waiting[c.Name] = waitingReason{"RunContainerError", err.Error()}
		k.recorder.Eventf(pod, v1.EventTypeWarning, "Failed", "Error: %v", err)
		return retrySoon, err
	}
	delete(w.waiting, c.Name)
	k.recorder.Eventf(pod, v1.EventTypeNormal, "Started", "Started container %s", c.Name)
	k.linkContainerLog(pod, c.Name, createdID, cfg.LogPath)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := k.runHook(hctx, pod, c, createdID, c.Lifecycle.PostStart)
		cancel()
		if err != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %v", err)
			_ = k.stopContainer(ctx, pod, c, createdID, gracePeriod(pod))
			return 100 * time.Millisecond, nil
		}
	}
	return 0, nil
}

func (k *Kubelet) containerConfig(pod *v1.Pod, c *v1.Container, imageRef string, imageUser *imageUser, attempt uint32,
	env *podEnv, volumes map[string]string, init bool) (*runtimeapi.ContainerConfig, error) {
	envs, err := env.forContainer(c)
	if err != nil {
		return nil, err
	}
	vars := make(map[string]string, len(envs))
	kvs := make([]*runtimeapi.KeyValue, 0, len(envs))
	for _, e := range envs {
		vars[e.name] = e.value
		kvs = append(kvs, &runtimeapi.KeyValue{Key: e.name, Value: []byte(e.value)})
	}
	mounts, err := k.containerMounts(pod, c, volumes, vars, attempt)
	if err != nil {
		return nil, err
	}
	devices, err := containerDevices(pod, c, volumes)
	if err != nil {
		return nil, err
	}
	sc, err := containerSecurity(pod, c, imageUser)
	if err != nil {
		return nil, err
	}
	kind := "app"
	if init {
		kind = "init"
	}
	labels := map[string]string{
		labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID),
		labelContainerName: c.Name, labelContainerType: kind,
	}
	termPath := c.TerminationMessagePath
	if termPath == "" {
		termPath = v1.TerminationMessagePathDefault
	}
	return &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:    expandAll(c.Command, vars),
		Args:       expandAll(c.Args, vars),
		WorkingDir: c.WorkingDir,
		Envs:       kvs,
		Mounts:     mounts,
		Devices:    devices,
		Labels:     labels,
		Annotations: map[string]string{
			annotationHash:            containerHash(c),
			annotationRestartCount:    strconv.Itoa(int(attempt)),
			annotationTerminationPath: termPath,
			annotationGracePeriod:     strconv.FormatInt(gracePeriod(pod), 10),
		},
		LogPath:   filepath.Join(c.Name, fmt.Sprintf("%d.log", attempt)),
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       k.containerResources(pod, c),
			SecurityContext: sc,
		},
	}, nil
}

// containerHash identifies a container's definition; a running container
// whose hash no longer matches the spec (an image update) is restarted.
// Resources and the resize policy are left out: they change in place
// (resize.go). A container without them hashes as it always did.
func containerHash(c *v1.Container) string {
	h0 := *c
	h0.Resources, h0.ResizePolicy = v1.ResourceRequirements{}, nil
	return hashJSON(&h0)
}

// definitionUnchanged reports whether a running container labelled with hash
// still matches c. Agents before in-place resize hashed the whole container,
// resources included: that hash is accepted too, so an upgraded agent does
// not restart every container that sets resources.
func definitionUnchanged(hash string, c *v1.Container) bool {
	return hash == containerHash(c) || hash == hashJSON(c)
}

func hashJSON(v any) string {
	data, _ := json.Marshal(v)
	h := fnv.New64a()
	h.Write(data)
	return strconv.FormatUint(h.Sum64(), 36)
}

// containerMounts turns volumeMounts into runtime mounts, plus the
// kubelet-managed /etc/hosts and the termination-message file. env is the
// container's environment, which subPathExpr refers to.
func (k *Kubelet) containerMounts(pod *v1.Pod, c *v1.Container, volumes, env map[string]string, attempt uint32) ([]*runtimeapi.Mount, error) {
	var mounts []*runtimeapi.Mount
	hasHosts := false
	for _, vm := range c.VolumeMounts {
		src, ok := volumes[vm.Name]
		if !ok {
			return nil, configErrorf("volume %q is not defined in the pod", vm.Name)
		}
		sub, err := mountSubPath(vm, env)
		if err != nil {
			return nil, err
		}
		if sub != "" {
			if src, err = subPathSource(src, sub); err != nil {
				return nil, err
			}
		}
		if vm.MountPath == "/etc/hosts" {
			hasHosts = true
		}
		m := &runtimeapi.Mount{ContainerPath: vm.MountPath, HostPath: src, Readonly: vm.ReadOnly}
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case v1.MountPropagationHostToContainer:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case v1.MountPropagationBidirectional:
				m.Propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		mounts = append(mounts, m)
	}
	if !pod.Spec.HostNetwork && !hasHosts {
		mounts = append(mounts, &runtimeapi.Mount{ContainerPath: "/etc/hosts", HostPath: filepath.Join(k.podDir(pod), "etc-hosts")})
	}
	termPath := c.TerminationMessagePath
	if termPath == "" {
		termPath = v1.TerminationMessagePathDefault
	}
	termFile := k.terminationFile(pod.UID, c.Name, attempt)
	if err := os.MkdirAll(filepath.Dir(termFile), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(termFile, nil, 0o666); err != nil {
		return nil, err
	}
	os.Chmod(termFile, 0o666) // writable by non-root users, whatever the umask
	mounts = append(mounts, &runtimeapi.Mount{ContainerPath: termPath, HostPath: termFile})
	return mounts, nil
}

func (k *Kubelet) terminationFile(uid types.UID, name string, attempt uint32) string {
	return filepath.Join(k.cfg.DataDir, "pods", string(uid), "containers", name, fmt.Sprintf("%d-termination-log", attempt))
}

// mountSubPath is the path inside the volume a mount exposes ("" for the
// whole volume): subPath, or subPathExpr with $(VAR) expanded from the
// container's environment. As upstream's kubelet, a reference to a variable
// that is unset or empty, an absolute path and a '..' element are
// configuration errors, so the container waits with
// CreateContainerConfigError until the pod is fixed.
func mountSubPath(vm v1.VolumeMount, env map[string]string) (string, error) {
	sub := vm.SubPath
	if vm.SubPathExpr != "" {
		var missing []string
		sub = expandFunc(vm.SubPathExpr, func(name string) (string, bool) {
			v := env[name]
			if v == "" && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
			return v, true
		})
		if len(missing) > 0 {
			slices.Sort(missing)
			return "", configErrorf("missing value for %s", strings.Join(missing, ", "))
		}
	}
	if sub == "" {
		return "", nil
	}
	if filepath.IsAbs(sub) {
		return "", configErrorf("error SubPath `%s` must not be an absolute path", sub)
	}
	if slices.Contains(strings.Split(filepath.ToSlash(sub), "/"), "..") {
		return "", configErrorf("unable to provision SubPath `%s`: must not contain '..'", sub)
	}
	return sub, nil
}

// subPathSource is the host path of sub inside the volume at volumePath,
// created as a directory when missing.
func subPathSource(volumePath, sub string) (string, error) {
	p := filepath.Join(volumePath, filepath.Clean("/"+sub))
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", err
		}
	}
	// Resolve symlinks (configMap keys are links into ..data) but refuse to
	// leave the volume.
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	base, err := filepath.EvalSymlinks(volumePath)
	if err != nil {
		return "", err
	}
	if real != base && !strings.HasPrefix(real, base+"/") {
		return "", configErrorf("subPath %q points outside its volume", sub)
	}
	return real, nil
}

// defaultMaskedPaths and defaultReadonlyPaths are the /proc and /sys paths
// upstream hides from unprivileged containers.
var (
	defaultMaskedPaths = []string{"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

func containerSecurity(pod *v1.Pod, c *v1.Container, imageUser *imageUser) (*runtimeapi.LinuxContainerSecurityContext, error) {
	psc := podSecurity(pod)
	csc := c.SecurityContext
	if csc == nil {
		csc = &v1.SecurityContext{}
	}
	sc := &runtimeapi.LinuxContainerSecurityContext{
		NamespaceOptions:   namespaceOptions(pod),
		SupplementalGroups: supplementalGroups(pod),
		Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
	}
	runAsUser := firstInt64(csc.RunAsUser, psc.RunAsUser)
	runAsGroup := firstInt64(csc.RunAsGroup, psc.RunAsGroup)
	sc.RunAsUser = int64Value(runAsUser)
	sc.RunAsGroup = int64Value(runAsGroup)
	nonRoot := csc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	if nonRoot != nil && *nonRoot {
		switch {
		case runAsUser != nil && *runAsUser == 0:
			return nil, configErrorf("container's runAsUser breaks non-root policy (pod: %q, container: %s)", pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", c.Name)
		case runAsUser == nil && (imageUser == nil || imageUser.root()):
			return nil, configErrorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s)", pod.Name+"_"+pod.Namespace+"("+string(pod.UID)+")", c.Name)
		}
	}
	if csc.Privileged != nil && *csc.Privileged {
		sc.Privileged = true
	} else {
		sc.MaskedPaths = defaultMaskedPaths
		sc.ReadonlyPaths = defaultReadonlyPaths
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, capName(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, capName(d))
		}
	}
	return sc, nil
}

// capName accepts NET_ADMIN and CAP_NET_ADMIN alike; the runtime adds the
// CAP_ prefix itself.
func capName(c v1.Capability) string {
	return strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
}

func firstInt64(a, b *int64) *int64 {
	if a != nil {
		return a
	}
	return b
}
