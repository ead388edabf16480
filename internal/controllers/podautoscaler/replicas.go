package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/utils/clock"
)

const (
	// defaultTolerance is how far usage may stray from the target, as a
	// fraction, before the controller acts (--horizontal-pod-autoscaler-tolerance).
	defaultTolerance = 0.1
	// cpuInitializationPeriod: CPU samples of pods started this recently are
	// trusted only when taken a full window after the pod turned ready.
	cpuInitializationPeriod = 5 * time.Minute
	// initialReadinessDelay: a pod not ready this long after its start is
	// taken as never having been ready yet.
	initialReadinessDelay = 30 * time.Second
)

// tolerances bound the usage ratio within which nothing changes.
type tolerances struct{ down, up float64 }

func (t tolerances) within(ratio float64) bool { return 1-t.down <= ratio && ratio <= 1+t.up }

// replicaCalculator turns metric samples into replica proposals, the way
// upstream's replica calculator does.
type replicaCalculator struct {
	metrics MetricsSource
	pods    listerscorev1.PodLister
	clock   clock.PassiveClock
}

// utilizationProposal is what a utilization target proposes.
type utilizationProposal struct {
	replicas    int32
	utilization int32 // percent of requests
	rawAverage  int64 // milli-units per pod
	timestamp   time.Time
}

// resourceReplicas proposes a replica count for a target utilization (a
// percentage of the pods' requests) of resource.
func (c *replicaCalculator) resourceReplicas(ctx context.Context, current, target int32, resource corev1.ResourceName,
	tol tolerances, namespace string, selector labels.Selector, container string) (utilizationProposal, error) {
	metrics, g, pods, ts, err := c.samples(ctx, resource, namespace, selector, container)
	if err != nil {
		return utilizationProposal{}, err
	}
	requests, err := podRequests(pods, container, resource)
	if err != nil {
		return utilizationProposal{}, err
	}
	if len(metrics) == 0 {
		return utilizationProposal{}, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, util, raw, err := utilizationRatio(metrics, requests, target)
	if err != nil {
		return utilizationProposal{}, err
	}
	// A missing pod is taken, on the way down, to use its whole request
	// (or the target, when above 100 %).
	fallback := int64(max(100, target))
	replicas, err := proposeReplicas(current, ratio, metrics, g, tol,
		func(pod string) int64 { return requests[pod] * fallback / 100 },
		func(m podMetrics) (float64, error) {
			r, _, _, err := utilizationRatio(m, requests, target)
			return r, err
		})
	if err != nil {
		return utilizationProposal{}, err
	}
	return utilizationProposal{replicas: replicas, utilization: util, rawAverage: raw, timestamp: ts}, nil
}

// valueProposal is what an average-value target proposes.
type valueProposal struct {
	replicas  int32
	average   int64 // milli-units per pod
	timestamp time.Time
}

// rawResourceReplicas proposes a replica count for a target average usage
// (milli-units per pod) of resource.
func (c *replicaCalculator) rawResourceReplicas(ctx context.Context, current int32, target int64, resource corev1.ResourceName,
	tol tolerances, namespace string, selector labels.Selector, container string) (valueProposal, error) {
	metrics, g, _, ts, err := c.samples(ctx, resource, namespace, selector, container)
	if err != nil {
		return valueProposal{}, err
	}
	if len(metrics) == 0 {
		return valueProposal{}, errors.New("did not receive metrics for targeted pods (pods might be unready)")
	}
	ratio, avg := averageRatio(metrics, target)
	replicas, err := proposeReplicas(current, ratio, metrics, g, tol,
		func(string) int64 { return target },
		func(m podMetrics) (float64, error) {
			r, _ := averageRatio(m, target)
			return r, nil
		})
	if err != nil {
		return valueProposal{}, err
	}
	return valueProposal{replicas: replicas, average: avg, timestamp: ts}, nil
}

// samples fetches the usage of the selected pods and sorts the pods; the
// returned metrics hold only the samples of ready pods.
func (c *replicaCalculator) samples(ctx context.Context, resource corev1.ResourceName, namespace string,
	selector labels.Selector, container string) (podMetrics, podGroups, []*corev1.Pod, time.Time, error) {
	metrics, ts, err := resourceUsage(ctx, c.metrics, resource, namespace, selector, container)
	if err != nil {
		return nil, podGroups{}, nil, time.Time{}, fmt.Errorf("unable to get metrics for resource %s: %w", resource, err)
	}
	pods, err := c.pods.Pods(namespace).List(selector)
	if err != nil {
		return nil, podGroups{}, nil, time.Time{}, fmt.Errorf("unable to get pods while calculating replica count: %w", err)
	}
	if len(pods) == 0 {
		return nil, podGroups{}, nil, time.Time{}, errors.New("no pods returned by selector while calculating replica count")
	}
	g := groupPods(pods, metrics, resource, c.clock.Now())
	g.keepReady(metrics)
	return metrics, g, pods, ts, nil
}

// proposeReplicas is upstream's core rule: ceil(ready pods × ratio), unless
// the ratio is within tolerance. When samples are missing or pods are not
// ready, the ratio is recomputed with conservative stand-ins for them
// (missing pods at fallback on the way down and at zero on the way up,
// unready pods at zero on the way up), and the change is dropped if the
// stand-ins reverse or cancel it.
func proposeReplicas(current int32, ratio float64, metrics podMetrics, g podGroups, tol tolerances,
	fallback func(pod string) int64, ratioOf func(podMetrics) (float64, error)) (int32, error) {
	scaleUpWithUnready := len(g.unready) > 0 && ratio > 1
	if !scaleUpWithUnready && len(g.missing) == 0 {
		if tol.within(ratio) {
			return current, nil
		}
		return int32(math.Ceil(ratio * float64(g.ready.Len()))), nil
	}
	for pod := range g.missing {
		switch {
		case ratio < 1:
			metrics[pod] = podMetric{value: fallback(pod)}
		case ratio > 1:
			metrics[pod] = podMetric{value: 0}
		}
	}
	if scaleUpWithUnready {
		for pod := range g.unready {
			metrics[pod] = podMetric{value: 0}
		}
	}
	adjusted, err := ratioOf(metrics)
	if err != nil {
		return 0, err
	}
	if tol.within(adjusted) || (ratio < 1 && adjusted > 1) || (ratio > 1 && adjusted < 1) {
		return current, nil
	}
	n := int32(math.Ceil(adjusted * float64(len(metrics))))
	if (adjusted < 1 && n > current) || (adjusted > 1 && n < current) {
		return current, nil
	}
	return n, nil
}

// utilizationRatio compares the pods' usage with their requests: the
// ratio to the target utilization, the utilization (percent) and the
// average usage in milli-units.
func utilizationRatio(metrics podMetrics, requests map[string]int64, target int32) (float64, int32, int64, error) {
	var used, requested, n int64
	for pod, m := range metrics {
		req, ok := requests[pod]
		if !ok {
			continue
		}
		used += m.value
		requested += req
		n++
	}
	if requested == 0 {
		return 0, 0, 0, errors.New("no metrics returned matched known pods")
	}
	util := int32(used * 100 / requested)
	return float64(util) / float64(target), util, used / n, nil
}

// averageRatio compares the pods' average usage with the target.
func averageRatio(metrics podMetrics, target int64) (float64, int64) {
	var sum int64
	for _, m := range metrics {
		sum += m.value
	}
	avg := sum / int64(len(metrics))
	return float64(avg) / float64(target), avg
}

// podGroups sorts the selected pods for the calculation.
type podGroups struct {
	ready   sets.Set[string] // running, sampled and (for CPU) trustworthy
	unready sets.Set[string] // pending, or not yet trustworthy for CPU
	missing sets.Set[string] // running without a sample
	ignored sets.Set[string] // deleting or finished
}

// groupPods sorts pods as upstream does. For CPU, a pod counts as unready
// while not ready, and within its initialization period also until a
// full metrics window has passed since it turned ready: start-up CPU would
// otherwise look like load.
func groupPods(pods []*corev1.Pod, metrics podMetrics, resource corev1.ResourceName, now time.Time) podGroups {
	g := podGroups{ready: sets.New[string](), unready: sets.New[string](), missing: sets.New[string](), ignored: sets.New[string]()}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			g.ignored.Insert(p.Name)
			continue
		}
		if p.Status.Phase == corev1.PodPending {
			g.unready.Insert(p.Name)
			continue
		}
		m, ok := metrics[p.Name]
		if !ok {
			g.missing.Insert(p.Name)
			continue
		}
		if resource == corev1.ResourceCPU && cpuUnready(p, m, now) {
			g.unready.Insert(p.Name)
			continue
		}
		g.ready.Insert(p.Name)
	}
	return g
}

func cpuUnready(p *corev1.Pod, m podMetric, now time.Time) bool {
	var ready *corev1.PodCondition
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			ready = &p.Status.Conditions[i]
		}
	}
	if ready == nil || p.Status.StartTime == nil {
		return true
	}
	start := p.Status.StartTime.Time
	if start.Add(cpuInitializationPeriod).After(now) {
		return ready.Status == corev1.ConditionFalse || m.timestamp.Before(ready.LastTransitionTime.Add(m.window))
	}
	// Past initialization, only a pod that has never been ready is left out.
	return ready.Status == corev1.ConditionFalse && start.Add(initialReadinessDelay).After(ready.LastTransitionTime.Time)
}

// keepReady drops from metrics every sample not of a ready pod: samples of
// unready and ignored pods, and of pods the pod lister does not know.
func (g podGroups) keepReady(metrics podMetrics) {
	for pod := range metrics {
		if !g.ready.Has(pod) {
			delete(metrics, pod)
		}
	}
}

// podRequests sums each pod's requests of resource (one container's, when
// container is set). The pod-level request wins where the pod sets one.
// Sidecars (restartable init containers) count: their usage is sampled too.
func podRequests(pods []*corev1.Pod, container string, resource corev1.ResourceName) (map[string]int64, error) {
	out := make(map[string]int64, len(pods))
	for _, p := range pods {
		if container == "" && p.Spec.Resources != nil {
			if q, ok := p.Spec.Resources.Requests[resource]; ok {
				out[p.Name] = q.MilliValue()
				continue
			}
		}
		var sum int64
		cs := p.Spec.Containers
		for _, ic := range p.Spec.InitContainers {
			if ic.RestartPolicy != nil && *ic.RestartPolicy == corev1.ContainerRestartPolicyAlways {
				cs = append(cs[:len(cs):len(cs)], ic)
			}
		}
		for _, c := range cs {
			if container != "" && c.Name != container {
				continue
			}
			q, ok := c.Resources.Requests[resource]
			if !ok {
				return nil, fmt.Errorf("missing request for %s in container %s of Pod %s", resource, c.Name, p.Name)
			}
			sum += q.MilliValue()
		}
		out[p.Name] = sum
	}
	return out, nil
}
