package promsd

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// fixtures creates one of each object the roles discover: a node, a
// running pod on it, a Service and its Endpoints.
func fixtures(t *testing.T, srv *testserver.Server) {
	t.Helper()
	ctx := context.Background()
	c := srv.Client.CoreV1()
	node, err := c.Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.5"}}
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = 10250
	if _, err := c.Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := c.Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{
			Name: "web", Image: "web:1", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 8080}},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = "10.1.0.7"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.1.0.7"}}
	if _, err := c.Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{
			Name: "metrics", Port: 80, TargetPort: intstr.FromInt32(8080),
		}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	//nolint:staticcheck // the endpoints role reads core/v1 Endpoints
	if _, err := c.Endpoints("default").Create(ctx, &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: "10.1.0.7", NodeName: ptr("node-a"),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web", UID: pod.UID}}},
			Ports: []corev1.EndpointPort{{Name: "metrics", Port: 8080}},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// discover runs Prometheus' discovery for role until a target has every
// label of want, and returns it.
func discover(t *testing.T, apiServer string, role kubernetes.Role, want model.LabelSet) model.LabelSet {
	t.Helper()
	u, err := url.Parse(apiServer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &kubernetes.SDConfig{APIServer: config.URL{URL: u}, Role: role, HTTPClientConfig: config.DefaultHTTPClientConfig}
	reg := prometheus.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	d, err := kubernetes.New(nil, cfg.NewDiscovererMetrics(reg, refresh), cfg)
	if err != nil {
		t.Fatalf("%s: %v", role, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ch := make(chan []*targetgroup.Group)
	go d.Run(ctx, ch)
	groups := map[string]*targetgroup.Group{}
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: no target with %v among %v", role, want, groups)
		case gs := <-ch:
			for _, g := range gs {
				groups[g.Source] = g
			}
		}
		for _, g := range groups {
			for _, tg := range g.Targets {
				full := g.Labels.Merge(tg)
				if matches(full, want) {
					return full
				}
			}
		}
	}
}

func matches(have, want model.LabelSet) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesSDRoles: kubernetes_sd_configs' node, pod, service and
// endpoints (and endpointslice) roles find their targets on Skiff, through
// Prometheus' own client (protobuf, list and watch).
func TestKubernetesSDRoles(t *testing.T) {
	srv := testserver.Start(t)
	fixtures(t, srv)
	for _, tc := range []struct {
		role kubernetes.Role
		want model.LabelSet
	}{
		{kubernetes.RoleNode, model.LabelSet{
			"__address__": "10.0.0.5:10250", "__meta_kubernetes_node_name": "node-a",
			"__meta_kubernetes_node_address_InternalIP": "10.0.0.5",
		}},
		{kubernetes.RolePod, model.LabelSet{
			"__address__": "10.1.0.7:8080", "__meta_kubernetes_pod_name": "web", "__meta_kubernetes_namespace": "default",
			"__meta_kubernetes_pod_container_port_name": "metrics", "__meta_kubernetes_pod_node_name": "node-a",
			"__meta_kubernetes_pod_label_app": "web", "__meta_kubernetes_pod_phase": "Running",
		}},
		{kubernetes.RoleService, model.LabelSet{
			"__address__": "web.default.svc:80", "__meta_kubernetes_service_name": "web",
			"__meta_kubernetes_service_port_name": "metrics",
		}},
		{kubernetes.RoleEndpoint, model.LabelSet{
			"__address__": "10.1.0.7:8080", "__meta_kubernetes_endpoints_name": "web",
			"__meta_kubernetes_endpoint_port_name": "metrics", "__meta_kubernetes_pod_name": "web",
			"__meta_kubernetes_service_name": "web",
		}},
	} {
		t.Run(string(tc.role), func(t *testing.T) {
			got := discover(t, srv.URL, tc.role, tc.want)
			t.Logf("%s target: %v", tc.role, got)
		})
	}
}
