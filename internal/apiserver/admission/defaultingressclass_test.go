package admission

import (
	"context"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

type ingressClasses []*networkingv1.IngressClass

func (l ingressClasses) ListIngressClasses() []*networkingv1.IngressClass { return l }

func ingressClass(name string, isDefault string, age time.Duration) *networkingv1.IngressClass {
	c := &networkingv1.IngressClass{ObjectMeta: metav1.ObjectMeta{Name: name,
		CreationTimestamp: metav1.NewTime(time.Unix(1_000_000, 0).Add(-age))}}
	if isDefault != "" {
		c.Annotations = map[string]string{"ingressclass.kubernetes.io/is-default-class": isDefault}
	}
	return c
}

func TestDefaultIngressClass(t *testing.T) {
	ingressesGVR := networkingv1.SchemeGroupVersion.WithResource("ingresses")
	tests := []struct {
		name        string
		classes     ingressClasses
		op          Operation
		className   *string
		annotations map[string]string
		want        *string
	}{
		{name: "the default class is set", op: Create,
			classes: ingressClasses{ingressClass("other", "", 0), ingressClass("skiff", "true", time.Hour)},
			want:    ptr.To("skiff")},
		{name: "only \"true\" marks a default", op: Create,
			classes: ingressClasses{ingressClass("a", "True", 0), ingressClass("b", "yes", 0)}},
		{name: "of several defaults, the newest", op: Create,
			classes: ingressClasses{ingressClass("old", "true", time.Hour), ingressClass("new", "true", time.Minute)},
			want:    ptr.To("new")},
		{name: "same age: the first by name", op: Create,
			classes: ingressClasses{ingressClass("zeta", "true", time.Minute), ingressClass("alpha", "true", time.Minute)},
			want:    ptr.To("alpha")},
		{name: "a named class is kept", op: Create, className: ptr.To("mine"),
			classes: ingressClasses{ingressClass("skiff", "true", 0)}, want: ptr.To("mine")},
		{name: "the legacy annotation counts as a class", op: Create,
			annotations: map[string]string{"kubernetes.io/ingress.class": "nginx"},
			classes:     ingressClasses{ingressClass("skiff", "true", 0)}},
		{name: "no default: left unset", op: Create, classes: ingressClasses{ingressClass("a", "", 0)}},
		{name: "updates are left alone", op: Update, classes: ingressClasses{ingressClass("skiff", "true", 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Annotations: tt.annotations},
				Spec: networkingv1.IngressSpec{IngressClassName: tt.className}}
			a := &Attributes{Operation: tt.op, Resource: ingressesGVR, Namespace: "ns", Name: "web", Object: ing}
			if err := NewDefaultIngressClass(tt.classes).Admit(context.Background(), a); err != nil {
				t.Fatal(err)
			}
			got := ing.Spec.IngressClassName
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) {
				t.Fatalf("ingressClassName %v, want %v", ptr.Deref(got, "<nil>"), ptr.Deref(tt.want, "<nil>"))
			}
		})
	}
}
