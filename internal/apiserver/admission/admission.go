// Package admission holds the API server's admission plugins: small named
// types that may change (mutating) or refuse (validating) a write after it is
// authorized and decoded, before it is stored. The order in which the server
// runs them is the list in plugins.go.
package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// Operation is the kind of write being admitted.
type Operation string

// The operations, as upstream names them.
const (
	Create  Operation = "CREATE"
	Update  Operation = "UPDATE"
	Delete  Operation = "DELETE"
	Connect Operation = "CONNECT"
)

// Attributes describe one write.
type Attributes struct {
	Operation   Operation
	Kind        schema.GroupVersionKind
	Resource    schema.GroupVersionResource
	Subresource string
	Namespace   string
	Name        string
	// Object is the new object (nil for delete and connect); mutating
	// plugins change it in place. OldObject is the stored one (nil for
	// create).
	Object    runtime.Object
	OldObject runtime.Object
	User      *authn.User
	DryRun    bool
	// Warnings are what plugins (admission webhooks) want the client told,
	// as Warning headers.
	Warnings []string
	// Equivalents finds the other versions the resource is served in, for
	// configurations with matchPolicy Equivalent; nil when there are none.
	Equivalents Equivalents
	// Reinvocation is the state of the mutating chain's reinvocation pass,
	// set by Chain.Admit.
	Reinvocation *Reinvocation

	// limitRanges is what LimitRanger read for this request, so that its
	// validation judges the object against the ranges it defaulted from.
	limitRanges     []*corev1.LimitRange
	limitRangesRead bool
}

// Reinvocation is upstream's reinvocation context: a mutator that changed
// the object while mutators with reinvocationPolicy IfNeeded had already
// run asks for a second pass of the whole mutating chain, in which the
// built-in plugins run again (they are idempotent) and webhooks and
// policies run only those IfNeeded ones that saw an older object.
type Reinvocation struct {
	reinvoking bool
	should     bool
	plugins    map[string]any
}

// IsReinvoke reports whether this is the second pass.
func (r *Reinvocation) IsReinvoke() bool { return r != nil && r.reinvoking }

// SetShouldReinvoke asks for a second pass; ignored during the second.
func (r *Reinvocation) SetShouldReinvoke() {
	if r != nil {
		r.should = true
	}
}

// State returns a plugin's state across both passes, made by newState
// on first use; nil without a reinvocation context.
func (r *Reinvocation) State(plugin string, newState func() any) any {
	if r == nil {
		return nil
	}
	if v, ok := r.plugins[plugin]; ok {
		return v
	}
	if r.plugins == nil {
		r.plugins = map[string]any{}
	}
	v := newState()
	r.plugins[plugin] = v
	return v
}

// Equivalents is what matchPolicy Equivalent needs from the server, as
// upstream's EquivalentResourceMapper and ObjectConvertor: which served
// resources hold the same objects, and conversion between their versions.
type Equivalents interface {
	// EquivalentResources lists the resources serving the objects of gvr
	// (gvr included) with the kind each reports for subresource, in a
	// stable order.
	EquivalentResources(gvr schema.GroupVersionResource, subresource string) []EquivalentResource
	// Convert returns obj, of kind from, as kind to. obj is not modified;
	// the result carries to as its apiVersion and kind.
	Convert(ctx context.Context, obj runtime.Object, from, to schema.GroupVersionKind) (runtime.Object, error)
}

// EquivalentResource is one form a resource is served in.
type EquivalentResource struct {
	Resource schema.GroupVersionResource
	Kind     schema.GroupVersionKind
}

// Mutator may change the object of a write, or refuse it.
type Mutator interface {
	Name() string
	Admit(ctx context.Context, a *Attributes) error
}

// Validator may refuse a write; it never changes the object.
type Validator interface {
	Name() string
	Validate(ctx context.Context, a *Attributes) error
}

// Chain runs mutators, then (after the kind's own validation, which the
// caller does in between) validators, each in order; the first error wins.
type Chain struct {
	Mutators   []Mutator
	Validators []Validator
}

// Admit runs the mutating plugins, and all of them once more when one
// asks for reinvocation, as upstream's reinvoker does.
func (c *Chain) Admit(ctx context.Context, a *Attributes) error {
	if c == nil {
		return nil
	}
	if a.Reinvocation == nil {
		a.Reinvocation = &Reinvocation{}
	}
	if err := c.admitOnce(ctx, a); err != nil {
		return err
	}
	if !a.Reinvocation.should || a.Reinvocation.reinvoking {
		return nil
	}
	a.Reinvocation.reinvoking = true
	return c.admitOnce(ctx, a)
}

func (c *Chain) admitOnce(ctx context.Context, a *Attributes) error {
	for _, m := range c.Mutators {
		if err := m.Admit(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// Validate runs the validating plugins.
func (c *Chain) Validate(ctx context.Context, a *Attributes) error {
	if c == nil {
		return nil
	}
	for _, v := range c.Validators {
		if err := v.Validate(ctx, a); err != nil {
			return err
		}
	}
	return nil
}
