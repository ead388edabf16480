package podautoscaler

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
)

// MetricsSource lists the resource metrics (metrics.k8s.io) of the pods a
// selector picks in a namespace.
type MetricsSource interface {
	PodMetrics(ctx context.Context, namespace string, selector labels.Selector) ([]metricsv1beta1.PodMetrics, error)
}

// ResourceMetrics reads metrics.k8s.io/v1beta1 with the controller's own
// client, as upstream's REST metrics client does.
type ResourceMetrics struct {
	Client metricsclient.Interface
}

// PodMetrics implements MetricsSource.
func (r ResourceMetrics) PodMetrics(ctx context.Context, namespace string, selector labels.Selector) ([]metricsv1beta1.PodMetrics, error) {
	list, err := r.Client.MetricsV1beta1().PodMetricses(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// podMetric is one pod's usage of a resource, in milli-units.
type podMetric struct {
	timestamp time.Time
	window    time.Duration
	value     int64
}

// podMetrics maps pod names to their usage.
type podMetrics map[string]podMetric

// resourceUsage fetches the usage of resource by the selected pods (by
// container when container is set). The timestamp is the first sample's.
func resourceUsage(ctx context.Context, src MetricsSource, resource corev1.ResourceName, namespace string,
	selector labels.Selector, container string) (podMetrics, time.Time, error) {
	items, err := src.PodMetrics(ctx, namespace, selector)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("unable to fetch metrics from resource metrics API: %w", err)
	}
	if len(items) == 0 {
		return nil, time.Time{}, errors.New("no metrics returned from resource metrics API")
	}
	out := podMetrics{}
	for _, m := range items {
		sum, ok := sumUsage(m.Containers, resource, container)
		if !ok {
			continue
		}
		out[m.Name] = podMetric{timestamp: m.Timestamp.Time, window: m.Window.Duration, value: sum}
	}
	return out, items[0].Timestamp.Time, nil
}

// sumUsage adds the containers' usage of resource. A pod with no
// containers, or one lacking the resource, has no usable sample (a
// partial sum would understate it); with container set, only that
// container counts and it must be present.
func sumUsage(cs []metricsv1beta1.ContainerMetrics, resource corev1.ResourceName, container string) (int64, bool) {
	var sum int64
	found := false
	for _, c := range cs {
		if container != "" && c.Name != container {
			continue
		}
		q, ok := c.Usage[resource]
		if !ok {
			return 0, false
		}
		sum += q.MilliValue()
		found = true
	}
	return sum, found
}
