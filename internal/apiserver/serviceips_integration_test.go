package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func clusterIPService(name, ip string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: ip, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

// wantIPAddress checks that ip is reserved for service default/svc.
func wantIPAddress(t *testing.T, c kubernetes.Interface, ip, svc string) {
	t.Helper()
	obj, err := c.NetworkingV1().IPAddresses().Get(context.Background(), ip, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("IPAddress %s of service %s: %v", ip, svc, err)
	}
	family := "IPv4"
	if netip.MustParseAddr(ip).Is6() {
		family = "IPv6"
	}
	want := networkingv1.ParentReference{Resource: "services", Namespace: "default", Name: svc}
	if obj.Spec.ParentRef == nil || *obj.Spec.ParentRef != want {
		t.Errorf("IPAddress %s: parentRef %+v, want %+v", ip, obj.Spec.ParentRef, want)
	}
	if obj.Labels["ipaddress.kubernetes.io/managed-by"] != "ipallocator.k8s.io" || obj.Labels["ipaddress.kubernetes.io/ip-family"] != family {
		t.Errorf("IPAddress %s: labels %v", ip, obj.Labels)
	}
}

func TestServiceIPsAreIPAddresses(t *testing.T) {
	ctx := context.Background()
	s := testserver.Start(t)
	c := s.Client

	sc, err := c.NetworkingV1().ServiceCIDRs().Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sc.Spec.CIDRs; len(got) != 1 || got[0] != "10.96.0.0/16" {
		t.Errorf("default ServiceCIDR ranges %v", got)
	}
	if !meta.IsStatusConditionTrue(sc.Status.Conditions, networkingv1.ServiceCIDRConditionReady) {
		t.Errorf("default ServiceCIDR not Ready: %+v", sc.Status.Conditions)
	}
	// The system services hold theirs too.
	wantIPAddress(t, c, "10.96.0.1", "kubernetes")

	svc, err := c.CoreV1().Services("default").Create(ctx, clusterIPService("web", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	if !netip.MustParsePrefix("10.96.0.0/16").Contains(netip.MustParseAddr(ip)) {
		t.Fatalf("cluster IP %s outside the range", ip)
	}
	wantIPAddress(t, c, ip, "web")

	// An IPAddress deleted by hand comes back (RunServiceIPRepair runs
	// the same pass as the server's start).
	if err := c.NetworkingV1().IPAddresses().Delete(ctx, ip, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.API.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	wantIPAddress(t, c, ip, "web")

	if err := c.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NetworkingV1().IPAddresses().Get(ctx, ip, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPAddress %s after its service was deleted: %v", ip, err)
	}

	// A service deleted when its last finalizer goes releases its IP too.
	fin := clusterIPService("held", "10.96.7.7")
	fin.Finalizers = []string{"example.com/hold"}
	if _, err := c.CoreV1().Services("default").Create(ctx, fin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().Services("default").Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIPAddress(t, c, "10.96.7.7", "held")
	patch := []byte(`{"metadata":{"finalizers":null}}`)
	if _, err := c.CoreV1().Services("default").Patch(ctx, "held", "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.NetworkingV1().IPAddresses().Get(ctx, "10.96.7.7", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("IPAddress of a service deleted by its last finalizer: %v", err)
	}
}

// causeOf returns the message of the cause at field path, or fails.
func causeOf(t *testing.T, err error, path string) string {
	t.Helper()
	var se *apierrors.StatusError
	if !apierrors.IsInvalid(err) || !errors.As(err, &se) || se.ErrStatus.Details == nil {
		t.Fatalf("want 422 Invalid, got %v", err)
	}
	for _, c := range se.ErrStatus.Details.Causes {
		if c.Field == path {
			return c.Message
		}
	}
	t.Fatalf("no cause at %s in %+v", path, se.ErrStatus.Details.Causes)
	return ""
}

func TestStaticServiceIPs(t *testing.T) {
	ctx := context.Background()
	c := testserver.Start(t).Client
	svcs := c.CoreV1().Services("default")
	if _, err := svcs.Create(ctx, clusterIPService("a", "10.96.3.3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIPAddress(t, c, "10.96.3.3", "a")
	for _, tc := range []struct{ name, ip, msg string }{
		{"taken", "10.96.3.3", `Invalid value: ["10.96.3.3"]: failed to allocate IP 10.96.3.3: provided IP is already allocated`},
		{"outside", "10.200.0.5", "failed to allocate IP 10.200.0.5: the provided network does not match the current range"},
		// Upstream counts a range's network and broadcast addresses out.
		{"network", "10.96.0.0", "failed to allocate IP 10.96.0.0: the provided network does not match the current range"},
		{"broadcast", "10.96.255.255", `Invalid value: ["10.96.255.255"]: failed to allocate IP 10.96.255.255: the provided network does not match the current range`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svcs.Create(ctx, clusterIPService(tc.name, tc.ip), metav1.CreateOptions{})
			if msg := causeOf(t, err, "spec.clusterIPs"); !strings.Contains(msg, tc.msg) && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q / %v, want %q", msg, err, tc.msg)
			}
			if _, err := svcs.Get(ctx, tc.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("refused service stored: %v", err)
			}
		})
	}
}

// A /26 holds 62 addresses; bootstrap takes two (kubernetes, kube-dns).
func TestServiceIPsConcurrentAndGrowth(t *testing.T) {
	ctx := context.Background()
	c := testserver.StartWith(t, testserver.Options{ServiceCIDR: "10.97.0.0/26"}).Client
	svcs := c.CoreV1().Services("default")
	const n = 60
	ips := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			svc, err := svcs.Create(ctx, clusterIPService(fmt.Sprintf("s%d", i), ""), metav1.CreateOptions{})
			if err != nil {
				errs <- err
				return
			}
			ips[i] = svc.Spec.ClusterIP
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[string]bool{"10.97.0.1": true, "10.97.0.10": true}
	for i, ip := range ips {
		if seen[ip] {
			t.Fatalf("address %s given twice", ip)
		}
		seen[ip] = true
		wantIPAddress(t, c, ip, fmt.Sprintf("s%d", i))
	}
	list, err := c.NetworkingV1().IPAddresses().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != n+2 {
		t.Errorf("%d IPAddress objects, want %d", len(list.Items), n+2)
	}

	// Full: upstream's 500.
	_, err = svcs.Create(ctx, clusterIPService("full", ""), metav1.CreateOptions{})
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), `failed to allocate a serviceIP for Service "full": range is full`) {
		t.Fatalf("create in a full range: %v", err)
	}

	// A second ServiceCIDR grows the range.
	extra := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "extra"}, Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{"10.98.0.0/28"}}}
	if _, err := c.NetworkingV1().ServiceCIDRs().Create(ctx, extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := svcs.Create(ctx, clusterIPService("grown", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !netip.MustParsePrefix("10.98.0.0/28").Contains(netip.MustParseAddr(svc.Spec.ClusterIP)) {
		t.Errorf("address %s not from the new ServiceCIDR", svc.Spec.ClusterIP)
	}
	wantIPAddress(t, c, svc.Spec.ClusterIP, "grown")
	static := "10.98.0.14"
	if svc.Spec.ClusterIP == static {
		static = "10.98.0.13"
	}
	if _, err := svcs.Create(ctx, clusterIPService("static", static), metav1.CreateOptions{}); err != nil {
		t.Errorf("static address in the new ServiceCIDR: %v", err)
	}
	// Deleting a service frees its address for the next one.
	if err := svcs.Delete(ctx, "s0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := svcs.Create(ctx, clusterIPService("reuse", ips[0]), metav1.CreateOptions{}); err != nil {
		t.Errorf("reuse of a released address: %v", err)
	}
}

// A cluster upgraded from the reservation keys under /registry/ranges keeps
// its services' addresses: the first start converts them to IPAddresses.
func TestServiceIPMigration(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := testserver.StartWith(t, testserver.Options{DataDir: dir})
	svc, err := s.Client.CoreV1().Services("default").Create(ctx, clusterIPService("old", ""), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	// Rewrite storage as the previous release left it.
	kv := s.Etcd.Client
	if _, err := kv.Delete(ctx, "/registry/ipaddresses.networking.k8s.io/"+ip); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "/registry/ranges/serviceips/"+ip, "default/old"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "/registry/ranges/serviceips/10.96.99.99", "default/gone"); err != nil {
		t.Fatal(err)
	}
	s.Stop()

	s = testserver.StartWith(t, testserver.Options{DataDir: dir})
	wantIPAddress(t, s.Client, ip, "old")
	resp, err := s.Etcd.Client.Get(ctx, "/registry/ranges/serviceips/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Errorf("%d old reservation keys left", resp.Count)
	}
	_, err = s.Client.CoreV1().Services("default").Create(ctx, clusterIPService("thief", ip), metav1.CreateOptions{})
	if msg := causeOf(t, err, "spec.clusterIPs"); !strings.Contains(msg, "provided IP is already allocated") {
		t.Errorf("migrated address given again: %s", msg)
	}
}
