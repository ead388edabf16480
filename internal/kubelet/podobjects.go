package kubelet

import (
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// podObjects is where the kubelet reads the ConfigMaps or Secrets of its
// pods: objcache.Manager in production. Under the Node authorizer a node
// may read only those its pods refer to, and only by name, so every pod's
// references are registered before its volumes and environment are built.
type podObjects[T any] interface {
	Get(namespace, name string) (T, error)
	SetPodRefs(uid types.UID, namespace string, names []string)
	RemovePod(uid types.UID)
}

// trackPodObjects registers the ConfigMaps and Secrets pod refers to now.
func (k *Kubelet) trackPodObjects(pod *v1.Pod) {
	cms, secrets := podReferences(pod)
	k.configMaps.SetPodRefs(pod.UID, pod.Namespace, cms)
	k.secrets.SetPodRefs(pod.UID, pod.Namespace, secrets)
}

// untrackPodObjects drops a pod's references and tokens once it no
// longer runs.
func (k *Kubelet) untrackPodObjects(uid types.UID) {
	k.configMaps.RemovePod(uid)
	k.secrets.RemovePod(uid)
	if k.tokens != nil {
		k.tokens.forgetPod(uid)
	}
	if k.podCerts != nil {
		k.podCerts.forgetPod(uid)
	}
}

// podReferences lists the ConfigMap and Secret names a pod's volumes and
// container environments use, sorted and without duplicates.
func podReferences(pod *v1.Pod) (configMaps, secrets []string) {
	cm, sec := map[string]bool{}, map[string]bool{}
	for _, vol := range pod.Spec.Volumes {
		switch src := vol.VolumeSource; {
		case src.ConfigMap != nil:
			cm[src.ConfigMap.Name] = true
		case src.Secret != nil:
			sec[src.Secret.SecretName] = true
		case src.Projected != nil:
			for _, p := range src.Projected.Sources {
				if p.ConfigMap != nil {
					cm[p.ConfigMap.Name] = true
				}
				if p.Secret != nil {
					sec[p.Secret.Name] = true
				}
			}
		}
	}
	env := func(envFrom []v1.EnvFromSource, vars []v1.EnvVar) {
		for _, f := range envFrom {
			if f.ConfigMapRef != nil {
				cm[f.ConfigMapRef.Name] = true
			}
			if f.SecretRef != nil {
				sec[f.SecretRef.Name] = true
			}
		}
		for _, e := range vars {
			if e.ValueFrom == nil {
				continue
			}
			if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
				cm[r.Name] = true
			}
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				sec[r.Name] = true
			}
		}
	}
	for _, c := range pod.Spec.InitContainers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range pod.Spec.Containers {
		env(c.EnvFrom, c.Env)
	}
	for _, c := range pod.Spec.EphemeralContainers {
		env(c.EnvFrom, c.Env)
	}
	return sortedKeys(cm), sortedKeys(sec)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		if k != "" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
