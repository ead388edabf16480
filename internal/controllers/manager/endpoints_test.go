package manager

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestEndpointsFollowPods(t *testing.T) {
	c, ctx := startManager(t)
	// The pods below are bound to n1; without it pod GC would collect them.
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "web"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}}
	if _, err := c.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mkPod := func(name, ip string, ready bool, port int32) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Image: "i",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: port}}}}}}
		created, err := c.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		created.Status.PodIP = ip
		created.Status.Phase = corev1.PodRunning
		created.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		if _, err := c.CoreV1().Pods("default").UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod("a", "10.0.0.1", true, 8080)
	mkPod("b", "10.0.0.2", false, 8080)
	mkPod("c", "10.0.0.3", true, 9090) // resolves the named port differently
	eventually(t, "endpoints", func() bool {
		ep, err := c.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(ep.Subsets) != 2 {
			return false
		}
		byPort := map[int32]corev1.EndpointSubset{}
		for _, s := range ep.Subsets {
			byPort[s.Ports[0].Port] = s
		}
		s8080, s9090 := byPort[8080], byPort[9090]
		return len(s8080.Addresses) == 1 && s8080.Addresses[0].IP == "10.0.0.1" &&
			len(s8080.NotReadyAddresses) == 1 && s8080.NotReadyAddresses[0].IP == "10.0.0.2" &&
			len(s9090.Addresses) == 1 && s9090.Addresses[0].IP == "10.0.0.3"
	})
	// As upstream, one slice per resolution of the named port: a and b on
	// 8080, c on 9090.
	eventually(t, "endpoint slices", func() bool {
		l, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil || len(l.Items) != 2 {
			return false
		}
		ready := map[int32]int{}
		total := map[int32]int{}
		for _, sl := range l.Items {
			if len(sl.Ports) != 1 {
				return false
			}
			port := *sl.Ports[0].Port
			for _, e := range sl.Endpoints {
				total[port]++
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					ready[port]++
				}
			}
		}
		return total[8080] == 2 && ready[8080] == 1 && total[9090] == 1 && ready[9090] == 1
	})
	// Deleted slices come back (conformance: EndpointSlice "recreating
	// EndpointSlices after they've been deleted").
	if err := c.DiscoveryV1().EndpointSlices("default").DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "endpoint slices recreated", func() bool {
		l, err := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		return err == nil && len(l.Items) == 2
	})
	// A pod that leaves the selector leaves the endpoints.
	p, _ := c.CoreV1().Pods("default").Get(ctx, "a", metav1.GetOptions{})
	p.Labels = map[string]string{"app": "other"}
	if _, err := c.CoreV1().Pods("default").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pod a removed", func() bool {
		ep, err := c.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, s := range ep.Subsets {
			for _, a := range append(s.Addresses, s.NotReadyAddresses...) {
				if a.IP == "10.0.0.1" {
					return false
				}
			}
		}
		return true
	})
	if err := c.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "endpoints removed with the service", func() bool {
		_, err := c.CoreV1().Endpoints("default").Get(ctx, "web", metav1.GetOptions{})
		l, _ := c.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		return apierrors.IsNotFound(err) && l != nil && len(l.Items) == 0
	})
}
