package apis

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// eventStorage stores events.k8s.io/v1 Events as core/v1 Events under the
// core prefix, as upstream does: one object, served in both APIs.
var eventStorage = &StorageForm{
	GVK:      corev1.SchemeGroupVersion.WithKind("Event"),
	Resource: schema.GroupResource{Resource: "events"},
	New:      func() runtime.Object { return &corev1.Event{} },
	ToStorage: func(obj runtime.Object) (runtime.Object, error) {
		in, ok := obj.(*eventsv1.Event)
		if !ok {
			return nil, fmt.Errorf("want an events.k8s.io/v1 Event, got %T", obj)
		}
		return EventToCore(in), nil
	},
	FromStorage: func(obj runtime.Object) (runtime.Object, error) {
		in, ok := obj.(*corev1.Event)
		if !ok {
			return nil, fmt.Errorf("want a core/v1 Event, got %T", obj)
		}
		return EventFromCore(in), nil
	},
}

// EventToCore converts an events.k8s.io/v1 Event to its core/v1 form. The
// two types hold the same fields under other names, so nothing is lost.
func EventToCore(in *eventsv1.Event) *corev1.Event {
	out := &corev1.Event{
		TypeMeta:            in.TypeMeta,
		ObjectMeta:          *in.ObjectMeta.DeepCopy(),
		InvolvedObject:      in.Regarding,
		Reason:              in.Reason,
		Message:             in.Note,
		Source:              in.DeprecatedSource,
		FirstTimestamp:      in.DeprecatedFirstTimestamp,
		LastTimestamp:       in.DeprecatedLastTimestamp,
		Count:               in.DeprecatedCount,
		Type:                in.Type,
		EventTime:           in.EventTime,
		Action:              in.Action,
		ReportingController: in.ReportingController,
		ReportingInstance:   in.ReportingInstance,
	}
	out.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Event"))
	if in.Series != nil {
		out.Series = &corev1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		r := *in.Related
		out.Related = &r
	}
	return out
}

// EventFromCore converts a core/v1 Event to its events.k8s.io/v1 form.
func EventFromCore(in *corev1.Event) *eventsv1.Event {
	out := &eventsv1.Event{
		TypeMeta:                 in.TypeMeta,
		ObjectMeta:               *in.ObjectMeta.DeepCopy(),
		EventTime:                in.EventTime,
		ReportingController:      in.ReportingController,
		ReportingInstance:        in.ReportingInstance,
		Action:                   in.Action,
		Reason:                   in.Reason,
		Regarding:                in.InvolvedObject,
		Note:                     in.Message,
		Type:                     in.Type,
		DeprecatedSource:         in.Source,
		DeprecatedFirstTimestamp: in.FirstTimestamp,
		DeprecatedLastTimestamp:  in.LastTimestamp,
		DeprecatedCount:          in.Count,
	}
	out.SetGroupVersionKind(eventsv1.SchemeGroupVersion.WithKind("Event"))
	if in.Series != nil {
		out.Series = &eventsv1.EventSeries{Count: in.Series.Count, LastObservedTime: in.Series.LastObservedTime}
	}
	if in.Related != nil {
		r := *in.Related
		out.Related = &r
	}
	return out
}
