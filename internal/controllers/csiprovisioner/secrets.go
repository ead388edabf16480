package csiprovisioner

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The class parameters naming secrets (csi.storage.k8s.io/<kind>-secret-
// name and -namespace): the provisioner's own go with CreateVolume and
// DeleteVolume, the others become references in the volume.
const (
	secretProvisioner       = "provisioner"
	secretControllerPublish = "controller-publish"
	secretNodeStage         = "node-stage"
	secretNodePublish       = "node-publish"
	secretControllerExpand  = "controller-expand"
	secretNodeExpand        = "node-expand"

	// Where the provisioner's secret is remembered for DeleteVolume, as
	// upstream does.
	annDeletionSecretName      = "volume.kubernetes.io/provisioner-deletion-secret-name"
	annDeletionSecretNamespace = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
)

var templateVar = regexp.MustCompile(`\$\{([^}]*)\}`)

// secretRef resolves the class's <kind>-secret-name and -namespace
// parameters for a claim: nil when the class names no such secret. Their
// templates are upstream's: ${pv.name} and ${pvc.namespace} in both,
// ${pvc.name} and ${pvc.annotations['key']} in the name only.
func secretRef(sc *storagev1.StorageClass, kind, pvName string, pvc *corev1.PersistentVolumeClaim) (*corev1.SecretReference, error) {
	nameKey, nsKey := reservedPrefix+kind+"-secret-name", reservedPrefix+kind+"-secret-namespace"
	nameTmpl, hasName := sc.Parameters[nameKey]
	nsTmpl, hasNS := sc.Parameters[nsKey]
	if !hasName && !hasNS {
		return nil, nil
	}
	if !hasName || !hasNS {
		return nil, fmt.Errorf("StorageClass %s must set both %s and %s, or neither", sc.Name, nameKey, nsKey)
	}
	ns, err := resolve(nsTmpl, nsKey, pvName, pvc, false)
	if err != nil {
		return nil, err
	}
	name, err := resolve(nameTmpl, nameKey, pvName, pvc, true)
	if err != nil {
		return nil, err
	}
	if ns == "" || name == "" {
		return nil, fmt.Errorf("%s and %s resolve to an empty name or namespace", nameKey, nsKey)
	}
	return &corev1.SecretReference{Name: name, Namespace: ns}, nil
}

// resolve fills a template's variables.
func resolve(tmpl, key, pvName string, pvc *corev1.PersistentVolumeClaim, claimVars bool) (string, error) {
	var bad error
	out := templateVar.ReplaceAllStringFunc(tmpl, func(m string) string {
		v := templateVar.FindStringSubmatch(m)[1]
		switch {
		case v == "pv.name":
			return pvName
		case v == "pvc.namespace":
			return pvc.Namespace
		case claimVars && v == "pvc.name":
			return pvc.Name
		case claimVars && strings.HasPrefix(v, "pvc.annotations['") && strings.HasSuffix(v, "']"):
			return pvc.Annotations[strings.TrimSuffix(strings.TrimPrefix(v, "pvc.annotations['"), "']")]
		}
		if bad == nil {
			bad = fmt.Errorf("%s: unknown template variable %q", key, m)
		}
		return ""
	})
	return out, bad
}

// fetchSecret reads a secret's data for a CSI call.
func (c *Controller) fetchSecret(ctx context.Context, ref *corev1.SecretReference) (map[string]string, error) {
	if ref == nil {
		return nil, nil
	}
	s, err := c.client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("secret %s/%s not found", ref.Namespace, ref.Name)
		}
		return nil, fmt.Errorf("reading secret %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	out := make(map[string]string, len(s.Data))
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out, nil
}

// volumeSecrets are the secret references a volume carries.
type volumeSecrets struct {
	provisioner, controllerPublish, nodeStage, nodePublish, controllerExpand, nodeExpand *corev1.SecretReference
}

func resolveSecrets(sc *storagev1.StorageClass, pvName string, pvc *corev1.PersistentVolumeClaim) (volumeSecrets, error) {
	var s volumeSecrets
	for _, x := range []struct {
		kind string
		dst  **corev1.SecretReference
	}{
		{secretProvisioner, &s.provisioner}, {secretControllerPublish, &s.controllerPublish},
		{secretNodeStage, &s.nodeStage}, {secretNodePublish, &s.nodePublish},
		{secretControllerExpand, &s.controllerExpand}, {secretNodeExpand, &s.nodeExpand},
	} {
		ref, err := secretRef(sc, x.kind, pvName, pvc)
		if err != nil {
			return s, err
		}
		*x.dst = ref
	}
	return s, nil
}

// deletionSecret is the provisioner secret recorded on a volume.
func deletionSecret(pv *corev1.PersistentVolume) *corev1.SecretReference {
	name, ns := pv.Annotations[annDeletionSecretName], pv.Annotations[annDeletionSecretNamespace]
	if name == "" || ns == "" {
		return nil
	}
	return &corev1.SecretReference{Name: name, Namespace: ns}
}
