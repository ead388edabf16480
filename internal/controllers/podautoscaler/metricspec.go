package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
)

// Skiff serves no custom or external metrics API of its own; an HPA on
// such metrics reports why it cannot scale, as upstream does when the API
// is not registered.
var (
	errNoCustomMetrics   = errors.New("no custom metrics API (custom.metrics.k8s.io) registered")
	errNoExternalMetrics = errors.New("no external metrics API (external.metrics.k8s.io) registered")
)

// replicasForMetrics proposes the largest replica count any metric asks
// for. It returns -1 with an error when no metric gave a count, or when
// some failed and the others would scale down (a failing metric might have
// asked for more); the ScalingActive condition says which.
func (c *Controller) replicasForMetrics(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, selector string,
	specReplicas int32) (int32, string, []autoscalingv2.MetricStatus, error) {
	sel, err := c.parseSelector(hpa, selector)
	if err != nil {
		return -1, "", nil, err
	}
	tol := tolerancesOf(hpa.Spec.Behavior)
	specs := hpa.Spec.Metrics
	statuses := make([]autoscalingv2.MetricStatus, len(specs))
	var (
		replicas  int32
		metric    string
		invalid   int
		firstErr  error
		firstCond conditionUpdate
	)
	for i, spec := range specs {
		n, name, cond, err := c.replicasForMetric(ctx, hpa, spec, specReplicas, sel, tol, &statuses[i])
		if err != nil {
			if invalid == 0 {
				firstErr, firstCond = err, cond
			}
			invalid++
			continue
		}
		if replicas == 0 || n > replicas {
			replicas, metric = n, name
		}
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("invalid metrics (%v invalid out of %v), first error is: %w", invalid, len(specs), firstErr)
	}
	if invalid >= len(specs) || (invalid > 0 && replicas < specReplicas) {
		setCondition(hpa, firstCond.typ, firstCond.status, firstCond.reason, firstCond.message, c.clock.Now())
		return -1, "", statuses, firstErr
	}
	setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionTrue, "ValidMetricFound",
		fmt.Sprintf("the HPA was able to successfully calculate a replica count from %s", metric), c.clock.Now())
	return replicas, metric, statuses, firstErr
}

// replicasForMetric proposes a count for one metric and fills its status.
func (c *Controller) replicasForMetric(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler, spec autoscalingv2.MetricSpec,
	specReplicas int32, sel labels.Selector, tol tolerances, status *autoscalingv2.MetricStatus) (int32, string, conditionUpdate, error) {
	unable := func(reason string, err error) conditionUpdate {
		c.recorder.Event(hpa, corev1.EventTypeWarning, reason, err.Error())
		return unableToCompute(reason, err)
	}
	switch {
	case spec.Type == autoscalingv2.ResourceMetricSourceType && spec.Resource != nil:
		n, name, cur, err := c.resourceProposal(ctx, hpa.Namespace, specReplicas, spec.Resource.Name, spec.Resource.Target, "", sel, tol)
		if err != nil {
			return 0, "", unable("FailedGetResourceMetric", err), fmt.Errorf("failed to get %s resource metric value: %w", spec.Resource.Name, err)
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type, Resource: &autoscalingv2.ResourceMetricStatus{Name: spec.Resource.Name, Current: cur}}
		return n, name, conditionUpdate{}, nil
	case spec.Type == autoscalingv2.ContainerResourceMetricSourceType && spec.ContainerResource != nil:
		cr := spec.ContainerResource
		n, name, cur, err := c.resourceProposal(ctx, hpa.Namespace, specReplicas, cr.Name, cr.Target, cr.Container, sel, tol)
		if err != nil {
			return 0, "", unable("FailedGetContainerResourceMetric", err), fmt.Errorf("failed to get %s container metric value: %w", cr.Name, err)
		}
		*status = autoscalingv2.MetricStatus{Type: spec.Type,
			ContainerResource: &autoscalingv2.ContainerResourceMetricStatus{Name: cr.Name, Container: cr.Container, Current: cur}}
		return n, name, conditionUpdate{}, nil
	case spec.Type == autoscalingv2.PodsMetricSourceType && spec.Pods != nil:
		err := fmt.Errorf("unable to get metric %s: unable to fetch metrics from custom metrics API: %w", spec.Pods.Metric.Name, errNoCustomMetrics)
		return 0, "", unable("FailedGetPodsMetric", err), fmt.Errorf("failed to get pods metric value: %w", err)
	case spec.Type == autoscalingv2.ObjectMetricSourceType && spec.Object != nil:
		obj := spec.Object.DescribedObject
		err := fmt.Errorf("unable to get metric %s: %s %s/%s: unable to fetch metrics from custom metrics API: %w",
			spec.Object.Metric.Name, obj.Kind, hpa.Namespace, obj.Name, errNoCustomMetrics)
		return 0, "", unable("FailedGetObjectMetric", err), fmt.Errorf("failed to get object metric value: %w", err)
	case spec.Type == autoscalingv2.ExternalMetricSourceType && spec.External != nil:
		err := fmt.Errorf("unable to get external metric %s/%s: unable to fetch metrics from external metrics API: %w",
			hpa.Namespace, spec.External.Metric.Name, errNoExternalMetrics)
		return 0, "", unable("FailedGetExternalMetric", err), fmt.Errorf("failed to get %s external metric value: %w", spec.External.Metric.Name, err)
	}
	err := fmt.Errorf("unknown metric source type %q", string(spec.Type))
	return 0, "", unable("InvalidMetricSourceType", err), err
}

// resourceProposal handles a resource target: an average value, or an
// average utilization of the pods' requests.
func (c *Controller) resourceProposal(ctx context.Context, ns string, current int32, res corev1.ResourceName, target autoscalingv2.MetricTarget,
	container string, sel labels.Selector, tol tolerances) (int32, string, autoscalingv2.MetricValueStatus, error) {
	if target.AverageValue != nil {
		p, err := c.calc.rawResourceReplicas(ctx, current, target.AverageValue.MilliValue(), res, tol, ns, sel, container)
		if err != nil {
			return 0, "", autoscalingv2.MetricValueStatus{}, fmt.Errorf("failed to get %s usage: %w", res, err)
		}
		return p.replicas, fmt.Sprintf("%s resource", res),
			autoscalingv2.MetricValueStatus{AverageValue: resource.NewMilliQuantity(p.average, resource.DecimalSI)}, nil
	}
	if target.AverageUtilization == nil {
		return 0, "", autoscalingv2.MetricValueStatus{},
			errors.New("invalid resource metric source: neither an average utilization target nor an average value (usage) target was set")
	}
	p, err := c.calc.resourceReplicas(ctx, current, *target.AverageUtilization, res, tol, ns, sel, container)
	if err != nil {
		return 0, "", autoscalingv2.MetricValueStatus{}, fmt.Errorf("failed to get %s utilization: %w", res, err)
	}
	name := fmt.Sprintf("%s resource utilization (percentage of request)", res)
	if container != "" {
		name = fmt.Sprintf("%s container resource utilization (percentage of request)", res)
	}
	util := p.utilization
	return p.replicas, name, autoscalingv2.MetricValueStatus{AverageUtilization: &util,
		AverageValue: resource.NewMilliQuantity(p.rawAverage, resource.DecimalSI)}, nil
}

// parseSelector reads the target's pod selector (from its scale status)
// and refuses one whose pods another HPA already scales.
func (c *Controller) parseSelector(hpa *autoscalingv2.HorizontalPodAutoscaler, selector string) (labels.Selector, error) {
	fail := func(reason, event, msg string) error {
		c.recorder.Event(hpa, corev1.EventTypeWarning, reason, event)
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, reason, msg, c.clock.Now())
		return errors.New(event)
	}
	if selector == "" {
		c.recorder.Event(hpa, corev1.EventTypeWarning, "SelectorRequired", "selector is required")
		setCondition(hpa, autoscalingv2.ScalingActive, corev1.ConditionFalse, "InvalidSelector",
			"the HPA target's scale is missing a selector", c.clock.Now())
		return nil, errors.New("selector is required")
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		msg := fmt.Sprintf("couldn't convert selector into a corresponding internal selector object: %v", err)
		return nil, fail("InvalidSelector", msg, msg)
	}
	key := hpa.Namespace + "/" + hpa.Name
	c.mu.Lock()
	c.selectors[key] = sel
	others := map[string]labels.Selector{}
	for k, s := range c.selectors {
		if k != key && strings.HasPrefix(k, hpa.Namespace+"/") {
			others[k] = s
		}
	}
	c.mu.Unlock()
	if len(others) > 0 {
		pods, err := c.calc.pods.Pods(hpa.Namespace).List(sel)
		if err == nil {
			if owners := hpasSelecting(pods, key, others); len(owners) > 1 {
				msg := fmt.Sprintf("pods by selector %v are controlled by multiple HPAs: %v", selector, owners)
				return nil, fail("AmbiguousSelector", msg, msg)
			}
		}
	}
	return sel, nil
}

// hpasSelecting lists self and the other HPAs whose selectors pick any of
// pods, sorted.
func hpasSelecting(pods []*corev1.Pod, self string, others map[string]labels.Selector) []string {
	owners := []string{self}
	for k, s := range others {
		for _, p := range pods {
			if s.Matches(labels.Set(p.Labels)) {
				owners = append(owners, k)
				break
			}
		}
	}
	sort.Strings(owners)
	return owners
}
