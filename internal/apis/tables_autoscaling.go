package apis

import (
	"fmt"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func autoscalingTables() map[string]kindTable {
	spec := autoscalingv2.HorizontalPodAutoscalerSpec{}.SwaggerDoc()
	return map[string]kindTable{
		"HorizontalPodAutoscaler": {
			cols: []metav1.TableColumnDefinition{
				col("Reference", "string", spec["scaleTargetRef"], 0),
				col("Targets", "string", spec["metrics"], 0),
				col("MinPods", "string", spec["minReplicas"], 0),
				col("MaxPods", "string", spec["maxReplicas"], 0),
				col("Replicas", "string", autoscalingv2.HorizontalPodAutoscalerStatus{}.SwaggerDoc()["currentReplicas"], 0),
				ageCol,
			},
			row: hpaRow,
		},
	}
}

// hpaRow prints either version: a v1 object is shown through its v2 form.
func hpaRow(o runtime.Object) []any {
	h, ok := o.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		h = HPAToV2(o.(*autoscalingv1.HorizontalPodAutoscaler))
	}
	minPods := "<unset>"
	if h.Spec.MinReplicas != nil {
		minPods = fmt.Sprint(*h.Spec.MinReplicas)
	}
	return []any{h.Spec.ScaleTargetRef.Kind + "/" + h.Spec.ScaleTargetRef.Name, hpaTargets(h.Spec.Metrics, h.Status.CurrentMetrics),
		minPods, int64(h.Spec.MaxReplicas), int64(h.Status.CurrentReplicas), age(o)}
}

// hpaTargets prints "current/target" for the first two metrics and how many
// more there are, as kubectl shows them.
func hpaTargets(specs []autoscalingv2.MetricSpec, statuses []autoscalingv2.MetricStatus) string {
	if len(specs) == 0 {
		return "<none>"
	}
	const shown = 2
	var list []string
	for i, s := range specs {
		var st *autoscalingv2.MetricStatus
		if i < len(statuses) {
			st = &statuses[i]
		}
		list = append(list, metricTarget(&s, st))
	}
	if len(list) > shown {
		return fmt.Sprintf("%s + %d more...", strings.Join(list[:shown], ", "), len(list)-shown)
	}
	return strings.Join(list, ", ")
}

func metricTarget(s *autoscalingv2.MetricSpec, st *autoscalingv2.MetricStatus) string {
	const unknown = "<unknown>"
	cur := unknown
	switch s.Type {
	case autoscalingv2.ExternalMetricSourceType:
		if s.External == nil {
			break
		}
		if avg := s.External.Target.AverageValue; avg != nil {
			if st != nil && st.External != nil && st.External.Current.AverageValue != nil {
				cur = st.External.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", cur, avg.String())
		}
		if st != nil && st.External != nil && st.External.Current.Value != nil {
			cur = st.External.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", cur, s.External.Target.Value.String())
	case autoscalingv2.PodsMetricSourceType:
		if s.Pods == nil {
			break
		}
		if st != nil && st.Pods != nil && st.Pods.Current.AverageValue != nil {
			cur = st.Pods.Current.AverageValue.String()
		}
		return fmt.Sprintf("%s/%s", cur, s.Pods.Target.AverageValue.String())
	case autoscalingv2.ObjectMetricSourceType:
		if s.Object == nil {
			break
		}
		if avg := s.Object.Target.AverageValue; avg != nil {
			if st != nil && st.Object != nil && st.Object.Current.AverageValue != nil {
				cur = st.Object.Current.AverageValue.String()
			}
			return fmt.Sprintf("%s/%s (avg)", cur, avg.String())
		}
		if st != nil && st.Object != nil && st.Object.Current.Value != nil {
			cur = st.Object.Current.Value.String()
		}
		return fmt.Sprintf("%s/%s", cur, s.Object.Target.Value.String())
	case autoscalingv2.ResourceMetricSourceType:
		if s.Resource == nil {
			break
		}
		var c *autoscalingv2.MetricValueStatus
		if st != nil && st.Resource != nil {
			c = &st.Resource.Current
		}
		return string(s.Resource.Name) + ": " + resourceTargetString(&s.Resource.Target, c)
	case autoscalingv2.ContainerResourceMetricSourceType:
		if s.ContainerResource == nil {
			break
		}
		var c *autoscalingv2.MetricValueStatus
		if st != nil && st.ContainerResource != nil {
			c = &st.ContainerResource.Current
		}
		return string(s.ContainerResource.Name) + ": " + resourceTargetString(&s.ContainerResource.Target, c)
	}
	return "<unknown type>"
}

func resourceTargetString(t *autoscalingv2.MetricTarget, cur *autoscalingv2.MetricValueStatus) string {
	c := "<unknown>"
	if t.AverageValue != nil {
		if cur != nil && cur.AverageValue != nil {
			c = cur.AverageValue.String()
		}
		return c + "/" + t.AverageValue.String()
	}
	if cur != nil && cur.AverageUtilization != nil {
		c = fmt.Sprintf("%d%%", *cur.AverageUtilization)
	}
	target := "<auto>"
	if t.AverageUtilization != nil {
		target = fmt.Sprintf("%d%%", *t.AverageUtilization)
	}
	return c + "/" + target
}
