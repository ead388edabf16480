package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

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
			return nil, unsupportedMediaType(err.Error())
		}
		if _, _, err := dec.Decode(data, nil, opts); err != nil && !runtime.IsStrictDecodingError(err) {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid DeleteOptions: %v", err))
		}
	}
	qs := q.r.URL.Query()
	if v := qs.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest("invalid gracePeriodSeconds")
		}
		opts.GracePeriodSeconds = &n
	}
	if v := qs.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if q.dryRun() {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("unsupported propagationPolicy %q", *p))
		}
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
	out, code, err := q.deleteOne(q.info.namespace, q.info.name, opts)
	if err != nil {
		return err
	}
	q.respond(a, code, out)
	return nil
}

// deleteOne deletes an object: at once, or by marking it with a deletion
// timestamp when finalizers or a pod's grace period must run first.
func (q *request) deleteOne(ns, name string, opts *metav1.DeleteOptions) (runtime.Object, int, error) {
	dry := len(opts.DryRun) > 0
	for {
		cur, rev, err := q.res.get(q.ctx, ns, name)
		if err != nil {
			return nil, 0, err
		}
		m, _ := meta.Accessor(cur)
		if pc := opts.Preconditions; pc != nil {
			if pc.UID != nil && *pc.UID != m.GetUID() {
				return nil, 0, apierrors.NewConflict(q.res.gr, name, fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *pc.UID, m.GetUID()))
			}
			if pc.ResourceVersion != nil && *pc.ResourceVersion != m.GetResourceVersion() {
				return nil, 0, apierrors.NewConflict(q.res.gr, name, fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *pc.ResourceVersion, m.GetResourceVersion()))
			}
		}
		if err := q.admission.Validate(q.ctx, q.admissionAttributes(admission.Delete, nil, cur)); err != nil {
			return nil, 0, err
		}
		grace := q.gracePeriod(cur, opts)
		added := false
		if f := propagationFinalizer(opts); f != "" && !slices.Contains(m.GetFinalizers(), f) {
			// The garbage collector carries out the policy and then
			// removes the finalizer.
			m.SetFinalizers(append(m.GetFinalizers(), f))
			added = true
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
				return cur, http.StatusOK, nil
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
				return nil, 0, storageError(err, q.res.gr, name)
			}
			return cur, http.StatusOK, nil
		}
		code := pendingCode(opts)
		if m.GetDeletionTimestamp() != nil && !added {
			// Already being deleted; a shorter grace period may still apply.
			return cur, code, nil
		}
		if m.GetDeletionTimestamp() == nil {
			now := metav1.NewTime(time.Now().Add(time.Duration(grace) * time.Second))
			m.SetDeletionTimestamp(&now)
			m.SetDeletionGracePeriodSeconds(&grace)
		}
		if dry {
			return cur, code, nil
		}
		data, err := q.res.encode(cur)
		if err != nil {
			return nil, 0, err
		}
		newRev, _, err := q.res.store.Update(q.ctx, q.res.key(ns, name), data, rev)
		if errors.Is(err, storage.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, 0, storageError(err, q.res.gr, name)
		}
		m.SetResourceVersion(strconv.FormatInt(newRev, 10))
		return cur, code, nil
	}
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
		obj, _, err := q.deleteOne(m.GetNamespace(), m.GetName(), opts)
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

// propagationFinalizer is the finalizer a deletion policy asks for.
func propagationFinalizer(opts *metav1.DeleteOptions) string {
	if opts.PropagationPolicy != nil {
		switch *opts.PropagationPolicy {
		case metav1.DeletePropagationForeground:
			return metav1.FinalizerDeleteDependents
		case metav1.DeletePropagationOrphan:
			return metav1.FinalizerOrphanDependents
		}
	}
	if opts.OrphanDependents != nil && *opts.OrphanDependents {
		return metav1.FinalizerOrphanDependents
	}
	return ""
}
