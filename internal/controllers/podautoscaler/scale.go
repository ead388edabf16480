package podautoscaler

import (
	"context"
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// targetError is a failure to read the target's scale: the cause goes to
// the event and condition, the whole message to the log.
type targetError struct {
	context string
	cause   error
}

func (e *targetError) Error() string { return e.context + ": " + e.cause.Error() }
func (e *targetError) Unwrap() error { return e.cause }

// getScale reads the scale subresource of the HPA's target, trying each
// resource its kind maps to.
func (c *Controller) getScale(ctx context.Context, hpa *autoscalingv2.HorizontalPodAutoscaler) (*autoscalingv1.Scale, schema.GroupResource, error) {
	ref := hpa.Spec.ScaleTargetRef
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, schema.GroupResource{}, &targetError{"invalid API version in scale target reference", err}
	}
	gk := schema.GroupKind{Group: gv.Group, Kind: ref.Kind}
	mappings, err := c.mapper.RESTMappings(gk)
	if err != nil {
		// The kind may be new (a CRD created since discovery was read).
		if r, ok := c.mapper.(meta.ResettableRESTMapper); ok {
			r.Reset()
			mappings, err = c.mapper.RESTMappings(gk)
		}
	}
	if err != nil {
		return nil, schema.GroupResource{}, &targetError{"unable to determine resource for scale target reference", err}
	}
	var firstErr error
	for _, m := range mappings {
		gr := m.Resource.GroupResource()
		sc, err := c.scales.Scales(hpa.Namespace).Get(ctx, gr, ref.Name, metav1.GetOptions{})
		if err == nil {
			return sc, gr, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("unrecognized resource")
	}
	return nil, schema.GroupResource{}, &targetError{fmt.Sprintf("failed to query scale subresource for %s", reference(hpa)), firstErr}
}

// reference names the target as upstream's messages do: Kind/namespace/name.
func reference(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	return fmt.Sprintf("%s/%s/%s", hpa.Spec.ScaleTargetRef.Kind, hpa.Namespace, hpa.Spec.ScaleTargetRef.Name)
}
