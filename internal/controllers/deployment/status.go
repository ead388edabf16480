package deployment

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition reasons kubectl and users look for.
const (
	reasonNewRSAvailable     = "NewReplicaSetAvailable"
	reasonRSUpdated          = "ReplicaSetUpdated"
	reasonDeadlineExceeded   = "ProgressDeadlineExceeded"
	reasonPaused             = "DeploymentPaused"
	reasonMinimumAvailable   = "MinimumReplicasAvailable"
	reasonMinimumUnavailable = "MinimumReplicasUnavailable"
)

func getCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition replaces a condition, keeping its transition time when
// the status does not change.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	if cur := getCondition(st, c.Type); cur != nil {
		if cur.Status == c.Status {
			c.LastTransitionTime = cur.LastTransitionTime
			if cur.Reason == c.Reason && cur.Message == c.Message {
				c.LastUpdateTime = cur.LastUpdateTime
			}
		}
		*cur = c
		return
	}
	st.Conditions = append(st.Conditions, c)
}

func (c *Controller) updateStatus(ctx context.Context, d *appsv1.Deployment, newRS *appsv1.ReplicaSet, all []*appsv1.ReplicaSet, rolling bool) error {
	now := metav1.NewTime(c.Clock.Now())
	want := replicasOf(d.Spec.Replicas)
	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		CollisionCount:     d.Status.CollisionCount,
		Conditions:         append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...),
	}
	for _, rs := range all {
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(want-st.AvailableReplicas, 0)

	cond := func(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
		return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: now, LastTransitionTime: now}
	}
	if st.AvailableReplicas >= want-maxUnavailable(d) {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionTrue, reasonMinimumAvailable, "Deployment has minimum availability."))
	} else {
		setCondition(&st, cond(appsv1.DeploymentAvailable, corev1.ConditionFalse, reasonMinimumUnavailable, "Deployment does not have minimum availability."))
	}

	var requeue time.Duration
	switch {
	case d.Spec.Paused:
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionUnknown, reasonPaused, "Deployment is paused"))
	case !rolling || newRS == nil:
	case st.UpdatedReplicas == want && st.AvailableReplicas == want && st.Replicas == want:
		setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewRSAvailable,
			fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)))
	default:
		prev := getCondition(&d.Status, appsv1.DeploymentProgressing)
		progressed := prev == nil || prev.Reason == reasonPaused || prev.Reason == reasonNewRSAvailable ||
			!statusCountsEqual(d.Status, st)
		deadline := time.Duration(600) * time.Second
		if d.Spec.ProgressDeadlineSeconds != nil {
			deadline = time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second
		}
		switch {
		case progressed:
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonRSUpdated,
				fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)))
			requeue = deadline
		case prev.Reason != reasonDeadlineExceeded && now.Sub(prev.LastUpdateTime.Time) > deadline:
			setCondition(&st, cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, reasonDeadlineExceeded,
				fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)))
		case prev.Reason != reasonDeadlineExceeded:
			requeue = deadline - now.Sub(prev.LastUpdateTime.Time) + time.Second
		}
	}
	if requeue > 0 {
		c.queue.AddAfter(d.Namespace+"/"+d.Name, requeue)
	}
	if equality.Semantic.DeepEqual(d.Status, st) {
		return nil
	}
	d.Status = st
	_, err := c.client.AppsV1().Deployments(d.Namespace).UpdateStatus(ctx, d, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func statusCountsEqual(a, b appsv1.DeploymentStatus) bool {
	return a.Replicas == b.Replicas && a.UpdatedReplicas == b.UpdatedReplicas && a.ReadyReplicas == b.ReadyReplicas &&
		a.AvailableReplicas == b.AvailableReplicas && a.ObservedGeneration == b.ObservedGeneration
}
