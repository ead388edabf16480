package kubelet

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Admission states of a pod worker.
const (
	admissionPending int32 = iota
	admissionAdmitted
	admissionRejected
)

// Upstream's reason and message when a pod's host ports are taken
// (kubelet lifecycle's predicate admission, the NodePorts filter).
const (
	reasonNodePorts      = "NodePorts"
	messageNodePortsFail = "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
)

// admit decides once whether the node takes a pod, as upstream's kubelet
// admission does for a pod new to it: a pod whose host ports another
// admitted, unfinished pod holds is rejected (phase Failed), so that its
// controller replaces it. Pods the runtime already runs (an agent restart)
// are admitted as they are. It reports whether the pod may run.
func (k *Kubelet) admit(ctx context.Context, w *podWorker, pod *v1.Pod, state *podRuntime) bool {
	switch w.admission.Load() {
	case admissionAdmitted:
		return true
	case admissionRejected:
		return false
	}
	k.admitMu.Lock()
	admitted := len(state.sandboxes) > 0 || !k.hostPortsTaken(pod)
	if admitted {
		w.admission.Store(admissionAdmitted)
	} else {
		w.admission.Store(admissionRejected)
	}
	k.admitMu.Unlock()
	if !admitted {
		k.rejectPod(ctx, pod, reasonNodePorts, messageNodePortsFail)
	}
	return admitted
}

// hostPortsTaken reports whether a host port of pod conflicts with one of
// an admitted pod that has not finished.
func (k *Kubelet) hostPortsTaken(pod *v1.Pod) bool {
	wanted := hostPorts(pod)
	if len(wanted) == 0 {
		return false
	}
	k.workersMu.Lock()
	defer k.workersMu.Unlock()
	for uid, w := range k.workers {
		if uid == pod.UID || w.admission.Load() != admissionAdmitted {
			continue
		}
		other, removed := w.snapshot()
		if other == nil || removed || other.Status.Phase == v1.PodSucceeded || other.Status.Phase == v1.PodFailed {
			continue
		}
		for _, a := range hostPorts(other) {
			for _, b := range wanted {
				if a.conflicts(b) {
					return true
				}
			}
		}
	}
	return false
}

// hostPort is one host port a pod binds.
type hostPort struct {
	ip       string
	protocol v1.Protocol
	port     int32
}

// conflicts follows the scheduler's NodePorts rule: same protocol and port,
// and the same address or either one the wildcard.
func (a hostPort) conflicts(b hostPort) bool {
	if a.port != b.port || a.protocol != b.protocol {
		return false
	}
	return a.ip == b.ip || a.ip == "0.0.0.0" || b.ip == "0.0.0.0"
}

func hostPorts(pod *v1.Pod) []hostPort {
	var out []hostPort
	add := func(cs []v1.Container) {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
				if hp.ip == "" {
					hp.ip = "0.0.0.0"
				}
				if hp.protocol == "" {
					hp.protocol = v1.ProtocolTCP
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	return out
}

// rejectPod fails a pod the node does not admit, with upstream's event and
// status: phase Failed, the reason, and "Pod was rejected: " + message.
func (k *Kubelet) rejectPod(ctx context.Context, pod *v1.Pod, reason, message string) {
	k.recorder.Eventf(pod, v1.EventTypeWarning, reason, "%s", message)
	for attempt := 0; attempt < 3; attempt++ {
		updated := pod.DeepCopy()
		updated.Status = v1.PodStatus{
			Phase:      v1.PodFailed,
			Reason:     reason,
			Message:    "Pod was rejected: " + message,
			QOSClass:   qosClass(pod),
			Conditions: pod.Status.Conditions, // the scheduler's, kept
		}
		_, err := k.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		if err == nil || apierrors.IsNotFound(err) || ctx.Err() != nil {
			return
		}
		if !apierrors.IsConflict(err) {
			k.log.Warn("reject pod", "pod", podKey(pod), "err", err)
			return
		}
		fresh, err := k.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil || fresh.UID != pod.UID {
			return
		}
		pod = fresh
	}
	k.log.Warn("reject pod: status update kept conflicting", "pod", podKey(pod), "err", fmt.Sprint(reason))
}
