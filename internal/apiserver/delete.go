package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-dev/skiff/internal/apiserver/admission"
	"github.com/skiff-dev/skiff/internal/storage"
)

// deleteOptions reads DeleteOptions from the body or the query.
func (q *request) deleteOptions() (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	data, err := q.body()
	if err != nil {
		return nil, err
	}
	if len(data) > 0 {
		dec, _, err := q.codecs.decoderFor(q.r.Header.Get("Content-Type"))
		if err != nil {
			return nil, unsupportedMediaType()
		}
		if _, _, err := dec.Decode(data, nil, opts); err != nil && !runtime.IsStrictDecodingError(err) {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	qs := q.r.URL.Query()
	if len(data) == 0 {
		// Without a body the options come from the query, as upstream.
		if err := decodeParams(qs, opts); err != nil {
			return nil, err
		}
	} else {
		// Query parameters still override a body's options.
		fromQuery := &metav1.DeleteOptions{}
		if err := decodeParams(qs, fromQuery); err != nil {
			return nil, err
		}
		if fromQuery.GracePeriodSeconds != nil {
			opts.GracePeriodSeconds = fromQuery.GracePeriodSeconds
		}
		if fromQuery.PropagationPolicy != nil {
			opts.PropagationPolicy = fromQuery.PropagationPolicy
		}
		if len(fromQuery.DryRun) > 0 {
			opts.DryRun = fromQuery.DryRun
		}
	}
	if err := invalidOptions("DeleteOptions", metav1validation.ValidateDeleteOptions(opts)); err != nil {
		return nil, err
	}
	return opts, nil
}

func (q *request) delete() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	opts, err := q.deleteOptions()
	if err != nil {
		return err
	}
	out, code, gone, err := q.deleteOne(q.info.namespace, q.info.name, opts)
	if err != nil {
		return err
	}
	if gone && !returnsDeletedObject[q.res.gr] {
		// A Status is answered in every format, never as a table.
		q.writeObject(q.w, a.media, code, deletedStatus(q.res.gr, out))
		return nil
	}
	q.respond(a, code, out)
	return nil
}

// returnsDeletedObject are the resources whose objects upstream answers a
// DELETE with even once they are gone (its registries' ReturnDeletedObject);
// the others answer a Status naming what was deleted. An object that
// lingers (finalizers, a pod's grace period) is always answered.
var returnsDeletedObject = map[schema.GroupResource]bool{
	{Resource: "namespaces"}:                                       true,
	{Resource: "persistentvolumeclaims"}:                           true,
	{Resource: "persistentvolumes"}:                                true,
	{Resource: "pods"}:                                             true,
	{Resource: "podtemplates"}:                                     true,
	{Resource: "resourcequotas"}:                                   true,
	{Resource: "serviceaccounts"}:                                  true,
	{Resource: "services"}:                                         true,
	{Group: "storage.k8s.io", Resource: "csidrivers"}:              true,
	{Group: "storage.k8s.io", Resource: "csinodes"}:                true,
	{Group: "storage.k8s.io", Resource: "storageclasses"}:          true,
	{Group: "storage.k8s.io", Resource: "volumeattachments"}:       true,
	{Group: "storage.k8s.io", Resource: "volumeattributesclasses"}: true,
	{Group: "resource.k8s.io", Resource: "deviceclasses"}:          true,
	{Group: "resource.k8s.io", Resource: "resourceclaims"}:         true,
	{Group: "resource.k8s.io", Resource: "resourceclaimtemplates"}: true,
	{Group: "resource.k8s.io", Resource: "resourceslices"}:         true,
}

// deletedStatus is the Success Status upstream answers for an object
// deleted at once; as upstream, details.kind holds the resource.
func deletedStatus(gr schema.GroupResource, obj runtime.Object) *metav1.Status {
	st := &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusSuccess,
		Details:  &metav1.StatusDetails{Group: gr.Group, Kind: gr.Resource},
	}
	if m, err := meta.Accessor(obj); err == nil {
		st.Details.Name, st.Details.UID = m.GetName(), m.GetUID()
	}
	return st
}

// deleteOne deletes an object: at once (gone), or by marking it with a
// deletion timestamp when finalizers or a pod's grace period must run
// first.
func (q *request) deleteOne(ns, name string, opts *metav1.DeleteOptions) (runtime.Object, int, bool, error) {
	dry := len(opts.DryRun) > 0
	for {
		cur, rev, err := q.res.get(q.ctx, ns, name)
		if err != nil {
			return nil, 0, false, err
		}
		m, _ := meta.Accessor(cur)
		if pc := opts.Preconditions; pc != nil {
			if pc.UID != nil && *pc.UID != m.GetUID() {
				return nil, 0, false, apierrors.NewConflict(q.res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pc.UID, m.GetUID()))
			}
			if pc.ResourceVersion != nil && *pc.ResourceVersion != m.GetResourceVersion() {
				return nil, 0, false, apierrors.NewConflict(q.res.gr, name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pc.ResourceVersion, m.GetResourceVersion()))
			}
		}
		attrs := q.admissionAttributes(admission.Delete, nil, cur)
		err = q.admission.Validate(q.ctx, attrs)
		q.addWarnings(attrs)
		if err != nil {
			return nil, 0, false, err
		}
		grace := q.gracePeriod(cur, opts)
		added := false
		if f := propagationFinalizer(opts, q.res.OrphanByDefault); f != "" && !slices.Contains(m.GetFinalizers(), f) {
			// The garbage collector carries out the policy and then
			// removes the finalizer.
			m.SetFinalizers(append(m.GetFinalizers(), f))
			added = true
		}
		if crd, ok := cur.(*apiextensionsv1.CustomResourceDefinition); ok {
			markCRDDeleting(crd) // its objects go first
		}
		pending := len(m.GetFinalizers()) > 0 || grace > 0
		nsObj, isNamespace := cur.(*corev1.Namespace)
		if isNamespace && len(nsObj.Spec.Finalizers) > 0 {
			// The namespace controller empties it, then finalizes it.
			pending = true
			nsObj.Status.Phase = corev1.NamespaceTerminating
		}
		if !pending {
			if dry {
				return cur, http.StatusOK, true, nil
			}
			var held []string
			if svc, ok := cur.(*corev1.Service); ok {
				held = reservations(svc)
			}
			_, _, err := q.res.store.DeleteWith(q.ctx, q.res.key(ns, name), rev, held)
			if errors.Is(err, storage.ErrConflict) {
				continue
			}
			if err != nil {
				return nil, 0, false, storageError(err, q.res.gr, name)
			}
			return cur, http.StatusOK, true, nil
		}
		code := pendingCode(opts)
		if m.GetDeletionTimestamp() != nil {
			// Already being deleted: only a shorter grace period (or a
			// new finalizer) changes anything.
			if !shortenGrace(m, grace, opts, time.Now()) && !added {
				return cur, code, false, nil
			}
		} else {
			now := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second))
			m.SetDeletionTimestamp(&now)
			m.SetDeletionGracePeriodSeconds(&grace)
			// Its controllers must see that it is going: as upstream, the
			// first mark moves the generation on.
			if g := m.GetGeneration(); g > 0 {
				m.SetGeneration(g + 1)
			}
		}
		if dry {
			return cur, code, false, nil
		}
		data, err := q.res.encode(cur)
		if err != nil {
			return nil, 0, false, err
		}
		newRev, _, err := q.res.store.Update(q.ctx, q.res.key(ns, name), data, rev)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, 0, false, storageError(err, q.res.gr, name)
		}
		m.SetResourceVersion(strconv.FormatInt(newRev, 10))
		return cur, code, false, nil
	}
}

// shortenGrace applies a delete's grace period to an object already in
// its grace period when the new one is shorter, as upstream: the deletion
// timestamp moves back by the difference, never into the past, and a
// graceful request whose time has already run out keeps one second so the
// kubelet still does the final delete. It reports whether m changed.
func shortenGrace(m metav1.Object, grace int64, opts *metav1.DeleteOptions, now time.Time) bool {
	old := m.GetDeletionGracePeriodSeconds()
	if opts.GracePeriodSeconds == nil || old == nil || *old == 0 || grace >= *old {
		return false
	}
	ts := m.GetDeletionTimestamp().Add(time.Duration(grace-*old) * time.Second)
	if ts.Before(now) {
		ts = now
		if grace != 0 {
			grace = 1
		}
	}
	at := metav1.NewTime(ts)
	m.SetDeletionTimestamp(&at)
	m.SetDeletionGracePeriodSeconds(&grace)
	return true
}

// pendingCode is the status of a delete that leaves the object in place
// (grace period, finalizers). Upstream answers 200 with the object, and 202
// only when the client set the deprecated orphanDependents to false.
func pendingCode(opts *metav1.DeleteOptions) int {
	//nolint:staticcheck // SA1019: upstream still keys 202 on this field.
	if o := opts.OrphanDependents; o != nil && !*o {
		return http.StatusAccepted
	}
	return http.StatusOK
}

// gracePeriod is how long an object lingers after deletion: only pods
// bound to a node wait, for their kubelet to stop the containers.
func (q *request) gracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return 0
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if opts.GracePeriodSeconds != nil {
		return max(*opts.GracePeriodSeconds, 0)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		return *g
	}
	return 30
}

func (q *request) deleteCollection() error {
	a, err := q.accept()
	if err != nil {
		return err
	}
	opts, err := q.deleteOptions()
	if err != nil {
		return err
	}
	if rv := q.r.URL.Query().Get("resourceVersion"); rv != "" {
		// The collection is read as the current state, but a malformed
		// version is still refused, as upstream's list options are.
		if _, err := parseResourceVersion(rv); err != nil {
			return err
		}
	}
	filter, err := q.selectors()
	if err != nil {
		return err
	}
	if err := q.res.cache.WaitFresh(q.ctx); err != nil {
		return storageError(err, q.res.gr, "")
	}
	entries, rev := q.res.cache.List(q.res.nsPrefix(q.info.namespace), filter)
	var deleted []runtime.Object
	for _, e := range entries {
		m, _ := meta.Accessor(e.Obj)
		obj, _, _, err := q.deleteOne(m.GetNamespace(), m.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		deleted = append(deleted, obj)
	}
	return q.writeList(a, deleted, strconv.FormatInt(rev, 10), "", nil)
}

// propagationFinalizer is the finalizer a deletion policy asks for;
// orphanByDefault is the resource's policy when the options name none.
func propagationFinalizer(opts *metav1.DeleteOptions, orphanByDefault bool) string {
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationForeground:
			return metav1.FinalizerDeleteDependents
		case metav1.DeletePropagationOrphan:
			return metav1.FinalizerOrphanDependents
		}
	}
	if opts.OrphanDependents != nil {
		if *opts.OrphanDependents {
			return metav1.FinalizerOrphanDependents
		}
		return ""
	}
	if opts.PropagationPolicy == nil && orphanByDefault {
		return metav1.FinalizerOrphanDependents
	}
	return ""
}
