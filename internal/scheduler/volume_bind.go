package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/skiff-dev/skiff/internal/volumematch"
)

// volumeReservation is the storage side of a pod's placement: PVs the
// scheduler gives to its claims (claimRef written, the PV controller
// finishes) and claims to provision on the node (selected-node written,
// the provisioner and PV controller finish). Its objects are assumed in
// the binder until the pod is bound or the attempt fails.
type volumeReservation struct {
	node      *corev1.Node
	static    []staticBinding                 // pv: the assumed copy with claimRef set
	provision []*corev1.PersistentVolumeClaim // assumed copies with selected-node set
}

// reserve is upstream's AssumePodVolumes: decide for the chosen node and
// assume the result, so the next pods see those PVs as taken. It returns
// nil when every claim is already bound.
func (b *volumeBinder) reserve(vs *volumeState, n *corev1.Node) (*volumeReservation, error) {
	if len(vs.delayed) == 0 {
		return nil, nil
	}
	d, reasons := vs.decide(n)
	if reasons != nil {
		return nil, fmt.Errorf("node %s no longer fits the pod's volumes: %v", n.Name, reasons)
	}
	r := &volumeReservation{node: n}
	for _, sb := range d.static {
		pv := sb.pv.DeepCopy()
		pv.Spec.ClaimRef = &corev1.ObjectReference{
			Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: sb.claim.Namespace, Name: sb.claim.Name, UID: sb.claim.UID, ResourceVersion: sb.claim.ResourceVersion,
		}
		metav1.SetMetaDataAnnotation(&pv.ObjectMeta, annBoundByController, "yes")
		b.assumePV(pv, false)
		r.static = append(r.static, staticBinding{claim: sb.claim, pv: pv})
	}
	for _, c := range d.provision {
		pvc := c.DeepCopy()
		metav1.SetMetaDataAnnotation(&pvc.ObjectMeta, annSelectedNode, n.Name)
		b.assumeClaim(pvc, false)
		r.provision = append(r.provision, pvc)
	}
	return r, nil
}

// bindVolumes is upstream's PreBind of VolumeBinding: write the
// reservation, then wait until the PV controller (and provisioner) have
// bound every claim, the API's answer arriving through the informers.
func (b *volumeBinder) bindVolumes(ctx context.Context, pod *corev1.Pod, r *volumeReservation) error {
	for i, sb := range r.static {
		if cur, err := b.pvs.Get(sb.pv.Name); err == nil && volumematch.BoundToClaim(cur, sb.claim) && cur.Spec.ClaimRef.UID == sb.claim.UID {
			continue // the API already has it
		}
		pv, err := b.client.CoreV1().PersistentVolumes().Update(ctx, sb.pv, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("binding volumes: %w", err)
		}
		b.forgetPV(sb.pv)
		b.assumePV(pv, true)
		r.static[i].pv = pv
	}
	for i, c := range r.provision {
		cur, err := b.pvcs.PersistentVolumeClaims(c.Namespace).Get(c.Name)
		if err == nil && cur.Annotations[annSelectedNode] == r.node.Name {
			continue // the API already has it
		}
		pvc, err := b.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, c, metav1.UpdateOptions{})
		if err != nil {
			return fmt.Errorf("binding volumes: %w", err)
		}
		b.forgetClaim(c)
		b.assumeClaim(pvc, true)
		r.provision[i] = pvc
	}
	timeout := b.clock.NewTimer(b.bindTimeout)
	defer timeout.Stop()
	// Informer events wake the wait; the ticker only covers the pod's own
	// deletion, which is not a storage event.
	tick := b.clock.NewTicker(time.Second)
	defer tick.Stop()
	for {
		changed := b.watch()
		done, err := b.checkBound(pod, r)
		if err != nil {
			return fmt.Errorf("binding volumes: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-tick.C():
		case <-timeout.C():
			return fmt.Errorf("binding volumes: %w", context.DeadlineExceeded)
		case <-ctx.Done():
			return fmt.Errorf("binding volumes: %w", ctx.Err())
		}
	}
}

// checkBound is upstream's checkBindings: true once every claim of the
// reservation is fully bound; an error when the binding cannot happen
// any more (a provisioner gave up and removed selected-node, say).
func (b *volumeBinder) checkBound(pod *corev1.Pod, r *volumeReservation) (bool, error) {
	if p, err := b.pods.Pods(pod.Namespace).Get(pod.Name); err != nil || p.UID != pod.UID || p.DeletionTimestamp != nil {
		return false, errors.New("pod does not exist any more")
	}
	for _, sb := range r.static {
		pv, err := b.volume(sb.pv.Name)
		if err != nil {
			return false, fmt.Errorf("failed to check binding: %w", err)
		}
		if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID == "" {
			return false, fmt.Errorf("ClaimRef got reset for pv %q", pv.Name)
		}
		pvc, err := b.claim(sb.claim.Namespace, sb.claim.Name)
		if err != nil {
			return false, fmt.Errorf("failed to check binding: %w", err)
		}
		if !claimFullyBound(pvc) {
			return false, nil
		}
	}
	for _, c := range r.provision {
		pvc, err := b.claim(c.Namespace, c.Name)
		if err != nil {
			return false, fmt.Errorf("failed to check provisioning: %w", err)
		}
		switch sel, ok := pvc.Annotations[annSelectedNode]; {
		case !ok:
			return false, fmt.Errorf("selectedNode annotation reset for PVC %q", pvc.Name)
		case sel != r.node.Name:
			return false, fmt.Errorf("provisioning failed for PVC %q", pvc.Name)
		}
		if pvc.Spec.VolumeName != "" {
			pv, err := b.volume(pvc.Spec.VolumeName)
			if err != nil {
				return false, nil // the PV may not have reached the informer yet
			}
			if !volumematch.MatchesNode(pv, r.node) {
				return false, fmt.Errorf("pv %q node affinity doesn't match node %q", pv.Name, r.node.Name)
			}
		}
		if !claimFullyBound(pvc) {
			return false, nil
		}
	}
	return true, nil
}

// release drops the reservation's assumptions (after the pod is bound,
// the informers hold the truth).
func (b *volumeBinder) release(r *volumeReservation) {
	for _, sb := range r.static {
		b.forgetPV(sb.pv)
	}
	for _, c := range r.provision {
		b.forgetClaim(c)
	}
}

// revert undoes a failed reservation so that the next attempt starts
// afresh: claimRefs the PV controller has not completed are cleared and
// selected-node is removed from claims still unbound. Each write is
// conditional on the object it read, so a binding that completes
// meanwhile is left alone.
func (b *volumeBinder) revert(ctx context.Context, r *volumeReservation) {
	b.release(r)
	for _, sb := range r.static {
		pv, err := b.client.CoreV1().PersistentVolumes().Get(ctx, sb.pv.Name, metav1.GetOptions{})
		if err != nil || !volumematch.BoundToClaim(pv, sb.claim) {
			continue
		}
		pvc, err := b.client.CoreV1().PersistentVolumeClaims(sb.claim.Namespace).Get(ctx, sb.claim.Name, metav1.GetOptions{})
		if err == nil && pvc.Spec.VolumeName != "" {
			continue // the PV controller got there
		}
		pv.Spec.ClaimRef = nil
		delete(pv.Annotations, annBoundByController)
		if _, err := b.client.CoreV1().PersistentVolumes().Update(ctx, pv, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			b.logRevert("clear claimRef", pv.Name, err)
		}
	}
	for _, c := range r.provision {
		pvc, err := b.client.CoreV1().PersistentVolumeClaims(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
		if err != nil || pvc.Spec.VolumeName != "" || pvc.Annotations[annSelectedNode] != r.node.Name {
			continue
		}
		delete(pvc.Annotations, annSelectedNode)
		if _, err := b.client.CoreV1().PersistentVolumeClaims(c.Namespace).Update(ctx, pvc, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			b.logRevert("remove selected-node", c.Namespace+"/"+c.Name, err)
		}
	}
}

func (b *volumeBinder) logRevert(what, name string, err error) {
	b.log.Warn("volume binding: revert failed", "action", what, "object", name, "err", err)
}
