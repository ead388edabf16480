package apiserver

import (
	"context"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/skiff-dev/skiff/internal/storage"
)

var (
	pvcsGVR      = corev1.SchemeGroupVersion.WithResource("persistentvolumeclaims")
	pvsGVR       = corev1.SchemeGroupVersion.WithResource("persistentvolumes")
	ingressesGVR = networkingv1.SchemeGroupVersion.WithResource("ingresses")
	pcrsGVR      = certificatesv1.SchemeGroupVersion.WithResource("podcertificaterequests")
)

// nodeSource gives the Node authorizer the pods bound to a node and the
// objects they use, from the watch caches. Objects are shared: read only.
type nodeSource struct{ s *Server }

func (src nodeSource) PodsOnNode(node, namespace string, fn func(*corev1.Pod) bool) {
	res := src.s.resources[podsGVR]
	// The cache keeps each pod's field set; comparing spec.nodeName there
	// skips other nodes' pods without touching the objects.
	entries, _ := res.cache.List(res.nsPrefix(namespace), func(e *storage.Entry) bool {
		return e.Fields.Get("spec.nodeName") == node
	})
	for _, e := range entries {
		if p, ok := e.Obj.(*corev1.Pod); ok && !fn(p) {
			return
		}
	}
}

func (src nodeSource) GetPersistentVolumeClaim(namespace, name string) (*corev1.PersistentVolumeClaim, bool) {
	res := src.s.resources[pvcsGVR]
	e, ok := res.cache.Get(res.key(namespace, name))
	if !ok {
		return nil, false
	}
	pvc, ok := e.Obj.(*corev1.PersistentVolumeClaim)
	return pvc, ok
}

func (src nodeSource) GetPersistentVolume(name string) (*corev1.PersistentVolume, bool) {
	res := src.s.resources[pvsGVR]
	e, ok := res.cache.Get(res.key("", name))
	if !ok {
		return nil, false
	}
	pv, ok := e.Obj.(*corev1.PersistentVolume)
	return pv, ok
}

func (src nodeSource) IngressesIn(namespace string) []*networkingv1.Ingress {
	res := src.s.resources[ingressesGVR]
	entries, _ := res.cache.List(res.nsPrefix(namespace), nil)
	out := make([]*networkingv1.Ingress, 0, len(entries))
	for _, e := range entries {
		if ing, ok := e.Obj.(*networkingv1.Ingress); ok {
			out = append(out, ing)
		}
	}
	return out
}

// GetPodCertificateRequest catches the cache up with etcd before it
// answers that a request is unknown: the kubelet reads a request back right
// after creating it, and a lagging cache would refuse that read.
func (src nodeSource) GetPodCertificateRequest(ctx context.Context, namespace, name string) (*certificatesv1.PodCertificateRequest, bool) {
	res := src.s.resources[pcrsGVR]
	if res == nil {
		return nil, false
	}
	key := res.key(namespace, name)
	e, ok := res.cache.Get(key)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if res.cache.WaitFresh(ctx) == nil {
			e, ok = res.cache.Get(key)
		}
	}
	if !ok {
		return nil, false
	}
	pcr, ok := e.Obj.(*certificatesv1.PodCertificateRequest)
	return pcr, ok
}
