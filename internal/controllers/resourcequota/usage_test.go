package resourcequota

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	"github.com/skiff-dev/skiff/internal/quota"
)

var (
	podsGR     = schema.GroupResource{Resource: "pods"}
	servicesGR = schema.GroupResource{Resource: "services"}
	pvcsGR     = schema.GroupResource{Resource: "persistentvolumeclaims"}
)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

type podOpt func(*corev1.Pod)

func pod(name string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c1"}}}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func resources(req, lim corev1.ResourceList) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: req, Limits: lim}
	}
}
func phase(ph corev1.PodPhase) podOpt { return func(p *corev1.Pod) { p.Status.Phase = ph } }
func deadline(s int64) podOpt         { return func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = &s } }
func priorityClass(n string) podOpt   { return func(p *corev1.Pod) { p.Spec.PriorityClassName = n } }
func initContainer(req corev1.ResourceList) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init", Resources: corev1.ResourceRequirements{Requests: req}})
	}
}

func lister(objs map[schema.GroupResource][]runtime.Object) ListFunc {
	return func(gr schema.GroupResource, ns string) ([]runtime.Object, bool, error) {
		o, ok := objs[gr]
		return o, ok, nil
	}
}

func TestUsed(t *testing.T) {
	pods := []runtime.Object{
		pod("small", resources(rl("cpu", "100m", "memory", "64Mi"), rl("cpu", "200m", "memory", "128Mi"))),
		pod("big", resources(rl("cpu", "1", "memory", "1Gi", "ephemeral-storage", "1Gi"), nil), deadline(30), priorityClass("high")),
		pod("besteffort"),
		pod("done", resources(rl("cpu", "5"), nil), phase(corev1.PodSucceeded)),
		pod("failed", phase(corev1.PodFailed)),
		pod("init", resources(rl("cpu", "100m"), nil), initContainer(rl("cpu", "500m"))),
	}
	lb := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}, {Port: 443}}}}
	np := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort, Ports: []corev1.ServicePort{{Port: 80}}}}
	ip := &corev1.Service{Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP}}
	pvc := &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("gold"),
		Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "2Gi")}}}
	objs := map[schema.GroupResource][]runtime.Object{
		podsGR:                                   pods,
		servicesGR:                               {lb, np, ip},
		pvcsGR:                                   {pvc, &corev1.PersistentVolumeClaim{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "1Gi")}}}},
		{Resource: "configmaps"}:                 {&corev1.ConfigMap{}, &corev1.ConfigMap{}},
		{Group: "apps", Resource: "deployments"}: {&appsv1.Deployment{}},
	}
	all := func(names ...string) corev1.ResourceList {
		h := corev1.ResourceList{}
		for _, n := range names {
			h[corev1.ResourceName(n)] = resource.MustParse("100")
		}
		return h
	}
	tests := []struct {
		name string
		spec corev1.ResourceQuotaSpec
		want corev1.ResourceList
	}{
		{"counts", corev1.ResourceQuotaSpec{Hard: all("pods", "count/pods", "configmaps", "count/configmaps", "count/deployments.apps", "secrets")},
			// secrets cannot be listed here: left out
			rl("pods", "4", "count/pods", "4", "configmaps", "2", "count/configmaps", "2", "count/deployments.apps", "1")},
		{"compute", corev1.ResourceQuotaSpec{Hard: all("requests.cpu", "cpu", "limits.cpu", "requests.memory", "memory", "limits.memory", "requests.ephemeral-storage", "ephemeral-storage")},
			// init: max(100m, 500m) = 500m
			rl("requests.cpu", "1600m", "cpu", "1600m", "limits.cpu", "200m", "requests.memory", "1088Mi", "memory", "1088Mi", "limits.memory", "128Mi",
				"requests.ephemeral-storage", "1Gi", "ephemeral-storage", "1Gi")},
		{"services", corev1.ResourceQuotaSpec{Hard: all("services", "services.loadbalancers", "services.nodeports")},
			rl("services", "3", "services.loadbalancers", "1", "services.nodeports", "3")},
		{"storage", corev1.ResourceQuotaSpec{Hard: all("persistentvolumeclaims", "requests.storage", "gold.storageclass.storage.k8s.io/requests.storage", "gold.storageclass.storage.k8s.io/persistentvolumeclaims")},
			rl("persistentvolumeclaims", "2", "requests.storage", "3Gi", "gold.storageclass.storage.k8s.io/requests.storage", "2Gi", "gold.storageclass.storage.k8s.io/persistentvolumeclaims", "1")},
		{"terminating", corev1.ResourceQuotaSpec{Hard: all("pods", "requests.cpu"), Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}},
			rl("pods", "1", "requests.cpu", "1")},
		{"not terminating", corev1.ResourceQuotaSpec{Hard: all("pods"), Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotTerminating}},
			rl("pods", "3")},
		{"best effort", corev1.ResourceQuotaSpec{Hard: all("pods"), Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}},
			rl("pods", "1")},
		{"not best effort", corev1.ResourceQuotaSpec{Hard: all("pods", "services"), Scopes: []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeNotBestEffort}},
			// a scoped quota selects no services
			rl("pods", "3", "services", "0")},
		{"priority class in", corev1.ResourceQuotaSpec{Hard: all("pods"), ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
			{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"high", "mid"}}}}},
			rl("pods", "1")},
		{"priority class does not exist", corev1.ResourceQuotaSpec{Hard: all("pods"), ScopeSelector: &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{
			{ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpDoesNotExist}}}},
			rl("pods", "3")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Used(&tc.spec, "ns", lister(objs), time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !Equal(got, tc.want) {
				t.Errorf("used = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCountedResource(t *testing.T) {
	for name, want := range map[string]schema.GroupResource{
		"pods":                      {Resource: "pods"},
		"count/pods":                {Resource: "pods"},
		"count/deployments.apps":    {Group: "apps", Resource: "deployments"},
		"count/widgets.example.com": {Group: "example.com", Resource: "widgets"},
	} {
		got, ok := quota.CountedResource(corev1.ResourceName(name))
		if !ok || got != want {
			t.Errorf("quota.CountedResource(%s) = %v, %v; want %v", name, got, ok, want)
		}
	}
	if _, ok := quota.CountedResource("requests.cpu"); ok {
		t.Error("requests.cpu is not a count")
	}
}

func TestPodPastGracePeriodNotCounted(t *testing.T) {
	now := time.Now()
	p := pod("p", func(p *corev1.Pod) {
		p.DeletionTimestamp = &metav1.Time{Time: now.Add(-time.Minute)}
		p.DeletionGracePeriodSeconds = ptr.To[int64](30)
	})
	if u := quota.Usage(podsGR, p, now); len(u) != 0 {
		t.Errorf("usage of an expired pod = %v, want none", u)
	}
}
