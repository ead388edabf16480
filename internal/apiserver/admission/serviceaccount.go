package admission

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
)

// Names and paths of the ServiceAccount plugin, as upstream's.
const (
	DefaultServiceAccountName = "default"
	// ServiceAccountTokenMountPath is where in-cluster clients look for the
	// token, the CA and the namespace.
	ServiceAccountTokenMountPath = "/var/run/secrets/kubernetes.io/serviceaccount"
	kubeAPIAccessPrefix          = "kube-api-access-"
	// kubeletTokenSeconds is the lifetime the kubelet asks for; the API
	// server extends it for clients that do not reload tokens.
	kubeletTokenSeconds int64 = 3607
	rootCAConfigMap           = "kube-root-ca.crt"
)

// ServiceAccountLookup finds ServiceAccounts (the API server's cache).
type ServiceAccountLookup interface {
	GetServiceAccount(namespace, name string) (*corev1.ServiceAccount, bool)
}

// ServiceAccount gives every pod an identity: it defaults
// spec.serviceAccountName, refuses pods whose ServiceAccount does not
// exist, and mounts the kube-api-access projected volume (token, cluster
// CA, namespace) into every container, as upstream's plugin.
type ServiceAccount struct {
	lookup ServiceAccountLookup
	// DefaultWait is how long a pod for the "default" ServiceAccount waits
	// for it to appear: a controller creates it shortly after its
	// namespace, and clients create pods right after namespaces.
	DefaultWait time.Duration
	// CacheWait is how long any other ServiceAccount is waited for, to
	// cover the cache catching up with one just created.
	CacheWait time.Duration
}

// NewServiceAccount returns the plugin reading ServiceAccounts from lookup.
func NewServiceAccount(lookup ServiceAccountLookup) *ServiceAccount {
	return &ServiceAccount{lookup: lookup, DefaultWait: 5 * time.Second, CacheWait: time.Second}
}

// Name implements Mutator.
func (*ServiceAccount) Name() string { return "ServiceAccount" }

// Admit implements Mutator.
func (p *ServiceAccount) Admit(ctx context.Context, a *Attributes) error {
	if a.Operation != Create || a.Resource.Group != "" || a.Resource.Resource != "pods" || a.Subresource != "" {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return apierrors.NewBadRequest(fmt.Sprintf("expected a Pod, got %T", a.Object))
	}
	if _, mirror := pod.Annotations[mirrorPodAnnotation]; mirror {
		// Static pods come from a node's files and carry no identity.
		return nil
	}
	if pod.Spec.ServiceAccountName == "" {
		// The deprecated alias still names the account, as upstream's
		// conversion reads it before admission.
		pod.Spec.ServiceAccountName = pod.Spec.DeprecatedServiceAccount
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = DefaultServiceAccountName
	}
	sa, err := p.serviceAccount(ctx, a.Namespace, pod.Spec.ServiceAccountName)
	if err != nil {
		return apierrors.NewForbidden(a.Resource.GroupResource(), a.Name,
			fmt.Errorf("error looking up service account %s/%s: %w", a.Namespace, pod.Spec.ServiceAccountName, err))
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = append([]corev1.LocalObjectReference(nil), sa.ImagePullSecrets...)
	}
	if automount(pod, sa) {
		mountToken(pod)
	}
	return nil
}

// serviceAccount finds name in namespace, waiting (bounded) for it to
// reach the cache.
func (p *ServiceAccount) serviceAccount(ctx context.Context, namespace, name string) (*corev1.ServiceAccount, error) {
	wait := p.CacheWait
	if name == DefaultServiceAccountName {
		wait = p.DefaultWait
	}
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if sa, ok := p.lookup.GetServiceAccount(namespace, name); ok {
			return sa, nil
		}
		if !time.Now().Before(deadline) {
			return nil, apierrors.NewNotFound(corev1.Resource("serviceaccount"), name)
		}
		select {
		case <-ctx.Done():
			return nil, apierrors.NewNotFound(corev1.Resource("serviceaccount"), name)
		case <-tick.C:
		}
	}
}

// automount follows the pod's automountServiceAccountToken, else the
// ServiceAccount's; both unset means mount.
func automount(pod *corev1.Pod, sa *corev1.ServiceAccount) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

// mountToken mounts the kube-api-access volume read-only into every
// container with nothing at the token path, adding the volume if any does
// (or reusing one the pod already has, as a copied pod spec does).
func mountToken(pod *corev1.Pod) {
	volName := ""
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, kubeAPIAccessPrefix) {
			volName = v.Name
			break
		}
	}
	hasVolume := volName != ""
	if !hasVolume {
		volName = kubeAPIAccessPrefix + utilrand.String(5)
	}
	mount := corev1.VolumeMount{Name: volName, ReadOnly: true, MountPath: ServiceAccountTokenMountPath}
	needed := false
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if !mountsTokenPath(cs[i].VolumeMounts) {
				cs[i].VolumeMounts = append(cs[i].VolumeMounts, mount)
				needed = true
			}
		}
	}
	if needed && !hasVolume {
		pod.Spec.Volumes = append(pod.Spec.Volumes, kubeAPIAccessVolume(volName))
	}
}

func mountsTokenPath(mounts []corev1.VolumeMount) bool {
	for _, m := range mounts {
		if m.MountPath == ServiceAccountTokenMountPath {
			return true
		}
	}
	return false
}

// kubeAPIAccessVolume is what in-cluster clients read: a token the kubelet
// keeps fresh, the cluster CA and the pod's namespace.
func kubeAPIAccessVolume(name string) corev1.Volume {
	exp := kubeletTokenSeconds
	mode := int32(0o644)
	return corev1.Volume{
		Name: name,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{ExpirationSeconds: &exp, Path: "token"}},
				{ConfigMap: &corev1.ConfigMapProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: rootCAConfigMap},
					Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
				}},
				{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
					Path:     "namespace",
					FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"},
				}}}},
			},
			DefaultMode: &mode,
		}},
	}
}
