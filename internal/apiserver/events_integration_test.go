package apiserver_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-dev/skiff/internal/testserver"
)

func newEventsV1Event(name string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Labels: map[string]string{"testevent-constant": "true"}},
		Regarding:           corev1.ObjectReference{Namespace: "default", Kind: "Pod", Name: "web"},
		Reason:              "Testing",
		Note:                "a note",
		Action:              "Do",
		Type:                corev1.EventTypeNormal,
		EventTime:           metav1.NewMicroTime(time.Unix(1700000000, 0)),
		ReportingController: "test-controller",
		ReportingInstance:   "test-node",
	}
}

func names[T any](items []T, name func(*T) string) []string {
	out := []string{}
	for i := range items {
		out = append(out, name(&items[i]))
	}
	return out
}

func eventNames(l *eventsv1.EventList) []string {
	return names(l.Items, func(e *eventsv1.Event) string { return e.Namespace + "/" + e.Name })
}

func coreEventNames(l *corev1.EventList) []string {
	return names(l.Items, func(e *corev1.Event) string { return e.Namespace + "/" + e.Name })
}

// TestEventsOneObjectTwoAPIs: an Event written through events.k8s.io/v1 is
// a core/v1 Event under /registry/events/, and the other way round.
func TestEventsOneObjectTwoAPIs(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	evc := s.Client.EventsV1().Events("default")
	core := s.Client.CoreV1().Events("default")

	w, err := core.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if _, err := evc.Create(ctx, newEventsV1Event("via-events"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through events.k8s.io: %v", err)
	}
	select {
	case e := <-w.ResultChan():
		if ce, ok := e.Object.(*corev1.Event); e.Type != watch.Added || !ok || ce.Name != "via-events" || ce.Message != "a note" {
			t.Errorf("core watch: %s %+v", e.Type, e.Object)
		}
	case <-time.After(10 * time.Second):
		t.Error("core watch saw no event created through events.k8s.io")
	}
	got, err := core.Get(ctx, "via-events", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get through core: %v", err)
	}
	if got.Message != "a note" || got.InvolvedObject.Name != "web" || got.ReportingController != "test-controller" ||
		got.ReportingInstance != "test-node" || got.Action != "Do" || got.Reason != "Testing" || got.Type != corev1.EventTypeNormal {
		t.Errorf("core view of an events.k8s.io event: %+v", got)
	}
	resp, err := s.Etcd.Client.Get(ctx, "/registry/events/default/via-events", clientv3.WithCountOnly())
	if err != nil || resp.Count != 1 {
		t.Errorf("etcd key /registry/events/default/via-events: count %v, %v", resp, err)
	}
	resp, err = s.Etcd.Client.Get(ctx, "/registry/events.events.k8s.io/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Errorf("events stored under the events.k8s.io prefix: %v, %v", resp, err)
	}

	if _, err := core.Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "via-core"},
		InvolvedObject: corev1.ObjectReference{Namespace: "default", Kind: "Node", Name: "n1"},
		Reason:         "Started", Message: "core message", Type: corev1.EventTypeWarning,
		Source: corev1.EventSource{Component: "kubelet", Host: "n1"},
		Count:  5, FirstTimestamp: metav1.Unix(1700000000, 0), LastTimestamp: metav1.Unix(1700000100, 0),
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create through core: %v", err)
	}
	ev, err := evc.Get(ctx, "via-core", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get through events.k8s.io: %v", err)
	}
	if ev.Note != "core message" || ev.Regarding.Name != "n1" || ev.DeprecatedSource.Component != "kubelet" ||
		ev.DeprecatedCount != 5 || !ev.DeprecatedFirstTimestamp.Equal(&metav1.Time{Time: time.Unix(1700000000, 0)}) ||
		ev.Type != corev1.EventTypeWarning {
		t.Errorf("events.k8s.io view of a core event: %+v", ev)
	}

	// Both lists hold both events; each API's field selectors use its names.
	el, err := evc.List(ctx, metav1.ListOptions{})
	if err != nil || len(el.Items) != 2 {
		t.Errorf("events.k8s.io list: %v, %v", eventNames(el), err)
	}
	cl, err := core.List(ctx, metav1.ListOptions{})
	if err != nil || len(cl.Items) != 2 {
		t.Errorf("core list: %v, %v", coreEventNames(cl), err)
	}
	for _, c := range []struct {
		selector string
		events   bool
		want     string
	}{
		{"regarding.name=n1", true, "default/via-core"},
		{"note=x", true, ""}, // not a field label: answered 400 below
		{"reportingController=test-controller", true, "default/via-events"},
		{"source=kubelet", true, "default/via-core"},
		{"involvedObject.name=web", false, "default/via-events"},
		{"reportingComponent=test-controller", false, "default/via-events"},
		{"source=test-controller", false, "default/via-events"},
		{"type=Warning", false, "default/via-core"},
	} {
		var got []string
		var err error
		if c.events {
			var l *eventsv1.EventList
			if l, err = evc.List(ctx, metav1.ListOptions{FieldSelector: c.selector}); err == nil {
				got = eventNames(l)
			}
		} else {
			var l *corev1.EventList
			if l, err = core.List(ctx, metav1.ListOptions{FieldSelector: c.selector}); err == nil {
				got = coreEventNames(l)
			}
		}
		if c.want == "" {
			if !apierrors.IsBadRequest(err) {
				t.Errorf("%s: %v, %v; want 400", c.selector, got, err)
			}
			continue
		}
		if err != nil || len(got) != 1 || got[0] != c.want {
			t.Errorf("%s (events.k8s.io %v): %v, %v; want %s", c.selector, c.events, got, err, c.want)
		}
	}

	// Deleting through one API removes the object from the other.
	if err := core.Delete(ctx, "via-events", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := evc.Get(ctx, "via-events", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("events.k8s.io get after core delete: %v", err)
	}
}

// TestEventsAPILifecycle follows the conformance test "Events API should
// ensure that an event can be fetched, patched, deleted, and listed".
func TestEventsAPILifecycle(t *testing.T) {
	s := testserver.Start(t)
	ctx := context.Background()
	ns := "default"
	evc := s.Client.EventsV1().Events(ns)
	all := s.Client.EventsV1().Events(metav1.NamespaceAll)
	core := s.Client.CoreV1().Events(ns)
	listed := func(c interface {
		List(context.Context, metav1.ListOptions) (*eventsv1.EventList, error)
	}) bool {
		l, err := c.List(ctx, metav1.ListOptions{LabelSelector: "testevent-constant=true"})
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		for _, e := range l.Items {
			if e.Name == "event-test" && e.Namespace == ns {
				return true
			}
		}
		return false
	}

	created, err := evc.Create(ctx, newEventsV1Event("event-test"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !listed(all) || !listed(evc) {
		t.Fatal("created event not listed")
	}
	cl, err := core.List(ctx, metav1.ListOptions{FieldSelector: "source=test-controller"})
	if err != nil || len(cl.Items) != 1 || cl.Items[0].Name != "event-test" {
		t.Fatalf("core list source=test-controller: %v, %v", coreEventNames(cl), err)
	}
	el, err := evc.List(ctx, metav1.ListOptions{FieldSelector: "reportingController=test-controller"})
	if err != nil || len(el.Items) != 1 || el.Items[0].Name != "event-test" {
		t.Fatalf("events list reportingController=test-controller: %v, %v", eventNames(el), err)
	}

	testEvent, err := evc.Get(ctx, "event-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	oldData, _ := json.Marshal(testEvent)
	series := &eventsv1.EventSeries{Count: 2, LastObservedTime: metav1.MicroTime{Time: time.Unix(1505828951, 0)}}
	patched := testEvent.DeepCopy()
	patched.Series = series
	newData, _ := json.Marshal(patched)
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, eventsv1.Event{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := evc.Patch(ctx, "event-test", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch: %v", err)
	}
	got, err := evc.Get(ctx, "event-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion == created.ResourceVersion {
		t.Error("patch kept the resourceVersion")
	}
	got.ResourceVersion, testEvent.ResourceVersion = "", ""
	got.ManagedFields, testEvent.ManagedFields = nil, nil
	testEvent.Series = series
	if !equality.Semantic.DeepEqual(testEvent, got) {
		t.Errorf("patched event:\n got %+v\nwant %+v", got, testEvent)
	}

	testEvent.Series = &eventsv1.EventSeries{Count: 100, LastObservedTime: metav1.MicroTime{Time: time.Unix(1505828956, 0)}}
	if _, err := evc.Update(ctx, testEvent, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got, err = evc.Get(ctx, "event-test", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	got.ResourceVersion, got.ManagedFields = "", nil
	if !equality.Semantic.DeepEqual(testEvent, got) {
		t.Errorf("updated event:\n got %+v\nwant %+v", got, testEvent)
	}
	if c, err := core.Get(ctx, "event-test", metav1.GetOptions{}); err != nil || c.Series == nil || c.Series.Count != 100 {
		t.Errorf("core view of the updated series: %+v, %v", c, err)
	}

	if err := evc.Delete(ctx, "event-test", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if listed(all) || listed(evc) {
		t.Error("deleted event still listed")
	}
	if _, err := core.Get(ctx, "event-test", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("core get after delete: %v", err)
	}
}
