package kubelet

import (
	"bufio"
	"context"
	"maps"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// KubeletVersion is what the node status reports as its kubelet version.
const KubeletVersion = "v1.37.2+skiff"

func startRecorder(ctx context.Context, client kubernetes.Interface, node string) (func(), record.EventRecorder) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b.Shutdown, b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: node})
}

// registerNode creates the Node, or brings an existing one's labels,
// annotations and addresses up to date (a restarted agent keeps its node object).
func (k *Kubelet) registerNode(ctx context.Context) error {
	want := k.initialNode()
	for attempt := 0; ; attempt++ {
		_, err := k.client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if err == nil {
			k.log.Info("node registered")
			break
		}
		if apierrors.IsAlreadyExists(err) {
			existing, gerr := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
			if gerr == nil {
				node := existing.DeepCopy()
				if node.Labels == nil {
					node.Labels = map[string]string{}
				}
				for key, v := range want.Labels {
					node.Labels[key] = v
				}
				if len(want.Annotations) > 0 && node.Annotations == nil {
					node.Annotations = map[string]string{}
				}
				for key, v := range want.Annotations {
					node.Annotations[key] = v
				}
				if !reflect.DeepEqual(node.Labels, existing.Labels) || !reflect.DeepEqual(node.Annotations, existing.Annotations) {
					if _, err = k.client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err == nil {
						break
					}
				} else {
					break
				}
			} else {
				err = gerr
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 0 || attempt%20 == 0 {
			k.log.Warn("register node, retrying", "err", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	// First status right away so the node is Ready within a second.
	return k.updateNodeStatus(ctx, true)
}

func (k *Kubelet) initialNode() *v1.Node {
	labels := map[string]string{
		v1.LabelHostname:          k.cfg.NodeName,
		v1.LabelOSStable:          runtime.GOOS,
		v1.LabelArchStable:        runtime.GOARCH,
		"beta.kubernetes.io/os":   runtime.GOOS,
		"beta.kubernetes.io/arch": runtime.GOARCH,
	}
	for key, v := range k.cfg.Labels {
		labels[key] = v
	}
	return &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Labels: labels, Annotations: maps.Clone(k.cfg.Annotations)},
		Spec:       v1.NodeSpec{Taints: k.cfg.Taints},
	}
}

// runLease renews the node's Lease in kube-node-lease, the heartbeat the
// node lifecycle controller watches.
func (k *Kubelet) runLease(ctx context.Context) {
	var interval time.Duration
	for {
		if err := k.renewLease(ctx); err != nil && ctx.Err() == nil {
			k.log.Warn("renew node lease", "err", err)
			interval = time.Second
		} else {
			interval = k.cfg.LeaseDuration / 4
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(interval):
		}
	}
}

func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.client.CoordinationV1().Leases(v1.NamespaceNodeLease)
	now := metav1.NewMicroTime(k.clock.Now())
	lease, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, nerr := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if nerr != nil {
			return nerr
		}
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name: k.cfg.NodeName, Namespace: v1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(k.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(k.cfg.LeaseDuration / time.Second)),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	lease.Spec.HolderIdentity = ptr.To(k.cfg.NodeName)
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// runNodeStatus checks the node status every StatusPeriod and writes it when
// it changed, or at least once a minute.
func (k *Kubelet) runNodeStatus(ctx context.Context) {
	last := k.clock.Now()
	t := k.clock.NewTicker(k.cfg.StatusPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		force := k.clock.Since(last) >= time.Minute
		if err := k.updateNodeStatus(ctx, force); err != nil {
			if ctx.Err() == nil {
				k.log.Warn("update node status", "err", err)
			}
			continue
		}
		if force {
			last = k.clock.Now()
		}
	}
}

// reportVolumesInUse writes the node's status now if its volumesInUse (or
// anything else) changed, retrying when the status loop wrote first.
func (k *Kubelet) reportVolumesInUse(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return k.updateNodeStatus(ctx, false) })
}

func (k *Kubelet) updateNodeStatus(ctx context.Context, force bool) error {
	node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	status := k.nodeStatus(ctx, node)
	if !force && statusEqualIgnoringHeartbeat(&node.Status, &status) {
		return nil
	}
	updated := node.DeepCopy()
	updated.Status = status
	_, err = k.client.CoreV1().Nodes().UpdateStatus(ctx, updated, metav1.UpdateOptions{})
	return err
}

func (k *Kubelet) nodeStatus(ctx context.Context, node *v1.Node) v1.NodeStatus {
	capacity := v1.ResourceList{
		v1.ResourceCPU:    *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI),
		v1.ResourcePods:   *resource.NewQuantity(110, resource.DecimalSI),
		v1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
	}
	var fs syscall.Statfs_t
	if syscall.Statfs(k.cfg.DataDir, &fs) == nil {
		capacity[v1.ResourceEphemeralStorage] = *resource.NewQuantity(int64(fs.Blocks)*fs.Bsize, resource.BinarySI)
	}
	keepExtendedResources(capacity, node.Status.Capacity)
	now := metav1.NewTime(k.clock.Now())
	runtimeReady, networkReady, reason := k.runtimeConditions(ctx)
	ready := v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	if !runtimeReady || !networkReady {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: reason}
	} else if err := k.pleg.Healthy(); err != nil {
		ready = v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionFalse, Reason: "KubeletNotReady", Message: "PLEG is not healthy: " + err.Error()}
	}
	conds := []v1.NodeCondition{
		{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		ready,
	}
	for i := range conds {
		conds[i].LastHeartbeatTime = now
		conds[i].LastTransitionTime = now
		for _, old := range node.Status.Conditions {
			if old.Type == conds[i].Type && old.Status == conds[i].Status {
				conds[i].LastTransitionTime = old.LastTransitionTime
			}
		}
	}
	hostname, _ := os.Hostname()
	return v1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity.DeepCopy(),
		Phase:       node.Status.Phase,
		Conditions:  conds,
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: k.cfg.NodeIP.String()},
			{Type: v1.NodeHostName, Address: firstNonEmpty(k.cfg.NodeName, hostname)},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(k.cfg.Port)}},
		NodeInfo: v1.NodeSystemInfo{
			MachineID:               readTrim("/etc/machine-id"),
			SystemUUID:              readTrim("/sys/class/dmi/id/product_uuid"),
			BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           kernelVersion(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: k.runtimeVer,
			KubeletVersion:          KubeletVersion,
			KubeProxyVersion:        KubeletVersion,
			OperatingSystem:         runtime.GOOS,
			Architecture:            runtime.GOARCH,
		},
		Images: node.Status.Images,
		// The attach/detach controller owns volumesAttached; volumesInUse
		// tells it which of them it must not detach yet.
		VolumesAttached: node.Status.VolumesAttached,
		VolumesInUse:    k.csi.VolumesInUse(),
	}
}

// keepExtendedResources copies into capacity the resources others
// advertise in the node's status (e.g. `kubectl patch --subresource=status`
// of example.com/dongle), which the kubelet does not measure: as upstream's,
// it overwrites only what it manages, and allocatable follows capacity.
func keepExtendedResources(capacity, current v1.ResourceList) {
	for name, q := range current {
		if _, measured := capacity[name]; measured || kubeletManaged(name) {
			continue
		}
		capacity[name] = q.DeepCopy()
	}
}

// kubeletManaged reports the resources only the kubelet reports: a stale
// one of these (ephemeral storage that could not be measured this time) is
// dropped rather than kept.
func kubeletManaged(name v1.ResourceName) bool {
	switch name {
	case v1.ResourceCPU, v1.ResourceMemory, v1.ResourcePods, v1.ResourceEphemeralStorage:
		return true
	}
	return strings.HasPrefix(string(name), v1.ResourceHugePagesPrefix)
}

// runtimeConditions asks the runtime whether it and the pod network are
// ready; the network is ready once the CNI config exists.
func (k *Kubelet) runtimeConditions(ctx context.Context) (runtimeReady, networkReady bool, reason string) {
	resp, err := k.runtime.runtime.Status(ctx, false)
	if err != nil {
		return false, false, "container runtime is down: " + err.Error()
	}
	runtimeReady, networkReady = true, true
	for _, c := range resp.GetStatus().GetConditions() {
		if c.Status {
			continue
		}
		switch c.Type {
		case "RuntimeReady":
			runtimeReady, reason = false, "container runtime not ready: "+c.Reason+" "+c.Message
		case "NetworkReady":
			networkReady, reason = false, "container runtime network not ready: "+c.Reason+" "+c.Message
		}
	}
	return runtimeReady, networkReady, strings.TrimSpace(reason)
}

// statusEqualIgnoringHeartbeat says whether a write would only move
// heartbeat times.
func statusEqualIgnoringHeartbeat(a, b *v1.NodeStatus) bool {
	strip := func(s *v1.NodeStatus) v1.NodeStatus {
		c := *s.DeepCopy()
		for i := range c.Conditions {
			c.Conditions[i].LastHeartbeatTime = metav1.Time{}
			c.Conditions[i].LastTransitionTime = metav1.Time{}
		}
		return c
	}
	x, y := strip(a), strip(b)
	return reflect.DeepEqual(x.Conditions, y.Conditions) && reflect.DeepEqual(x.Addresses, y.Addresses) &&
		reflect.DeepEqual(x.NodeInfo, y.NodeInfo) && x.DaemonEndpoints == y.DaemonEndpoints &&
		quantitiesEqual(x.Capacity, y.Capacity) && quantitiesEqual(x.Allocatable, y.Allocatable) &&
		slices.Equal(x.VolumesInUse, y.VolumesInUse)
}

func quantitiesEqual(a, b v1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for name, q := range a {
		o, ok := b[name]
		if !ok || q.Cmp(o) != 0 {
			return false
		}
	}
	return true
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func kernelVersion() string { return readTrim("/proc/sys/kernel/osrelease") }

func osImage() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// runPodCIDRWatch waits for the controller manager to give the node a pod
// CIDR and writes the CNI config for it, which turns NetworkReady on.
func (k *Kubelet) runPodCIDRWatch(ctx context.Context) {
	written := ""
	for {
		node, err := k.client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
		if err == nil && node.Spec.PodCIDR != "" && node.Spec.PodCIDR != written {
			if k.cfg.CNIConfDir == "" {
				written = node.Spec.PodCIDR
			} else if err := writeCNIConfig(k.cfg.CNIConfDir, k.cfg.CNIBridge, node.Spec.PodCIDR, k.cfg.DataDir); err != nil {
				k.log.Error("write CNI config", "err", err)
			} else {
				k.log.Info("pod network configured", "podCIDR", node.Spec.PodCIDR, "bridge", k.cfg.CNIBridge)
				written = node.Spec.PodCIDR
				_ = k.updateNodeStatus(ctx, true)
			}
		}
		wait := 200 * time.Millisecond
		if written != "" {
			wait = 30 * time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-k.clock.After(wait):
		}
	}
}
