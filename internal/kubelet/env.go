package kubelet

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// podEnv resolves the environment of a pod's containers.
type podEnv struct {
	k     *Kubelet
	pod   *v1.Pod
	podIP string
}

type envVar struct{ name, value string }

// forContainer builds a container's environment in upstream's order:
// service variables, then envFrom, then env (later entries win), with
// $(VAR) references expanded against what came before.
func (e *podEnv) forContainer(c *v1.Container) ([]envVar, error) {
	vars := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := vars[name]; !ok {
			order = append(order, name)
		}
		vars[name] = value
	}
	if e.pod.Spec.EnableServiceLinks == nil || *e.pod.Spec.EnableServiceLinks {
		for _, kv := range e.serviceEnv() {
			set(kv.name, kv.value)
		}
	}
	for _, from := range c.EnvFrom {
		data, err := e.envFromSource(from)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(data))
		for key := range data {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			name := from.Prefix + key
			if len(validation.IsRelaxedEnvVarName(name)) > 0 {
				continue // upstream (v1.34+: relaxed names) skips invalid ones
			}
			set(name, data[key])
		}
	}
	for _, ev := range c.Env {
		if ev.ValueFrom == nil {
			set(ev.Name, expand(ev.Value, vars))
			continue
		}
		v, ok, err := e.valueFrom(c, ev.ValueFrom)
		if err != nil {
			return nil, err
		}
		if ok {
			set(ev.Name, v)
		}
	}
	out := make([]envVar, len(order))
	for i, name := range order {
		out[i] = envVar{name, vars[name]}
	}
	return out, nil
}

func (e *podEnv) envFromSource(from v1.EnvFromSource) (map[string]string, error) {
	ns := e.pod.Namespace
	switch {
	case from.ConfigMapRef != nil:
		cm, err := e.k.configMaps.Get(ns, from.ConfigMapRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(from.ConfigMapRef.Optional) {
				return nil, nil
			}
			return nil, lookupError("configmap", from.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := e.k.secrets.Get(ns, from.SecretRef.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(from.SecretRef.Optional) {
				return nil, nil
			}
			return nil, lookupError("secret", from.SecretRef.Name, err)
		}
		out := make(map[string]string, len(s.Data))
		for k, v := range s.Data {
			out[k] = string(v)
		}
		return out, nil
	}
	return nil, nil
}

// valueFrom resolves one env valueFrom; ok is false for an optional
// reference that does not resolve (the variable is then left out).
func (e *podEnv) valueFrom(c *v1.Container, src *v1.EnvVarSource) (string, bool, error) {
	ns := e.pod.Namespace
	switch {
	case src.FieldRef != nil:
		v, err := e.fieldValue(src.FieldRef.FieldPath)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := e.resourceValue(c, src.ResourceFieldRef)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := e.k.configMaps.Get(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, lookupError("configmap", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, true, nil
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := e.k.secrets.Get(ns, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, lookupError("secret", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, configErrorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), true, nil
	}
	return "", false, nil
}

func isOptional(b *bool) bool { return b != nil && *b }

// lookupError reports a ConfigMap or Secret the container needs: missing
// (a configuration error, as upstream's CreateContainerConfigError) or not
// readable yet (the sync retries).
func lookupError(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return configErrorf("%s %q not found", kind, name)
	}
	return fmt.Errorf("%s %q: %w", kind, name, err)
}

// fieldValue answers a downward API fieldRef.
func (e *podEnv) fieldValue(path string) (string, error) {
	pod := e.pod
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return e.k.cfg.NodeIP.String(), nil
	case "status.podIP", "status.podIPs":
		return e.podIP, nil
	}
	return "", configErrorf("unsupported fieldRef %q", path)
}

// subscript parses metadata.labels['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "]")
	return strings.Trim(rest, `'"`), true
}

// formatMap renders labels/annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// resourceValue answers a resourceFieldRef; a missing limit reads as the
// node's allocatable, as upstream.
func (e *podEnv) resourceValue(c *v1.Container, ref *v1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" {
		c = findContainer(e.pod, ref.ContainerName)
		if c == nil {
			return "", configErrorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	var q resource.Quantity
	var ok bool
	name := v1.ResourceName(ref.Resource[strings.IndexByte(ref.Resource, '.')+1:])
	switch {
	case strings.HasPrefix(ref.Resource, "limits."):
		q, ok = c.Resources.Limits[name]
		if !ok {
			switch name {
			case v1.ResourceCPU:
				q, ok = *resource.NewQuantity(int64(numCPU()), resource.DecimalSI), true
			case v1.ResourceMemory:
				q, ok = *resource.NewQuantity(memTotal(), resource.BinarySI), true
			}
		}
	case strings.HasPrefix(ref.Resource, "requests."):
		q, ok = c.Resources.Requests[name]
		if !ok {
			q, ok = resource.Quantity{}, true
		}
	}
	if !ok {
		return "", configErrorf("unsupported resourceFieldRef %q", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == v1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}

// serviceEnv is the docker-links style variables upstream injects for the
// services of the pod's namespace (and the kubernetes service).
func (e *podEnv) serviceEnv() []envVar {
	svcs, err := e.k.services.Services(e.pod.Namespace).List(labels.Everything())
	if err != nil {
		return nil
	}
	if e.pod.Namespace != v1.NamespaceDefault {
		if master, err := e.k.services.Services(v1.NamespaceDefault).Get("kubernetes"); err == nil {
			svcs = append(svcs, master)
		}
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	var out []envVar
	for _, s := range svcs {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == v1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		first := s.Spec.Ports[0]
		out = append(out,
			envVar{prefix + "_SERVICE_HOST", ip},
			envVar{prefix + "_SERVICE_PORT", strconv.Itoa(int(first.Port))})
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out = append(out, envVar{prefix + "_SERVICE_PORT_" + strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), strconv.Itoa(int(p.Port))})
			}
		}
		out = append(out, envVar{prefix + "_PORT", fmt.Sprintf("%s://%s:%d", strings.ToLower(string(first.Protocol)), ip, first.Port)})
		for _, p := range s.Spec.Ports {
			proto := strings.ToLower(string(p.Protocol))
			base := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(proto))
			out = append(out,
				envVar{base, fmt.Sprintf("%s://%s:%d", proto, ip, p.Port)},
				envVar{base + "_PROTO", proto},
				envVar{base + "_PORT", strconv.Itoa(int(p.Port))},
				envVar{base + "_ADDR", ip})
		}
	}
	return out
}

// expand replaces $(VAR) with its value when VAR is defined, turns $$ into
// $, and leaves anything else as written, as upstream does.
func expand(s string, vars map[string]string) string {
	return expandFunc(s, func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	})
}

// expandFunc is expand with values from lookup; a reference lookup does not
// resolve is left as written.
func expandFunc(s string, lookup func(name string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(in []string, vars map[string]string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, vars)
	}
	return out
}
