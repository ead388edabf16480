// Package controllerutil holds what several controllers share: creation
// expectations, claiming pods through controller references, pod
// readiness, and ranking pods for deletion.
package controllerutil

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// expectationTimeout bounds how long a controller waits for its own
// creations and deletions to show up in its informer before acting again.
const expectationTimeout = 5 * time.Minute

// Expectations remember, per controller key, creations and deletions
// issued but not yet observed, so that a slow informer never makes a
// controller create (or delete) the same pods twice.
type Expectations struct {
	mu    sync.Mutex
	m     map[string]*expectation
	clock clock.PassiveClock
}

type expectation struct {
	adds, dels int
	at         time.Time
}

// NewExpectations returns an empty set timed by the real clock.
func NewExpectations() *Expectations { return NewExpectationsWithClock(clock.RealClock{}) }

// NewExpectationsWithClock returns an empty set whose timeout is measured
// on c, so tests can expire expectations with a fake clock.
func NewExpectationsWithClock(c clock.PassiveClock) *Expectations {
	return &Expectations{m: map[string]*expectation{}, clock: c}
}

// ClockRef is a PassiveClock that reads through *P at every call. A
// controller hands its expectations ClockRef{&c.Clock}, so a fake clock
// assigned to the controller's Clock field after New also times them.
type ClockRef struct{ P *clock.PassiveClock }

// Now returns the current time of the referenced clock.
func (r ClockRef) Now() time.Time { return (*r.P).Now() }

// Since returns the time elapsed since t on the referenced clock.
func (r ClockRef) Since(t time.Time) time.Duration { return (*r.P).Since(t) }

// Expect records that adds creations and dels deletions are in flight.
func (e *Expectations) Expect(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.m[key] = &expectation{adds: adds, dels: dels, at: e.clock.Now()}
}

// Observed lowers the counts when the informer reports a change; creation
// failures are lowered the same way, since they will never be observed.
func (e *Expectations) Observed(key string, adds, dels int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.m[key]; ok {
		x.adds -= adds
		x.dels -= dels
	}
}

// Satisfied reports whether the controller may act on fresh state.
func (e *Expectations) Satisfied(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.m[key]
	return !ok || (x.adds <= 0 && x.dels <= 0) || e.clock.Since(x.at) > expectationTimeout
}

// Delete forgets a controller.
func (e *Expectations) Delete(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.m, key)
}

// IsPodActive reports whether a pod counts towards replicas.
func IsPodActive(p *corev1.Pod) bool {
	return p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed && p.DeletionTimestamp == nil
}

// IsPodReady reports the pod's Ready condition.
func IsPodReady(p *corev1.Pod) bool {
	c := readyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

func readyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// IsPodAvailable reports whether a pod has been ready for minReadySeconds.
func IsPodAvailable(p *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := readyCondition(p)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	return minReadySeconds == 0 || (!c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).Before(now))
}

// ControllerRef returns an owner reference marking owner as the controller.
func ControllerRef(owner metav1.Object, gvk schema.GroupVersionKind) metav1.OwnerReference {
	yes := true
	return metav1.OwnerReference{
		APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind, Name: owner.GetName(), UID: owner.GetUID(),
		Controller: &yes, BlockOwnerDeletion: &yes,
	}
}

// Fresh reads an owner from the API server, not from an informer.
type Fresh func(ctx context.Context) (metav1.Object, error)

// AdoptionCheck says, once, whether owner may still adopt orphans. The
// informer's copy of the owner can trail its deletion: an owner the garbage
// collector is orphaning from must not take its pods back, or they are
// collected once it is gone. So before the first adoption of a sync the
// owner is read live, as upstream's controllers do.
func AdoptionCheck(owner metav1.Object, fresh Fresh) func(ctx context.Context) error {
	var checked bool
	var verdict error
	return func(ctx context.Context) error {
		if checked {
			return verdict
		}
		checked = true
		live, err := fresh(ctx)
		switch {
		case err != nil:
			verdict = fmt.Errorf("can't recheck the deletion of %s/%s before adopting: %w", owner.GetNamespace(), owner.GetName(), err)
		case live.GetUID() != owner.GetUID():
			verdict = fmt.Errorf("original %s/%s is gone: got uid %s, wanted %s", owner.GetNamespace(), owner.GetName(), live.GetUID(), owner.GetUID())
		case live.GetDeletionTimestamp() != nil:
			verdict = fmt.Errorf("%s/%s has just been deleted at %v", owner.GetNamespace(), owner.GetName(), live.GetDeletionTimestamp())
		}
		return verdict
	}
}

// ClaimPods sorts the namespace's pods into those owner controls: it
// adopts orphans that match the selector and releases owned pods that no
// longer match. Pods controlled by someone else are never touched. Before
// the first adoption the owner is read through fresh (see AdoptionCheck);
// if it is being deleted, ClaimPods fails so that the sync acts on nothing.
func ClaimPods(ctx context.Context, client kubernetes.Interface, owner metav1.Object, gvk schema.GroupVersionKind,
	selector labels.Selector, pods []*corev1.Pod, fresh Fresh) ([]*corev1.Pod, error) {
	canAdopt := AdoptionCheck(owner, fresh)
	var claimed []*corev1.Pod
	for _, p := range pods {
		ref := metav1.GetControllerOf(p)
		matches := selector.Matches(labels.Set(p.Labels))
		switch {
		case ref != nil && ref.UID != owner.GetUID():
			continue
		case ref != nil && matches:
			claimed = append(claimed, p)
		case ref != nil: // ours but no longer selected: release
			if err := patchOwners(ctx, client, p, nil, owner.GetUID()); err != nil {
				return nil, err
			}
		case matches && owner.GetDeletionTimestamp() == nil && p.DeletionTimestamp == nil:
			if err := canAdopt(ctx); err != nil {
				return nil, fmt.Errorf("adopt pod %s: %w", p.Name, err)
			}
			cr := ControllerRef(owner, gvk)
			if err := patchOwners(ctx, client, p, &cr, ""); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return nil, err
			}
			claimed = append(claimed, p)
		}
	}
	return claimed, nil
}

// patchOwners adds ref or removes the reference to uid, guarded by the
// pod's UID so a recreated pod of the same name is never touched.
func patchOwners(ctx context.Context, client kubernetes.Interface, p *corev1.Pod, add *metav1.OwnerReference, remove types.UID) error {
	var owners []metav1.OwnerReference
	for _, o := range p.OwnerReferences {
		if o.UID != remove {
			owners = append(owners, o)
		}
	}
	if add != nil {
		owners = append(owners, *add)
	}
	if owners == nil {
		owners = []metav1.OwnerReference{}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": p.UID, "ownerReferences": owners}})
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("update owners of pod %s: %w", p.Name, err)
	}
	return err
}

// DeletionLess orders pods for scale-down, first to go first: Unassigned before
// assigned, pending before unknown before running, not ready before ready,
// more restarts first, newer first — upstream's order.
func DeletionLess(a, b *corev1.Pod) bool {
	if (a.Spec.NodeName == "") != (b.Spec.NodeName == "") {
		return a.Spec.NodeName == ""
	}
	rank := map[corev1.PodPhase]int{corev1.PodPending: 0, corev1.PodUnknown: 1, corev1.PodRunning: 2}
	if rank[a.Status.Phase] != rank[b.Status.Phase] {
		return rank[a.Status.Phase] < rank[b.Status.Phase]
	}
	if IsPodReady(a) != IsPodReady(b) {
		return !IsPodReady(a)
	}
	if ra, rb := restarts(a), restarts(b); ra != rb {
		return ra > rb
	}
	return b.CreationTimestamp.Before(&a.CreationTimestamp)
}

func restarts(p *corev1.Pod) int32 {
	var n int32
	for _, c := range p.Status.ContainerStatuses {
		n += c.RestartCount
	}
	return n
}
