package webhook

import (
	"encoding/json"
	"errors"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/admission/dynamicadmission"
)

// requestNamespace is the namespace upstream reports for a request: for
// the Namespace object itself (other than its creation) it is its name.
func requestNamespace(a *admission.Attributes) string {
	if a.Namespace == "" && a.Resource == dynamicadmission.NamespacesResource && a.Operation != admission.Create {
		return a.Name
	}
	return a.Namespace
}

// reviewVersion picks the first AdmissionReview version the webhook
// accepts that Skiff can send.
func reviewVersion(accepted []string) (string, bool) {
	for _, v := range accepted {
		if v == admissionv1.SchemeGroupVersion.Version || v == admissionv1beta1.SchemeGroupVersion.Version {
			return v, true
		}
	}
	return "", false
}

// newReview builds the AdmissionReview sent to a webhook for write a, its
// objects already in the version of m, the form the webhook's rules
// matched. v1 and v1beta1 carry the same fields; only apiVersion differs
// on the wire.
func newReview(version string, uid types.UID, a *admission.Attributes, m dynamicadmission.Match) (*admissionv1.AdmissionReview, error) {
	req, err := newAdmissionRequest(a, m)
	if err != nil {
		return nil, err
	}
	req.UID = uid
	if req.Object.Raw, err = encodeObject(a.Object, m.Kind); err != nil {
		return nil, fmt.Errorf("encoding object: %w", err)
	}
	if req.OldObject.Raw, err = encodeObject(a.OldObject, m.Kind); err != nil {
		return nil, fmt.Errorf("encoding oldObject: %w", err)
	}
	return &admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.Group + "/" + version, Kind: "AdmissionReview"},
		Request:  req,
	}, nil
}

// newAdmissionRequest fills the request fields shared by the review and
// the request variable of match conditions; object and oldObject are left
// out. kind and resource are the form m the rules matched, requestKind and
// requestResource the write's own.
func newAdmissionRequest(a *admission.Attributes, m dynamicadmission.Match) (*admissionv1.AdmissionRequest, error) {
	req := dynamicadmission.NewAdmissionRequest(a, requestNamespace(a),
		metav1.GroupVersionKind(m.Kind), metav1.GroupVersionResource(m.Resource))
	if opts := operationOptions(a); opts != nil {
		raw, err := json.Marshal(opts)
		if err != nil {
			return nil, fmt.Errorf("encoding options: %w", err)
		}
		req.Options.Raw = raw
	}
	return req, nil
}

// operationOptions are the write's options as far as the attributes know
// them (the dry-run flag), typed as upstream sends them.
func operationOptions(a *admission.Attributes) runtime.Object {
	var dryRun []string
	if a.DryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	meta := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: metav1.SchemeGroupVersion.String(), Kind: kind}
	}
	switch a.Operation {
	case admission.Create:
		return &metav1.CreateOptions{TypeMeta: meta("CreateOptions"), DryRun: dryRun}
	case admission.Update:
		return &metav1.UpdateOptions{TypeMeta: meta("UpdateOptions"), DryRun: dryRun}
	case admission.Delete:
		return &metav1.DeleteOptions{TypeMeta: meta("DeleteOptions"), DryRun: dryRun}
	}
	return nil
}

// encodeObject is obj's JSON with apiVersion and kind set; nil for no
// object (sent as null). obj itself is not modified.
func encodeObject(obj runtime.Object, gvk schema.GroupVersionKind) ([]byte, error) {
	if obj == nil {
		return nil, nil
	}
	if _, ok := obj.(runtime.Unstructured); !ok && obj.GetObjectKind().GroupVersionKind() != gvk {
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	return json.Marshal(obj)
}

// reviewResult is what a valid webhook answer says.
type reviewResult struct {
	allowed   bool
	patch     []byte
	patchType admissionv1.PatchType
	status    *metav1.Status
	warnings  []string
}

// verifyResponse checks a webhook's answer as upstream does: for v1 the
// answer's apiVersion, kind and uid, and for both versions that only
// mutating webhooks send patches.
func verifyResponse(version string, uid types.UID, mutating bool, r *admissionv1.AdmissionReview) (*reviewResult, error) {
	if r.Response == nil {
		return nil, errors.New("webhook response was absent")
	}
	resp := r.Response
	res := &reviewResult{allowed: resp.Allowed, status: resp.Result, warnings: resp.Warnings}
	if version == admissionv1beta1.SchemeGroupVersion.Version {
		// v1beta1 answers were never checked for uid, kind or patchType.
		if mutating && len(resp.Patch) > 0 {
			res.patch, res.patchType = resp.Patch, admissionv1.PatchTypeJSONPatch
		}
		return res, nil
	}
	if resp.UID != uid {
		return nil, fmt.Errorf("expected response.uid=%q, got %q", uid, resp.UID)
	}
	want := admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	if got := r.GroupVersionKind(); got != want {
		return nil, fmt.Errorf("expected webhook response of %v, got %v", want, got)
	}
	if !mutating {
		if len(resp.Patch) > 0 {
			return nil, errors.New("validating webhook may not return response.patch")
		}
		if resp.PatchType != nil {
			return nil, errors.New("validating webhook may not return response.patchType")
		}
		return res, nil
	}
	switch {
	case len(resp.Patch) > 0 && resp.PatchType == nil:
		return nil, errors.New("webhook returned response.patch but not response.patchType")
	case len(resp.Patch) == 0 && resp.PatchType != nil:
		return nil, errors.New("webhook returned response.patchType but not response.patch")
	case resp.PatchType != nil && *resp.PatchType == "":
		return nil, fmt.Errorf("webhook returned invalid response.patchType of %q", *resp.PatchType)
	}
	res.patch = resp.Patch
	if resp.PatchType != nil {
		res.patchType = *resp.PatchType
	}
	return res, nil
}
