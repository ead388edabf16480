package podautoscaler

import (
	"context"
	"errors"
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// reconcile runs one autoscaling step for hpa (the informer's copy, not
// modified): read the target's scale, compute and bound the desired
// count, rescale, report.
func (c *Controller) reconcile(ctx context.Context, key string, shared *autoscalingv2.HorizontalPodAutoscaler) error {
	hpa := shared.DeepCopy()
	orig := hpa.Status.DeepCopy()
	now := c.clock.Now

	sc, gr, err := c.getScale(ctx, hpa)
	if err != nil {
		cause := err
		var te *targetError
		if errors.As(err, &te) {
			cause = te.cause
		}
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedGetScale", cause.Error())
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedGetScale",
			fmt.Sprintf("the HPA controller was unable to get the target's current scale: %v", cause), now())
		if uerr := c.updateStatusIfNeeded(ctx, orig, hpa); uerr != nil {
			return uerr
		}
		return err
	}
	setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededGetScale",
		"the HPA controller was able to get the target's current scale", now())

	current := sc.Spec.Replicas
	c.history.start(key, current)
	minReplicas := ptr.Deref(hpa.Spec.MinReplicas, 1)
	maxReplicas := hpa.Spec.MaxReplicas
	var (
		desired  int32
		reason   string
		statuses []autoscalingv2.MetricStatus
	)
	switch {
	case current == 0 && minReplicas != 0:
		// Scaled to zero by hand: autoscaling is off until scaled back.
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "ScalingDisabled",
			"scaling is disabled since the replica count of the target is zero", now())
	case current > maxReplicas:
		reason, desired = "Current number of replicas above Spec.MaxReplicas", maxReplicas
	case current < minReplicas:
		reason, desired = "Current number of replicas below Spec.MinReplicas", minReplicas
	default:
		var proposal int32
		var metric string
		proposal, metric, statuses, err = c.replicasForMetrics(ctx, hpa, sc.Status.Selector, sc.Spec.Replicas)
		if err != nil && proposal == -1 {
			setCurrent(hpa, current, statuses)
			if uerr := c.updateStatusIfNeeded(ctx, orig, hpa); uerr != nil {
				return uerr
			}
			c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedComputeMetricsReplicas",
				fmt.Sprintf("failed to compute desired number of replicas based on listed metrics for %s: %v", reference(hpa), err))
			return fmt.Errorf("failed to compute desired number of replicas based on listed metrics for %s: %w", reference(hpa), err)
		}
		if err != nil {
			// Some metrics failed, but the others ask to scale up: go on.
			c.log.Info("some metrics of a horizontal pod autoscaler failed", "hpa", key, "err", err)
		}
		desired = proposal
		switch {
		case desired > current:
			reason = fmt.Sprintf("%s above target", metric)
		case desired < current:
			reason = "All metrics below target"
		}
		l := limits{current: current, desired: desired, min: minReplicas, max: maxReplicas}
		var v verdict
		if hpa.Spec.Behavior == nil {
			v = c.history.normalize(key, l)
		} else {
			v = c.history.normalizeWithBehavior(key, behaviorRules(hpa.Spec.Behavior, c.history.downscaleWindow), l)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, v.ableReason, v.ableMessage, now())
		setCondition(hpa, autoscalingv2.ScalingLimited, conditionStatus(v.limited), v.limitReason, v.limitMessage, now())
		desired = v.replicas
	}

	// desired is 0 when scaling is disabled, so nothing changes then.
	rescale := desired != current
	if rescale {
		sc.Spec.Replicas = desired
		if _, err := c.scales.Scales(hpa.Namespace).Update(ctx, gr, sc, metav1.UpdateOptions{}); err != nil {
			c.recorder.Eventf(hpa, corev1.EventTypeWarning, "FailedRescale", "New size: %d; reason: %s; error: %v", desired, reason, err)
			setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionFalse, "FailedUpdateScale",
				fmt.Sprintf("the HPA controller was unable to update the target scale: %v", err), now())
			setCurrent(hpa, current, statuses)
			if uerr := c.updateStatusIfNeeded(ctx, orig, hpa); uerr != nil {
				return uerr
			}
			return fmt.Errorf("failed to rescale %s: %w", reference(hpa), err)
		}
		setCondition(hpa, autoscalingv2.AbleToScale, corev1.ConditionTrue, "SucceededRescale",
			fmt.Sprintf("the HPA controller was able to update the target scale to %d", desired), now())
		c.recorder.Eventf(hpa, corev1.EventTypeNormal, "SuccessfulRescale", "New size: %d; reason: %s", desired, reason)
		if hpa.Spec.Behavior != nil {
			c.history.recordScale(key, behaviorRules(hpa.Spec.Behavior, c.history.downscaleWindow), current, desired)
		}
		c.log.Info("rescaled", "hpa", key, "target", reference(hpa), "from", current, "to", desired, "reason", reason)
	}

	setCurrent(hpa, current, statuses)
	hpa.Status.DesiredReplicas = desired
	if rescale {
		t := metav1.NewTime(now())
		hpa.Status.LastScaleTime = &t
	}
	return c.updateStatusIfNeeded(ctx, orig, hpa)
}

func setCurrent(hpa *autoscalingv2.HorizontalPodAutoscaler, current int32, statuses []autoscalingv2.MetricStatus) {
	hpa.Status.CurrentReplicas = current
	hpa.Status.CurrentMetrics = statuses
}

// updateStatusIfNeeded writes the status when it changed.
func (c *Controller) updateStatusIfNeeded(ctx context.Context, orig *autoscalingv2.HorizontalPodAutoscalerStatus, hpa *autoscalingv2.HorizontalPodAutoscaler) error {
	if equality.Semantic.DeepEqual(orig, &hpa.Status) {
		return nil
	}
	_, err := c.client.AutoscalingV2().HorizontalPodAutoscalers(hpa.Namespace).UpdateStatus(ctx, hpa, metav1.UpdateOptions{})
	if err != nil {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "FailedUpdateStatus", err.Error())
		return fmt.Errorf("failed to update status for %s: %w", hpa.Name, err)
	}
	return nil
}
