package kubelet

import (
	"net"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "x", "B": "y"}
	for in, want := range map[string]string{
		"plain":        "plain",
		"$(A)-$(B)":    "x-y",
		"$(MISSING)":   "$(MISSING)",
		"$$(A)":        "$(A)",
		"cost $5":      "cost $5",
		"$(A":          "$(A",
		"trailing $":   "trailing $",
		"$(A)$(A)$$$$": "xx$$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

// staticObjects serves fixed objects as a podObjects source.
type staticObjects[T metav1.Object] struct {
	resource string
	objs     map[string]T
}

func (s *staticObjects[T]) add(o T) { s.objs[o.GetNamespace()+"/"+o.GetName()] = o }

func (s *staticObjects[T]) Get(ns, name string) (T, error) {
	o, ok := s.objs[ns+"/"+name]
	if !ok {
		return o, apierrors.NewNotFound(v1.Resource(s.resource), name)
	}
	return o, nil
}

func (*staticObjects[T]) SetPodRefs(types.UID, string, []string) {}
func (*staticObjects[T]) RemovePod(types.UID)                    {}

// testKubelet is a Kubelet whose ConfigMaps, Secrets and Services are the
// given objects.
func testKubelet(t *testing.T, objs ...any) *Kubelet {
	t.Helper()
	svcs := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	cms := &staticObjects[*v1.ConfigMap]{"configmaps", map[string]*v1.ConfigMap{}}
	secrets := &staticObjects[*v1.Secret]{"secrets", map[string]*v1.Secret{}}
	for _, o := range objs {
		switch o := o.(type) {
		case *v1.ConfigMap:
			cms.add(o)
		case *v1.Secret:
			secrets.add(o)
		case *v1.Service:
			if err := svcs.Add(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	return &Kubelet{
		cfg:        Config{NodeIP: net.ParseIP("192.0.2.7"), ClusterDomain: "cluster.local", ClusterDNS: []string{"10.96.0.10"}},
		configMaps: cms,
		secrets:    secrets,
		services:   corelisters.NewServiceLister(svcs),
	}
}

func TestContainerEnvironment(t *testing.T) {
	k := testKubelet(t,
		&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "ns"}, Data: map[string]string{"color": "blue", "1st-key": "kept"}},
		&v1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "ns"}, Data: map[string][]byte{"pw": []byte("s3")}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "my-db", Namespace: "ns"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.3.4",
			Ports: []v1.ServicePort{{Name: "sql", Port: 5432, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.1",
			Ports: []v1.ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}}}},
		&v1.Service{ObjectMeta: metav1.ObjectMeta{Name: "headless", Namespace: "ns"}, Spec: v1.ServiceSpec{ClusterIP: "None",
			Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}},
	)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec:       v1.PodSpec{NodeName: "n1"},
	}
	c := &v1.Container{
		Name:      "app",
		Resources: v1.ResourceRequirements{Limits: v1.ResourceList{v1.ResourceMemory: resource.MustParse("64Mi"), v1.ResourceCPU: resource.MustParse("250m")}},
		EnvFrom:   []v1.EnvFromSource{{Prefix: "CM_", ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}},
		Env: []v1.EnvVar{
			{Name: "PW", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "pw"}}},
			{Name: "APP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "MEM", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "URL", Value: "$(MY_DB_SERVICE_HOST):$(MY_DB_SERVICE_PORT_SQL)/$(CM_color)"},
			{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "none"}, Key: "k", Optional: new(bool)}}},
		},
	}
	*c.Env[len(c.Env)-1].ValueFrom.ConfigMapKeyRef.Optional = true
	envs, err := (&podEnv{k: k, pod: pod, podIP: "10.42.0.9"}).forContainer(c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range envs {
		got[e.name] = e.value
	}
	want := map[string]string{
		"CM_color": "blue", "CM_1st-key": "kept", "PW": "s3", "APP": "web", "IP": "10.42.0.9", "MEM": "64", "CPU": "250",
		"URL":                      "10.96.3.4:5432/blue",
		"MY_DB_SERVICE_HOST":       "10.96.3.4",
		"MY_DB_PORT":               "tcp://10.96.3.4:5432",
		"MY_DB_PORT_5432_TCP_ADDR": "10.96.3.4",
		"KUBERNETES_SERVICE_HOST":  "10.96.0.1",
		"KUBERNETES_SERVICE_PORT":  "443",
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %q, want %q", name, got[name], v)
		}
	}
	for _, absent := range []string{"OPT", "HEADLESS_SERVICE_HOST"} {
		if _, ok := got[absent]; ok {
			t.Errorf("%s should not be set", absent)
		}
	}

	// A missing required key is a config error naming it.
	c.Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}, Key: "nope"}}}}
	_, err = (&podEnv{k: k, pod: pod}).forContainer(c)
	var ce *configError
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v, want a config error naming the key", err)
	}
	if !asConfigError(err, &ce) {
		t.Errorf("err %T is not a configError", err)
	}
}

func asConfigError(err error, target **configError) bool {
	ce, ok := err.(*configError)
	*target = ce
	return ok
}
