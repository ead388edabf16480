package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/skiff-dev/skiff/internal/storage"
)

// systemNamespaces exist in every cluster, as upstream's API server creates
// them at start.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// Bootstrap creates the objects every cluster has. It is idempotent.
func (s *Server) Bootstrap(ctx context.Context) error {
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
	return nil
}
