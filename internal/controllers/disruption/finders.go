package disruption

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	listersappsv1 "k8s.io/client-go/listers/apps/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/scale"
)

// finders resolve controller references from the informer caches: the
// built-in workload kinds, the way upstream counts them.
type finders struct {
	rcs          listerscorev1.ReplicationControllerLister
	replicaSets  listersappsv1.ReplicaSetLister
	deployments  listersappsv1.DeploymentLister
	statefulSets listersappsv1.StatefulSetLister
	// scales, when set, resolves any other kind through its scale
	// subresource (custom resources with a scale subresource).
	scales *scaleSubresource
}

type scaleSubresource struct {
	mapper apimeta.RESTMapper
	client scale.ScalesGetter
}

// is reports whether ref names kind in one of groups.
func is(ref *metav1.OwnerReference, kind string, groups ...string) bool {
	if ref.Kind != kind {
		return false
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return false
	}
	for _, g := range groups {
		if gv.Group == g {
			return true
		}
	}
	return false
}

// find implements scaleFinder. References to objects not (or no longer)
// in the caches, or with another UID, are not found.
func (f *finders) find(ctx context.Context, ref *metav1.OwnerReference, ns string) (types.UID, int32, bool, error) {
	switch {
	case is(ref, "ReplicationController", ""):
		rc, err := f.rcs.ReplicationControllers(ns).Get(ref.Name)
		if err != nil || rc.UID != ref.UID {
			return "", 0, false, nil
		}
		return rc.UID, replicas(rc.Spec.Replicas), true, nil
	case is(ref, "ReplicaSet", "apps", "extensions"):
		rs, err := f.replicaSets.ReplicaSets(ns).Get(ref.Name)
		if err != nil || rs.UID != ref.UID {
			return "", 0, false, nil
		}
		// A Deployment's ReplicaSets count as the Deployment.
		if owner := metav1.GetControllerOf(rs); owner != nil && owner.Kind == "Deployment" {
			if !is(owner, "Deployment", "apps", "extensions") {
				return "", 0, false, nil
			}
			d, err := f.deployments.Deployments(ns).Get(owner.Name)
			if err != nil || d.UID != owner.UID {
				return "", 0, false, nil
			}
			return d.UID, replicas(d.Spec.Replicas), true, nil
		}
		return rs.UID, replicas(rs.Spec.Replicas), true, nil
	case is(ref, "StatefulSet", "apps"):
		ss, err := f.statefulSets.StatefulSets(ns).Get(ref.Name)
		if err != nil || ss.UID != ref.UID {
			return "", 0, false, nil
		}
		return ss.UID, replicas(ss.Spec.Replicas), true, nil
	}
	if f.scales == nil {
		return "", 0, false, nil
	}
	return f.scales.find(ctx, ref, ns)
}

func (s *scaleSubresource) find(ctx context.Context, ref *metav1.OwnerReference, ns string) (types.UID, int32, bool, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return "", 0, false, err
	}
	mapping, err := s.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	if err != nil {
		return "", 0, false, fmt.Errorf("mapping %s: %w", ref.Kind, err)
	}
	sc, err := s.client.Scales(ns).Get(ctx, mapping.Resource.GroupResource(), ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("scale of %s %s: %w", mapping.Resource.GroupResource(), ref.Name, err)
	}
	if sc.UID != ref.UID {
		return "", 0, false, nil
	}
	return sc.UID, sc.Spec.Replicas, true, nil
}

// replicas reads a defaulted replicas field (nil means 1, as defaulting does).
func replicas(n *int32) int32 {
	if n == nil {
		return 1
	}
	return *n
}
