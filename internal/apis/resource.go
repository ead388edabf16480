// Package apis describes the resources Skiff serves: their group, version and
// kind, scope, verbs, and the per-kind behaviour (defaulting, validation,
// field selectors, table columns) that the generic API handlers call.
package apis

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Resource is one REST resource (e.g. apps/v1 deployments).
// Function fields may be nil; the handlers then apply the generic behaviour.
type Resource struct {
	GVR        schema.GroupVersionResource
	Kind       string // e.g. "Deployment"; the list kind is Kind+"List"
	Namespaced bool
	ShortNames []string
	Categories []string // e.g. "all"
	// Subresources served besides the main resource: "status", "scale", "binding".
	Subresources []string
	// SingularName is the lower-case singular (e.g. "deployment").
	SingularName string
	// OrphanByDefault makes a DELETE without a propagation policy orphan
	// the object's dependents, as upstream keeps for ReplicationControllers
	// and batch/v1 Jobs (kubectl always asks for background deletion).
	OrphanByDefault bool
	// CreateOnly marks a virtual resource that is never stored: POSTing
	// one returns an answer (TokenReview, SubjectAccessReview and kin).
	CreateOnly bool
	// Verbs, when set, are the only verbs of a resource that is not stored
	// but answered by the server (componentstatuses: get and list).
	Verbs []string
	// ValidatesMetadata says Validate and ValidateUpdate check the object's
	// metadata themselves (CRDs, with apiextensions' own rules), so the
	// generic metadata checks are skipped rather than reported twice.
	ValidatesMetadata bool

	// New returns an empty typed object (e.g. &appsv1.Deployment{}).
	New func() runtime.Object
	// NewList returns an empty typed list (e.g. &appsv1.DeploymentList{}).
	NewList func() runtime.Object

	// Default fills defaults in place, as upstream's defaulting functions do.
	Default func(obj runtime.Object)
	// Validate checks a new object (metadata name/namespace checks are generic
	// and done by the caller; this checks the kind-specific parts).
	Validate func(obj runtime.Object) field.ErrorList
	// ValidateUpdate checks an update of old to obj (immutable fields and the like).
	ValidateUpdate func(obj, old runtime.Object) field.ErrorList
	// FieldSet returns the field-selector fields of obj beyond metadata.name
	// and metadata.namespace, which the caller adds.
	FieldSet func(obj runtime.Object) fields.Set
	// TableColumns are the columns of kubectl get (Priority 1 = wide only),
	// after the generic Name column which the caller adds first.
	TableColumns []metav1.TableColumnDefinition
	// TableRow returns the cells of obj for TableColumns (without Name).
	TableRow func(obj runtime.Object) []any

	// Storage, when set, is the form objects are stored in, for a resource
	// served in several versions from one etcd prefix (autoscaling/v1
	// HorizontalPodAutoscalers are stored as autoscaling/v2, events.k8s.io/v1
	// Events as core/v1 Events).
	Storage *StorageForm
}

// StorageForm is the stored representation of a resource whose served type
// differs from it, with the conversions between the two. Conversions must
// not modify their argument.
type StorageForm struct {
	GVK schema.GroupVersionKind
	// Resource, when set, is the resource whose etcd prefix holds the
	// objects, for one served under another group (events.k8s.io/v1
	// Events are core Events under /registry/events/).
	Resource schema.GroupResource
	// New returns an empty object of the storage type.
	New func() runtime.Object
	// ToStorage converts a served object into the storage form.
	ToStorage func(runtime.Object) (runtime.Object, error)
	// FromStorage converts a stored object into the served form.
	FromStorage func(runtime.Object) (runtime.Object, error)
}

// HasSubresource reports whether r serves the named subresource.
func (r *Resource) HasSubresource(name string) bool {
	for _, s := range r.Subresources {
		if s == name {
			return true
		}
	}
	return false
}
