package endpointslicemirroring

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

const ns = "ns1"

type env struct {
	t       *testing.T
	client  *fake.Clientset
	factory informers.SharedInformerFactory
	c       *Controller
}

func newEnv(t *testing.T, objs ...runtime.Object) *env {
	t.Helper()
	client := fake.NewClientset(objs...)
	// The fake tracker does not generate names; do it as the server would.
	var n atomic.Int32
	client.PrependReactor("create", "endpointslices", func(a k8stesting.Action) (bool, runtime.Object, error) {
		s := a.(k8stesting.CreateAction).GetObject().(*discoveryv1.EndpointSlice)
		if s.Name == "" && s.GenerateName != "" {
			s.Name = fmt.Sprintf("%s%05d", s.GenerateName, n.Add(1))
		}
		return false, nil, nil
	})
	factory := informers.NewSharedInformerFactory(client, 0)
	c := New(client, factory, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("informers did not sync")
	}
	return &env{t: t, client: client, factory: factory, c: c}
}

// sync runs one reconcile of the service's key once the informers have
// caught up with the client.
func (e *env) sync(name string) {
	e.t.Helper()
	e.waitCaches()
	if err := e.c.sync(context.Background(), ns+"/"+name); err != nil {
		e.t.Fatalf("sync %s: %v", name, err)
	}
}

// waitCaches waits until the listers hold what the client holds.
func (e *env) waitCaches() {
	e.t.Helper()
	ctx := context.Background()
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		svcs, _ := e.client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		eps, _ := e.client.CoreV1().Endpoints(ns).List(ctx, metav1.ListOptions{})
		for _, s := range svcs.Items {
			got, err := e.c.svcLister.Services(ns).Get(s.Name)
			if err != nil || !equality.Semantic.DeepEqual(got, &s) {
				return false, nil
			}
		}
		for _, ep := range eps.Items {
			got, err := e.c.epLister.Endpoints(ns).Get(ep.Name)
			if err != nil || !equality.Semantic.DeepEqual(got.Subsets, ep.Subsets) || !equality.Semantic.DeepEqual(got.ObjectMeta, ep.ObjectMeta) {
				return false, nil
			}
		}
		slices, _ := e.client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{})
		cachedSlices, _ := e.c.sliceLister.EndpointSlices(ns).List(everything())
		if len(slices.Items) != len(cachedSlices) {
			return false, nil
		}
		for _, s := range slices.Items {
			got, err := e.c.sliceLister.EndpointSlices(ns).Get(s.Name)
			if err != nil || !equality.Semantic.DeepEqual(got, &s) {
				return false, nil
			}
		}
		cached, _ := e.c.epLister.Endpoints(ns).List(everything())
		cachedSvcs, _ := e.c.svcLister.Services(ns).List(everything())
		return len(cached) == len(eps.Items) && len(cachedSvcs) == len(svcs.Items), nil
	})
	if err != nil {
		e.t.Fatal("informer caches did not catch up")
	}
}

// slices lists the service's slices sorted by address type then first port.
func (e *env) slices(name string) []discoveryv1.EndpointSlice {
	e.t.Helper()
	list, err := e.client.DiscoveryV1().EndpointSlices(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=" + name,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	out := list.Items
	sort.Slice(out, func(i, j int) bool {
		if out[i].AddressType != out[j].AddressType {
			return out[i].AddressType < out[j].AddressType
		}
		return *out[i].Ports[0].Port < *out[j].Ports[0].Port
	})
	return out
}

func service(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "svc-uid"},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
}

func endpoints(name string, subsets ...corev1.EndpointSubset) *corev1.Endpoints {
	return &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: "ep-uid"}, Subsets: subsets}
}

func tcp(name string, port int32) []corev1.EndpointPort {
	return []corev1.EndpointPort{{Name: name, Port: port, Protocol: corev1.ProtocolTCP}}
}

func addrs(ips ...string) []corev1.EndpointAddress {
	var out []corev1.EndpointAddress
	for _, ip := range ips {
		out = append(out, corev1.EndpointAddress{IP: ip})
	}
	return out
}

func ips(s discoveryv1.EndpointSlice) []string {
	var out []string
	for _, e := range s.Endpoints {
		r := "?"
		if e.Conditions.Ready != nil {
			r = fmt.Sprint(*e.Conditions.Ready)
		}
		out = append(out, e.Addresses[0]+"="+r)
	}
	return out
}

func TestMirrorsSubsetsByAddressTypeAndPorts(t *testing.T) {
	node, host := "node-a", "web-0"
	ep := endpoints("ext",
		corev1.EndpointSubset{
			Ports: tcp("http", 8080),
			Addresses: []corev1.EndpointAddress{{
				IP: "10.0.0.1", NodeName: &node, Hostname: host,
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-0"},
			}, {IP: "fd00::1"}},
			NotReadyAddresses: addrs("10.0.0.2"),
		},
		// Same ports: joins the first subset's slice.
		corev1.EndpointSubset{Ports: tcp("http", 8080), Addresses: addrs("10.0.0.3", "10.0.0.3")},
		corev1.EndpointSubset{Ports: tcp("metrics", 9090), Addresses: addrs("10.0.0.1", "not-an-ip")},
	)
	ep.Labels = map[string]string{"team": "a", discoveryv1.LabelServiceName: "spoofed"}
	ep.Annotations = map[string]string{
		"note":                                "kept",
		corev1.EndpointsLastChangeTriggerTime: "2026-01-01T00:00:00Z",
		corev1.LastAppliedConfigAnnotation:    "{}",
	}
	e := newEnv(t, service("ext", nil), ep)
	e.sync("ext")

	got := e.slices("ext")
	if len(got) != 3 {
		t.Fatalf("got %d slices, want 3 (IPv4 8080, IPv4 9090, IPv6 8080): %+v", len(got), got)
	}
	v4, metrics, v6 := got[0], got[1], got[2]
	if v4.AddressType != discoveryv1.AddressTypeIPv4 || *v4.Ports[0].Port != 8080 || v6.AddressType != discoveryv1.AddressTypeIPv6 || *metrics.Ports[0].Port != 9090 {
		t.Fatalf("unexpected grouping: %v %v %v", v4.AddressType, metrics.AddressType, v6.AddressType)
	}
	if want := "[10.0.0.1=true 10.0.0.2=false 10.0.0.3=true]"; fmt.Sprint(ips(v4)) != want {
		t.Errorf("IPv4 endpoints = %v, want %s", ips(v4), want)
	}
	if want := "[10.0.0.1=true]"; fmt.Sprint(ips(metrics)) != want {
		t.Errorf("metrics endpoints = %v, want %s (invalid IP skipped)", ips(metrics), want)
	}
	if want := "[fd00::1=true]"; fmt.Sprint(ips(v6)) != want {
		t.Errorf("IPv6 endpoints = %v, want %s", ips(v6), want)
	}
	first := v4.Endpoints[0]
	if first.NodeName == nil || *first.NodeName != node || first.Hostname == nil || *first.Hostname != host ||
		first.TargetRef == nil || first.TargetRef.Name != "web-0" {
		t.Errorf("endpoint details not mirrored: %+v", first)
	}
	p := v4.Ports[0]
	if p.Name == nil || *p.Name != "http" || p.Protocol == nil || *p.Protocol != corev1.ProtocolTCP {
		t.Errorf("port = %+v", p)
	}
	for _, s := range got {
		if s.Labels[discoveryv1.LabelServiceName] != "ext" || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy || s.Labels["team"] != "a" {
			t.Errorf("slice %s labels = %v", s.Name, s.Labels)
		}
		if s.Annotations["note"] != "kept" || len(s.Annotations) != 1 {
			t.Errorf("slice %s annotations = %v, want only note", s.Name, s.Annotations)
		}
		if len(s.OwnerReferences) != 1 {
			t.Fatalf("slice %s owners = %v", s.Name, s.OwnerReferences)
		}
		o := s.OwnerReferences[0]
		if o.Kind != "Endpoints" || o.APIVersion != "v1" || o.Name != "ext" || o.UID != "ep-uid" || o.Controller == nil || !*o.Controller {
			t.Errorf("slice %s owner = %+v", s.Name, o)
		}
		if s.GenerateName != "ext-" {
			t.Errorf("slice %s generateName = %q", s.Name, s.GenerateName)
		}
	}

	// A second sync with nothing changed writes nothing.
	e.client.ClearActions()
	e.sync("ext")
	for _, a := range e.client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("idle sync wrote: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestUpdatesInPlaceAndDropsGroups(t *testing.T) {
	ep := endpoints("ext",
		corev1.EndpointSubset{Ports: tcp("http", 80), Addresses: addrs("10.1.2.3")},
		corev1.EndpointSubset{Ports: tcp("other", 81), Addresses: addrs("10.1.2.3")},
	)
	e := newEnv(t, service("ext", nil), ep)
	e.sync("ext")
	before := e.slices("ext")
	if len(before) != 2 {
		t.Fatalf("got %d slices, want 2", len(before))
	}

	ep = ep.DeepCopy()
	ep.Subsets = []corev1.EndpointSubset{{Ports: tcp("http", 80), Addresses: addrs("10.2.3.4"), NotReadyAddresses: addrs("10.2.3.5")}}
	ep.Labels = map[string]string{"v": "2"}
	if _, err := e.client.CoreV1().Endpoints(ns).Update(context.Background(), ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.sync("ext")
	after := e.slices("ext")
	if len(after) != 1 {
		t.Fatalf("got %d slices after update, want 1", len(after))
	}
	if after[0].Name != before[0].Name {
		t.Errorf("slice replaced (%s → %s), want updated in place", before[0].Name, after[0].Name)
	}
	if want := "[10.2.3.4=true 10.2.3.5=false]"; fmt.Sprint(ips(after[0])) != want {
		t.Errorf("endpoints = %v, want %s", ips(after[0]), want)
	}
	if after[0].Labels["v"] != "2" {
		t.Errorf("labels not updated: %v", after[0].Labels)
	}
}

func TestRestoresEditedSlice(t *testing.T) {
	e := newEnv(t, service("ext", nil), endpoints("ext", corev1.EndpointSubset{Ports: tcp("http", 80), Addresses: addrs("10.1.2.3")}))
	e.sync("ext")
	s := e.slices("ext")[0]
	s.Endpoints = nil
	if _, err := e.client.DiscoveryV1().EndpointSlices(ns).Update(context.Background(), &s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.sync("ext")
	if got := e.slices("ext"); len(got) != 1 || fmt.Sprint(ips(got[0])) != "[10.1.2.3=true]" {
		t.Errorf("edited slice not restored: %+v", got)
	}
}

func TestDeletesSlicesWhenMirroringStops(t *testing.T) {
	subset := corev1.EndpointSubset{Ports: tcp("http", 80), Addresses: addrs("10.1.2.3")}
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(e *env)
	}{
		{"endpoints deleted", func(e *env) {
			if err := e.client.CoreV1().Endpoints(ns).Delete(ctx, "ext", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"service deleted", func(e *env) {
			if err := e.client.CoreV1().Services(ns).Delete(ctx, "ext", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"skip-mirror label added", func(e *env) {
			ep, _ := e.client.CoreV1().Endpoints(ns).Get(ctx, "ext", metav1.GetOptions{})
			ep.Labels = map[string]string{discoveryv1.LabelSkipMirror: "true"}
			if _, err := e.client.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"selector added", func(e *env) {
			svc := service("ext", map[string]string{"app": "x"})
			svc.ResourceVersion = "2"
			if _, err := e.client.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
		{"all addresses removed", func(e *env) {
			ep := endpoints("ext")
			if _, err := e.client.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, service("ext", nil), endpoints("ext", subset))
			e.sync("ext")
			if len(e.slices("ext")) != 1 {
				t.Fatal("no slice mirrored")
			}
			tt.change(e)
			e.sync("ext")
			if got := e.slices("ext"); len(got) != 0 {
				t.Errorf("slices left: %d", len(got))
			}
		})
	}
}

func TestLeavesOthersAlone(t *testing.T) {
	subset := corev1.EndpointSubset{Ports: tcp("http", 80), Addresses: addrs("10.1.2.3")}
	skipped := endpoints("skipped", subset)
	skipped.Labels = map[string]string{discoveryv1.LabelSkipMirror: "true"}
	leader := endpoints("leader", subset)
	leader.Annotations = map[string]string{leaderAnnotation: "{}"}
	// The endpoints controller's slice of a selector service.
	theirs := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "selected-skiff", Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: "selected", discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	e := newEnv(t,
		service("selected", map[string]string{"app": "x"}), endpoints("selected", subset), theirs,
		service("skipped", nil), skipped,
		service("leader", nil), leader,
		endpoints("no-service", subset),
	)
	e.waitCaches()
	e.client.ClearActions()
	for _, name := range []string{"selected", "skipped", "leader", "no-service"} {
		if err := e.c.sync(context.Background(), ns+"/"+name); err != nil {
			t.Fatal(err)
		}
	}
	// Endpoints not mirrored cost no API calls.
	for _, a := range e.client.Actions() {
		if a.GetVerb() != "watch" {
			t.Errorf("sync of unmirrored endpoints called the API: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	for _, name := range []string{"skipped", "leader", "no-service"} {
		if got := e.slices(name); len(got) != 0 {
			t.Errorf("%s: mirrored %d slices, want none", name, len(got))
		}
	}
	if got := e.slices("selected"); len(got) != 1 || got[0].Name != "selected-skiff" {
		t.Errorf("selector service's slices changed: %+v", got)
	}
}

func TestTruncatesLargeSubsets(t *testing.T) {
	var ready, notReady []string
	for i := 0; i < 990; i++ {
		ready = append(ready, fmt.Sprintf("10.0.%d.%d", i/250, i%250+1))
	}
	for i := 0; i < 20; i++ {
		notReady = append(notReady, fmt.Sprintf("10.9.0.%d", i+1))
	}
	e := newEnv(t, service("big", nil), endpoints("big", corev1.EndpointSubset{
		Ports: tcp("http", 80), Addresses: addrs(ready...), NotReadyAddresses: addrs(notReady...),
	}))
	e.sync("big")
	got := e.slices("big")
	if len(got) != 1 || len(got[0].Endpoints) != MaxEndpointsPerSubset {
		t.Fatalf("want one slice of %d endpoints, got %d slices", MaxEndpointsPerSubset, len(got))
	}
	nr := 0
	for _, ep := range got[0].Endpoints {
		if !*ep.Conditions.Ready {
			nr++
		}
	}
	if nr != 10 {
		t.Errorf("not-ready endpoints mirrored = %d, want 10 (ready ones first)", nr)
	}
}

// TestRunMirrorsThroughInformers drives the controller through its event
// handlers: create, update and delete of an Endpoints object.
func TestRunMirrorsThroughInformers(t *testing.T) {
	e := newEnv(t, service("ext", nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.c.Run(ctx); close(done) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor := func(what string, ok func([]discoveryv1.EndpointSlice) bool) {
		t.Helper()
		err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
			return ok(e.slices("ext")), nil
		})
		if err != nil {
			t.Fatalf("%s: slices = %+v", what, e.slices("ext"))
		}
	}
	ep := endpoints("ext", corev1.EndpointSubset{Ports: tcp("http", 80), Addresses: addrs("10.1.2.3")})
	if _, err := e.client.CoreV1().Endpoints(ns).Create(ctx, ep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("create", func(s []discoveryv1.EndpointSlice) bool {
		return len(s) == 1 && fmt.Sprint(ips(s[0])) == "[10.1.2.3=true]"
	})
	ep.Subsets[0].Addresses = addrs("10.2.3.4")
	if _, err := e.client.CoreV1().Endpoints(ns).Update(ctx, ep, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("update", func(s []discoveryv1.EndpointSlice) bool {
		return len(s) == 1 && fmt.Sprint(ips(s[0])) == "[10.2.3.4=true]"
	})
	// A mirrored slice deleted behind the controller's back comes back.
	if err := e.client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, e.slices("ext")[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("recreate", func(s []discoveryv1.EndpointSlice) bool { return len(s) == 1 })
	if err := e.client.CoreV1().Endpoints(ns).Delete(ctx, "ext", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("delete", func(s []discoveryv1.EndpointSlice) bool { return len(s) == 0 })
}

func everything() labels.Selector { return labels.Everything() }
