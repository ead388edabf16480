package apiserver

import (
	"context"
	"fmt"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var runtimeClassesGVR = nodev1.SchemeGroupVersion.WithResource("runtimeclasses")

// runtimeClassSource reads RuntimeClasses for the RuntimeClass admission
// plugin. It reads etcd rather than the watch cache, as upstream falls
// back to a live read, so a class created just before its first pod is
// never missed; only pods that name a class pay the round trip.
type runtimeClassSource struct{ s *Server }

func (src runtimeClassSource) GetRuntimeClass(ctx context.Context, name string) (*nodev1.RuntimeClass, error) {
	res := src.s.resources[runtimeClassesGVR]
	if res == nil {
		return nil, apierrors.NewNotFound(runtimeClassesGVR.GroupResource(), name)
	}
	obj, _, err := res.get(ctx, "", name)
	if err != nil {
		return nil, err
	}
	rc, ok := obj.(*nodev1.RuntimeClass)
	if !ok {
		return nil, fmt.Errorf("runtimeclass %s: unexpected %T", name, obj)
	}
	return rc, nil
}
