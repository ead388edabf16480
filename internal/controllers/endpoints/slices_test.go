package endpoints

import (
	"context"
	"log/slog"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

// TestSlicesSplitByResolvedPorts is the conformance specs "should serve
// multiport endpoints from pods" and "should create Endpoints and
// EndpointSlices for Pods matching a Service": pods on which the service's
// named ports resolve differently land in different slices, each with only
// the ports that resolve; the Endpoints object keeps such pods too; slices
// no longer wanted go.
func TestSlicesSplitByResolvedPorts(t *testing.T) {
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "multi", Namespace: "default", UID: "svc-uid"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{
			{Name: "portname1", Port: 80, TargetPort: intstr.FromString("svc1"), Protocol: corev1.ProtocolTCP},
			{Name: "portname2", Port: 81, TargetPort: intstr.FromString("svc2"), Protocol: corev1.ProtocolTCP},
		}}}
	pod := func(name, ip, portName string, port int32) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
				Ports: []corev1.ContainerPort{{Name: portName, ContainerPort: port, Protocol: corev1.ProtocolTCP}}}}},
			Status: corev1.PodStatus{PodIP: ip}}
	}
	addrs := []address{{pod: pod("pod1", "10.0.0.1", "svc1", 100), ready: true}, {pod: pod("pod2", "10.0.0.2", "svc2", 101), ready: true}}
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.DiscardHandler))
	store := factory.Discovery().V1().EndpointSlices().Informer().GetStore()
	sync := func(addrs []address) []discoveryv1.EndpointSlice {
		t.Helper()
		if err := c.syncSlices(ctx, svc, addrs); err != nil {
			t.Fatal(err)
		}
		list, err := client.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range store.List() {
			_ = store.Delete(o)
		}
		for i := range list.Items {
			_ = store.Add(&list.Items[i])
		}
		sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
		return list.Items
	}

	got := sync(addrs)
	if len(got) != 2 {
		t.Fatalf("%d slices, want one per port mapping", len(got))
	}
	seen := map[string]int32{}
	for _, sl := range got {
		if len(sl.Ports) != 1 || len(sl.Endpoints) != 1 {
			t.Fatalf("slice %s: ports %v, endpoints %v; want one of each", sl.Name, sl.Ports, sl.Endpoints)
		}
		seen[sl.Endpoints[0].TargetRef.Name+"/"+*sl.Ports[0].Name] = *sl.Ports[0].Port
	}
	if seen["pod1/portname1"] != 100 || seen["pod2/portname2"] != 101 {
		t.Errorf("endpoint ports %v, want pod1/portname1=100 and pod2/portname2=101", seen)
	}

	// pod2 goes: its slice goes with it.
	if got := sync(addrs[:1]); len(got) != 1 || got[0].Endpoints[0].TargetRef.Name != "pod1" {
		t.Fatalf("after pod2 left: %d slices %v, want pod1's alone", len(got), got)
	}
	// No pods: one empty slice stays.
	if got := sync(nil); len(got) != 1 || len(got[0].Endpoints) != 0 {
		t.Fatalf("without pods: %v, want one empty slice", got)
	}

	if err := c.syncEndpoints(ctx, svc, addrs); err != nil {
		t.Fatal(err)
	}
	ep, err := client.CoreV1().Endpoints("default").Get(ctx, "multi", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Subsets) != 2 {
		t.Errorf("Endpoints subsets %+v, want one per pod's resolved ports", ep.Subsets)
	}
}
