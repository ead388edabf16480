package policy

import (
	"context"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

type fakePolicies struct {
	vaps      []*admissionregistrationv1.ValidatingAdmissionPolicy
	vapbs     []*admissionregistrationv1.ValidatingAdmissionPolicyBinding
	maps      []*admissionregistrationv1.MutatingAdmissionPolicy
	mapbs     []*admissionregistrationv1.MutatingAdmissionPolicyBinding
	paramObjs []*unstructured.Unstructured
	nss       []*corev1.Namespace
}

func (f *fakePolicies) ValidatingAdmissionPolicies() []*admissionregistrationv1.ValidatingAdmissionPolicy {
	return f.vaps
}
func (f *fakePolicies) ValidatingAdmissionPolicyBindings() []*admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return f.vapbs
}
func (f *fakePolicies) MutatingAdmissionPolicies() []*admissionregistrationv1.MutatingAdmissionPolicy {
	return f.maps
}
func (f *fakePolicies) MutatingAdmissionPolicyBindings() []*admissionregistrationv1.MutatingAdmissionPolicyBinding {
	return f.mapbs
}

// The fake serves ReplicaLimit (rules.example.com/v1, namespaced) and
// ConfigMaps as param kinds.
var replicaLimitGVK = schema.GroupVersionKind{Group: "rules.example.com", Version: "v1", Kind: "ReplicaLimit"}

func (f *fakePolicies) Scope(kind schema.GroupVersionKind) (bool, bool) {
	switch kind {
	case replicaLimitGVK, corev1.SchemeGroupVersion.WithKind("ConfigMap"):
		return true, true
	}
	return false, false
}

func (f *fakePolicies) GetParam(_ context.Context, kind schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	for _, p := range f.paramObjs {
		if p.GroupVersionKind() == kind && p.GetNamespace() == ns && p.GetName() == name {
			return p, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: kind.Group, Resource: kind.Kind}, name)
}

func (f *fakePolicies) ListParams(_ context.Context, kind schema.GroupVersionKind, ns string, sel labels.Selector) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, p := range f.paramObjs {
		if p.GroupVersionKind() == kind && p.GetNamespace() == ns && sel.Matches(labels.Set(p.GetLabels())) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (f *fakePolicies) GetNamespace(_ context.Context, name string) (*corev1.Namespace, error) {
	for _, ns := range f.nss {
		if ns.Name == name {
			return ns, nil
		}
	}
	if name == "default" {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
}

func (f *fakePolicies) deps() Deps {
	return Deps{Policies: f, Params: f, Namespaces: f, TypeConverter: BuiltinTypeConverter}
}

var uidCounter int

func newUID() types.UID {
	uidCounter++
	return types.UID(fmt.Sprintf("uid-%d", uidCounter))
}

// deploymentRules matches creates and updates of Deployments.
func deploymentRules() *admissionregistrationv1.MatchResources {
	return &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{},
		ObjectSelector:    &metav1.LabelSelector{},
		ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"},
				},
			},
		}},
	}
}

func podRules() *admissionregistrationv1.MatchResources {
	return &admissionregistrationv1.MatchResources{
		NamespaceSelector: &metav1.LabelSelector{},
		ObjectSelector:    &metav1.LabelSelector{},
		ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				},
			},
		}},
	}
}

func newVAP(name string, mr *admissionregistrationv1.MatchResources, validations ...admissionregistrationv1.Validation) *admissionregistrationv1.ValidatingAdmissionPolicy {
	return &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: newUID(), ResourceVersion: "1"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy:    ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: mr,
			Validations:      validations,
		},
	}
}

func newVAPBinding(name, policy string, actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: newUID(), ResourceVersion: "1"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy,
			ValidationActions: actions,
		},
	}
}

func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	}
}

func createAttrs(obj interface {
	GetNamespace() string
	GetName() string
}, kind schema.GroupVersionKind, resource schema.GroupVersionResource) *admission.Attributes {
	a := &admission.Attributes{
		Operation: admission.Create,
		Kind:      kind,
		Resource:  resource,
		Namespace: obj.GetNamespace(),
		Name:      obj.GetName(),
		User:      &authn.User{Name: "alice", Groups: []string{"system:authenticated"}},
	}
	return a
}

func deploymentCreate(d *appsv1.Deployment) *admission.Attributes {
	a := createAttrs(d, appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithResource("deployments"))
	a.Object = d
	return a
}

func podCreate(p *corev1.Pod) *admission.Attributes {
	a := createAttrs(p, corev1.SchemeGroupVersion.WithKind("Pod"), corev1.SchemeGroupVersion.WithResource("pods"))
	a.Object = p
	return a
}
