package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/storage"
)

// systemNamespaces exist in every cluster, as upstream's API server creates
// them at start.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// Bootstrap creates the objects every cluster has. It is idempotent.
func (s *Server) Bootstrap(ctx context.Context) error {
	if err := s.bootstrapRBAC(ctx); err != nil {
		return err
	}
	if err := s.bootstrapFlowControl(ctx); err != nil {
		return err
	}
	nsRes := s.resources[corev1.SchemeGroupVersion.WithResource("namespaces")]
	for _, name := range systemNamespaces {
		ns := &corev1.Namespace{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
			ObjectMeta: metav1.ObjectMeta{
				Name: name, UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			},
			Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{corev1.FinalizerKubernetes}},
		}
		nsRes.Default(ns)
		if _, err := nsRes.create(ctx, ns); err != nil && !errors.Is(err, storage.ErrExists) && !isAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", name, err)
		}
	}
	if err := s.bootstrapPriorityClasses(ctx); err != nil {
		return err
	}
	if err := s.bootstrapServiceIPs(ctx); err != nil {
		return err
	}
	if err := s.bootstrapDNSService(ctx); err != nil {
		return err
	}
	if err := s.bootstrapIngressClass(ctx); err != nil {
		return err
	}
	if err := s.bootstrapAggregation(ctx); err != nil {
		return err
	}
	return s.bootstrapKubernetesService(ctx)
}

// bootstrapDNSService creates kube-system/kube-dns on the tenth address of
// the service range, as upstream clusters have it. It has no selector: the
// node agents, which answer DNS, publish themselves in its EndpointSlices.
func (s *Server) bootstrapDNSService(ctx context.Context) error {
	if s.serviceCIDR == nil {
		return nil
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-dns", Namespace: "kube-system", UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS", "kubernetes.io/cluster-service": "true"},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: ClusterDNSServiceIP(s.serviceCIDR).String(),
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt(53)},
			},
		},
	}
	svcRes := s.resources[corev1.SchemeGroupVersion.WithResource("services")]
	svcRes.Default(svc)
	if err := s.createService(ctx, svc); err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create kube-dns service: %w", err)
	}
	return nil
}

// bootstrapKubernetesService creates default/kubernetes, the in-cluster
// address of the API server, and its endpoints.
func (s *Server) bootstrapKubernetesService(ctx context.Context) error {
	if s.serviceCIDR == nil || s.cfg.PublicAddress == nil {
		return nil
	}
	svc := &corev1.Service{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "kubernetes", Namespace: "default", UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"},
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: FirstServiceIP(s.serviceCIDR).String(),
			Ports: []corev1.ServicePort{{
				Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt(s.cfg.PublicPort),
			}},
		},
	}
	svcRes := s.resources[corev1.SchemeGroupVersion.WithResource("services")]
	svcRes.Default(svc)
	if err := s.createService(ctx, svc); err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("create kubernetes service: %w", err)
	}
	// Its endpoints are the live servers' addresses (endpointreconciler.go).
	if err := s.reconcileOnce(ctx); err != nil {
		return fmt.Errorf("write kubernetes endpoints: %w", err)
	}
	return nil
}

// bootstrapIngressClass creates the default IngressClass "skiff", served by
// the ingress controller in every node agent.
func (s *Server) bootstrapIngressClass(ctx context.Context) error {
	ic := &networkingv1.IngressClass{
		TypeMeta: metav1.TypeMeta{APIVersion: "networking.k8s.io/v1", Kind: "IngressClass"},
		ObjectMeta: metav1.ObjectMeta{
			Name: "skiff", UID: types.UID(uuid.NewUUID()), CreationTimestamp: metav1.Now(),
			Annotations: map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"},
		},
		Spec: networkingv1.IngressClassSpec{Controller: "skiff.io/ingress"},
	}
	res := s.resources[networkingv1.SchemeGroupVersion.WithResource("ingressclasses")]
	res.Default(ic)
	if _, err := res.create(ctx, ic); err != nil && !errors.Is(err, storage.ErrExists) && !isAlreadyExists(err) {
		return fmt.Errorf("create ingress class: %w", err)
	}
	return nil
}
