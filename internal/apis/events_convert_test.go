package apis

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	evTime  = metav1.NewMicroTime(time.Unix(1700000000, 123000))
	evFirst = metav1.Unix(1700000100, 0)
	evLast  = metav1.Unix(1700000200, 0)
	evSeen  = metav1.NewMicroTime(time.Unix(1700000300, 0))
)

// fullEventsV1 sets every field of an events.k8s.io/v1 Event.
func fullEventsV1() *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:               metav1.ObjectMeta{Name: "e", Namespace: "ns", Labels: map[string]string{"a": "b"}},
		EventTime:                evTime,
		Series:                   &eventsv1.EventSeries{Count: 3, LastObservedTime: evSeen},
		ReportingController:      "example.com/ctl",
		ReportingInstance:        "node-1",
		Action:                   "Pull",
		Reason:                   "Pulled",
		Regarding:                corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p", UID: "u1", APIVersion: "v1", ResourceVersion: "7", FieldPath: "spec.containers{c}"},
		Related:                  &corev1.ObjectReference{Kind: "Node", Name: "node-1"},
		Note:                     "pulled the image",
		Type:                     corev1.EventTypeNormal,
		DeprecatedSource:         corev1.EventSource{Component: "kubelet", Host: "node-1"},
		DeprecatedFirstTimestamp: evFirst,
		DeprecatedLastTimestamp:  evLast,
		DeprecatedCount:          4,
	}
}

// fullCore is fullEventsV1 under the core/v1 names, written out by hand.
func fullCore() *corev1.Event {
	return &corev1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "e", Namespace: "ns", Labels: map[string]string{"a": "b"}},
		InvolvedObject:      corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "p", UID: "u1", APIVersion: "v1", ResourceVersion: "7", FieldPath: "spec.containers{c}"},
		Reason:              "Pulled",
		Message:             "pulled the image",
		Source:              corev1.EventSource{Component: "kubelet", Host: "node-1"},
		FirstTimestamp:      evFirst,
		LastTimestamp:       evLast,
		Count:               4,
		Type:                corev1.EventTypeNormal,
		EventTime:           evTime,
		Series:              &corev1.EventSeries{Count: 3, LastObservedTime: evSeen},
		Action:              "Pull",
		Related:             &corev1.ObjectReference{Kind: "Node", Name: "node-1"},
		ReportingController: "example.com/ctl",
		ReportingInstance:   "node-1",
	}
}

func TestEventConversionFieldMapping(t *testing.T) {
	got := EventToCore(fullEventsV1())
	back := EventFromCore(fullCore())
	if got.APIVersion != "v1" || got.Kind != "Event" || back.APIVersion != "events.k8s.io/v1" || back.Kind != "Event" {
		t.Errorf("types %v, %v", got.TypeMeta, back.TypeMeta)
	}
	got.TypeMeta, back.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	if !equality.Semantic.DeepEqual(got, fullCore()) {
		t.Errorf("EventToCore:\n got %+v\nwant %+v", got, fullCore())
	}
	if !equality.Semantic.DeepEqual(back, fullEventsV1()) {
		t.Errorf("EventFromCore:\n got %+v\nwant %+v", back, fullEventsV1())
	}
}

func TestEventConversionRoundTrip(t *testing.T) {
	for name, ev := range map[string]*eventsv1.Event{
		"full":    fullEventsV1(),
		"minimal": {ObjectMeta: metav1.ObjectMeta{Name: "e", Namespace: "default"}, Regarding: corev1.ObjectReference{Kind: "Pod", Name: "p"}},
	} {
		t.Run("events.k8s.io/"+name, func(t *testing.T) {
			stored, err := eventStorage.ToStorage(ev)
			if err != nil {
				t.Fatal(err)
			}
			served, err := eventStorage.FromStorage(stored)
			if err != nil {
				t.Fatal(err)
			}
			served.GetObjectKind().SetGroupVersionKind(ev.GroupVersionKind())
			if !equality.Semantic.DeepEqual(served, ev) {
				t.Errorf("round trip changed the event:\n got %+v\nwant %+v", served, ev)
			}
		})
	}
	t.Run("core", func(t *testing.T) {
		in := fullCore()
		out := EventToCore(EventFromCore(in))
		out.TypeMeta = in.TypeMeta
		if !equality.Semantic.DeepEqual(out, in) {
			t.Errorf("round trip changed the event:\n got %+v\nwant %+v", out, in)
		}
	})
}

// The conversions copy what they share: changing the result leaves the
// argument alone.
func TestEventConversionDoesNotAlias(t *testing.T) {
	in := fullEventsV1()
	out := EventToCore(in)
	out.Labels["a"] = "changed"
	out.Related.Name = "changed"
	if in.Labels["a"] != "b" || in.Related.Name != "node-1" {
		t.Errorf("EventToCore aliases its argument: %+v", in)
	}
	core := fullCore()
	back := EventFromCore(core)
	back.Series.Count = 99
	back.Related.Kind = "changed"
	if core.Series.Count != 3 || core.Related.Kind != "Node" {
		t.Errorf("EventFromCore aliases its argument: %+v", core)
	}
}

func TestEventStorageRejectsOtherTypes(t *testing.T) {
	if _, err := eventStorage.ToStorage(&corev1.Event{}); err == nil {
		t.Error("ToStorage accepted a core Event")
	}
	if _, err := eventStorage.FromStorage(&eventsv1.Event{}); err == nil {
		t.Error("FromStorage accepted an events.k8s.io Event")
	}
}
