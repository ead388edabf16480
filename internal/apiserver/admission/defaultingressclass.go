package admission

import (
	"context"
	"fmt"
	"sort"

	networkingv1 "k8s.io/api/networking/v1"
	networkingv1beta1 "k8s.io/api/networking/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// IngressClassLister lists every IngressClass. The classes may be shared
// with a cache: the caller only reads them.
type IngressClassLister interface {
	ListIngressClasses() []*networkingv1.IngressClass
}

var ingressesResource = networkingv1.Resource("ingresses")

// DefaultIngressClass is upstream's plugin of that name: an Ingress
// created without a class (neither spec.ingressClassName nor the legacy
// kubernetes.io/ingress.class annotation) gets the default class, the one
// annotated ingressclass.kubernetes.io/is-default-class: "true"; of several,
// the newest (then the first by name).
type DefaultIngressClass struct{ classes IngressClassLister }

// NewDefaultIngressClass returns the plugin reading classes.
func NewDefaultIngressClass(classes IngressClassLister) *DefaultIngressClass {
	return &DefaultIngressClass{classes: classes}
}

// Name implements Mutator.
func (*DefaultIngressClass) Name() string { return "DefaultIngressClass" }

// Admit implements Mutator.
func (p *DefaultIngressClass) Admit(_ context.Context, a *Attributes) error {
	if a.Operation != Create || a.Subresource != "" || a.Resource.GroupResource() != ingressesResource {
		return nil
	}
	ing, ok := a.Object.(*networkingv1.Ingress)
	if !ok {
		return apierrors.NewInternalError(fmt.Errorf("Expected Ingress resource, got: %v", a.Kind))
	}
	if ing.Spec.IngressClassName != nil {
		return nil
	}
	if _, ok := ing.Annotations[networkingv1beta1.AnnotationIngressClass]; ok {
		return nil
	}
	if def := p.defaultClass(); def != nil {
		name := def.Name
		ing.Spec.IngressClassName = &name
	}
	return nil
}

// defaultClass returns the newest class marked default, nil if none is.
func (p *DefaultIngressClass) defaultClass() *networkingv1.IngressClass {
	if p.classes == nil {
		return nil
	}
	var defaults []*networkingv1.IngressClass
	for _, c := range p.classes.ListIngressClasses() {
		if c.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true" {
			defaults = append(defaults, c)
		}
	}
	if len(defaults) == 0 {
		return nil
	}
	sort.Slice(defaults, func(i, j int) bool {
		ti, tj := defaults[i].CreationTimestamp.UnixNano(), defaults[j].CreationTimestamp.UnixNano()
		if ti == tj {
			return defaults[i].Name < defaults[j].Name
		}
		return ti > tj
	})
	return defaults[0]
}
