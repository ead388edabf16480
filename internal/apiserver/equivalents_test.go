package apiserver

import (
	"context"
	"slices"
	"testing"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
)

func TestEquivalentResources(t *testing.T) {
	eq := equivalents{startWebhookSourceServer(t)}
	hpaV1 := autoscalingv1.SchemeGroupVersion.WithResource("horizontalpodautoscalers")
	hpaV2 := autoscalingv2.SchemeGroupVersion.WithResource("horizontalpodautoscalers")
	coreEvents := corev1.SchemeGroupVersion.WithResource("events")
	newEvents := eventsv1.SchemeGroupVersion.WithResource("events")
	resources := func(es []admission.EquivalentResource) []schema.GroupVersionResource {
		var out []schema.GroupVersionResource
		for _, e := range es {
			out = append(out, e.Resource)
		}
		return out
	}
	tests := []struct {
		gvr  schema.GroupVersionResource
		sub  string
		want []schema.GroupVersionResource
	}{
		{hpaV1, "", []schema.GroupVersionResource{hpaV2, hpaV1}},
		{hpaV1, "status", []schema.GroupVersionResource{hpaV2, hpaV1}},
		{coreEvents, "", []schema.GroupVersionResource{coreEvents, newEvents}},
		{newEvents, "", []schema.GroupVersionResource{newEvents, coreEvents}},
		{corev1.SchemeGroupVersion.WithResource("pods"), "", []schema.GroupVersionResource{corev1.SchemeGroupVersion.WithResource("pods")}},
		{corev1.SchemeGroupVersion.WithResource("nothings"), "", nil},
	}
	for _, tc := range tests {
		if got := resources(eq.EquivalentResources(tc.gvr, tc.sub)); !slices.Equal(got, tc.want) {
			t.Errorf("EquivalentResources(%v, %q) = %v, want %v", tc.gvr, tc.sub, got, tc.want)
		}
	}
	for _, e := range eq.EquivalentResources(hpaV2, "") {
		if e.Kind != e.Resource.GroupVersion().WithKind("HorizontalPodAutoscaler") {
			t.Errorf("kind of %v = %v", e.Resource, e.Kind)
		}
	}
}

func TestEquivalentConvert(t *testing.T) {
	eq := equivalents{startWebhookSourceServer(t)}
	ctx := context.Background()
	coreKind := corev1.SchemeGroupVersion.WithKind("Event")
	newKind := eventsv1.SchemeGroupVersion.WithKind("Event")
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "e", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: "default"},
		Reason:         "Started", Message: "started container", Type: corev1.EventTypeNormal,
	}
	out, err := eq.Convert(ctx, ev, coreKind, newKind)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := out.(*eventsv1.Event)
	if !ok || got.Note != "started container" || got.Regarding.Name != "p" || got.GroupVersionKind() != newKind {
		t.Errorf("converted = %#v", out)
	}
	if !ev.GetObjectKind().GroupVersionKind().Empty() || ev.Message != "started container" {
		t.Errorf("the input was modified: %#v", ev)
	}
	back, err := eq.Convert(ctx, got, newKind, coreKind)
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := back.(*corev1.Event); !ok || b.Message != "started container" || b.InvolvedObject.Name != "p" {
		t.Errorf("converted back = %#v", back)
	}
	if _, err := eq.Convert(ctx, &corev1.Pod{}, coreKind, newKind); err == nil {
		t.Error("a Pod converted as an Event")
	}
	if _, err := eq.Convert(ctx, ev, coreKind, corev1.SchemeGroupVersion.WithKind("Pod")); err == nil {
		t.Error("an Event converted to a Pod")
	}
}
