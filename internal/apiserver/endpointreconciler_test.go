package apiserver_test

import (
	"context"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/testserver"
)

// TestKubernetesServiceListsLiveServers: the kubernetes Service's
// Endpoints and EndpointSlice follow the API servers' etcd-leased keys, so
// a second server appears, and a dead one (its lease gone) disappears.
func TestKubernetesServiceListsLiveServers(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	addrs := func() (eps, slice []string) {
		t.Helper()
		ep, err := s.Client.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range ep.Subsets {
			for _, a := range sub.Addresses {
				eps = append(eps, a.IP)
			}
		}
		sl, err := s.Client.DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if sl.Labels["kubernetes.io/service-name"] != "kubernetes" || len(sl.Ports) != 1 || *sl.Ports[0].Port != 6443 {
			t.Errorf("kubernetes EndpointSlice labels %v ports %v", sl.Labels, sl.Ports)
		}
		for _, e := range sl.Endpoints {
			slice = append(slice, e.Addresses...)
		}
		return eps, slice
	}
	if eps, slice := addrs(); len(eps) != 1 || eps[0] != "127.0.0.1" || len(slice) != 1 || slice[0] != "127.0.0.1" {
		t.Fatalf("one server: endpoints %v, slice %v; want 127.0.0.1", eps, slice)
	}

	// Another server on the same etcd holds its key under a lease.
	etcd := s.Etcd.Client
	lease, err := etcd.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Put(ctx, "/registry/masterleases/10.0.0.2", "6443", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	if err := s.API.Bootstrap(ctx); err != nil { // a reconcile pass
		t.Fatal(err)
	}
	if eps, slice := addrs(); len(eps) != 2 || eps[0] != "10.0.0.2" || eps[1] != "127.0.0.1" || len(slice) != 2 {
		t.Fatalf("two servers: endpoints %v, slice %v", eps, slice)
	}

	// It dies: its lease ends, and the next pass drops it.
	if _, err := etcd.Revoke(ctx, lease.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.API.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if eps, slice := addrs(); len(eps) != 1 || eps[0] != "127.0.0.1" || len(slice) != 1 {
		t.Fatalf("after the second server died: endpoints %v, slice %v", eps, slice)
	}
}
