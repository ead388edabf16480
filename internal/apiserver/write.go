package apiserver

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/apiserver/authn"
)

// decodeBody decodes the request body into a new object of the resource's
// kind, applying the fieldValidation directive to unknown and duplicate
// fields. Errors read as upstream's: they name the kind the body claims
// and the kind the endpoint takes.
func (q *request) decodeBody(data []byte, contentType string) (runtime.Object, error) {
	dec, mt, err := q.codecs.decoderFor(contentType)
	if err != nil {
		return nil, unsupportedMediaType()
	}
	if q.res.custom != nil && mt == mediaProtobuf {
		return nil, unsupportedCustomMediaType()
	}
	return q.decode(dec, data, bodyDecodeError)
}

// decodeWith decodes an object the server assembled (a patched object):
// its errors carry the decoder's message only.
func (q *request) decodeWith(dec runtime.Decoder, data []byte) (runtime.Object, error) {
	return q.decode(dec, data, func(err error, _ *schema.GroupVersionKind, _ schema.GroupVersionKind, _ []byte) error {
		return apierrors.NewBadRequest(err.Error())
	})
}

// decodeErrorFunc turns a decoding error into the error answered; got is
// the kind the data claims (nil when unreadable), want the endpoint's.
type decodeErrorFunc func(err error, got *schema.GroupVersionKind, want schema.GroupVersionKind, data []byte) error

func (q *request) decode(dec runtime.Decoder, data []byte, decodeError decodeErrorFunc) (runtime.Object, error) {
	want := q.res.gvk
	if q.info.subresource == "scale" {
		want = scaleGVK
	}
	into := q.newForSubresource()
	obj, gvk, err := dec.Decode(data, &want, into)
	strict := err != nil && runtime.IsStrictDecodingError(err)
	if err != nil && !strict {
		return nil, decodeError(err, gvk, want, data)
	}
	custom := q.res.custom != nil && q.info.subresource != "scale"
	if custom {
		// Unknown fields of a custom object are pruned; fieldValidation
		// treats them as upstream treats unknown fields of built-ins.
		if err = q.pruneCustom(obj, err); err != nil {
			strict = true
		}
	}
	if gvk != nil && gvk.Kind != want.Kind && !custom {
		// Upstream converts the body to the endpoint's internal type and
		// has no conversion between two kinds.
		return nil, decodeError(fmt.Errorf("converting (%s) to (%s.%s): unknown conversion",
			reflect.TypeOf(obj).Elem(), internalPackage(want.Group), want.Kind), gvk, want, data)
	}
	if gvk != nil && gvk.GroupVersion() != want.GroupVersion() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", gvk.GroupVersion(), want.GroupVersion()))
	}
	if strict {
		switch q.r.URL.Query().Get("fieldValidation") {
		case "Strict":
			return nil, decodeError(err, gvk, want, data)
		case "Ignore":
		default:
			for _, msg := range strictMessages(err) {
				q.w.Header().Add("Warning", fmt.Sprintf(`299 - %q`, msg))
			}
		}
	}
	if !custom {
		// A custom object keeps the kind it claims; validation refuses
		// another one, as upstream.
		obj.GetObjectKind().SetGroupVersionKind(want)
	}
	return obj, nil
}

// bodyDecodeError is upstream's 400 for a request body that does not
// decode: it names the kind the body claims, or quotes the body's start
// when it is not even readable as an object.
func bodyDecodeError(err error, got *schema.GroupVersionKind, want schema.GroupVersionKind, data []byte) error {
	if runtime.IsNotRegisteredError(err) && got != nil {
		// The scheme's name is part of the message; upstream's is fixed.
		err = fmt.Errorf("no kind %q is registered for version %q in scheme %q", got.Kind, got.GroupVersion(), "pkg/runtime/scheme.go:111")
	}
	if got != nil && got.Kind != "" {
		return apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", got.Kind, got.Version, want.Kind, err))
	}
	return apierrors.NewBadRequest(fmt.Sprintf("the object provided is unrecognized (must be of type %s): %v (%s)", want.Kind, err, summarizeBody(data)))
}

// summarizeBody quotes the start of a request body for an error: JSON
// objects as text, anything else in hex.
func summarizeBody(data []byte) string {
	const limit = 30
	switch {
	case len(data) == 0:
		return "<empty>"
	case data[0] == '{' && len(data) > limit:
		return string(data[:limit]) + " ..."
	case data[0] == '{':
		return string(data)
	case len(data) > limit:
		return hex.EncodeToString(data[:limit]) + " ..."
	}
	return hex.EncodeToString(data)
}

// internalGroupKind is the group and kind upstream names in a 422: its
// internal type's, which for events.k8s.io Events is the core Event.
func internalGroupKind(gk schema.GroupKind) schema.GroupKind {
	if gk.Group == "events.k8s.io" {
		gk.Group = ""
	}
	return gk
}

// internalPackage is the name of the Go package of upstream's internal
// types for an API group, which its conversion errors print: the group's
// first label, with the core group (and events.k8s.io) in "core".
func internalPackage(group string) string {
	if group == "" || group == "events.k8s.io" {
		return "core"
	}
	first, _, _ := strings.Cut(group, ".")
	return first
}

func strictMessages(err error) []string {
	se, ok := runtime.AsStrictDecodingError(err)
	if !ok {
		return []string{err.Error()}
	}
	out := make([]string, 0, len(se.Errors()))
	for _, e := range se.Errors() {
		out = append(out, e.Error())
	}
	return out
}

func (q *request) newForSubresource() runtime.Object {
	if q.info.subresource == "scale" {
		return newScale()
	}
	return q.res.New()
}

// nameChars are the characters of generated name suffixes, as upstream
// (no vowels, so that no words are formed).
const nameChars = "bcdfghjklmnpqrstvwxz2456789"

func generateSuffix() string {
	b := make([]byte, 5)
	for i := range b {
		b[i] = nameChars[rand.IntN(len(nameChars))]
	}
	return string(b)
}

func (q *request) create() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	obj, err := q.readObject()
	if err != nil {
		return err
	}
	out, err := q.createObject(obj, false)
	if err != nil {
		return err
	}
	q.respond(a, http.StatusCreated, out)
	return nil
}

// createObject runs a new object through admission, defaulting and
// validation and stores it (unless dry run). applied says the object is the
// result of a server-side apply, whose managedFields the field manager set
// and whose name the URL gave.
func (q *request) createObject(obj runtime.Object, applied bool) (runtime.Object, error) {
	m, _ := meta.Accessor(obj)
	if q.res.Namespaced {
		switch m.GetNamespace() {
		case "":
			m.SetNamespace(q.info.namespace)
		case q.info.namespace:
		default:
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	} else {
		m.SetNamespace("")
	}
	if m.GetName() == "" && m.GetGenerateName() != "" && !applied {
		m.SetName(m.GetGenerateName() + generateSuffix())
	}
	if m.GetResourceVersion() != "" {
		if !applied {
			return nil, apierrors.NewBadRequest("resourceVersion should not be set on objects to be created")
		}
		m.SetResourceVersion("") // as upstream, an apply that creates ignores it
	}
	m.SetUID(types.UID(uuid.NewUUID()))
	m.SetCreationTimestamp(metav1.Now())
	m.SetDeletionTimestamp(nil)
	m.SetDeletionGracePeriodSeconds(nil)
	if q.res.hasSpec {
		m.SetGeneration(1)
	}
	if !applied {
		// As upstream, ownership is recorded for the decoded (so
		// defaulted) object, before admission changes it.
		if q.res.Default != nil {
			q.res.Default(obj)
		}
		obj = q.recordUpdate(nil, obj)
	}
	if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok {
		setRequestor(q.ctx, csr)
	}
	attrs := q.admissionAttributes(admission.Create, obj, nil)
	defer q.addWarnings(attrs)
	if err := q.admission.Admit(q.ctx, attrs); err != nil {
		return nil, err
	}
	q.res.normalizeMutated(obj)
	prepareCreate(q.res, obj)
	if q.res.Default != nil {
		q.res.Default(obj)
	}
	if err := q.validate(obj, nil); err != nil {
		return nil, err
	}
	if err := q.admit(obj); err != nil {
		return nil, err
	}
	if err := q.admission.Validate(q.ctx, attrs); err != nil {
		return nil, err
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		if err := q.admitPriority(pod); err != nil {
			return nil, err
		}
		addDefaultTolerations(pod)
	}
	if err := q.checkRBACWrite(obj); err != nil {
		return nil, err
	}
	if q.dryRun() {
		return obj, nil
	}
	if svc, ok := obj.(*corev1.Service); ok {
		if err := q.createService(q.ctx, svc); err != nil {
			return nil, err
		}
		return svc, nil
	}
	return q.res.create(q.ctx, obj)
}

// prepareCreate resets the status a client may not set, as upstream's
// create strategies do.
func prepareCreate(r *resource, obj runtime.Object) {
	switch o := obj.(type) {
	case *corev1.Pod:
		o.Status = corev1.PodStatus{Phase: corev1.PodPending, QOSClass: qosClass(o)}
	case *corev1.Node, *corev1.Event:
		// Nodes register with their status; events have none.
	case *corev1.Namespace:
		o.Status = corev1.NamespaceStatus{Phase: corev1.NamespaceActive}
		if len(o.Spec.Finalizers) == 0 {
			o.Spec.Finalizers = []corev1.FinalizerName{corev1.FinalizerKubernetes}
		}
	case *corev1.PersistentVolumeClaim:
		o.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending}
	case *corev1.PersistentVolume:
		o.Status = corev1.PersistentVolumeStatus{Phase: corev1.VolumePending}
	case *apiextensionsv1.CustomResourceDefinition:
		o.Status = apiextensionsv1.CustomResourceDefinitionStatus{}
		prepareCRDWrite(o)
	default:
		if r.hasStatus {
			clearStatus(obj)
		}
	}
}

// qosClass computes a pod's QoS class from its containers' resources.
func qosClass(p *corev1.Pod) corev1.PodQOSClass {
	requests, limits, guaranteed := 0, 0, true
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		requests += len(c.Resources.Requests)
		limits += len(c.Resources.Limits)
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			l, ok := c.Resources.Limits[res]
			if !ok {
				guaranteed = false
				continue
			}
			if r, ok := c.Resources.Requests[res]; ok && r.Cmp(l) != 0 {
				guaranteed = false
			}
		}
	}
	switch {
	case requests == 0 && limits == 0:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// validate runs generic metadata validation and the kind's own rules.
func (q *request) validate(obj, old runtime.Object) error {
	m, _ := meta.Accessor(obj)
	errs := validateMeta(q.res, m)
	if old == nil {
		if q.res.Validate != nil {
			errs = append(errs, q.res.Validate(obj)...)
		}
	} else if isPodSubresource(q.info.subresource) {
		errs = append(errs, validatePodSubresource(q.info.subresource, obj, old)...)
	} else if q.res.ValidateUpdate != nil {
		errs = append(errs, q.res.ValidateUpdate(obj, old)...)
	}
	if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok && old != nil {
		errs = append(errs, validateCSRConditionUpdate(q.info.subresource, csr, old.(*certificatesv1.CertificateSigningRequest))...)
	}
	if len(errs) > 0 {
		return apierrors.NewInvalid(internalGroupKind(q.res.gvk.GroupKind()), m.GetName(), errs)
	}
	return nil
}

// admit checks that the namespace of a new object exists and is not being
// deleted (upstream's NamespaceLifecycle admission).
func (q *request) admit(obj runtime.Object) error {
	if !q.res.Namespaced {
		return nil
	}
	m, _ := meta.Accessor(obj)
	nsRes := q.resources[corev1.SchemeGroupVersion.WithResource("namespaces")]
	// Read from etcd, not the watch cache: a create right after the
	// namespace's deletion must see it terminating.
	ns, _, err := nsRes.get(q.ctx, "", m.GetNamespace())
	if err != nil {
		if apierrors.IsNotFound(err) {
			return apierrors.NewNotFound(nsRes.gr, m.GetNamespace())
		}
		return err
	}
	if ns.(*corev1.Namespace).DeletionTimestamp != nil {
		return apierrors.NewForbidden(q.res.gr, m.GetName(),
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", m.GetNamespace()))
	}
	return nil
}

func (q *request) update() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	obj, err := q.readObject()
	if err != nil {
		return err
	}
	if err := q.checkName(obj); err != nil {
		return err
	}
	out, err := q.applyUpdate(func(runtime.Object) (runtime.Object, error) { return obj.DeepCopyObject(), nil })
	if err != nil {
		return err
	}
	q.respond(a, http.StatusOK, out)
	return nil
}

// checkName refuses an update whose body names another object (or
// namespace) than the URL, before anything is read from storage: 400 as
// upstream, even when the URL's object does not exist. A body without a
// name (a Scale of {} or null) is refused the same way.
func (q *request) checkName(obj runtime.Object) error {
	m, err := meta.Accessor(obj)
	if err == nil && m.GetName() == "" {
		err = errors.New("name must be provided")
	}
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s based on URL) was undeterminable: %v", q.info.name, err))
	}
	if q.res.Namespaced {
		switch ns := m.GetNamespace(); ns {
		case q.info.namespace:
		case "":
			m.SetNamespace(q.info.namespace)
		default:
			return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
	}
	if m.GetName() != q.info.name {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", m.GetName(), q.info.name))
	}
	return nil
}

// applyUpdate runs an update of the object (or its status or scale
// subresource) computed by mutate from the current object, with the
// generic update rules: identity and system metadata are kept, the
// client's resourceVersion is a precondition, status and spec are
// separated by subresource, generation counts spec changes.
func (q *request) applyUpdate(mutate updateFunc) (runtime.Object, error) {
	name := q.info.name
	var dry runtime.Object
	out, err := q.res.guaranteedUpdate(q.ctx, q.info.namespace, name, func(cur runtime.Object) (runtime.Object, error) {
		var next runtime.Object
		var err error
		if q.info.subresource == "scale" {
			next, err = q.updateScale(cur, mutate)
		} else {
			next, err = mutate(cur.DeepCopyObject())
		}
		if err != nil {
			return nil, err
		}
		nm, _ := meta.Accessor(next)
		cm, _ := meta.Accessor(cur)
		if nm.GetName() != name {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", nm.GetName(), name))
		}
		if q.res.Namespaced && nm.GetNamespace() != "" && nm.GetNamespace() != q.info.namespace {
			return nil, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
		}
		if rv := nm.GetResourceVersion(); rv != "" && rv != cm.GetResourceVersion() {
			return nil, apierrors.NewConflict(q.res.gr, name, errors.New(conflictMessage))
		}
		if uid := nm.GetUID(); uid != "" && uid != cm.GetUID() {
			return nil, apierrors.NewConflict(q.res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, cm.GetUID()))
		}
		nm.SetNamespace(cm.GetNamespace())
		nm.SetUID(cm.GetUID())
		nm.SetCreationTimestamp(cm.GetCreationTimestamp())
		nm.SetDeletionTimestamp(cm.GetDeletionTimestamp())
		nm.SetDeletionGracePeriodSeconds(cm.GetDeletionGracePeriodSeconds())
		nm.SetGeneration(cm.GetGeneration())
		nm.SetResourceVersion(cm.GetResourceVersion())
		if nm.GetManagedFields() == nil && !q.isApply() {
			nm.SetManagedFields(cm.GetManagedFields())
		}
		switch {
		case q.info.subresource == "finalize":
			// Only the namespace's spec.finalizers may change.
			finalizers := next.(*corev1.Namespace).Spec.Finalizers
			next = cur.DeepCopyObject()
			next.(*corev1.Namespace).Spec.Finalizers = finalizers
		case q.info.subresource == "approval":
			applyApproval(next.(*certificatesv1.CertificateSigningRequest), cur.(*certificatesv1.CertificateSigningRequest))
		case isPodSubresource(q.info.subresource):
			next = preparePodSubresource(q.info.subresource, next, cur)
		case q.info.subresource == "status":
			copyAllButStatus(next, cur)
			keepMetaForStatus(nm, cm)
			if csr, ok := next.(*certificatesv1.CertificateSigningRequest); ok {
				applyCSRStatus(csr, cur.(*certificatesv1.CertificateSigningRequest))
			}
		case q.res.hasStatus:
			copyStatus(next, cur)
			if crd, ok := next.(*apiextensionsv1.CustomResourceDefinition); ok {
				prepareCRDWrite(crd)
			}
		}
		if !q.isApply() {
			// An apply recorded its own ownership; others are recorded,
			// as upstream, for the defaulted request before admission. A
			// /scale write changes the parent's replicas only: its entry,
			// subresource scale, owns them, as upstream's scale handler
			// records it in the parent.
			if q.res.Default != nil {
				q.res.Default(next)
			}
			next = q.recordUpdate(cur, next)
		}
		attrs := q.admissionAttributes(admission.Update, next, cur)
		defer q.addWarnings(attrs)
		if err := q.admission.Admit(q.ctx, attrs); err != nil {
			return nil, err
		}
		nm, _ = meta.Accessor(attrs.Object)
		next = attrs.Object
		q.res.normalizeMutated(next)
		if q.res.Default != nil {
			q.res.Default(next)
		}
		if svc, ok := next.(*corev1.Service); ok {
			if err := q.prepareServiceUpdate(q.ctx, svc, cur.(*corev1.Service)); err != nil {
				return nil, err
			}
		}
		if q.res.hasSpec && !q.res.sameSpec(next, cur) {
			nm.SetGeneration(cm.GetGeneration() + 1)
		}
		if err := q.validate(next, cur); err != nil {
			return nil, err
		}
		if err := q.admission.Validate(q.ctx, attrs); err != nil {
			return nil, err
		}
		if err := q.checkRBACUpdate(next, cur); err != nil {
			return nil, err
		}
		if finishesDeletion(cm, nm) && !q.dryRun() {
			if ns, ok := next.(*corev1.Namespace); !ok || len(ns.Spec.Finalizers) == 0 {
				return next, errDeleteInstead
			}
		}
		if q.dryRun() {
			dry = next
			return nil, errDryRun
		}
		return next, nil
	})
	if errors.Is(err, errDryRun) {
		return dry, nil
	}
	if err != nil {
		return nil, err
	}
	if q.info.subresource == "scale" {
		return toScale(q.res, out)
	}
	return out, nil
}

var errDryRun = errors.New("dry run")

// finishesDeletion tells whether an update completes a pending deletion:
// the object is marked for deletion, its last finalizer is gone, and no
// grace period is running. A pod in its grace period stays until its
// kubelet deletes it, however often its status is written meanwhile.
func finishesDeletion(cur, next metav1.Object) bool {
	if cur.GetDeletionTimestamp() == nil || len(next.GetFinalizers()) > 0 {
		return false
	}
	g := cur.GetDeletionGracePeriodSeconds()
	return g == nil || *g == 0
}

// keepMetaForStatus keeps everything but labels, annotations, finalizers
// and owner references of the current metadata on a status update.
func keepMetaForStatus(nm, cm metav1.Object) {
	nm.SetFinalizers(cm.GetFinalizers())
	nm.SetOwnerReferences(cm.GetOwnerReferences())
}

// validateMeta checks the name and metadata fields common to all kinds.
func validateMeta(r *resource, m metav1.Object) field.ErrorList {
	if r.ValidatesMetadata {
		return nil
	}
	return validateObjectMeta(r, m)
}

// admissionAttributes describes a write of obj (over old) to the
// admission plugins.
func (q *request) admissionAttributes(op admission.Operation, obj, old runtime.Object) *admission.Attributes {
	u, _ := authn.UserFrom(q.ctx)
	a := &admission.Attributes{
		Operation: op, Kind: q.res.gvk, Resource: q.res.GVR, Subresource: q.info.subresource,
		Namespace: q.info.namespace, Name: q.info.name, Object: obj, OldObject: old, User: u, DryRun: q.dryRun(),
		Equivalents: equivalents{q.Server},
	}
	if obj != nil && a.Name == "" {
		if m, err := meta.Accessor(obj); err == nil {
			a.Name = m.GetName()
		}
	}
	return a
}
