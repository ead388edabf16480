package dynamicadmission

import (
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
)

// Reinvocations is a dynamic admission plugin's side of upstream's
// reinvocation context, kept across the chain's two passes: which
// invocations with reinvocationPolicy IfNeeded (webhooks by UID, policy
// bindings by name) ran before the object last changed, and so must see
// it again in the second pass.
type Reinvocations struct {
	invoked  map[string]bool // IfNeeded invocations run since the last change
	pending  map[string]bool // invocations to run again in the second pass
	modified bool            // an invocation changed the object
	output   runtime.Object  // the object as the IfNeeded invocations left it
}

// Changed records that the object changed: every IfNeeded invocation that
// ran before must run again.
func (r *Reinvocations) Changed() {
	r.modified = true
	if len(r.invoked) == 0 {
		return
	}
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	for k := range r.invoked {
		r.pending[k] = true
	}
	r.invoked = nil
}

// Ran records that the IfNeeded invocation key saw the current object.
func (r *Reinvocations) Ran(key string) {
	if r.invoked == nil {
		r.invoked = map[string]bool{}
	}
	r.invoked[key] = true
}

// Pending reports whether key must run in the second pass.
func (r *Reinvocations) Pending(key string) bool { return r.pending[key] }

// AnyPending reports whether the second pass has work.
func (r *Reinvocations) AnyPending() bool { return len(r.pending) > 0 }

// Modified reports whether an invocation changed the object.
func (r *Reinvocations) Modified() bool { return r.modified }

// StartPass begins the chain's second pass: an object that changed since
// this plugin's IfNeeded invocations last saw it (a later plugin changed
// it) makes them all pending.
func (r *Reinvocations) StartPass(obj runtime.Object) {
	if r.output != nil && !equality.Semantic.DeepEqual(r.output, obj) {
		r.Changed()
	}
}

// EndPass remembers the object as this plugin leaves it, when IfNeeded
// invocations have seen it (a copy: later plugins change it in place).
func (r *Reinvocations) EndPass(obj runtime.Object) {
	r.output = nil
	if len(r.invoked) > 0 && obj != nil {
		r.output = obj.DeepCopyObject()
	}
}
