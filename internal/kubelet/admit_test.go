package kubelet

import (
	"context"
	"log/slog"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
)

func portPod(name string, hostIP string, port int32, proto v1.Protocol) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name)},
		Spec: v1.PodSpec{NodeName: "n1", Containers: []v1.Container{{Name: "c", Image: "busybox",
			Ports: []v1.ContainerPort{{Name: "conflict", ContainerPort: port, HostPort: port, HostIP: hostIP, Protocol: proto}}}}},
		Status: v1.PodStatus{Phase: v1.PodPending},
	}
}

// TestAdmitRejectsHostPortConflict follows upstream's kubelet admission
// (the NodePorts predicate), which the conformance spec "StatefulSet
// Should recreate evicted statefulset" relies on: a pod whose host port an
// admitted pod holds is Failed with reason NodePorts.
func TestAdmitRejectsHostPortConflict(t *testing.T) {
	ctx := context.Background()
	holder := portPod("holder", "", 21017, v1.ProtocolTCP)
	holder.Status.Phase = v1.PodRunning
	ss0 := portPod("ss-0", "", 21017, v1.ProtocolTCP)
	udp := portPod("udp", "", 21017, v1.ProtocolUDP)
	otherIP := portPod("other-ip", "10.0.0.2", 21017, v1.ProtocolTCP)
	client := fake.NewClientset(holder, ss0, udp, otherIP)
	k := &Kubelet{client: client, log: slog.New(slog.DiscardHandler), recorder: record.NewFakeRecorder(10),
		workers: map[types.UID]*podWorker{}}
	worker := func(p *v1.Pod) *podWorker {
		w := &podWorker{uid: p.UID, pod: p}
		k.workers[p.UID] = w
		return w
	}

	if !k.admit(ctx, worker(holder), holder, &podRuntime{}) {
		t.Fatal("the first pod holding the port was rejected")
	}
	if k.admit(ctx, worker(ss0), ss0, &podRuntime{}) {
		t.Fatal("ss-0 was admitted although its host port is taken")
	}
	got, err := client.CoreV1().Pods("ns").Get(ctx, "ss-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
	if got.Status.Phase != v1.PodFailed || got.Status.Reason != "NodePorts" || got.Status.Message != wantMsg {
		t.Errorf("status = %s %q %q, want Failed NodePorts %q", got.Status.Phase, got.Status.Reason, got.Status.Message, wantMsg)
	}
	// The decision sticks, even once the port is free.
	delete(k.workers, holder.UID)
	if k.admit(ctx, k.workers[ss0.UID], ss0, &podRuntime{}) {
		t.Error("a rejected pod was admitted on a later sync")
	}
	// Another protocol or a specific other address does not conflict.
	worker(holder).admission.Store(admissionAdmitted)
	holder.Spec.Containers[0].Ports[0].HostIP = "10.0.0.1"
	for _, p := range []*v1.Pod{udp, otherIP} {
		if !k.admit(ctx, worker(p), p, &podRuntime{}) {
			t.Errorf("%s was rejected", p.Name)
		}
	}
}
