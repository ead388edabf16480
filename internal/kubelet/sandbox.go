package kubelet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podLogDir is where the runtime writes the pod's container logs, the path
// upstream uses so log shippers find them.
func (k *Kubelet) podLogDir(pod *v1.Pod) string {
	return filepath.Join(k.cfg.LogDir, fmt.Sprintf("%s_%s_%s", pod.Namespace, pod.Name, pod.UID))
}

func (k *Kubelet) podDir(pod *v1.Pod) string {
	return filepath.Join(k.cfg.DataDir, "pods", string(pod.UID))
}

func (k *Kubelet) createSandbox(ctx context.Context, pod *v1.Pod, attempt uint32) (string, error) {
	start := k.clock.Now()
	if err := os.MkdirAll(k.podLogDir(pod), 0o755); err != nil {
		return "", err
	}
	cfg, err := k.sandboxConfig(pod, attempt)
	if err != nil {
		return "", err
	}
	handler, err := k.runtimeHandler(ctx, pod)
	if err != nil {
		return "", err
	}
	id, err := k.runtime.runtime.RunPodSandbox(ctx, cfg, handler)
	if err != nil {
		return "", err
	}
	k.log.Debug("sandbox created", "pod", podKey(pod), "id", id, "took", k.clock.Since(start))
	return id, nil
}

// sandboxConfig is the pod's sandbox as the runtime is asked to create it.
// Container creation is given the same config: containerd takes the
// container's HOSTNAME and its privilege checks from it.
func (k *Kubelet) sandboxConfig(pod *v1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	dns, err := k.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		Hostname:     podHostname(pod),
		LogDirectory: k.podLogDir(pod),
		DnsConfig:    dns,
		PortMappings: hostPortMappings(pod),
		Labels:       podLabels(pod),
		Annotations:  pod.Annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: k.podCgroupParent(pod),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions:   namespaceOptions(pod),
				Privileged:         podPrivileged(pod),
				RunAsUser:          int64Value(podSecurity(pod).RunAsUser),
				RunAsGroup:         int64Value(podSecurity(pod).RunAsGroup),
				SupplementalGroups: supplementalGroups(pod),
				Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			},
			Sysctls: sysctls(pod),
		},
	}
	if pod.Spec.HostNetwork {
		cfg.Hostname = "" // the node's own
	}
	cfg.Linux.Overhead = sandboxOverhead(pod)
	return cfg, nil
}

// sandboxIP is the pod's IP: the sandbox's network address, or the node's
// for hostNetwork pods.
func (k *Kubelet) sandboxIP(ctx context.Context, pod *v1.Pod, id string) (string, error) {
	if pod.Spec.HostNetwork {
		return k.cfg.NodeIP.String(), nil
	}
	resp, err := k.runtime.runtime.PodSandboxStatus(ctx, id, false)
	if err != nil {
		return "", fmt.Errorf("sandbox status: %w", err)
	}
	return resp.GetStatus().GetNetwork().GetIp(), nil
}

func podLabels(pod *v1.Pod) map[string]string {
	l := make(map[string]string, len(pod.Labels)+3)
	for k, v := range pod.Labels {
		l[k] = v
	}
	l[labelPodName] = pod.Name
	l[labelPodNamespace] = pod.Namespace
	l[labelPodUID] = string(pod.UID)
	return l
}

func podHostname(pod *v1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h
}

func hostPortMappings(pod *v1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort == 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch p.Protocol {
			case v1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case v1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			out = append(out, &runtimeapi.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
		}
	}
	return out
}

func namespaceOptions(pod *v1.Pod) *runtimeapi.NamespaceOption {
	ns := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		ns.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostPID {
		ns.Pid = runtimeapi.NamespaceMode_NODE
	} else if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		ns.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		ns.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return ns
}

func podSecurity(pod *v1.Pod) *v1.PodSecurityContext {
	if pod.Spec.SecurityContext != nil {
		return pod.Spec.SecurityContext
	}
	return &v1.PodSecurityContext{}
}

func podPrivileged(pod *v1.Pod) bool {
	for _, c := range append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			return true
		}
	}
	return false
}

func supplementalGroups(pod *v1.Pod) []int64 {
	sc := podSecurity(pod)
	groups := append([]int64{}, sc.SupplementalGroups...)
	if sc.FSGroup != nil {
		groups = append(groups, *sc.FSGroup)
	}
	return groups
}

func sysctls(pod *v1.Pod) map[string]string {
	sc := podSecurity(pod)
	if len(sc.Sysctls) == 0 {
		return nil
	}
	m := make(map[string]string, len(sc.Sysctls))
	for _, s := range sc.Sysctls {
		m[s.Name] = s.Value
	}
	return m
}

func int64Value(v *int64) *runtimeapi.Int64Value {
	if v == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *v}
}

// killPod stops every running container (preStop hook, then SIGTERM and the
// grace period, then SIGKILL), then the sandboxes; with remove it deletes
// them from the runtime as well.
func (k *Kubelet) killPod(ctx context.Context, pod *v1.Pod, grace int64, remove bool) error {
	state, err := k.runtime.podState(ctx, pod.UID)
	if err != nil {
		return err
	}
	if err := k.stopPodContainers(ctx, pod, state, grace); err != nil {
		return err
	}
	k.stopSandboxes(ctx, state)
	if !remove {
		return nil
	}
	for _, sb := range state.sandboxes {
		if err := k.runtime.runtime.RemovePodSandbox(ctx, sb.Id); err != nil {
			return fmt.Errorf("remove sandbox %s: %w", sb.Id, err)
		}
	}
	// Containers outside any listed sandbox (should not happen) go too.
	for _, c := range state.containers {
		k.removeContainer(ctx, c.Id)
	}
	return nil
}

// stopPodContainers stops the running containers of a pod in parallel,
// app containers with their preStop hooks.
func (k *Kubelet) stopPodContainers(ctx context.Context, pod *v1.Pod, state *podRuntime, grace int64) error {
	specs := map[string]*v1.Container{}
	for i := range pod.Spec.Containers {
		specs[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(state.containers))
	for _, c := range state.containers {
		if c.State != runtimeapi.ContainerState_CONTAINER_RUNNING {
			continue
		}
		wg.Add(1)
		go func(c *runtimeapi.Container) {
			defer wg.Done()
			if err := k.stopContainer(ctx, pod, specs[c.Metadata.GetName()], c.Id, grace); err != nil {
				errs <- err
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// stopContainer runs the preStop hook within the grace period, then asks
// the runtime to stop the container with what is left of it.
func (k *Kubelet) stopContainer(ctx context.Context, pod *v1.Pod, spec *v1.Container, id string, grace int64) error {
	start, budget := k.clock.Now(), time.Duration(grace)*time.Second
	if spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && grace > 0 {
		// The context's timeout runs on the wall clock; what is left of
		// the grace period is counted on k.clock.
		hctx, cancel := context.WithTimeout(ctx, budget)
		if err := k.runHook(hctx, pod, spec, id, spec.Lifecycle.PreStop); err != nil {
			k.recorder.Eventf(pod, v1.EventTypeWarning, "FailedPreStopHook", "PreStopHook failed: %v", err)
		}
		cancel()
	}
	left := int64((budget - k.clock.Since(start)).Round(time.Second) / time.Second)
	if left < 0 || grace == 0 {
		left = 0
	}
	k.probes.removeContainer(id)
	err := k.runtime.runtime.StopContainer(ctx, id, left)
	if err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

func (k *Kubelet) stopSandboxes(ctx context.Context, state *podRuntime) {
	for _, sb := range state.sandboxes {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		if err := k.runtime.runtime.StopPodSandbox(ctx, sb.Id); err != nil {
			k.log.Warn("stop sandbox", "id", sb.Id, "err", err)
		}
	}
}

func (k *Kubelet) removeContainer(ctx context.Context, id string) {
	if err := k.runtime.runtime.RemoveContainer(ctx, id); err != nil {
		k.log.Warn("remove container", "id", id, "err", err)
	}
}

// writeHostsFile writes the pod's /etc/hosts: localhost, the pod's own name
// (and its FQDN under a subdomain) and hostAliases, as upstream does.
func (k *Kubelet) writeHostsFile(pod *v1.Pod, podIP string) error {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
	if podIP != "" {
		host := podHostname(pod)
		if pod.Spec.Subdomain != "" {
			fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", podIP, host, pod.Spec.Subdomain, pod.Namespace, k.cfg.ClusterDomain, host)
		} else {
			fmt.Fprintf(&b, "%s\t%s\n", podIP, host)
		}
	}
	if len(pod.Spec.HostAliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range pod.Spec.HostAliases {
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	dir := k.podDir(pod)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "etc-hosts")
	if cur, err := os.ReadFile(path); err == nil && string(cur) == b.String() {
		return nil
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
