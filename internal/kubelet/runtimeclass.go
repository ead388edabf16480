package kubelet

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeHandler returns the CRI runtime handler the pod's RuntimeClass
// names ("" for the runtime's default). It reads the RuntimeClass when a
// sandbox is created, which is rare enough not to need an informer.
func (k *Kubelet) runtimeHandler(ctx context.Context, pod *v1.Pod) (string, error) {
	if pod.Spec.RuntimeClassName == nil || *pod.Spec.RuntimeClassName == "" {
		return "", nil
	}
	name := *pod.Spec.RuntimeClassName
	rc, err := k.client.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("RuntimeClass %q not found", name)
	}
	if err != nil {
		return "", fmt.Errorf("lookup RuntimeClass %q: %w", name, err)
	}
	return rc.Handler, nil
}

// sandboxOverhead is the pod's overhead (set from its RuntimeClass at
// admission) as the runtime's pod-level resources, so a runtime that runs
// pods in VMs can size them; nil when the pod has none.
func sandboxOverhead(pod *v1.Pod) *runtimeapi.LinuxContainerResources {
	if len(pod.Spec.Overhead) == 0 {
		return nil
	}
	return linuxResources(v1.ResourceRequirements{Requests: pod.Spec.Overhead, Limits: pod.Spec.Overhead})
}
