package apiserver

import (
	"fmt"
	"net/http"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	policyv1beta1 "k8s.io/api/policy/v1beta1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var pdbGVR = policyv1.SchemeGroupVersion.WithResource("poddisruptionbudgets")

// evict serves pods/eviction (what kubectl drain uses): the pod is deleted
// unless that would take a PodDisruptionBudget below what it allows, in
// which case the answer is 429, as upstream, and the client retries.
func (q *request) evict() error {
	// Negotiate first, as upstream: a 406 must not follow an eviction.
	a, err := q.accept()
	if err != nil {
		return err
	}
	body, err := q.body()
	if err != nil {
		return err
	}
	dec, _, err := q.codecs.decoderFor(q.r.Header.Get("Content-Type"))
	if err != nil {
		return unsupportedMediaType()
	}
	want := policyv1.SchemeGroupVersion.WithKind("Eviction")
	decoded, _, err := dec.Decode(body, &want, nil)
	if err != nil && !runtime.IsStrictDecodingError(err) {
		return apierrors.NewBadRequest(err.Error())
	}
	var ev policyv1.Eviction
	switch e := decoded.(type) {
	case *policyv1.Eviction:
		ev = *e
	case *policyv1beta1.Eviction:
		ev.ObjectMeta, ev.DeleteOptions = e.ObjectMeta, e.DeleteOptions
	default:
		return apierrors.NewBadRequest(fmt.Sprintf("not a Eviction object: %T", decoded))
	}
	if ev.Namespace != "" && ev.Namespace != q.info.namespace {
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	// As upstream, the Eviction must name the pod of the URL: one without a
	// name evicts nothing.
	if ev.Name != q.info.name {
		return apierrors.NewBadRequest("name in URL does not match name in Eviction object")
	}
	obj, _, err := q.res.get(q.ctx, q.info.namespace, q.info.name)
	if err != nil {
		return err
	}
	pod := obj.(*corev1.Pod)
	// Pods that are done or not running yet do not count against budgets.
	counts := pod.Status.Phase == corev1.PodRunning && pod.DeletionTimestamp == nil
	if counts {
		if err := q.checkDisruptionBudgets(pod); err != nil {
			return err
		}
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if q.dryRun() {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, _, _, err := q.deleteOne(q.info.namespace, q.info.name, opts); err != nil {
		return err
	}
	q.respond(a, http.StatusCreated, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
	return nil
}

// checkDisruptionBudgets refuses an eviction that would leave a budget
// covering the pod with fewer healthy pods than it requires.
func (q *request) checkDisruptionBudgets(pod *corev1.Pod) error {
	pdbs := q.resources[pdbGVR]
	pods := q.resources[podsGVR]
	<-pdbs.cache.Ready()
	budgets, _ := pdbs.cache.List(pdbs.nsPrefix(pod.Namespace), nil)
	for _, e := range budgets {
		pdb := e.Obj.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		entries, _ := pods.cache.List(pods.nsPrefix(pod.Namespace), nil)
		expected, healthy := 0, 0
		for _, pe := range entries {
			p := pe.Obj.(*corev1.Pod)
			if !sel.Matches(labels.Set(p.Labels)) || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				continue
			}
			expected++
			if podReady(p) {
				healthy++
			}
		}
		if allowed(pdb, expected, healthy) <= 0 {
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
			err.ErrStatus.Details.Causes = append(err.ErrStatus.Details.Causes, metav1.StatusCause{
				Type:    "DisruptionBudget",
				Message: fmt.Sprintf("The disruption budget %s needs %d healthy pods and has %d currently", pdb.Name, healthy-allowed(pdb, expected, healthy), healthy),
			})
			return err
		}
	}
	return nil
}

// allowed is how many more pods the budget lets go.
func allowed(pdb *policyv1.PodDisruptionBudget, expected, healthy int) int {
	switch {
	case pdb.Spec.MinAvailable != nil:
		min, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MinAvailable, expected, true)
		if err != nil {
			return 0
		}
		return healthy - min
	case pdb.Spec.MaxUnavailable != nil:
		max, err := intstr.GetScaledValueFromIntOrPercent(pdb.Spec.MaxUnavailable, expected, true)
		if err != nil {
			return 0
		}
		return healthy - (expected - max)
	}
	return healthy
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
