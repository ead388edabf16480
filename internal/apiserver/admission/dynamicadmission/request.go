package dynamicadmission

import (
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiservercel "k8s.io/apiserver/pkg/cel"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// NewAdmissionRequest is the AdmissionRequest of write a, without uid,
// objects and options, which each plugin fills as it needs. kind and
// resource are the forms the configuration matched; namespace is the
// request's namespace as the plugin reports it.
func NewAdmissionRequest(a *admission.Attributes, namespace string, kind metav1.GroupVersionKind, resource metav1.GroupVersionResource) *admissionv1.AdmissionRequest {
	reqKind := metav1.GroupVersionKind(a.Kind)
	reqResource := metav1.GroupVersionResource(a.Resource)
	dryRun := a.DryRun
	return &admissionv1.AdmissionRequest{
		Kind:               kind,
		Resource:           resource,
		SubResource:        a.Subresource,
		RequestKind:        &reqKind,
		RequestResource:    &reqResource,
		RequestSubResource: a.Subresource,
		Name:               a.Name,
		Namespace:          namespace,
		Operation:          admissionv1.Operation(a.Operation),
		UserInfo:           RequestUserInfo(a.User),
		DryRun:             &dryRun,
	}
}

// RequestUserInfo is u as an AdmissionRequest names its user; a missing
// user is anonymous with no fields set.
func RequestUserInfo(u *authn.User) authenticationv1.UserInfo {
	info := authenticationv1.UserInfo{Extra: map[string]authenticationv1.ExtraValue{}}
	if u == nil {
		return info
	}
	info.Username, info.UID, info.Groups = u.Name, u.UID, u.Groups
	for k, v := range u.Extra {
		info.Extra[k] = v
	}
	return info
}

// AdmissionRequestType declares the fields of the `request` CEL variable,
// as upstream's kubernetes.AdmissionRequest type: uid, object and oldObject
// are left out, the objects being variables of their own. Built once and
// shared by every environment.
var AdmissionRequestType = sync.OnceValue(func() *apiservercel.DeclType {
	str := apiservercel.StringType
	strings := apiservercel.NewListType(str, -1)
	gvk := DeclObject("kubernetes.GroupVersionKind",
		RequiredField("group", str), RequiredField("version", str), RequiredField("kind", str))
	gvr := DeclObject("kubernetes.GroupVersionResource",
		RequiredField("group", str), RequiredField("version", str), RequiredField("resource", str))
	user := DeclObject("kubernetes.UserInfo",
		OptionalField("username", str), OptionalField("uid", str), OptionalField("groups", strings),
		OptionalField("extra", apiservercel.NewMapType(str, strings, -1)))
	return DeclObject("kubernetes.AdmissionRequest",
		RequiredField("kind", gvk), RequiredField("resource", gvr), OptionalField("subResource", str),
		RequiredField("requestKind", gvk), RequiredField("requestResource", gvr), OptionalField("requestSubResource", str),
		RequiredField("name", str), OptionalField("namespace", str), RequiredField("operation", str),
		RequiredField("userInfo", user), OptionalField("dryRun", apiservercel.BoolType),
		OptionalField("options", apiservercel.DynType))
})

// DeclObject declares a CEL object type with the given fields.
func DeclObject(name string, fields ...*apiservercel.DeclField) *apiservercel.DeclType {
	m := make(map[string]*apiservercel.DeclField, len(fields))
	for _, f := range fields {
		m[f.Name] = f
	}
	return apiservercel.NewObjectType(name, m)
}

// RequiredField declares a field DeclObject's type always has.
func RequiredField(name string, t *apiservercel.DeclType) *apiservercel.DeclField {
	return apiservercel.NewDeclField(name, t, true, nil, nil)
}

// OptionalField declares a field DeclObject's type may lack.
func OptionalField(name string, t *apiservercel.DeclType) *apiservercel.DeclField {
	return apiservercel.NewDeclField(name, t, false, nil, nil)
}
