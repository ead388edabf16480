package podautoscaler

import (
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// setCondition sets (or adds) a condition, moving its transition time
// only when its status changes.
func setCondition(hpa *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType,
	status corev1.ConditionStatus, reason, message string, now time.Time) {
	conds := hpa.Status.Conditions
	i := 0
	for i < len(conds) && conds[i].Type != typ {
		i++
	}
	if i == len(conds) {
		conds = append(conds, autoscalingv2.HorizontalPodAutoscalerCondition{Type: typ})
	}
	c := &conds[i]
	if c.Status != status {
		c.LastTransitionTime = metav1.NewTime(now)
	}
	c.Status, c.Reason, c.Message = status, reason, message
	hpa.Status.Conditions = conds
}

// conditionUpdate is a condition to set once the outcome is known.
type conditionUpdate struct {
	typ     autoscalingv2.HorizontalPodAutoscalerConditionType
	status  corev1.ConditionStatus
	reason  string
	message string
}

// unableToCompute is the ScalingActive=False condition of a metric that
// gave no replica count.
func unableToCompute(reason string, err error) conditionUpdate {
	return conditionUpdate{typ: autoscalingv2.ScalingActive, status: corev1.ConditionFalse, reason: reason,
		message: fmt.Sprintf("the HPA was unable to compute the replica count: %v", err)}
}

func conditionStatus(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}
