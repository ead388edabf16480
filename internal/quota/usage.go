// Package quota holds the ResourceQuota usage rules: which objects count
// against which quota names, what a pod, Service or claim uses, and which
// pods a quota's scopes select. Pure functions, shared by the quota
// controller and the API server's ResourceQuota admission plugin.
package quota

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Resource names of quota beyond corev1's constants.
const (
	countPrefix        = "count/"
	storageClassSuffix = ".storageclass.storage.k8s.io/"
)

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	pvcsGR     = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

// legacyCounts are the object counts quota knows by a bare name.
var legacyCounts = map[corev1.ResourceName]schema.GroupResource{
	corev1.ResourcePods:                   podsGR,
	corev1.ResourceServices:               servicesGR,
	corev1.ResourceSecrets:                {Resource: "secrets"},
	corev1.ResourceConfigMaps:             {Resource: "configmaps"},
	corev1.ResourcePersistentVolumeClaims: pvcsGR,
	corev1.ResourceReplicationControllers: {Resource: "replicationcontrollers"},
	corev1.ResourceQuotas:                 {Resource: "resourcequotas"},
}

// CountName is the object-count resource of gr: count/<resource>[.<group>].
func CountName(gr schema.GroupResource) corev1.ResourceName {
	if gr.Group == "" {
		return corev1.ResourceName(countPrefix + gr.Resource)
	}
	return corev1.ResourceName(countPrefix + gr.Resource + "." + gr.Group)
}

// CountedResource is the group resource a count name (count/... or a
// legacy name) counts.
func CountedResource(name corev1.ResourceName) (schema.GroupResource, bool) {
	if gr, ok := legacyCounts[name]; ok {
		return gr, true
	}
	s, ok := strings.CutPrefix(string(name), countPrefix)
	if !ok || s == "" {
		return schema.GroupResource{}, false
	}
	res, group, _ := strings.Cut(s, ".")
	return schema.GroupResource{Group: group, Resource: res}, true
}

// EvaluatedBy is the resource whose objects' usage (beyond a plain
// count) makes up name: pods for compute resources, services, PVCs.
func EvaluatedBy(name corev1.ResourceName) (schema.GroupResource, bool) {
	s := string(name)
	switch {
	case name == corev1.ResourceServicesLoadBalancers || name == corev1.ResourceServicesNodePorts:
		return servicesGR, true
	case name == corev1.ResourceRequestsStorage || strings.Contains(s, storageClassSuffix):
		return pvcsGR, true
	case name == corev1.ResourceCPU || name == corev1.ResourceMemory || name == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(s, "requests.") || strings.HasPrefix(s, "limits."):
		return podsGR, true
	}
	return schema.GroupResource{}, false
}

// Matches reports whether a change to an object of gr can change the
// usage of one of the names.
func Matches(gr schema.GroupResource, names corev1.ResourceList) bool {
	for n := range names {
		if c, ok := CountedResource(n); ok && c == gr {
			return true
		}
		if e, ok := EvaluatedBy(n); ok && e == gr {
			return true
		}
	}
	return false
}

// Usage is what one object of gr uses: its count (both names for legacy
// resources) and, for pods, services and PVCs, their resources. Terminal
// pods use nothing.
func Usage(gr schema.GroupResource, obj runtime.Object, now time.Time) corev1.ResourceList {
	var out corev1.ResourceList
	switch o := obj.(type) {
	case *corev1.Pod:
		if !countsPod(o, now) {
			return corev1.ResourceList{}
		}
		out = podUsage(o)
	case *corev1.Service:
		out = serviceUsage(o)
	case *corev1.PersistentVolumeClaim:
		out = pvcUsage(o)
	default:
		out = corev1.ResourceList{}
	}
	one := *resource.NewQuantity(1, resource.DecimalSI)
	out[CountName(gr)] = one
	for n, lgr := range legacyCounts {
		if lgr == gr {
			out[n] = one
		}
	}
	return out
}

// countsPod is false for pods that hold no resources any more: terminal
// ones and those past their deletion grace period.
func countsPod(p *corev1.Pod, now time.Time) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if p.DeletionTimestamp != nil && p.DeletionGracePeriodSeconds != nil {
		end := p.DeletionTimestamp.Add(time.Duration(*p.DeletionGracePeriodSeconds) * time.Second)
		return now.Before(end)
	}
	return true
}

// podUsage turns the pod's effective requests and limits into quota
// names: requests.X for every requested resource, limits.X for cpu,
// memory and ephemeral storage, and bare cpu/memory/ephemeral-storage as
// requests.
func podUsage(p *corev1.Pod) corev1.ResourceList {
	out := corev1.ResourceList{}
	reqs, lims := podRequests(p, false), podRequests(p, true)
	for n, q := range reqs {
		out[corev1.ResourceName("requests."+string(n))] = q
		switch n {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			out[n] = q
		}
	}
	for n, q := range lims {
		switch n {
		case corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage:
			out[corev1.ResourceName("limits."+string(n))] = q
		}
	}
	return out
}

// podRequests is the pod's effective requests (or limits): pod-level
// resources where given, else the sum of its long-running containers
// (sidecars included) or the largest init-container phase, whichever is
// more, plus the overhead.
func podRequests(p *corev1.Pod, limits bool) corev1.ResourceList {
	pick := func(r corev1.ResourceRequirements) corev1.ResourceList {
		if limits {
			return r.Limits
		}
		return r.Requests
	}
	running := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		AddTo(running, pick(c.Resources))
	}
	initMax := corev1.ResourceList{}
	sidecars := corev1.ResourceList{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			AddTo(sidecars, pick(c.Resources))
			maxTo(initMax, sidecars)
			continue
		}
		phase := sidecars.DeepCopy()
		AddTo(phase, pick(c.Resources))
		maxTo(initMax, phase)
	}
	AddTo(running, sidecars)
	maxTo(running, initMax)
	if p.Spec.Resources != nil {
		for n, q := range pick(*p.Spec.Resources) {
			running[n] = q
		}
	}
	if !limits || len(running) > 0 {
		AddTo(running, p.Spec.Overhead)
	}
	return running
}

func AddTo(dst, src corev1.ResourceList) {
	for n, q := range src {
		cur := dst[n]
		cur.Add(q)
		dst[n] = cur
	}
}

func maxTo(dst, src corev1.ResourceList) {
	for n, q := range src {
		if cur, ok := dst[n]; !ok || q.Cmp(cur) > 0 {
			dst[n] = q.DeepCopy()
		}
	}
}

// serviceUsage counts load balancers and node ports.
func serviceUsage(s *corev1.Service) corev1.ResourceList {
	out := corev1.ResourceList{}
	ports := int64(len(s.Spec.Ports))
	switch s.Spec.Type {
	case corev1.ServiceTypeNodePort:
		out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(ports, resource.DecimalSI)
	case corev1.ServiceTypeLoadBalancer:
		out[corev1.ResourceServicesLoadBalancers] = *resource.NewQuantity(1, resource.DecimalSI)
		if s.Spec.AllocateLoadBalancerNodePorts != nil && !*s.Spec.AllocateLoadBalancerNodePorts {
			ports = 0
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					ports++
				}
			}
		}
		out[corev1.ResourceServicesNodePorts] = *resource.NewQuantity(ports, resource.DecimalSI)
	}
	return out
}

// pvcUsage is the claim's storage request (or the larger allocated size
// while resizing), also per storage class.
func pvcUsage(c *corev1.PersistentVolumeClaim) corev1.ResourceList {
	out := corev1.ResourceList{}
	class := ""
	if c.Spec.StorageClassName != nil {
		class = *c.Spec.StorageClassName
	}
	if class != "" {
		out[corev1.ResourceName(class+storageClassSuffix+"persistentvolumeclaims")] = *resource.NewQuantity(1, resource.DecimalSI)
	}
	req, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]
	if alloc, has := c.Status.AllocatedResources[corev1.ResourceStorage]; has && (!ok || alloc.Cmp(req) > 0) {
		req, ok = alloc, true
	}
	if ok {
		out[corev1.ResourceRequestsStorage] = req
		if class != "" {
			out[corev1.ResourceName(class+storageClassSuffix+"requests.storage")] = req
		}
	}
	return out
}

// Add returns a+b.
func Add(a, b corev1.ResourceList) corev1.ResourceList {
	out := a.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	AddTo(out, b)
	return out
}
